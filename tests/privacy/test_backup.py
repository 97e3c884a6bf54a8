"""Encrypted backups: restore-check, rotation, corruption, and erasures surviving a restore (real PostgreSQL)."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import psycopg
import pytest

from include.backup import (
    BackupError,
    backup,
    backup_and_check,
    backups,
    decrypt_chunks,
    encrypt_stream,
    restore_check,
    restore_into,
    table_digests,
)
from include.privacy import process_requests, reapply_erasures, submit_request, token, token_address
from tests.privacy.conftest import BACKUP_KEY, KEY, SUBJECT, Warehouse, tables_holding


def test_stream_encryption_round_trip_and_tamper_detection(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000  # ~2.3 MB: three chunks
    path = tmp_path / "x.enc"
    with path.open("wb") as f:
        assert encrypt_stream(io.BytesIO(data), f, BACKUP_KEY) == len(data)
    assert b"".join(decrypt_chunks(path, BACKUP_KEY)) == data
    with pytest.raises(BackupError, match="another key"):
        b"".join(decrypt_chunks(path, b"wrong-key-0123456789abcdef"))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(BackupError, match=f"{path}.*truncated"):
        b"".join(decrypt_chunks(path, BACKUP_KEY))
    path.write_bytes(raw[: 32 + 5 + (1 << 20) + 16])  # exactly the first chunk: the final flag is missing
    with pytest.raises(BackupError, match="truncated"):
        b"".join(decrypt_chunks(path, BACKUP_KEY))
    empty = tmp_path / "empty.enc"
    with empty.open("wb") as f:
        encrypt_stream(io.BytesIO(b""), f, BACKUP_KEY)
    assert b"".join(decrypt_chunks(empty, BACKUP_KEY)) == b""


def test_backup_restores_with_equal_digests_and_rotates(warehouse: Warehouse) -> None:
    cfg = warehouse.cfg.model_copy(update={"backups_keep": 2})
    made = backup(warehouse.url, cfg, BACKUP_KEY)
    path = Path(made["path"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.with_name(made["file"].replace(".dump.enc", ".manifest.json")).stat().st_mode) == 0o600
    content = path.read_bytes()
    assert b"CREATE TABLE" not in content and SUBJECT.encode() not in content  # encrypted
    with psycopg.connect(warehouse.url) as conn:
        source = table_digests(conn)
    assert made["tables"] == source and source["public.orders"]["rows"] == 485
    assert "privacy.privacy_requests" not in source  # the privacy schema is never in a backup
    checked = restore_check(warehouse.url, cfg, BACKUP_KEY)
    assert checked["file"] == str(path) and checked["tables"] == len(source)
    assert checked["rows"] == sum(t["rows"] for t in source.values())
    # This warehouse's scratch database is gone afterwards (other tests' warehouses on the same server may keep
    # theirs: the role set-up creates one per database).
    scratch = psycopg.conninfo.conninfo_to_dict(warehouse.url)["dbname"] + "_restore_check"
    with psycopg.connect(warehouse.url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (scratch[:63],)).fetchone() == (0,)
    backup(warehouse.url, cfg, BACKUP_KEY)
    third = backup(warehouse.url, cfg, BACKUP_KEY)
    assert third["removed"] == 1
    kept = backups(cfg.backup_dir)
    assert len(kept) == 2 and path not in kept and kept[-1] == Path(third["path"])
    assert sorted(p.name for p in cfg.backup_dir.glob("*.manifest.json")) == sorted(
        p.name.replace(".dump.enc", ".manifest.json") for p in kept
    )


def test_corrupted_backup_fails_restore_check_loudly(warehouse: Warehouse) -> None:
    made = backup(warehouse.url, warehouse.cfg, BACKUP_KEY)
    path = Path(made["path"])
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(BackupError, match=rf"backup {path} is corrupted"):
        restore_check(warehouse.url, warehouse.cfg, BACKUP_KEY)


def test_restore_check_detects_a_manifest_that_does_not_match(warehouse: Warehouse) -> None:
    made = backup(warehouse.url, warehouse.cfg, BACKUP_KEY)
    manifest = Path(made["path"]).with_name(made["file"].replace(".dump.enc", ".manifest.json"))
    manifest.write_text(manifest.read_text().replace('"rows": 485', '"rows": 486'))
    with pytest.raises(BackupError, match=r"1 table\(s\) differ: public\.orders"):
        restore_check(warehouse.url, warehouse.cfg, BACKUP_KEY)


def test_backup_and_check_records_monitoring_metrics(warehouse: Warehouse) -> None:
    out = backup_and_check(warehouse.url, warehouse.cfg, BACKUP_KEY, "maint-1")
    assert out["rows"] > 485
    with psycopg.connect(warehouse.url) as conn:
        rows = dict(
            conn.execute(
                "SELECT metric_name, status FROM monitoring_metrics WHERE run_id = 'maint-1' AND category = 'backup'"
            ).fetchall()
        )
    assert rows == {
        "backup.restore_check": "ok",
        "backup.size_bytes": "ok",
        "backup.seconds": "ok",
        "backup.age_hours": "ok",
    }
    bad_cfg = warehouse.cfg.model_copy(update={"pg_bin_dir": warehouse.tmp / "no-such-bin"})
    with pytest.raises(BackupError, match="pg_dump not found"):
        backup_and_check(warehouse.url, bad_cfg, BACKUP_KEY, "maint-2")
    with psycopg.connect(warehouse.url) as conn:
        assert conn.execute(
            "SELECT metric_name, value, status FROM monitoring_metrics WHERE run_id = 'maint-2'"
        ).fetchall() == [("backup.restore_check", 0.0, "critical")]


def test_restoring_an_older_backup_does_not_resurrect_an_erased_customer(warehouse: Warehouse) -> None:
    made = backup(warehouse.url, warehouse.cfg, BACKUP_KEY)  # taken before the erasure
    submit_request(warehouse.url, "public", SUBJECT, "erase")
    process_requests(warehouse.url, "public", warehouse.dirs, KEY, run_id="e", actor="pytest")
    dbname = psycopg.conninfo.conninfo_to_dict(warehouse.url)["dbname"]

    restore_into(warehouse.url, Path(made["path"]), BACKUP_KEY, warehouse.cfg, dbname, clean=True)
    with psycopg.connect(warehouse.url) as conn:
        assert tables_holding(conn, SUBJECT) == {"public.customers": 1, "public.rejected_records": 1}
        # The restore did not roll back the privacy schema: the audit of the erasure is still there.
        assert conn.execute("SELECT count(*) FROM privacy.privacy_audit WHERE action = 'erase'").fetchone()[0] > 0
    reapply_erasures(warehouse.url, "public", KEY, warehouse.cfg.backup_dir, run_id="post-restore", actor="pytest")
    with psycopg.connect(warehouse.url) as conn:
        assert tables_holding(conn, SUBJECT) == {}
        assert conn.execute(
            "SELECT order_count FROM customers WHERE email = %s", (token_address(token(SUBJECT, KEY)),)
        ).fetchone() == (2,)

    # Even with the privacy tables lost too, the suppression file of the backup folder re-erases her.
    restore_into(warehouse.url, Path(made["path"]), BACKUP_KEY, warehouse.cfg, dbname, clean=True)
    with psycopg.connect(warehouse.url) as conn:
        conn.execute("TRUNCATE privacy.privacy_suppressions")
    counts = reapply_erasures(warehouse.url, "public", KEY, warehouse.cfg.backup_dir, run_id="pr2", actor="pytest")
    assert counts["erasures"] == 1
    with psycopg.connect(warehouse.url) as conn:
        assert tables_holding(conn, SUBJECT) == {}
