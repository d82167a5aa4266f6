"""The S3 media backend (SEARCH_MEDIA_BACKEND=s3): django-storages' S3Storage with bounded upload memory.

A module of its own so that boto3 is imported only by processes that use the bucket."""

from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from storages.backends.s3 import S3Storage

# botocore waits 60 s to connect and 60 s for a read, then retries: a request behind a store that went away would hold
# its worker for minutes. A short wait, a few retries in the standard mode (with backoff), then a 503
# (search/runtime/guards.py).
TIMEOUTS = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})


class MediaS3Storage(S3Storage):
    """Bounded waits on the store (TIMEOUTS), and a large file uploaded in at most two 8 MiB parts at a time: boto3
    copies each part of a seekable file into memory (ten at once by default: 80 MiB beside the upload itself); a file
    up to the multipart threshold goes up in one PUT read straight from the upload's own buffer."""

    def __init__(self, **settings):
        if settings.get("transfer_config") is None:
            settings["transfer_config"] = TransferConfig(multipart_threshold=16 * 1024 * 1024,
                                                         multipart_chunksize=8 * 1024 * 1024, max_concurrency=2)
        chosen = settings.get("client_config") is not None
        super().__init__(**settings)
        if not chosen:
            self.client_config = self.client_config.merge(TIMEOUTS)
