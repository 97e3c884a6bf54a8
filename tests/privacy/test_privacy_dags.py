"""The privacy DAGs run for real (`airflow dags test`): the address never reaches Airflow's metadata or logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from include.privacy import submit_request, token, token_address
from tests.privacy.conftest import BACKUP_KEY, KEY, ROOT, SUBJECT, Warehouse, files_holding, tables_holding


def _env(wh: Warehouse, home: Path) -> dict[str, str]:
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    if not (dags / "privacy_dag.py").exists():
        os.symlink(ROOT / "dags" / "privacy_dag.py", dags / "privacy_dag.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW_CONN_POSTGRES_DEFAULT": wh.url,
            "AIRFLOW_CONN_PRIVACY_KEY": json.dumps({"conn_type": "generic", "password": KEY.decode()}),
            "AIRFLOW_CONN_BACKUP_KEY": json.dumps({"conn_type": "generic", "password": BACKUP_KEY.decode()}),
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def _airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    airflow = str(Path(sys.executable).parent / "airflow")
    return subprocess.run(
        [airflow, *args], env=env, capture_output=True, text=True, timeout=600, check=False, cwd=env["AIRFLOW_HOME"]
    )


@pytest.mark.slow
def test_requests_dag_erases_without_the_address_in_airflow_metadata(warehouse: Warehouse, tmp_path: Path) -> None:
    home = tmp_path / "airflow_home"
    env = _env(warehouse, home)
    assert _airflow(env, "db", "migrate").returncode == 0
    rid = submit_request(warehouse.url, "public", SUBJECT, "erase")

    proc = _airflow(env, "dags", "test", "privacy_requests", "-c", json.dumps({"request_id": str(rid)}))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    assert str(rid) in output  # the run really processed this request

    with psycopg.connect(warehouse.url) as conn:
        assert conn.execute("SELECT status, email FROM privacy.privacy_requests").fetchall() == [("done", None)]
        assert tables_holding(conn, SUBJECT) == {}
        assert conn.execute(
            "SELECT count(*) FROM customers WHERE email = %s", (token_address(token(SUBJECT, KEY)),)
        ).fetchone() == (1,)
        assert (
            conn.execute(
                "SELECT count(*) FROM privacy.privacy_audit WHERE request_id = %s AND actor = 'airflow:privacy_requests'",
                (rid,),
            ).fetchone()[0]
            > 0
        )
    # Nothing under AIRFLOW_HOME — the metadata database (run conf, XCom, task instances) and every log —
    # nor anything the run printed holds the address.
    metadata = (home / "airflow.db").read_bytes()
    assert str(rid).encode() in metadata  # the grep is sensitive: the run conf really is in this file
    assert files_holding(home, SUBJECT) == []
    assert SUBJECT not in output.lower()
    logs = list(home.rglob("*.log"))
    log_text = "".join(p.read_text(errors="replace") for p in logs).lower()
    assert SUBJECT not in log_text
    assert files_holding(warehouse.tmp, SUBJECT) == sorted(
        warehouse.raw / n for n in ("customers.csv", "orders.csv", "user_sessions.json")
    )  # only the raw input files, which expire by retention


@pytest.mark.slow
def test_maintenance_dag_applies_retention_and_proves_the_backup(warehouse: Warehouse, tmp_path: Path) -> None:
    env = _env(warehouse, tmp_path / "airflow_home")
    assert _airflow(env, "db", "migrate").returncode == 0
    # Staging run folders expire by paths.staging_retention_days (7 in config.yaml): one 8 days old, one 6.
    staging = warehouse.settings.staging_dir / "some_dag"
    for name, days in (("old-run", 8), ("young-run", 6)):
        (staging / name).mkdir(parents=True)
        (staging / name / "part.csv").write_text("x")
        t = time.time() - days * 86400
        for p in (staging / name / "part.csv", staging / name):
            os.utime(p, (t, t))
    proc = _airflow(env, "dags", "test", "privacy_maintenance")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    with psycopg.connect(warehouse.url) as conn:
        cats = dict(
            conn.execute(
                "SELECT category, count(*) FROM monitoring_metrics WHERE category IN ('retention', 'backup') GROUP BY 1"
            ).fetchall()
        )
        check = conn.execute(
            "SELECT value, status FROM monitoring_metrics WHERE metric_name = 'backup.restore_check'"
        ).fetchall()
    assert cats == {"retention": 6, "backup": 4}
    assert not (staging / "old-run").exists() and (staging / "young-run" / "part.csv").exists()
    assert check == [(1.0, "ok")]
    assert len(list(warehouse.cfg.backup_dir.glob("warehouse-*.dump.enc"))) == 1
