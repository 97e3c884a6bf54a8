"""The run ledger is append-only per attempt; failed and aborted runs are recorded without touching data."""

from __future__ import annotations

from pathlib import Path

import pytest

from include import pipeline
from include.config_loader import Settings
from include.ledger import record_failure
from include.transform import RejectRateExceeded
from tests.integration.test_load import TABLES, digest, query, sample_settings

LEDGER = (
    "SELECT attempt, source, status, rows_read, rows_inserted, rows_updated, rows_unchanged, started_at"
    " FROM etl_runs WHERE etl_run_id = %s AND attempt = %s ORDER BY source"
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return sample_settings(tmp_path)


def test_reexecuting_a_committed_run_appends_an_attempt_and_keeps_the_first(settings: Settings, fresh_db: str) -> None:
    pipeline.run_all(settings, "run-1", fresh_db)
    first = query(fresh_db, LEDGER, "run-1", 1)
    assert {r[1] for r in first} == set(TABLES)
    orders = next(r for r in first if r[1] == "orders")
    assert orders[2] == "success" and orders[4] == 4  # 4 orders inserted by attempt 1

    pipeline.run_all(settings, "run-1", fresh_db)  # Airflow is at-least-once: the same run id again

    assert query(fresh_db, LEDGER, "run-1", 1) == first  # the first attempt's rows are untouched (started_at too)
    second = query(fresh_db, LEDGER, "run-1", 2)
    assert {r[1] for r in second} == set(TABLES)
    assert all(r[4] == 0 and r[5] == 0 for r in second), second  # what attempt 2 did: nothing new
    assert next(r for r in second if r[1] == "orders")[6] == 4  # ... 4 rows unchanged
    # readers count each run once, from its first successful attempt
    assert query(fresh_db, "SELECT DISTINCT attempt FROM etl_runs_effective WHERE etl_run_id = 'run-1'") == [(1,)]
    assert query(fresh_db, "SELECT sum(rows_inserted) FROM etl_runs_effective WHERE source = 'orders'") == [(4,)]


def test_record_failure_writes_one_scrubbed_run_wide_row_and_no_data(settings: Settings, fresh_db: str) -> None:
    pipeline.run_all(settings, "run-1", fresh_db)
    before = digest(fresh_db)
    err = ValueError("bad row for ann@example.com with password=hunter2\nsecond line with more detail")

    attempt = record_failure(fresh_db, "public", "run-2", "transform", err)

    assert attempt == 1
    rows = query(
        fresh_db,
        "SELECT attempt, source, status, failed_step, error_class, error_message, rows_read FROM etl_runs"
        " WHERE etl_run_id = 'run-2'",
    )
    assert rows == [(1, "*", "failed", "transform", "ValueError", "bad row for <email> with password=***", 0)]
    after = digest(fresh_db)
    assert {t: after[t] for t in TABLES} == {t: before[t] for t in TABLES}  # no data table touched
    assert query(fresh_db, "SELECT count(*) FROM etl_runs_effective WHERE etl_run_id = 'run-2'") == [(0,)]

    # a new export lands, the run is retried and succeeds: attempt 2, and it is the run's effective row
    orders = settings.raw_data_dir / "orders.csv"
    (settings.raw_data_dir / "orders_2.csv").write_text(orders.read_text().replace("ORD-", "ORD2-"))
    out = pipeline.run_all(settings, "run-2", fresh_db)
    assert set(out["sources"]) == {"orders"} and out["sources"]["orders"]["inserted"] > 0
    assert query(fresh_db, "SELECT DISTINCT attempt FROM etl_runs_effective WHERE etl_run_id = 'run-2'") == [(2,)]


def test_the_reject_guard_is_recorded_as_aborted_with_per_source_counts(fresh_db: str) -> None:
    counts = {
        "orders": {
            "source_file": "orders.csv",
            "rows_read": 10,
            "rows_loaded": 5,
            "rows_rejected": 5,
            "rows_duplicate": 0,
        },
        "customers": {
            "source_file": "customers.csv",
            "rows_read": 2,
            "rows_loaded": 2,
            "rows_rejected": 0,
            "rows_duplicate": 0,
        },
    }
    err = RejectRateExceeded("orders (orders.csv): 5/10 rows rejected = 50.0% > 10.0%")
    assert record_failure(fresh_db, "public", "run-g", "reject-rate guard", err, counts) == 1
    assert record_failure(fresh_db, "public", "run-g", "load", "lost", ["orders"]) == 2
    assert query(
        fresh_db,
        "SELECT attempt, source, status, error_class, rows_read, rows_rejected, source_file FROM etl_runs"
        " WHERE etl_run_id = 'run-g' ORDER BY attempt, source",
    ) == [
        (1, "customers", "aborted", "RejectRateExceeded", 2, 0, "customers.csv"),
        (1, "orders", "aborted", "RejectRateExceeded", 10, 5, "orders.csv"),
        (2, "orders", "failed", "Error", 0, 0, None),
    ]


def test_record_failure_never_raises_when_the_warehouse_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    conninfo = "host=127.0.0.1 port=1 dbname=x user=u password=topsecret connect_timeout=2"
    assert record_failure(conninfo, "public", "run-x", "load", RuntimeError("boom")) is None
    assert "could not record the failed attempt of run run-x" in caplog.text
    assert "topsecret" not in caplog.text
