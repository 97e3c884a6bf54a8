"""Encrypted warehouse backups that are proven to restore.

`backup()` runs ``pg_dump -Fc`` (the client matching the server: ``privacy.pg_bin_dir``, else the embedded
wheel's, else PATH) inside an exported snapshot, so the per-table row counts and digests written to the
backup's manifest describe exactly the dumped data. The dump streams through AES-256-GCM in 1 MiB chunks
(key derived with HKDF from the Airflow connection ``privacy.backup_key_conn_id``; each chunk authenticated
with its index and a final flag, so a flipped bit, a reordered or a truncated file fails) into a 0600 file;
the ``keep`` newest are kept. The ``privacy`` schema (requests, suppressions, audit) is excluded: a restore
never rolls it back (see include/privacy.py).

`restore_check()` streams the newest (or a given) backup through decryption into ``pg_restore`` on a scratch
database and compares every table's count and digest with the manifest; any difference or a corrupted file
raises `BackupError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from psycopg import sql

from include.database import describe
from include.errors import NonRetryable
from include.privacy import PRIVACY_SCHEMA, PrivacyConfig, record_metrics, write_private

log = logging.getLogger(__name__)

MAGIC = b"ECOMBAK1"
CHUNK = 1 << 20
SUFFIX = ".dump.enc"
_HEADER = struct.Struct(">8s16s8s")  # magic, HKDF salt, nonce prefix
_RECORD = struct.Struct(">IB")  # ciphertext length, final flag


class BackupError(RuntimeError, NonRetryable):
    """A backup could not be made, read or verified; the message names the file."""


# ---- authenticated streaming encryption ---------------------------------------------------------
def _derive(secret: bytes, salt: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"ecommerce-etl backup v1").derive(secret)
    return AESGCM(key)


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + struct.pack(">QB", index, int(final))


def encrypt_stream(src: IO[bytes], dst: IO[bytes], secret: bytes) -> int:
    """Encrypt `src` into `dst`; return plaintext bytes."""
    salt, prefix = os.urandom(16), os.urandom(8)
    header = _HEADER.pack(MAGIC, salt, prefix)
    aead = _derive(secret, salt)
    dst.write(header)
    total, index = 0, 0
    pending = src.read(CHUNK)
    while True:
        nxt = src.read(CHUNK) if pending else b""
        final = not nxt
        nonce = prefix + struct.pack(">I", index)
        ct = aead.encrypt(nonce, pending, _aad(header, index, final))
        dst.write(_RECORD.pack(len(ct), int(final)))
        dst.write(ct)
        total += len(pending)
        index += 1
        if final:
            return total
        pending = nxt


def _read_exact(f: IO[bytes], n: int) -> bytes:
    data = f.read(n)
    return data if data is not None else b""


def decrypt_chunks(path: Path, secret: bytes) -> Iterator[bytes]:
    """The plaintext of backup `path`, chunk by chunk, each authenticated before it is yielded.

    Raises:
        BackupError: not a backup, wrong key, altered, reordered or truncated.
    """
    with path.open("rb") as f:
        header = _read_exact(f, _HEADER.size)
        if len(header) != _HEADER.size or not header.startswith(MAGIC):
            raise BackupError(f"backup {path} is not an encrypted backup of this project (bad header)")
        _, salt, prefix = _HEADER.unpack(header)
        aead = _derive(secret, salt)
        index = 0
        while True:
            rec = _read_exact(f, _RECORD.size)
            if len(rec) != _RECORD.size:
                raise BackupError(f"backup {path} is truncated (chunk {index} missing)")
            length, final = _RECORD.unpack(rec)
            ct = _read_exact(f, length)
            if len(ct) != length or final not in (0, 1):
                raise BackupError(f"backup {path} is truncated or corrupted at chunk {index}")
            try:
                yield aead.decrypt(prefix + struct.pack(">I", index), ct, _aad(header, index, bool(final)))
            except InvalidTag:
                raise BackupError(
                    f"backup {path} is corrupted or was encrypted with another key (chunk {index} fails authentication)"
                ) from None
            index += 1
            if final:
                if f.read(1):
                    raise BackupError(f"backup {path} has data after its final chunk")
                return


# ---- digests ------------------------------------------------------------------------------------
def _session_for_digests(conn: psycopg.Connection[Any]) -> None:
    # The text form of rows depends on these settings: both sides of the comparison must agree.
    conn.execute(
        "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 1; SET IntervalStyle = 'postgres'"
    )


def table_digests(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """Row count and an order-independent digest of every user table except the privacy schema."""
    _session_for_digests(conn)
    tables = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        " AND table_schema NOT IN ('pg_catalog', 'information_schema', %s) ORDER BY 1, 2",
        (PRIVACY_SCHEMA,),
    ).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for schema, table in tables:
        row = conn.execute(
            sql.SQL(
                "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '') FROM (SELECT md5(t::text) AS h FROM {} t) x"
            ).format(sql.Identifier(schema, table))
        ).fetchone()
        out[f"{schema}.{table}"] = {"rows": int(row[0]) if row else 0, "digest": row[1] if row else ""}
    return out


# ---- client binaries ----------------------------------------------------------------------------
class ClientTooOld(BackupError):
    """pg_dump/pg_restore is of an older major version than the server (pg_dump refuses such a server)."""


_CLIENT_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


def client_bin(name: str, cfg: PrivacyConfig) -> str:
    """Path of `name` (pg_dump, pg_restore): the configured folder, the embedded wheel's, or PATH.

    Raises:
        BackupError: not found.
    """
    if cfg.pg_bin_dir is not None:
        path = cfg.pg_bin_dir / name
        if path.exists():
            return str(path)
        raise BackupError(f"{name} not found in privacy.pg_bin_dir {cfg.pg_bin_dir}")
    try:
        from include.local_postgres import _bin

        path = _bin(name)
        if path.exists():
            return str(path)
    except ImportError:  # the embedded wheel is a dev dependency; production images use the server's client
        pass
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} not found: set privacy.pg_bin_dir to the client matching the server")
    return found


def major_of_client(path: str) -> tuple[int, ...]:
    """Major version of a PostgreSQL client tool, from ``<path> --version`` (``pg_dump (PostgreSQL) 17.6 ...``).

    PostgreSQL 10 and later: ``(17,)``; before 10 the major has two parts: ``(9, 6)``.

    Raises:
        BackupError: the tool does not run or prints no PostgreSQL version.
    """
    try:
        out = subprocess.run(  # noqa: S603 - a configured client binary, fixed argument
            [path, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as err:
        raise BackupError(f"{path} --version could not run: {err}") from err
    found = _CLIENT_VERSION.search(out.stdout)
    if out.returncode != 0 or not found:
        raise BackupError(
            f"{path} --version printed no PostgreSQL version (exit {out.returncode}): {out.stdout[:200]!r}"
        )
    major = int(found.group(1))
    return (major,) if major >= 10 else (major, int(found.group(2) or 0))


def major_of_server(server_version: int) -> tuple[int, ...]:
    """Major version of a server from libpq's number (``170006`` -> ``(17,)``, ``90624`` -> ``(9, 6)``)."""
    return (
        (server_version // 10000,)
        if server_version >= 100000
        else (server_version // 10000, server_version // 100 % 100)
    )


def _dotted(major: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in major)


def matching_client(name: str, cfg: PrivacyConfig, server_version: int) -> str:
    """`client_bin(name)`, refused when its major version is older than the server's.

    pg_dump refuses to dump a server of a newer major version ("server version mismatch") and an older
    pg_restore cannot read the archives a newer pg_dump writes: the error names both versions before any
    file is written. A newer client is fine (pg_dump supports older servers).

    Raises:
        ClientTooOld: the client is older than the server (NonRetryable: a retry cannot fix it).
        BackupError: the client is missing or prints no version.
    """
    path = client_bin(name, cfg)
    client, server = major_of_client(path), major_of_server(server_version)
    if client < server:
        raise ClientTooOld(
            f"{name} {path} is PostgreSQL {_dotted(client)} but the warehouse server is PostgreSQL {_dotted(server)}:"
            f" {name} must be of major {_dotted(server)} or newer. Install that client (in the image: Dockerfile"
            f" ARG PG_MAJOR, postgresql-client-<major> from apt.postgresql.org) and point privacy.pg_bin_dir"
            f" (env ECOM_PG_BIN_DIR) at its bin folder"
        )
    log.debug("%s %s is PostgreSQL %s (server %s)", name, path, _dotted(client), _dotted(server))
    return path


def _libpq_env(conninfo: str, dbname: str | None = None) -> dict[str, str]:
    """Environment for libpq tools: the password travels in PGPASSWORD, never on the command line."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    names = {
        "host": "PGHOST",
        "port": "PGPORT",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "dbname": "PGDATABASE",
        "sslmode": "PGSSLMODE",
        "sslrootcert": "PGSSLROOTCERT",
        "sslcert": "PGSSLCERT",
        "sslkey": "PGSSLKEY",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for key, var in names.items():
        if params.get(key) is not None:
            env[var] = str(params[key])
    if dbname:
        env["PGDATABASE"] = dbname
    return env


# ---- backup -------------------------------------------------------------------------------------
def backups(folder: Path) -> list[Path]:
    """Backups in `folder`, oldest first (names carry a sortable UTC timestamp)."""
    return sorted(folder.glob(f"warehouse-*{SUFFIX}")) if folder.exists() else []


def _manifest_path(path: Path) -> Path:
    return path.with_name(path.name[: -len(SUFFIX)] + ".manifest.json")


def backup(conninfo: str, cfg: PrivacyConfig, secret: bytes) -> dict[str, Any]:
    """Dump the warehouse (without the privacy schema), encrypted, into cfg.backup_dir; rotate; return a manifest.

    Raises:
        BackupError: pg_dump failed (its message, never the password).
    """
    folder = cfg.backup_dir
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"warehouse-{stamp}{SUFFIX}"
    tmp = folder / f".{target.name}.part"
    t0 = time.monotonic()
    with psycopg.connect(conninfo, autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
        server_version = conn.info.server_version
        cmd = [
            matching_client("pg_dump", cfg, server_version),
            "--format=custom",
            f"--snapshot={snapshot}",
            f"--exclude-schema={PRIVACY_SCHEMA}",
            "--no-password",
        ]
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out, tempfile.TemporaryFile() as errors:
                proc = subprocess.Popen(  # noqa: S603 - fixed client binary, arguments built here
                    cmd, stdout=subprocess.PIPE, stderr=errors, env=_libpq_env(conninfo)
                )
                if proc.stdout is None:  # cannot happen with stdout=PIPE; keeps the type checker honest
                    raise BackupError("pg_dump started without an output pipe")
                # Digests in the same snapshot as the dump, while pg_dump reads.
                digests = table_digests(conn)
                size = encrypt_stream(proc.stdout, out, secret)
                rc = proc.wait()
                errors.seek(0)
                stderr = errors.read().decode(errors="replace")
                out.flush()
                os.fsync(out.fileno())
            if rc != 0:
                raise BackupError(f"pg_dump of {describe(conninfo)} failed (exit {rc}): {stderr.strip()[-500:]}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        conn.rollback()
    manifest = {
        "file": target.name,
        "created_at": datetime.now(UTC).isoformat(),
        "server_version": server_version,
        "dump_bytes": size,
        "encrypted_bytes": target.stat().st_size,
        "seconds": round(time.monotonic() - t0, 2),
        "tables": digests,
    }
    write_private(_manifest_path(target), json.dumps(manifest, indent=1).encode())
    removed = rotate(folder, cfg.backups_keep)
    log.info(
        "backup %s written (%d bytes, %d tables, %.1fs); %d old backup(s) removed",
        target,
        manifest["encrypted_bytes"],
        len(digests),
        manifest["seconds"],
        removed,
    )
    return {**manifest, "path": str(target), "removed": removed}


def rotate(folder: Path, keep: int) -> int:
    """Delete all but the `keep` newest backups (and their manifests); return how many were deleted."""
    old = backups(folder)[:-keep] if keep > 0 else []
    for path in old:
        path.unlink(missing_ok=True)
        _manifest_path(path).unlink(missing_ok=True)
    return len(old)


# ---- restore check ------------------------------------------------------------------------------
def _scratch_name(conninfo: str, cfg: PrivacyConfig) -> str:
    db = str(psycopg.conninfo.conninfo_to_dict(conninfo).get("dbname") or "warehouse")
    return cfg.scratch_database or f"{db}_restore_check"[:63]


def restore_into(
    conninfo: str, path: Path, secret: bytes, cfg: PrivacyConfig, dbname: str, *, clean: bool = False
) -> None:
    """Stream backup `path` through decryption into pg_restore on database `dbname` (which must exist).

    `clean` drops the dumped objects first (a restore over the live warehouse); the privacy schema is not
    in the dump, so it is never dropped.

    Raises:
        BackupError: the file is corrupted or pg_restore failed; the message names the file.
    """
    with psycopg.connect(conninfo) as conn:
        server_version = conn.info.server_version
    cmd = [
        matching_client("pg_restore", cfg, server_version),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--no-password",
    ]
    if clean:
        cmd += ["--clean", "--if-exists", "--single-transaction"]
    cmd.append(f"--dbname={dbname}")
    # stderr into a file: a pipe left unread could fill up and stall pg_restore while we feed its stdin.
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(  # noqa: S603 - fixed client binary, arguments built here
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, env=_libpq_env(conninfo, dbname)
        )
        if proc.stdin is None:  # cannot happen with stdin=PIPE
            raise BackupError("pg_restore started without an input pipe")
        try:
            for chunk in decrypt_chunks(path, secret):
                proc.stdin.write(chunk)
        except BackupError:
            proc.kill()
            raise
        except BrokenPipeError:
            pass  # pg_restore stopped early: its exit code and message below say why
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            rc = proc.wait()
        if rc != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()[-500:]
            raise BackupError(f"restore of backup {path} failed (pg_restore exit {rc}): {message}")


def _prepare_scratch(conninfo: str, scratch: str) -> bool:
    """Make `scratch` an empty database to restore into; return True when it was created here (drop it after).

    A role with CREATEDB (a superuser, `make restore-check` as the owner of a laptop server) drops and creates
    it. The least-privilege loader of a deployment (NOCREATEDB: what the privacy DAGs connect as) uses the
    scratch database the set-up created for it (include/roles.py, scripts/container_init_warehouse.sh), emptied.

    Raises:
        BackupError: no such database and no right to create one, or it belongs to another role.
    """
    with psycopg.connect(conninfo, autocommit=True) as admin:
        row = admin.execute(
            "SELECT current_user, rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        user, can_create = (str(row[0]), bool(row[1])) if row else ("?", False)
        if can_create:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
            return True
        owner = admin.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (scratch,)
        ).fetchone()
    if owner is None:
        raise BackupError(
            f"restore-check needs a scratch database: {scratch} does not exist and role {user} may not create"
            f" databases (NOCREATEDB). Create it once as a superuser: CREATE DATABASE {scratch} OWNER {user}"
            f" (the warehouse set-up does: include/roles.py, scripts/container_init_warehouse.sh)"
        )
    if owner[0] != user:
        raise BackupError(
            f"restore-check scratch database {scratch} belongs to {owner[0]}, not to {user} who runs the check:"
            f" ALTER DATABASE {scratch} OWNER TO {user}"
        )
    _empty_scratch(conninfo, scratch)
    return False


def _empty_scratch(conninfo: str, scratch: str) -> None:
    """Drop every non-system schema of the scratch database (the restored copy) and recreate ``public``."""
    with psycopg.connect(psycopg.conninfo.make_conninfo(conninfo, dbname=scratch), autocommit=True) as conn:
        schemas = [
            r[0]
            for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
            )
        ]
        for name in schemas:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
        conn.execute("CREATE SCHEMA IF NOT EXISTS public")


def restore_check(conninfo: str, cfg: PrivacyConfig, secret: bytes, path: Path | None = None) -> dict[str, Any]:
    """Restore the newest backup (or `path`) into a scratch database and compare counts and digests.

    Raises:
        BackupError: no backup, a corrupted file, a failed restore or any table differing (names the file).
    """
    if path is None:
        found = backups(cfg.backup_dir)
        if not found:
            raise BackupError(f"no backup in {cfg.backup_dir}")
        path = found[-1]
    manifest_file = _manifest_path(path)
    if not manifest_file.exists():
        raise BackupError(f"backup {path} has no manifest {manifest_file.name}: cannot verify it")
    expected = json.loads(manifest_file.read_text(encoding="utf-8"))["tables"]
    scratch = _scratch_name(conninfo, cfg)
    t0 = time.monotonic()
    created = _prepare_scratch(conninfo, scratch)
    try:
        restore_into(conninfo, path, secret, cfg, scratch)
        scratch_info = psycopg.conninfo.make_conninfo(conninfo, dbname=scratch)
        with psycopg.connect(scratch_info) as conn:
            actual = table_digests(conn)
    finally:
        if created:
            with psycopg.connect(conninfo, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
        else:
            _empty_scratch(conninfo, scratch)  # no copy of the warehouse stays behind
    differing = sorted(t for t in set(expected) | set(actual) if expected.get(t) != actual.get(t))
    if differing:
        detail = "; ".join(f"{t}: expected {expected.get(t)}, restored {actual.get(t)}" for t in differing[:5])
        raise BackupError(f"restore-check of backup {path} failed: {len(differing)} table(s) differ: {detail}")
    result = {
        "file": str(path),
        "tables": len(actual),
        "rows": sum(v["rows"] for v in actual.values()),
        "seconds": round(time.monotonic() - t0, 2),
        "digest": hashlib.sha256(json.dumps(actual, sort_keys=True).encode()).hexdigest()[:16],
    }
    log.info(
        "restore-check of %s passed: %d tables, %d rows equal (%.1fs)",
        path,
        result["tables"],
        result["rows"],
        result["seconds"],
    )
    return result


def backup_and_check(
    conninfo: str, cfg: PrivacyConfig, secret: bytes, run_id: str, *, metrics_conninfo: str | None = None
) -> dict[str, Any]:
    """Backup, then restore-check it; store the outcome as monitoring metrics (category ``backup``) either way.

    `metrics_conninfo`: where the metrics are written (the reporting role owns monitoring_metrics in a
    least-privilege deployment); default `conninfo`.

    Raises:
        BackupError: the backup or its check failed (the failure metric is stored first).
    """
    metrics_at = metrics_conninfo or conninfo
    made: dict[str, Any] = {}
    try:
        made = backup(conninfo, cfg, secret)
        checked = restore_check(conninfo, cfg, secret, Path(made["path"]))
    except BackupError as err:
        with psycopg.connect(metrics_at) as conn:
            record_metrics(
                conn,
                run_id,
                "backup",
                [("backup.restore_check", made.get("file"), 0.0, None, "critical", str(err)[:500])],
            )
        raise
    with psycopg.connect(metrics_at) as conn:
        record_metrics(
            conn,
            run_id,
            "backup",
            [
                ("backup.restore_check", made["file"], 1.0, None, "ok", None),
                ("backup.size_bytes", made["file"], float(made["encrypted_bytes"]), "bytes", "ok", None),
                ("backup.seconds", made["file"], float(made["seconds"]) + float(checked["seconds"]), "s", "ok", None),
                ("backup.age_hours", made["file"], 0.0, "h", "ok", None),
            ],
        )
    return {"backup": made["path"], "tables": checked["tables"], "rows": checked["rows"], "removed": made["removed"]}


def newest_backup_age_hours(cfg: PrivacyConfig, now: datetime | None = None) -> float | None:
    """Hours since the newest backup was written (None: no backup) — for a stale-backup alert."""
    found = backups(cfg.backup_dir)
    if not found:
        return None
    now = now or datetime.now(UTC)
    return (now.timestamp() - found[-1].stat().st_mtime) / 3600
