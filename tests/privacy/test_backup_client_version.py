"""pg_dump/pg_restore older than the server are refused with both versions named (real PostgreSQL).

No old pg_dump exists on this machine, so a tiny wrapper in a tmp bin folder answers ``--version`` with another
version and hands every other call to the real client: the backup code runs its real version check on the
wrapper's output against the real server's version.
"""

from __future__ import annotations

import stat
from pathlib import Path

import psycopg
import pytest

from include.backup import (
    BackupError,
    ClientTooOld,
    backup,
    backups,
    client_bin,
    major_of_client,
    major_of_server,
    restore_check,
)
from include.errors import NonRetryable
from include.privacy import PrivacyConfig

BACKUP_KEY = b"test-backup-key-0123456789abcdef"


def _wrapper(folder: Path, name: str, version_line: str) -> Path:
    """`folder/name`: prints `version_line` for --version, runs the real client otherwise."""
    real = client_bin(name, PrivacyConfig())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo "{version_line}"; exit 0; fi\nexec "{real}" "$@"\n',
        encoding="utf-8",
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _server_major(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.info.server_version // 10000


def test_an_older_pg_dump_is_refused_naming_both_versions(fresh_db: str, tmp_path: Path) -> None:
    server = _server_major(fresh_db)
    bin_dir = tmp_path / "oldbin"
    _wrapper(bin_dir, "pg_dump", f"pg_dump (PostgreSQL) {server - 1}.4 (Debian {server - 1}.4-1.pgdg120+2)")
    cfg = PrivacyConfig(backup_dir=tmp_path / "backups", pg_bin_dir=bin_dir)
    with pytest.raises(ClientTooOld) as caught:
        backup(fresh_db, cfg, BACKUP_KEY)
    message = str(caught.value)
    assert f"is PostgreSQL {server - 1} but the warehouse server is PostgreSQL {server}" in message
    assert str(bin_dir / "pg_dump") in message and "ECOM_PG_BIN_DIR" in message
    assert isinstance(caught.value, NonRetryable) and isinstance(caught.value, BackupError)
    # Refused before anything was written.
    assert backups(cfg.backup_dir) == [] and not any(cfg.backup_dir.iterdir())


def test_a_client_of_the_servers_major_or_newer_is_used(fresh_db: str, tmp_path: Path) -> None:
    server = _server_major(fresh_db)
    for version in (f"{server}.0", f"{server + 1}.2"):
        bin_dir = tmp_path / version
        _wrapper(bin_dir, "pg_dump", f"pg_dump (PostgreSQL) {version} (Debian {version}-1.pgdg120+1)")
        _wrapper(bin_dir, "pg_restore", f"pg_restore (PostgreSQL) {version}")
        cfg = PrivacyConfig(backup_dir=tmp_path / f"backups-{version}", pg_bin_dir=bin_dir)
        made = backup(fresh_db, cfg, BACKUP_KEY)
        assert Path(made["path"]).exists()
        assert restore_check(fresh_db, cfg, BACKUP_KEY)["tables"] == len(made["tables"])


def test_an_older_pg_restore_is_refused_before_restoring(fresh_db: str, tmp_path: Path) -> None:
    server = _server_major(fresh_db)
    good = PrivacyConfig(backup_dir=tmp_path / "backups")
    backup(fresh_db, good, BACKUP_KEY)
    bin_dir = tmp_path / "oldbin"
    _wrapper(bin_dir, "pg_restore", f"pg_restore (PostgreSQL) {server - 2}.9")
    old = good.model_copy(update={"pg_bin_dir": bin_dir})
    with pytest.raises(ClientTooOld, match=f"pg_restore .* is PostgreSQL {server - 2} but .* PostgreSQL {server}"):
        restore_check(fresh_db, old, BACKUP_KEY)


def test_version_parsing_of_old_and_odd_clients(tmp_path: Path) -> None:
    assert major_of_client(str(_wrapper(tmp_path / "a", "pg_dump", "pg_dump (PostgreSQL) 9.6.24"))) == (9, 6)
    assert major_of_client(str(_wrapper(tmp_path / "b", "pg_dump", "pg_dump (PostgreSQL) 17.6"))) == (17,)
    assert major_of_client(str(_wrapper(tmp_path / "c", "pg_dump", "pg_dump (PostgreSQL) 18beta1"))) == (18,)
    assert major_of_server(170006) == (17,) and major_of_server(90624) == (9, 6) and major_of_server(180001) == (18,)
    assert (9, 6) < (10,) < (17,)
    with pytest.raises(BackupError, match="printed no PostgreSQL version"):
        major_of_client(str(_wrapper(tmp_path / "d", "pg_dump", "something else 17.6")))
    # The real client of this machine parses too.
    assert major_of_client(client_bin("pg_dump", PrivacyConfig()))[0] >= 10
