"""Running the evaluation from the admin: `manage.py evaluate` for one space, in a background thread.

The figures land where the command always stores them (search.evaluation.save_evaluation), so the
spaces page shows them when the run ends; meanwhile and after a failure it shows this module's state.
One run per space at a time; the state is per process, which is enough for a button.
"""

import logging
import threading
from io import StringIO

from django.core.management import call_command
from django.db import connection
from django.utils import timezone

log = logging.getLogger(__name__)
_lock = threading.Lock()
_states: dict[str, str] = {}  # space name -> what a curator is told while it runs or after it failed
_running: set[str] = set()


def state(space_name: str) -> str:
    with _lock:
        return _states.get(space_name, "")


def start(space_name: str) -> bool:
    """Start an evaluation of the space unless one is running; whether it started."""
    with _lock:
        if space_name in _running:
            return False
        _running.add(space_name)
        _states[space_name] = f"running since {timezone.localtime():%H:%M}…"
    threading.Thread(target=_run, args=(space_name,), daemon=True, name=f"evaluate-{space_name}").start()
    return True


def _run(space_name: str) -> None:
    failure = ""
    try:
        call_command("evaluate", space=space_name, stdout=StringIO(), stderr=StringIO())
    except BaseException as exc:  # noqa: BLE001 - any failure must reach the curator, not vanish in a thread
        log.exception("evaluation of %s failed", space_name)
        failure = f"the last run failed: {str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}"
    finally:
        connection.close()
        with _lock:
            _running.discard(space_name)
            if failure:
                _states[space_name] = failure
            else:
                _states.pop(space_name, None)
