"""The data_quality_checks DAG: schedule, severity semantics under dag.test(), and ETL -> quality end to end.

Airflow's metadata DB is SQLite in a temporary AIRFLOW_HOME (see conftest); the warehouse is a real
PostgreSQL database reached through AIRFLOW_CONN_POSTGRES_DEFAULT, exactly as in production.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from include.assets import WAREHOUSE_ASSETS

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "data_quality_dag.py"
ETL_DAG_FILE = ROOT / "dags" / "etl_ecommerce_dag.py"
CHECK_TASKS = ("check_data_completeness", "check_data_consistency", "check_data_freshness")

pytestmark = pytest.mark.slow


def _dag(path: Path, dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(path))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def _task_instances(run_id: str, dag_id: str) -> dict[str, tuple[str, int]]:
    """{task_id: (state, try_number)} of one DAG run, read from the metadata DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        return {ti.task_id: (str(ti.state), ti.try_number) for ti in tis}


def _results(url: str, run_id: str) -> dict[str, tuple[str, str, str | None]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT check_name, severity, status, observed_value FROM data_quality_results WHERE run_id = %s", (run_id,)
        ).fetchall()
    return {name: (severity, status, observed) for name, severity, status, observed in rows}


def test_schedule_is_the_etl_assets_or_a_daily_cron() -> None:
    from airflow.sdk import AssetAny, AssetOrTimeSchedule, CronTriggerTimetable

    dag = _dag(DAG_FILE, "data_quality_checks")
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert isinstance(dag.timetable.asset_condition, AssetAny)
    assert list(dag.timetable.asset_condition.objects) == list(WAREHOUSE_ASSETS)
    assert isinstance(dag.timetable.timetable, CronTriggerTimetable)
    assert dag.timetable.timetable.expression == "0 6 * * *"
    assert dag.catchup is False and dag.start_date.tzinfo is not None
    assert set(dag.task_ids) == {*CHECK_TASKS, "generate_quality_report", "quality_gate"}
    report = dag.task_dict["generate_quality_report"]
    assert report.trigger_rule == "all_done"
    assert report.upstream_task_ids == set(CHECK_TASKS)
    gate = dag.task_dict["quality_gate"]
    assert gate.trigger_rule == "all_success"
    assert gate.upstream_task_ids == {*CHECK_TASKS, "generate_quality_report"}
    assert [t.task_id for t in dag.leaves] == ["quality_gate"]  # the run's state follows the checks
    for t in CHECK_TASKS:
        assert dag.task_dict[t].upstream_task_ids == set()  # the three checks run in parallel
        assert dag.task_dict[t].retries == 1  # quality.retries (transient errors); fail checks bypass it
    assert "Data quality checks" in (dag.doc_md or "")


@pytest.mark.skipif(
    not ETL_DAG_FILE.exists(), reason="dags/etl_ecommerce_dag.py (the lead's ETL DAG) has not landed yet"
)
def test_etl_load_emits_exactly_the_assets_the_quality_dag_waits_for() -> None:
    etl = _dag(ETL_DAG_FILE, "etl_ecommerce_pipeline")
    # publish_assets (after the one-transaction load, skipped when nothing was loaded) emits the table Assets.
    outlets = {(a.name, a.uri) for a in etl.task_dict["publish_assets"].outlets}
    assert outlets and not etl.task_dict["load_data"].outlets
    quality = _dag(DAG_FILE, "data_quality_checks")
    assert {(a.name, a.uri) for a in quality.timetable.asset_condition.objects} == outlets


def test_failing_warn_check_keeps_the_run_green(
    airflow_metadata_db: str, clean_db: str, sql_exec: Callable[..., None], airflow_env: Callable[[str], Path]
) -> None:
    reports = airflow_env(clean_db)
    sql_exec("UPDATE orders SET order_date = order_date - interval '60 days'")  # stale business dates: a warn check

    dr = _dag(DAG_FILE, "data_quality_checks").test()

    assert str(dr.state) == "success"
    tis = _task_instances(dr.run_id, "data_quality_checks")
    assert tis == {t: ("success", 1) for t in (*CHECK_TASKS, "generate_quality_report", "quality_gate")}
    results = _results(clean_db, dr.run_id)
    severity, status, observed = results["orders.order_date.freshness"]
    assert (severity, status) == ("warn", "failed")
    assert observed is not None and float(observed) > 60 * 24
    assert all(s == "passed" for name, (_, s, _) in results.items() if name != "orders.order_date.freshness"), results
    data = json.loads((reports / "quality" / "latest.json").read_text(encoding="utf-8"))
    assert data["run_id"] == dr.run_id
    assert data["summary"]["status"] == "warn" and data["summary"]["warned"] == 1


def test_failing_fail_check_fails_the_task_once_and_the_report_is_still_written(
    airflow_metadata_db: str, clean_db: str, sql_exec: Callable[..., None], airflow_env: Callable[[str], Path]
) -> None:
    reports = airflow_env(clean_db)
    sql_exec("UPDATE orders SET total_amount = 99.99 WHERE order_reference = 'ORD-2'")  # 1 × 49.50 expected

    dr = _dag(DAG_FILE, "data_quality_checks").test()

    assert str(dr.state) == "failed"
    tis = _task_instances(dr.run_id, "data_quality_checks")
    assert tis["check_data_consistency"] == ("failed", 1)  # retries=1 configured, AirflowFailException skips it
    assert tis["check_data_completeness"] == ("success", 1)
    assert tis["check_data_freshness"] == ("success", 1)
    assert tis["generate_quality_report"] == ("success", 1)  # all_done: the report of a red run exists
    assert tis["quality_gate"][0] == "upstream_failed"
    results = _results(clean_db, dr.run_id)
    assert results["orders.total_amount.derived_product"] == ("fail", "failed", "1")
    assert len(results) == len(yaml.safe_load((ROOT / "config.yaml").read_text())["quality"]["tables"]["orders"]) + sum(
        len(v)
        for k, v in yaml.safe_load((ROOT / "config.yaml").read_text())["quality"]["tables"].items()
        if k != "orders"
    )  # every category persisted its results, including the failed one
    html = (reports / "quality" / f"{_stem(dr.run_id)}.html").read_text(encoding="utf-8")
    assert "orders.total_amount.derived_product" in html and "FAILED" in html


def test_bad_check_config_fails_the_task_without_retry(
    airflow_metadata_db: str,
    clean_db: str,
    airflow_env: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    airflow_env(clean_db)
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    cfg["quality"]["tables"]["orders"].append({"check": "not_null", "column": "coupon_code"})
    for key in ("raw_data_dir", "staging_dir", "reports_dir"):
        cfg["paths"][key] = (
            str((ROOT / cfg["paths"][key]).resolve()) if key != "reports_dir" else str(tmp_path / "reports")
        )
    bad = tmp_path / "config.yaml"
    bad.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    monkeypatch.setenv("ECOM_CONFIG", str(bad))

    dr = _dag(DAG_FILE, "data_quality_checks").test()

    assert str(dr.state) == "failed"
    tis = _task_instances(dr.run_id, "data_quality_checks")
    assert tis["check_data_completeness"] == ("failed", 1)
    assert tis["check_data_consistency"] == ("success", 1)
    results = _results(clean_db, dr.run_id)
    assert not any(name.startswith("orders.row_count") for name in results)  # nothing of the bad category ran
    assert "orders.order_reference.unique" in results


def _stem(run_id: str) -> str:
    from include.reports import safe_stem

    return safe_stem(run_id)


@pytest.mark.skipif(
    not ETL_DAG_FILE.exists(), reason="dags/etl_ecommerce_dag.py (the lead's ETL DAG) has not landed yet"
)
def test_etl_then_quality_end_to_end(
    airflow_metadata_db: str,
    fresh_db: str,
    airflow_env: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from scripts.generate_data import generate

    reports = airflow_env(fresh_db)
    raw = tmp_path / "raw"
    generate(raw, orders=300, sessions=200)
    monkeypatch.setenv("ECOM_RAW_DATA_DIR", str(raw))
    monkeypatch.setenv("ECOM_STAGING_DIR", str(tmp_path / "staging"))

    etl_run = _dag(ETL_DAG_FILE, "etl_ecommerce_pipeline").test()
    assert str(etl_run.state) == "success"
    dr = _dag(DAG_FILE, "data_quality_checks").test()

    assert str(dr.state) == "success"
    results = _results(fresh_db, dr.run_id)
    with psycopg.connect(fresh_db) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM user_sessions), "
            "(SELECT count(*) FROM rejected_records WHERE source = 'orders')"
        ).fetchone()
    assert counts is not None and counts[0] > 250
    assert results["orders.row_count"] == ("fail", "passed", str(counts[0]))
    assert results["user_sessions.row_count"] == ("fail", "passed", str(counts[1]))
    assert results["orders.reconciliation"][1] == "passed"
    assert results["orders.total_amount.derived_product"] == ("fail", "passed", "0")
    assert results["user_sessions.duration_seconds.derived_duration"] == ("fail", "passed", "0")
    assert results["orders.load_freshness"][:2] == ("fail", "passed")
    assert results["orders.order_date.freshness"][:2] == ("warn", "failed")  # sample dates lie in the past
    assert results["orders.volume_anomaly"][:2] == ("warn", "skipped")  # one run: not enough history
    blocking = [n for n, (sev, status, _) in results.items() if sev == "fail" and status != "passed"]
    assert blocking == []
    assert (reports / "quality" / f"{_stem(dr.run_id)}.html").exists()
