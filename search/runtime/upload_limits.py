"""An upload handler that stops reading a file as soon as it passes the cap."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler


class UploadTooLarge(RequestDataTooBig):
    """Raised mid-stream; RequestGuardMiddleware turns it into a 413 with this message."""


class LimitedUploadHandler(FileUploadHandler):
    """First in FILE_UPLOAD_HANDLERS: counts bytes as they stream and aborts past the cap.

    The Content-Length check in RequestGuardMiddleware catches honest clients; this one
    catches chunked or lying ones and multipart bodies whose file alone is over the cap,
    so memory and temporary files never grow past it.
    """

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.SEARCH_MAX_UPLOAD_BYTES:
            raise UploadTooLarge(f"the file {self.file_name!r} is larger than the "
                                 f"{settings.SEARCH_MAX_UPLOAD_BYTES:,}-byte limit")
        return raw_data

    def file_complete(self, file_size):
        return None
