"""Without an Airflow API connection, monitoring judges ETL health from the run ledger `etl_runs`."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from include.config_loader import load_config
from include.monitoring import collect_etl_status_from_ledger, parse_monitoring, worst

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ledger(fresh_db: str) -> str:
    """A migrated warehouse (0002 gives etl_runs its attempt/status/error columns)."""
    return fresh_db


def _row(
    conn: psycopg.Connection, run_id: str, status: str, minute: int, *, attempt: int = 1, source: str = "*"
) -> None:
    conn.execute(
        "INSERT INTO etl_runs (etl_run_id, attempt, source, rows_read, rows_loaded, rows_rejected, rows_duplicate,"
        " started_at, finished_at, status, failed_step, error_class, error_message)"
        " VALUES (%s, %s, %s, 0, 0, 0, 0, now(), timestamptz '2026-01-01' + make_interval(mins => %s), %s,"
        " CASE WHEN %s = 'success' THEN NULL ELSE 'extract_orders' END,"
        " CASE WHEN %s = 'success' THEN NULL ELSE 'InputFileError' END,"
        " CASE WHEN %s = 'success' THEN NULL ELSE 'orders.csv, line 1: missing column' END)",
        (run_id, attempt, source, minute, status, status, status, status),
    )


def _cfg():  # type: ignore[no-untyped-def]
    return parse_monitoring(load_config(ROOT / "config.yaml").monitoring)


def _streak(metrics) -> float | None:  # type: ignore[no-untyped-def]
    return next(m.value for m in metrics if m.name == "dag.consecutive_failures")


def test_three_failed_runs_are_critical_without_an_api_connection(ledger: str) -> None:
    with psycopg.connect(ledger) as conn:
        _row(conn, "r0", "success", 0, source="orders")
        for i, status in enumerate(("failed", "aborted", "failed"), start=1):
            _row(conn, f"r{i}", status, i)
    metrics = collect_etl_status_from_ledger(_cfg(), ledger)
    assert _streak(metrics) == 3
    assert worst(metrics) == "critical"
    streak = next(m for m in metrics if m.name == "dag.consecutive_failures")
    assert streak.subject == "etl_ecommerce_pipeline" and streak.status == "critical"
    assert "from the run ledger etl_runs" in streak.message
    skipped = next(m for m in metrics if m.name == "airflow.api_reachable")
    assert skipped.status == "skipped" and "judged from etl_runs" in skipped.message


def test_a_success_ends_the_streak_and_a_successful_retry_counts_as_success(ledger: str) -> None:
    with psycopg.connect(ledger) as conn:
        _row(conn, "r1", "failed", 1)
        _row(conn, "r2", "failed", 2)
        _row(conn, "r3", "success", 3, source="orders")
        _row(conn, "r4", "failed", 4)
        _row(conn, "r5", "failed", 5)  # attempt 1 failed ...
        _row(conn, "r5", "success", 6, attempt=2, source="orders")  # ... its re-execution succeeded
        _row(conn, "r6", "failed", 7)
    metrics = collect_etl_status_from_ledger(_cfg(), ledger)
    assert _streak(metrics) == 1
    assert next(m.status for m in metrics if m.name == "dag.consecutive_failures") == "warn"
    assert next(m.value for m in metrics if m.name == "dag.failed_runs") == 4


def test_no_runs_is_ok(ledger: str) -> None:
    metrics = collect_etl_status_from_ledger(_cfg(), ledger)
    assert _streak(metrics) == 0
    assert worst(metrics) == "ok"
