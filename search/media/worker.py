"""Decoding in a worker process (the bulk ingest's pool). Importable before Django is set up: a
spawned worker unpickles these functions first and runs `init_worker` after."""

import os

from search.media import MediaRejected, PreparedMedia, prepare_media, thumbnail_jpeg, waveform_png


def init_worker(overrides: dict) -> None:
    """Django's settings with the parent's media caps (a test or a run may have changed them); no database."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "search.settings")
    import django
    from django.conf import settings

    django.setup()
    for name, value in overrides.items():
        setattr(settings, name, value)


def decode(data: bytes, digest: str, filename: str = "") -> PreparedMedia | MediaRejected:
    """`prepare_media` whose refusal is returned, not raised, and whose result travels without the bytes."""
    try:
        media = prepare_media(data, digest=digest, filename=filename)
    except MediaRejected as exc:
        return exc
    # The preview is drawn here too, in parallel with the parent's encoding (a document has none).
    if media.modality == "image":
        media.preview = thumbnail_jpeg(media.image)
    elif media.modality == "audio":
        media.preview = waveform_png(media.waveform)
    media.data = b""  # the parent holds the bytes
    return media
