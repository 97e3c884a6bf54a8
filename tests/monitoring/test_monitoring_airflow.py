"""check_dag_status against a real Airflow API server, and the monitoring DAG run for real (dag.test()).

The API server comes from scripts.airflow_stack (api-server only, PostgreSQL metadata); DAG runs are
made by ``dag.test()`` in a child process sharing that metadata database, then read back through
``/api/v2`` with a token from ``/auth/token``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from include.monitoring import (
    AirflowApiClient,
    MonitoringBreach,
    collect_dag_status,
    parse_monitoring,
    raise_on_critical,
)

ROOT = Path(__file__).resolve().parents[2]

PROBE_DAGS = """
# airflow dag file for the monitoring tests
import pendulum
from airflow.sdk import dag, task


@dag(dag_id="mon_probe_ok", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def mon_probe_ok():
    @task
    def fine():
        return 1

    fine()


@dag(dag_id="mon_probe_fail", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def mon_probe_fail():
    @task
    def broken():
        raise ValueError("probe failure")

    broken()


ok = mon_probe_ok()
fail = mon_probe_fail()

if __name__ == "__main__":
    print("STATES", [str(d.test().state) for d in (ok, fail, fail)])
"""


@pytest.fixture(scope="module")
def stack() -> Iterator[Any]:
    from scripts.airflow_stack import AirflowStack

    # under the project (not /tmp/pytest-of-root, 0700): the PostgreSQL user must reach its data dir
    run_dir = ROOT / ".local" / f"mon-stack-{os.getpid()}"
    dags = run_dir / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    (dags / "mon_probes.py").write_text(PROBE_DAGS)
    with AirflowStack(run_dir, components=("api-server",), dags_folder=dags) as s:
        proc = subprocess.run(
            [sys.executable, str(dags / "mon_probes.py")],
            env=s.env_for("scheduler"),  # the metadata database, as the dag.test() of the probes needs
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0 and "STATES ['success', 'failed', 'failed']" in proc.stdout, (
            proc.stdout[-2000:] + proc.stderr[-4000:]
        )
        yield s
    shutil.rmtree(run_dir, ignore_errors=True)


@pytest.mark.slow
def test_check_dag_status_against_real_api(stack: Any) -> None:
    cfg = parse_monitoring(
        {
            "watched_dags": ["mon_probe_ok", "mon_probe_fail", "never_deployed"],
            "thresholds": {"dag.consecutive_failures": {"warn": 1, "critical": 2}},
        }
    )
    client = AirflowApiClient(stack.base_url, stack.admin_user, stack.admin_password)
    metrics = collect_dag_status(cfg, client)
    got = {(m.name, m.subject): m for m in metrics}
    assert got[("airflow.api_reachable", None)].status == "ok"
    assert got[("airflow.health", "metadatabase")].status == "ok"
    assert got[("airflow.health", "scheduler")].status == "critical"  # only the api-server runs
    assert got[("dag.consecutive_failures", "mon_probe_fail")].value == 2
    assert got[("dag.consecutive_failures", "mon_probe_fail")].status == "critical"
    assert got[("dag.hours_since_success", "mon_probe_fail")].status == "warn"
    assert got[("dag.consecutive_failures", "mon_probe_ok")].value == 0
    assert got[("dag.hours_since_success", "mon_probe_ok")].value < 1
    assert got[("dag.last_duration_seconds", "mon_probe_ok")].value > 0
    assert got[("dag.consecutive_failures", "never_deployed")].status == "warn"
    with pytest.raises(MonitoringBreach, match=r"dag\.consecutive_failures\[mon_probe_fail\]=2"):
        raise_on_critical("check_dag_status", metrics)


@pytest.mark.slow
def test_wrong_credentials_are_a_critical_breach(stack: Any) -> None:
    metrics = collect_dag_status(parse_monitoring({}), AirflowApiClient(stack.base_url, stack.admin_user, "wrong"))
    assert [(m.name, m.status) for m in metrics] == [("airflow.api_reachable", "critical")]
    assert "HTTP 401" in metrics[0].message and "wrong" not in metrics[0].message


def _run_monitoring_dag(
    tmp_path: Path, db_url: str, body: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real monitoring_dag with dag.test() in a child process with its own AIRFLOW_HOME; `body` uses `d`, the DAG."""
    dags = tmp_path / "dags"
    dags.mkdir(parents=True)
    os.symlink(ROOT / "dags" / "monitoring_dag.py", dags / "monitoring_dag.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ECOM_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW_CONN_POSTGRES_DEFAULT": db_url,
            "ECOM_REPORTS_DIR": str(tmp_path / "reports"),
            "ECOM_STAGING_DIR": str(tmp_path / "staging"),
            "PYTHONPATH": str(ROOT),
            **(extra_env or {}),
        }
    )
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    script = f"import runpy; d = runpy.run_path({str(dags / 'monitoring_dag.py')!r})['monitoring_dag'](); {body}"
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.slow
def test_monitoring_dag_runs_green_twice_and_history_grows(fresh_db: str, tmp_path: Path) -> None:
    """The real monitoring_dag, as `make run` runs it: no airflow_api connection -> DAG check skipped."""
    proc = _run_monitoring_dag(tmp_path, fresh_db, "print('STATES', [str(d.test().state) for _ in range(2)])")
    assert "STATES ['success', 'success']" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-6000:]
    with psycopg.connect(fresh_db) as conn:
        runs, rows, skipped = conn.execute(
            "SELECT count(DISTINCT run_id), count(*), count(*) FILTER (WHERE status = 'skipped') FROM monitoring_metrics"
        ).fetchone()
        cats = {r[0] for r in conn.execute("SELECT DISTINCT category FROM monitoring_metrics")}
    assert runs == 2 and rows > 20 and skipped == 2  # the DAG check, skipped once per run
    assert cats >= {"system", "database", "freshness", "airflow"}
    report = tmp_path / "reports" / "monitoring" / "monitoring_latest.json"
    data = json.loads(report.read_text())
    assert data["overall"] in ("ok", "warn")
    assert data["history_points"] > 0


@pytest.mark.slow
def test_critical_breach_turns_the_run_red_after_persisting(fresh_db: str, tmp_path: Path) -> None:
    """A critical threshold crossed on purpose: the check task fails (no retry left), its metrics are stored, the report is written."""
    import yaml

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["monitoring"]["retries"] = 0
    cfg["monitoring"]["thresholds"]["system.memory_percent"] = {"warn": 0.001, "critical": 0.002}  # always breached
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc = _run_monitoring_dag(
        tmp_path,
        fresh_db,
        "r = d.test(); print('STATE', r.state); "
        "print('TASKS', sorted((t.task_id, str(t.state)) for t in r.get_task_instances()))",
        {"ECOM_CONFIG": str(config)},
    )
    out = proc.stdout + proc.stderr
    assert "STATE failed" in proc.stdout, out[-4000:]
    assert "('check_system_metrics', 'failed')" in proc.stdout and "('check_database_health', 'success')" in proc.stdout
    assert "('generate_monitoring_report', 'success')" in proc.stdout
    with psycopg.connect(fresh_db) as conn:
        row = conn.execute(
            "SELECT status, critical_threshold FROM monitoring_metrics WHERE metric_name = 'system.memory_percent'"
        ).fetchone()
    assert row == ("critical", 0.002)  # persisted before the task failed
