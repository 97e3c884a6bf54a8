"""Retention deletes exactly what is older than each limit, and counts it (real PostgreSQL)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from include.privacy import Dirs, enforce_retention
from tests.privacy.conftest import Warehouse

NOW = datetime(2027, 6, 15, 12, 0, tzinfo=UTC)


def _file(path: Path, age: timedelta) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    t = (NOW - age).timestamp()
    os.utime(path, (t, t))
    return path


def test_retention_deletes_exactly_what_is_older_than_the_limits(warehouse: Warehouse) -> None:
    cfg = warehouse.cfg.model_copy(
        update={
            "sessions_months": 13,
            "rejected_days": 90,
            "reports_days": 30,
            "archive_days": 60,
            "exports_days": 10,
            "archive_dir": warehouse.tmp / "archive",
        }
    )
    dirs: Dirs = warehouse.dirs
    with psycopg.connect(warehouse.url) as conn:
        # Sessions: 13 months before NOW is 2026-05-15 12:00; one second either side of it.
        conn.execute("UPDATE user_sessions SET session_start = %s, session_end = NULL", (NOW - timedelta(days=10),))
        conn.execute(
            "UPDATE user_sessions SET session_start = '2026-05-15 11:59:59+00' WHERE session_id IN"
            " (SELECT session_id FROM user_sessions ORDER BY session_id LIMIT 3)"
        )
        conn.execute(
            "UPDATE user_sessions SET session_start = '2026-05-15 12:00:01+00' WHERE session_id IN"
            " (SELECT session_id FROM user_sessions ORDER BY session_id OFFSET 3 LIMIT 2)"
        )
        sessions = conn.execute("SELECT count(*) FROM user_sessions").fetchone()[0]
        rejected = conn.execute("SELECT count(*) FROM rejected_records").fetchone()[0]
        conn.execute("UPDATE rejected_records SET rejected_at = %s", (NOW - timedelta(days=89),))
        conn.execute(
            "UPDATE rejected_records SET rejected_at = %s WHERE rejected_id IN"
            " (SELECT rejected_id FROM rejected_records ORDER BY rejected_id LIMIT 4)",
            (NOW - timedelta(days=90, seconds=1),),
        )
        spent_before = conn.execute("SELECT sum(total_spent), sum(session_count) FROM customers").fetchone()
    for p in dirs.staging.rglob("*"):
        t = (NOW - timedelta(days=1)).timestamp()
        os.utime(p, (t, t))
    old_run = _file(dirs.staging / "etl_ecommerce_pipeline" / "old-run" / "transform" / "x.csv", timedelta(days=8))
    os.utime(old_run.parent, ((NOW - timedelta(days=8)).timestamp(),) * 2)
    os.utime(old_run.parent.parent, ((NOW - timedelta(days=8)).timestamp(),) * 2)
    old_report = _file(dirs.reports / "quality" / "old.html", timedelta(days=31))
    new_report = _file(dirs.reports / "quality" / "new.html", timedelta(days=29))
    old_archive = _file(cfg.archive_dir / "2026" / "orders.csv", timedelta(days=61))
    new_archive = _file(cfg.archive_dir / "2027" / "orders.csv", timedelta(days=59))
    old_export = _file(dirs.exports / "access-1.json", timedelta(days=11))
    new_export = _file(dirs.exports / "access-2.json", timedelta(days=9))
    (dirs.reports / "extract.csv").unlink()

    counts = enforce_retention(
        warehouse.url, "public", cfg, dirs, staging_days=7, run_id="ret-1", actor="pytest", now=NOW
    )

    assert counts == {
        "user_sessions": 3,
        "rejected_records": 4,
        "staging_runs": 1,
        "report_files": 1,
        "archive_files": 1,
        "export_files": 1,
    }
    assert not old_run.exists() and not old_report.exists() and not old_archive.exists() and not old_export.exists()
    assert new_report.exists() and new_archive.exists() and new_export.exists()
    assert (dirs.staging / "etl_ecommerce_pipeline" / "run-1").exists()
    with psycopg.connect(warehouse.url) as conn:
        assert conn.execute("SELECT count(*) FROM user_sessions").fetchone()[0] == sessions - 3
        assert conn.execute("SELECT count(*) FROM rejected_records").fetchone()[0] == rejected - 4
        spent_after = conn.execute("SELECT sum(total_spent), sum(session_count) FROM customers").fetchone()
        assert spent_after == (spent_before[0], spent_before[1] - 3)  # aggregates follow the deleted sessions
        audit = dict(
            conn.execute(
                "SELECT table_name, rows_changed FROM privacy.privacy_audit WHERE action = 'retention' AND run_id = 'ret-1'"
            ).fetchall()
        )
        metrics = {
            r[0]: r[1]
            for r in conn.execute(
                "SELECT subject, value FROM monitoring_metrics WHERE category = 'retention'"
                " AND metric_name = 'retention.deleted' AND run_id = 'ret-1' AND status = 'ok'"
            )
        }
    assert audit == counts
    assert metrics == {k: float(v) for k, v in counts.items()}

    again = enforce_retention(
        warehouse.url, "public", cfg, dirs, staging_days=7, run_id="ret-2", actor="pytest", now=NOW
    )
    assert set(again.values()) == {0}


def test_null_limits_keep_everything(warehouse: Warehouse) -> None:
    cfg = warehouse.cfg.model_copy(
        update={k: None for k in ("sessions_months", "rejected_days", "reports_days", "exports_days")}
    )
    far = NOW + timedelta(days=3650)
    counts = enforce_retention(
        warehouse.url, "public", cfg, warehouse.dirs, staging_days=None, run_id="r", actor="pytest", now=far
    )
    assert counts == {"staging_runs": 0, "report_files": 0, "archive_files": 0, "export_files": 0}
