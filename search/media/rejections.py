"""Why a file was refused. Each is a `MediaRejected` whose `code` is stable for API clients
and whose message a user can act on; the API answers `MediaTooLarge` with 413, the rest 400."""


class MediaRejected(ValueError):
    """Input refused before anything was stored. `code` is stable for API clients."""

    code = "invalid"


class UnsupportedMediaType(MediaRejected):
    code = "unsupported_type"


class MediaTooLarge(MediaRejected):
    code = "too_large"


class CorruptMedia(MediaRejected):
    code = "corrupt"


class EmptyContent(MediaRejected):
    code = "empty"


class UnreadableFile(MediaRejected):
    """A file named for ingest that cannot be read (gone, a folder, no permission) or changed while read."""

    code = "unreadable"

    @classmethod
    def reading(cls, exc: OSError) -> "UnreadableFile":
        """The refusal of a file whose read raised `exc`."""
        return cls(f"cannot read the file: {exc.strerror or exc}")
