"""The one error policy in each real DAG: a non-retryable error fails its task on the first try, a transient one is retried.

Each scenario runs (part of) a real DAG file with ``dag.test()`` in a child process, with ``retries=2`` and no
retry delay on every task, and reads back each task instance's state and try_number. The errors are produced
for real: a damaged or missing input file, a local HTTP server answering 404 or 503, a reject rate above the
guard, a config file with an unknown value, a failed `fail` quality check, a database port nobody listens on.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from include.errors import NonRetryable, fail_fast_on_non_retryable, is_non_retryable

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
SAMPLE = ROOT / "data" / "raw"

# Runs in the child: parse the DAG file (after the scenario's environment is set), keep the wanted tasks
# (with their upstream), give every task 2 retries without delay, run dag.test(), print each task's outcome.
CHILD = r"""
import json, os, runpy, sys
from datetime import timedelta
spec = json.loads(sys.argv[1])
os.environ.update(spec["env"])
d = runpy.run_path(spec["file"])[spec["factory"]]()
if spec["tasks"]:
    d = d.partial_subset(task_ids=spec["tasks"], include_upstream=spec["upstream"])
for t in d.tasks:
    fast = {"retries": 2, "retry_delay": timedelta(0), "retry_exponential_backoff": False}
    if hasattr(t, "partial_kwargs"):  # a mapped task: its attribute setters would clobber the expand input
        t.partial_kwargs.update(fast)
    else:
        for k, v in fast.items():
            setattr(t, k, v)
os.environ.update(spec["env_after_parse"])
r = d.test()
# A mapped task instance is "task_id[map_index]" (one per landing file).
key = lambda ti: ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
print("RESULT " + json.dumps({key(ti): [str(ti.state), ti.try_number] for ti in r.get_task_instances()}))
"""

ETL = (DAGS / "etl_ecommerce_dag.py", "etl_ecommerce_pipeline")
QUALITY = (DAGS / "data_quality_dag.py", "data_quality_checks")
MONITORING = (DAGS / "monitoring_dag.py", "monitoring_dag")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_dag(
    dag: tuple[Path, str],
    tasks: list[str],
    env: dict[str, str],
    *,
    upstream: bool = False,
    env_after_parse: dict[str, str] | None = None,
) -> dict[str, tuple[str, int]]:
    """task_id → (state, try_number) of a dag.test() run of `tasks` of the real DAG."""
    spec = {
        "file": str(dag[0]),
        "factory": dag[1],
        "tasks": tasks,
        "upstream": upstream,
        "env": env,
        "env_after_parse": env_after_parse or {},
    }
    child_env = {**os.environ, "PYTHONPATH": str(ROOT), "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-6000:]
    return {k: (v[0], v[1]) for k, v in json.loads(lines[-1][7:]).items()}


def _config(tmp_path: Path, **changes: Any) -> str:
    """config.yaml with `changes` applied (dotted keys), paths under tmp_path."""
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.fixture
def base_env(tmp_path: Path, fresh_db: str, airflow_metadata_db: str) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": airflow_metadata_db,
        "AIRFLOW_CONN_POSTGRES_DEFAULT": fresh_db,
        "ECOM_RAW_DATA_DIR": str(SAMPLE),
        "ECOM_STAGING_DIR": str(tmp_path / "staging"),
        "ECOM_REPORTS_DIR": str(tmp_path / "reports"),
        "ECOM_CONFIG": str(ROOT / "config.yaml"),
    }


def _broken_raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("products.json", "user_sessions.json", "customers.csv"):
        (raw / name).write_bytes((SAMPLE / name).read_bytes())
    lines = (SAMPLE / "orders.csv").read_text().splitlines()
    lines[10] += ",surplus"
    (raw / "orders.csv").write_text("\n".join(lines) + "\n")
    return raw


# ---- the policy itself (no Airflow run) ------------------------------------------------------------------
def test_policy_classifies_the_project_errors() -> None:
    from include.config_loader import ConfigError
    from include.extract import InputFileError, MissingInputError
    from include.products_api import ApiError
    from include.quality import QualityCheckFailed
    from include.transform import RejectRateExceeded

    for err in (
        InputFileError("f.csv", "bad"),
        MissingInputError("missing"),
        ApiError("404", retryable=False),
        RejectRateExceeded("guard"),
        ConfigError("config.yaml: bad"),
        QualityCheckFailed("check failed"),
    ):
        assert is_non_retryable(err), type(err).__name__
        assert isinstance(err, Exception)
    for err in (ApiError("503", retryable=True), TimeoutError("t"), ConnectionError("c"), KeyError("k")):
        assert not is_non_retryable(err), type(err).__name__


def test_helper_converts_only_non_retryable_errors() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=r"^broken: line 3$") as info, fail_fast_on_non_retryable():
        raise NonRetryable("broken: line 3")
    assert isinstance(info.value.__cause__, NonRetryable)
    with pytest.raises(TimeoutError), fail_fast_on_non_retryable():
        raise TimeoutError("transient")

    @fail_fast_on_non_retryable()
    def task_body() -> None:
        raise NonRetryable("as a decorator")

    with pytest.raises(AirflowFailException, match="as a decorator"):
        task_body()


def test_every_dag_uses_the_one_helper() -> None:
    for path in DAGS.glob("*.py"):
        text = path.read_text()
        assert "fail_fast_on_non_retryable" in text, path.name
        assert "AirflowFailException" not in text and "def _fail_fast" not in text, path.name


# ---- ETL ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_etl_broken_or_missing_file_fails_without_retry(tmp_path: Path, base_env: dict[str, str]) -> None:
    # The whole DAG: partial_subset() of a mapped task loses its expand input (Airflow 3.3 SDK).
    got = run_dag(ETL, [], {**base_env, "ECOM_RAW_DATA_DIR": str(_broken_raw(tmp_path))})
    # products, customers, orders, user_sessions: one instance per file; only the broken orders file fails, once.
    assert got["extract_file[2]"] == ("failed", 1)
    assert [got[f"extract_file[{i}]"][0] for i in (0, 1, 3)] == ["success"] * 3
    got = run_dag(ETL, ["claim_files"], {**base_env, "ECOM_RAW_DATA_DIR": str(tmp_path / "nowhere")})
    assert got == {"claim_files": ("failed", 1)}


@pytest.mark.slow
def test_etl_api_4xx_fails_at_once_and_5xx_is_retried(
    tmp_path: Path, base_env: dict[str, str], httpserver: Any
) -> None:
    httpserver.expect_request("/missing").respond_with_data("no", status=404)
    httpserver.expect_request("/down").respond_with_data("busy", status=503)
    config = _config(tmp_path, **{"sources.products.max_retries": 0})
    env = {**base_env, "ECOM_CONFIG": config}
    # The API is the products' pseudo-file: map index 0 (products are claimed first).
    got = run_dag(ETL, [], {**env, "ECOM_PRODUCTS_API_URL": httpserver.url_for("/missing")})
    assert got["extract_file[0]"] == ("failed", 1)
    got = run_dag(ETL, [], {**env, "ECOM_PRODUCTS_API_URL": httpserver.url_for("/down")})
    assert got["extract_file[0]"] == ("failed", 3)  # transient: first try + 2 retries
    assert len([r for r, _ in httpserver.log if r.path == "/down"]) == 3


@pytest.mark.slow
def test_etl_reject_rate_guard_fails_without_retry(tmp_path: Path, base_env: dict[str, str]) -> None:
    config = _config(tmp_path, **{"transform.max_reject_rate": 0.001})
    # The guard runs over all files of a source, at the start of load_data (before any write).
    got = run_dag(ETL, [], {**base_env, "ECOM_CONFIG": config})
    assert got["load_data"] == ("failed", 1)
    assert all(got[f"transform_file[{i}]"] == ("success", 1) for i in range(4))


# ---- data quality -----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_quality_failed_check_and_config_error_fail_without_retry_db_outage_is_retried(
    tmp_path: Path, base_env: dict[str, str], fresh_db: str
) -> None:
    # A load is in the ledger but no table has a row: `row_count min 1` (severity fail) fails.
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "INSERT INTO etl_runs (etl_run_id, source, rows_read, rows_loaded, rows_rejected, rows_duplicate, started_at)"
            " VALUES ('r1', 'orders', 0, 0, 0, 0, now())"
        )
    got = run_dag(QUALITY, ["check_data_completeness"], base_env)
    assert got == {"check_data_completeness": ("failed", 1)}
    bad = _config(tmp_path, **{"quality.tables.orders": [{"check": "row_count", "min": "many"}]})
    got = run_dag(QUALITY, ["check_data_freshness"], base_env, env_after_parse={"ECOM_CONFIG": bad})
    assert got == {"check_data_freshness": ("failed", 1)}
    down = f"postgresql://u:p@127.0.0.1:{_free_port()}/nowhere?connect_timeout=2"
    got = run_dag(QUALITY, ["check_data_freshness"], {**base_env, "AIRFLOW_CONN_POSTGRES_DEFAULT": down})
    assert got == {"check_data_freshness": ("failed", 3)}


# ---- monitoring ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_monitoring_config_error_fails_without_retry_db_outage_is_retried(
    tmp_path: Path, base_env: dict[str, str]
) -> None:
    bad = _config(tmp_path, **{"monitoring.thresholds": {"system.memory_percent": {"warn": "high"}}})
    got = run_dag(MONITORING, ["check_data_freshness"], base_env, env_after_parse={"ECOM_CONFIG": bad})
    assert got == {"check_data_freshness": ("failed", 1)}
    down = f"postgresql://u:p@127.0.0.1:{_free_port()}/nowhere?connect_timeout=2"
    got = run_dag(MONITORING, ["check_database_health"], {**base_env, "AIRFLOW_CONN_POSTGRES_DEFAULT": down})
    assert got == {"check_database_health": ("failed", 3)}
