"""The ETL DAG: integrity (parses, ids, wiring, retries, assets), parse-time hygiene, and real runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from include.assets import WAREHOUSE_ASSETS
from include.config_loader import DEFAULT_CONFIG, load_config

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
SAMPLE = ROOT / "data" / "raw"


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_dag_file_imports_without_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert "etl_ecommerce_pipeline" in dagbag.dag_ids


def test_etl_dag_shape(dagbag) -> None:  # type: ignore[no-untyped-def]
    from airflow.providers.standard.triggers.file import DirectoryFileDeleteTrigger

    dag = dagbag.dags["etl_ecommerce_pipeline"]
    settings = load_config(DEFAULT_CONFIG)
    assert set(dag.task_ids) == {
        "claim_files",
        "extract_file",
        "transform_products",
        "transform_file",
        "load_data",
        "publish_assets",
        "archive_files",
        "send_notification",
    }
    up = {t: dag.get_task(t).upstream_task_ids for t in dag.task_ids}
    assert up["extract_file"] == {"claim_files"}
    assert up["transform_products"] == {"extract_file"}  # products first: orders are validated against their ids
    assert up["transform_file"] == {"extract_file", "transform_products"}
    assert up["load_data"] == {"transform_file"}
    assert up["publish_assets"] == up["archive_files"] == up["send_notification"] == {"load_data"}
    # One task instance per file, capped per run; an empty claim ends green ("nothing new").
    for mapped in ("extract_file", "transform_file"):
        assert dag.get_task(mapped).max_active_tis_per_dagrun == settings.landing.max_parallel_files
    for downstream in ("transform_products", "load_data", "send_notification"):
        assert dag.get_task(downstream).trigger_rule == "none_failed"
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.start_date.tzinfo is not None
    assert dag.doc_md and "E-commerce ETL" in dag.doc_md
    for t in dag.tasks:
        assert t.retries == settings.retries
        assert t.retry_exponential_backoff
        assert len(t.on_failure_callback) == 2  # alert reason + failed run in etl_runs, on every task
    # Assets only from publish_assets (skipped when nothing was loaded or on a dry run).
    assert {a.uri for a in dag.get_task("publish_assets").outlets} == {a.uri for a in WAREHOUSE_ASSETS}
    assert not dag.get_task("load_data").outlets
    assert dag.get_task("load_data").pool == "warehouse_load"
    # The cron OR the exporter's marker file (asset watcher on the landing folder).
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    (marker,) = dag.timetable.asset_condition.objects
    trigger = marker.watchers[0].trigger
    assert isinstance(trigger, DirectoryFileDeleteTrigger)
    assert (trigger.directory, trigger.filename) == (str(settings.raw_data_dir), settings.landing.marker)
    assert {k: dag.params[k] for k in ("reprocess", "dry_run")} == {"reprocess": [], "dry_run": False}


def test_dag_files_touch_no_database_network_or_variables_at_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import importlib.util, socket, sys, time\n"
        "import psycopg, requests\n"
        "def refuse(*a, **k):\n    raise AssertionError('network or database touched at import time')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\npsycopg.connect = refuse\npsycopg.Connection.connect = refuse\n"
        "requests.Session.request = refuse\n"
        "import airflow.sdk\nairflow.sdk.Variable.get = staticmethod(refuse)\nairflow.sdk.Connection.get = staticmethod(refuse)\n"
        "for path in sys.argv[1:]:\n"
        "    t = time.monotonic()\n"
        "    spec = importlib.util.spec_from_file_location('dagfile', path)\n"
        "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "    print(path, round(time.monotonic() - t, 3))\n"
    )
    env = {**os.environ, "AIRFLOW_CONN_POSTGRES_DEFAULT": "postgresql://u:p@192.0.2.1:5432/nowhere"}
    files = sorted(str(p) for p in DAGS.glob("*.py"))
    proc = subprocess.run(
        [sys.executable, str(probe), *files], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(proc.stdout.strip().splitlines()) == len(files)


def _dags_test(
    tmp_path: Path, db_url: str, raw: Path, home: str, conf: dict[str, object] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": home,
        "AIRFLOW_CONN_POSTGRES_DEFAULT": db_url,
        "ECOM_RAW_DATA_DIR": str(raw),
        "ECOM_STAGING_DIR": str(tmp_path / "staging"),
        "ECOM_REPORTS_DIR": str(tmp_path / "reports"),
    }
    airflow = Path(sys.executable).parent / "airflow"
    return subprocess.run(
        [str(airflow), "dags", "test", "etl_ecommerce_pipeline", *(["-c", json.dumps(conf)] if conf else [])],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_full_run_loads_the_sample_and_hides_the_password(
    tmp_path: Path, fresh_db: str, airflow_metadata_db: str
) -> None:
    proc = _dags_test(tmp_path, fresh_db, SAMPLE, airflow_metadata_db)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    expected = json.loads((SAMPLE / "manifest.json").read_text())
    with psycopg.connect(fresh_db) as conn:
        ledger = {
            r[0]: r[1:]
            for r in conn.execute("SELECT source, rows_read, rows_loaded, rows_rejected, rows_duplicate FROM etl_runs")
        }
        for source in ("orders", "user_sessions", "customers", "products"):
            e = expected[source]
            assert ledger[source] == (
                e["rows"],
                e["rows"] - e["rejected"] - e["duplicates"],
                e["rejected"],
                e["duplicates"],
            ), source
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (expected["orders"]["valid"],)
        assert conn.execute("SELECT count(*) FROM rejected_records").fetchone() == (
            sum(expected[s]["rejected"] for s in ("orders", "user_sessions", "customers", "products")),
        )
        assert conn.execute("SELECT count(*) FROM orders WHERE total_amount <> quantity * unit_price").fetchone() == (
            0,
        )
    # Airflow must mask the connection password in everything it prints or logs.
    password = psycopg.conninfo.conninfo_to_dict(fresh_db)["password"]
    assert password and password not in output
    for log_file in Path(airflow_metadata_db).rglob("*.log"):
        assert password not in log_file.read_text(errors="replace"), log_file
    # XCom carries manifests only: the summary returned by the last task is small.
    assert "rows_loaded" in output


@pytest.mark.slow
def test_broken_file_fails_fast_and_loads_nothing(tmp_path: Path, fresh_db: str, airflow_metadata_db: str) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("products.json", "user_sessions.json", "customers.csv"):
        (raw / name).write_bytes((SAMPLE / name).read_bytes())
    lines = (SAMPLE / "orders.csv").read_text().splitlines()
    lines[10] = lines[10] + ",surplus"
    (raw / "orders.csv").write_text("\n".join(lines) + "\n")
    proc = _dags_test(tmp_path, fresh_db, raw, airflow_metadata_db)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "orders.csv, line 11: expected 8 fields, found 9" in output
    assert "up_for_retry" not in output.lower()
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (0,)
        # The failed run is a fact in the ledger (one row: parallel tasks of one execution report once), and
        # no reader counts it as a load.
        rows = conn.execute(
            "SELECT attempt, source, status, failed_step, error_class, error_message FROM etl_runs"
        ).fetchall()
        assert len(rows) == 1, rows
        attempt, source, status, step, error_class, message = rows[0]
        assert (attempt, source, status, step, error_class) == (1, "*", "failed", "extract_file", "InputFileError")
        assert "orders.csv, line 11: expected 8 fields, found 9" in message
        assert conn.execute("SELECT count(*) FROM etl_runs_effective").fetchone() == (0,)


def _task_instances(run_id: str) -> dict[str, list[int]]:
    """task_id -> map indexes of the run's task instances, from Airflow's (SQLite) metadata database."""
    import sqlite3

    path = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT task_id, map_index FROM task_instance WHERE dag_id = 'etl_ecommerce_pipeline' AND run_id = ?"
            " ORDER BY task_id, map_index",
            (run_id,),
        ).fetchall()
    out: dict[str, list[int]] = {}
    for task_id, index in rows:
        out.setdefault(task_id, []).append(index)
    return out


@pytest.mark.slow
def test_one_task_per_file_dry_run_then_only_the_new_file_then_nothing_new(
    tmp_path: Path, fresh_db: str, airflow_metadata_db: str
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("products.json", "user_sessions.json", "customers.csv", "orders.csv"):
        (raw / name).write_bytes((SAMPLE / name).read_bytes())
    header, first = (SAMPLE / "orders.csv").read_text().splitlines()[:2]
    ref = first.split(",")[0]
    (raw / "orders_2026-10-02.csv").write_text(f"{header}\n{first.replace(ref, 'LANDING-2', 1)}\n")

    def run(conf: dict[str, object] | None = None) -> str:
        proc = _dags_test(tmp_path, fresh_db, raw, airflow_metadata_db, conf)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
        with psycopg.connect(fresh_db) as conn:
            rows = conn.execute("SELECT etl_run_id FROM etl_runs ORDER BY finished_at DESC LIMIT 1").fetchall()
        return str(rows[0][0]) if rows else ""

    first_run = run()
    tis = _task_instances(first_run)
    assert tis["extract_file"] == tis["transform_file"] == [0, 1, 2, 3, 4]  # five files, one instance each
    assert tis["load_data"] == [-1]

    def counts() -> tuple[int, int, str]:
        with psycopg.connect(fresh_db) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM ingested_files), (SELECT count(*) FROM orders),"
                " (SELECT md5(string_agg(o::text, '|' ORDER BY order_id)) FROM orders o)"
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), str(row[2])

    loaded = counts()
    assert loaded[0] == 5
    (raw / "orders_2026-10-03.csv").write_text(f"{header}\n{first.replace(ref, 'LANDING-3', 1)}\n")
    run({"dry_run": True})
    assert counts() == loaded  # a preview writes no row, registry entry or ledger success

    run()
    files, orders, _ = counts()
    assert (files, orders) == (loaded[0] + 1, loaded[1] + 1)  # exactly the new file

    last = run()  # nothing new: green, and the ledger says so
    with psycopg.connect(fresh_db) as conn:
        statuses = conn.execute(
            "SELECT DISTINCT status, files_claimed FROM etl_runs WHERE etl_run_id = %s", (last,)
        ).fetchall()
    assert statuses == [("nothing_new", 0)]
    assert _task_instances(last)["publish_assets"] == [-1]
