"""Load every configured encoder once per process, before it takes traffic or jobs.

`manage.py serve` (gunicorn) warms each worker in `post_worker_init`, before it accepts a
connection; the development server warms in a background thread. /healthz reports the state.
"""

import logging
import threading

from django.conf import settings

import encoders

logger = logging.getLogger(__name__)

_lock = threading.Lock()
# space name -> "ready", or why it could not load. A space missing here has not been loaded yet.
state: dict[str, str] = {}


def share_cpus(threads: int | None = None) -> None:
    """Give the encoders of this process `threads` intra-op threads (default: SEARCH_TORCH_THREADS; 0 leaves
    torch's own default). Process-wide: torch applies it to every thread that runs an operator later."""
    threads = settings.SEARCH_TORCH_THREADS if threads is None else threads
    if threads:
        import torch

        torch.set_num_threads(threads)


def warm_up() -> dict[str, str]:
    """Load every space not loaded yet; a second caller waits for the first instead of loading twice."""
    with _lock:
        if not state:
            share_cpus()
        for name in settings.SEARCH_SPACES:
            if state.get(name) == "ready":
                continue
            try:
                encoders.get_space(name).warmup()
                state[name] = "ready"
            except Exception as exc:  # a broken space must not stop the server; /healthz and using it say why
                state[name] = f"{type(exc).__name__}: {exc}"
                logger.warning("could not warm up space %r: %s", name, exc)
        return dict(state)


def warm_up_in_background() -> threading.Thread:
    thread = threading.Thread(target=warm_up, name="encoder-warmup", daemon=True)
    thread.start()
    return thread
