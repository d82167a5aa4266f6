"""Load every configured encoder once at server start, in a background thread."""

import logging
import threading

from django.conf import settings

import encoders

logger = logging.getLogger(__name__)


def warm_up() -> None:
    for name in settings.SEARCH_SPACES:
        try:
            encoders.get_space(name).warmup()
        except Exception as exc:  # a broken space must not stop the server; using it says why
            logger.warning("could not warm up space %r: %s", name, exc)


def warm_up_in_background() -> threading.Thread:
    thread = threading.Thread(target=warm_up, name="encoder-warmup", daemon=True)
    thread.start()
    return thread
