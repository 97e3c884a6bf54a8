"""Results are appended across runs; the report lists every check, what broke since when, and trends."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import psycopg

from include import quality_report
from include.config_loader import load_config
from include.quality import (
    CATEGORIES,
    CheckResult,
    blocking_failures,
    failure_message,
    load_quality_config,
    run_category,
)

Exec = Callable[..., None]


def _run_all(url: str, run_id: str) -> list[CheckResult]:
    cfg = load_quality_config(load_config())
    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        for category in CATEGORIES:
            out += run_category(conn, cfg, category, run_id)
    return out


def test_history_is_appended_never_replaced(clean_db: str) -> None:
    first = _run_all(clean_db, "quality_run_1")
    with psycopg.connect(clean_db) as conn:
        before = conn.execute(
            "SELECT result_id, run_id, check_name, status, observed_value FROM data_quality_results ORDER BY result_id"
        ).fetchall()
    second = _run_all(clean_db, "quality_run_2")
    with psycopg.connect(clean_db) as conn:
        after = conn.execute(
            "SELECT result_id, run_id, check_name, status, observed_value FROM data_quality_results ORDER BY result_id"
        ).fetchall()
        per_run: dict[str, int] = dict(
            conn.execute("SELECT run_id, count(*) FROM data_quality_results GROUP BY run_id").fetchall()
        )
        row = conn.execute(
            "SELECT check_type, table_name, column_name, severity, passed, status, observed_value, threshold, "
            "checked_at IS NOT NULL "
            "FROM data_quality_results WHERE run_id = 'quality_run_2' AND check_name = 'orders.row_count'"
        ).fetchone()
    assert len(first) == len(second) == len(load_quality_config(load_config()).checks)
    assert after[: len(before)] == before  # the first run's rows are untouched
    assert per_run == {"quality_run_1": len(first), "quality_run_2": len(second)}
    assert row == ("row_count", "orders", None, "fail", True, "passed", "3", ">= 1", True)


def test_a_retried_run_does_not_count_its_results_twice(clean_db: str) -> None:
    first = _run_all(clean_db, "quality_run_1")
    _run_all(clean_db, "quality_run_1")  # the same run again, as a task retry does
    with psycopg.connect(clean_db) as conn:
        assert conn.execute("SELECT count(*) FROM data_quality_results").fetchone() == (len(first),)


def test_shipped_checks_pass_on_clean_data(clean_db: str) -> None:
    results = _run_all(clean_db, "quality_clean")
    not_passed = [r.describe() for r in results if r.status != "passed"]
    assert not_passed == []


def test_failure_message_names_check_table_observed_and_threshold(clean_db: str, sql_exec: Exec) -> None:
    sql_exec("UPDATE orders SET total_amount = 20.00 WHERE order_reference = 'ORD-1'")
    failures = blocking_failures(_run_all(clean_db, "quality_broken"))
    assert [f.name for f in failures] == ["orders.total_amount.derived_product"]
    msg = failure_message(failures)
    assert "orders.total_amount.derived_product [derived_product, fail] on orders.total_amount: failed" in msg
    assert "observed 1, threshold 0 rows with |total_amount - quantity × unit_price| > 0.005" in msg


def test_report_lists_every_check_and_since_when_it_fails(clean_db: str, sql_exec: Exec, tmp_path: Path) -> None:
    _run_all(clean_db, "quality_run_1")  # all green
    sql_exec("UPDATE orders SET total_amount = 20.00 WHERE order_reference = 'ORD-1'")
    sql_exec("UPDATE orders SET order_date = order_date - interval '30 days'")
    _run_all(clean_db, "quality_run_2")
    results = _run_all(clean_db, "quality_run_3")
    with psycopg.connect(clean_db, autocommit=True) as conn:
        row = conn.execute(
            "SELECT checked_at FROM data_quality_results "
            "WHERE run_id = 'quality_run_2' AND check_name = 'orders.total_amount.derived_product'"
        ).fetchone()
        assert row is not None
        first_failure = row[0]
        paths = quality_report.write(conn, "quality_run_3", tmp_path / "quality")

    assert paths["html"] == str(tmp_path / "quality" / "quality_run_3.html")
    assert (paths["status"], paths["checks"], paths["failed"]) == ("failed", len(results), 1)
    html = Path(paths["html"]).read_text(encoding="utf-8")
    data = json.loads(Path(paths["json"]).read_text(encoding="utf-8"))
    assert (tmp_path / "quality" / "latest.html").read_text(encoding="utf-8") == html

    for r in results:
        assert r.name in html
    assert {r["name"] for r in data["results"]} == {r.name for r in results}
    assert data["summary"] == {
        "checks": len(results),
        "passed": len(results) - 2,
        "failed": 1,
        "warned": 1,
        "skipped": 0,
        "errors": 0,
        "status": "failed",
    }
    broken = next(r for r in data["results"] if r["name"] == "orders.total_amount.derived_product")
    assert (broken["status"], broken["badge"], broken["observed"], broken["failing_runs"]) == ("failed", "fail", "1", 2)
    assert broken["failing_since"] == first_failure.isoformat()
    assert data["results"][0]["name"] == "orders.total_amount.derived_product"  # problems first
    stale = next(r for r in data["results"] if r["name"] == "orders.order_date.freshness")
    assert (stale["badge"], stale["severity"]) == ("warn", "warn")
    # Trends: three runs of history, row counts per table per run, pass rate per run.
    assert [r["run_id"] for r in data["runs"]] == ["quality_run_1", "quality_run_2", "quality_run_3"]
    assert data["runs"][0]["pass_rate"] == 1.0
    assert data["runs"][2]["failed"] == 1 and data["runs"][2]["warned"] == 1
    assert {t: [v for _, v in pts] for t, pts in data["row_counts"].items()} == {
        "customers": [3.0] * 3,
        "products": [2.0] * 3,
        "orders": [3.0] * 3,
        "user_sessions": [2.0] * 3,
    }
    # Three runs of constant counts: no lone-dot charts, the values in words instead (include/reports.chart).
    assert html.count('src="data:image/png;base64,') == 0
    assert html.count("not enough history yet: 3 run(s)") == 2
    assert "What needs attention" in html and "FAILED" in html and "2 run(s) in a row" in html


def test_report_of_a_run_without_results_renders(fresh_db: str, tmp_path: Path) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        paths = quality_report.write(conn, "nothing/ran:here", tmp_path)
    assert Path(paths["html"]).name == "nothing_ran_here.html"
    assert paths["checks"] == 0
    assert "All checks passed" in Path(paths["html"]).read_text(encoding="utf-8")
