"""Erasure against the landing zone's own reprocess of ARCHIVED raw files (real pipeline, real PostgreSQL).

The issue asks that archived raw files reprocessed after an erasure never bring the address back, "tested with
the landing zone's reprocess": here landing.archive is on, the first run archives its files, the subject is
erased, and the ETL is run again with ``reprocess`` globs (the DAG Param of the same name) on the archive.
Also: the erasure logs nothing that holds the address, at any level.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import psycopg
import pytest

from include import pipeline
from include.config_loader import load_config
from include.privacy import (
    Dirs,
    privacy_config,
    process_requests,
    reapply_erasures,
    submit_request,
    token,
    token_address,
)
from tests.privacy.conftest import KEY, RAW_SUBJECT, SUBJECT, files_holding, tables_holding, write_raw

TOKEN_ADDRESS = token_address(token(SUBJECT, KEY))


def _revenue(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*), sum(total_amount) FROM orders").fetchone()


def test_reprocessing_archived_raw_files_after_an_erasure_keeps_the_address_out(
    fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    raw = tmp_path / "raw"
    write_raw(raw)
    text = load_config().config_path.read_text(encoding="utf-8")
    assert "  archive: false" in text
    config = tmp_path / "config.yaml"
    config.write_text(text.replace("  archive: false", "  archive: true", 1), encoding="utf-8")
    for var, value in {
        "ECOM_CONFIG": str(config),
        "ECOM_RAW_DATA_DIR": str(raw),
        "ECOM_STAGING_DIR": str(tmp_path / "staging"),
        "ECOM_REPORTS_DIR": str(tmp_path / "reports"),
        "ECOM_EXPORTS_DIR": str(tmp_path / "exports"),
        "ECOM_BACKUP_DIR": str(tmp_path / "backups"),
        "AIRFLOW_CONN_PRIVACY_KEY": json.dumps({"conn_type": "generic", "password": KEY.decode()}),
    }.items():
        monkeypatch.setenv(var, value)
    settings = load_config()
    cfg = privacy_config(settings)
    dirs = Dirs.of(settings, cfg)

    pipeline.run_all(settings, "run-1", fresh_db)
    archived = files_holding(settings.archive_dir, SUBJECT)
    assert {p.name for p in archived} == {"customers.csv", "orders.csv", "user_sessions.json"}  # really archived
    assert files_holding(raw, SUBJECT) == archived  # and nothing left in the landing folder itself
    before = _revenue(fresh_db)

    caplog.set_level(logging.DEBUG)
    submit_request(fresh_db, "public", RAW_SUBJECT, "erase")
    [done] = process_requests(fresh_db, "public", dirs, KEY, run_id="erase", actor="pytest")
    assert done["status"] == "done" and done["counts"]["customers"] == 1
    assert any("erase step" in r.getMessage() for r in caplog.records)  # the DEBUG step timings were captured
    assert not [r.getMessage() for r in caplog.records if SUBJECT in r.getMessage().lower()]

    # The landing zone's reprocess: every archived file of every source is claimed and loaded again.
    again = pipeline.run_all(settings, "run-reprocess", fresh_db, reprocess=["*"])
    assert {f["rel_path"].rsplit("/", 1)[-1] for f in again["files"] if f.get("reprocess")} >= {
        "customers.csv",
        "orders.csv",
        "user_sessions.json",
    }
    with psycopg.connect(fresh_db) as conn:
        assert tables_holding(conn, SUBJECT) == {}
        assert conn.execute(
            "SELECT count(*) FROM orders o JOIN customers c USING (customer_id) WHERE c.email = %s", (TOKEN_ADDRESS,)
        ).fetchone() == (2,)
    assert _revenue(fresh_db) == before
    # The reprocessed session came back under the token; the daily re-apply deletes it again.
    reapply_erasures(fresh_db, "public", KEY, cfg.backup_dir, run_id="maint", actor="pytest")
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM user_sessions s JOIN customers c USING (customer_id) WHERE c.email = %s",
            (TOKEN_ADDRESS,),
        ).fetchone() == (0,)
        assert tables_holding(conn, SUBJECT) == {}
    for folder in (settings.staging_dir, settings.reports_dir, cfg.backup_dir):
        assert files_holding(folder, SUBJECT) == [], [str(p) for p in files_holding(folder, SUBJECT)]
    # Archived raw files are not rewritten (README): they still hold it until privacy.archive_days expires them.
    assert files_holding(settings.archive_dir, SUBJECT) == archived
