"""Why a document was refused, beyond the rejections it shares with other media
(`search.media.rejections`: EmptyContent, MediaTooLarge, CorruptMedia, UnsupportedMediaType).
Each is a `MediaRejected` whose `code` is stable for API clients (answered with 400)."""

from search.media.rejections import MediaRejected


class EncryptedDocument(MediaRejected):
    code = "encrypted"


class NoTextLayer(MediaRejected):
    """A PDF whose pages carry no extractable text: a scan, or pages of pictures."""

    code = "no_text_layer"


class InvalidEncoding(MediaRejected):
    code = "invalid_encoding"
