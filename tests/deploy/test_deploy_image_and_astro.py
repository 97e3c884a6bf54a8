"""Dockerfile (hadolint, pinned Astro Runtime 3.3), .dockerignore, the Astro CLI files, and the
warehouse init script run against a real PostgreSQL."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from include import local_postgres
from tests.deploy.helpers import ROOT, load_yaml, run, tool

# Astro Runtime build that ships Apache Airflow 3.3.2 (runtime catalog: 3.3-7 -> 3.3.1, 3.3-8 -> 3.3.2).
RUNTIME_TAG = re.compile(r"^astrocrpublic\.azurecr\.io/runtime:3\.3-8(-python-3\.\d+)?$")
ASTRO_INTEGRITY = ROOT / ".astro" / "test_dag_integrity_default.py"
CONTRACT_DAGS = {
    "etl_ecommerce_dag.py": "etl_ecommerce_pipeline",
    "data_quality_dag.py": "data_quality_checks",
    "monitoring_dag.py": "monitoring_dag",
}


def _from_lines(dockerfile: Path) -> list[str]:
    return [
        ln.split()[1] for ln in dockerfile.read_text(encoding="utf-8").splitlines() if ln.upper().startswith("FROM ")
    ]


def test_dockerfile_passes_hadolint() -> None:
    res = run([tool("hadolint"), "--no-color", str(ROOT / "Dockerfile")])
    assert res.returncode == 0, res.stdout + res.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install curl\n", encoding="utf-8")
    res = run([tool("hadolint"), "--no-color", str(bad)])
    assert res.returncode != 0
    assert "DL3007" in res.stdout and "DL3008" in res.stdout


def test_dockerfile_is_built_on_the_runtime_that_ships_the_pinned_airflow() -> None:
    froms = _from_lines(ROOT / "Dockerfile")
    assert len(froms) == 1 and RUNTIME_TAG.match(froms[0]), froms
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^apache-airflow==3\.3\.2$", requirements, re.M), (
        "requirements.txt must pin the runtime's Airflow"
    )
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "PYTHONPATH=/usr/local/airflow" in text, "include/ must be importable in the image"
    assert (ROOT / "packages.txt").exists()


def _dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last matching pattern wins; a pattern matches a path or a parent."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        neg = raw.startswith("!")
        pat = raw[1:] if neg else raw
        pat = pat.strip("/")
        if any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.replace("**/", "")) for p in prefixes):
            excluded = not neg
    return excluded


def test_dockerignore_keeps_tests_venvs_staging_and_state_out_of_the_image() -> None:
    patterns = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for path in (
        "tests/conftest.py",
        ".venv/bin/python",
        ".local/staging/x.csv",
        ".local/pgdata/PG_VERSION",
        "node_modules/x",
        ".env",
        ".env.prod",
        ".git/HEAD",
        "airflow_settings.yaml",
        "include/__pycache__/x.pyc",
    ):
        assert _dockerignore_excludes(path, patterns), f"{path} would be copied into the image"
    for path in (
        "dags/etl_ecommerce_dag.py",
        "include/config_loader.py",
        "config.yaml",
        "init_db.sql",
        "requirements.txt",
        "packages.txt",
        "scripts/container_init_airflow.sh",
        "data/raw/orders.csv",
    ):
        assert not _dockerignore_excludes(path, patterns), f"{path} is needed in the image"


def test_dockerignore_matcher_can_fail() -> None:
    assert not _dockerignore_excludes("tests/x.py", ["docs"])
    assert _dockerignore_excludes("tests/x.py", ["tests"])
    assert not _dockerignore_excludes("tests/x.py", ["tests", "!tests/x.py"])


def test_astro_project_files() -> None:
    config = load_yaml(ROOT / ".astro" / "config.yaml")
    assert config["project"]["name"]
    settings = load_yaml(ROOT / "airflow_settings.yaml")["airflow"]
    conns = {c["conn_id"]: c for c in settings["connections"]}
    pg = conns["postgres_default"]
    assert (pg["conn_type"], pg["conn_host"], pg["conn_schema"], pg["conn_port"]) == (
        "postgres",
        "postgres",
        "ecommerce_db",
        5432,
    )
    assert conns["airflow_api"]["conn_host"] == "http://api-server:8080"
    assert {p["pool_name"]: p["pool_slot"] for p in settings["pools"]} == {"warehouse_load": 1}
    assert settings["variables"] == []
    override = load_yaml(ROOT / "docker-compose.override.yml")["services"]["warehouse-init"]
    assert override["environment"]["WAREHOUSE_DB"] == pg["conn_schema"]
    assert override["environment"]["PGHOST"] == pg["conn_host"]
    assert override["environment"]["PGPASSWORD"] == pg["conn_password"]
    assert "airflow" in override["networks"], "must join the network of Astro's compose project"


def _start_integrity(dags_folder: Path, expected: str, env: dict[str, str], home: Path) -> subprocess.Popen[str]:
    """Start .astro/test_dag_integrity_default.py on `dags_folder` (returns at once; see _finish)."""
    env = {
        **env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "DAG_INTEGRITY_DAGS_FOLDER": str(dags_folder),
        "DAG_INTEGRITY_EXPECTED": expected,
        "PYTHONPATH": str(ROOT),
    }
    home.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(ASTRO_INTEGRITY)]
    return subprocess.Popen(cmd, env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=180)
    return proc.returncode, out


GOOD_DAG = """
import pendulum
from airflow.sdk import dag, task

@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False)
def good_dag():
    @task
    def one():
        return 1
    one()

good_dag()
"""


def test_astro_integrity_test_passes_good_and_fails_broken_dags(tmp_path: Path, clean_env: dict[str, str]) -> None:
    good = tmp_path / "good"
    good.mkdir()
    (good / "good_dag.py").write_text(GOOD_DAG, encoding="utf-8")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "good_dag.py").write_text(GOOD_DAG, encoding="utf-8")
    (broken / "broken_dag.py").write_text(
        "from airflow.sdk import dag\nimport module_that_does_not_exist\n", encoding="utf-8"
    )
    # Both runs at once (two cores): a clean folder passes, a folder with a broken file fails.
    good_run = _start_integrity(good, "good_dag", clean_env, tmp_path / "home_good")
    broken_run = _start_integrity(broken, "good_dag,missing_dag", clean_env, tmp_path / "home_broken")
    rc, out = _finish(good_run)
    assert rc == 0, out[-4000:]
    rc, out = _finish(broken_run)
    assert rc != 0
    assert "FAILED" in out and "broken_dag.py" in out and "missing_dag" in out


def test_astro_integrity_test_passes_for_the_project_dags(tmp_path: Path, clean_env: dict[str, str]) -> None:
    present = [f for f in CONTRACT_DAGS if (ROOT / "dags" / f).exists()]
    if not present:
        pytest.skip("the DAG files (dags/*.py) are not in this tree yet")
    rc, out = _finish(_start_integrity(ROOT / "dags", ",".join(CONTRACT_DAGS.values()), clean_env, tmp_path / "home"))
    assert rc == 0, out[-6000:]


def test_warehouse_init_script_creates_the_database_and_schema_idempotently(
    pg_server: local_postgres.LocalServer,
) -> None:
    """scripts/container_init_warehouse.sh (run by the Astro override and the prod stack) against a real server."""
    url = urlsplit(pg_server.url())
    db = f"ecommerce_init_{os.getpid()}"
    env = {
        "PATH": os.environ["PATH"],
        "PGHOST": url.hostname or "127.0.0.1",
        "PGPORT": str(url.port),
        "PGUSER": url.username or "postgres",
        "PGPASSWORD": pg_server.password,
        "WAREHOUSE_DB": db,
        "MIGRATIONS_DIR": str(ROOT / "include" / "migrations"),
        "ROLES_SQL": str(ROOT / "include" / "roles.sql"),
        "WAIT_SECONDS": "10",
    }
    script = str(ROOT / "scripts" / "container_init_warehouse.sh")
    for attempt in (1, 2):  # second run: database and tables exist already
        res = run(["sh", script], env=env, timeout=60)
        assert res.returncode == 0, f"run {attempt}: {res.stdout}\n{res.stderr}"
    with psycopg.connect(pg_server.url(db)) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"customers", "products", "orders", "user_sessions", "etl_runs"} <= tables

    res = run(["sh", script], env={**env, "WAREHOUSE_DB": "bad-name;drop"}, timeout=30)
    assert res.returncode == 2 and "invalid database name" in res.stderr
