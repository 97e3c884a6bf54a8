"""Shared fixtures: one real PostgreSQL server per test session, a fresh database per module.

The server is the embedded one (include.local_postgres) unless ECOM_TEST_POSTGRES_URL points at
a server the tests may create databases on.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from include import local_postgres
from include.migrations import migrate

ROOT = Path(__file__).resolve().parent.parent

# Airflow reads AIRFLOW_HOME and its metadata DB URL when first imported: prepare them before any
# test imports it. Airflow's own metadata is SQLite here; the warehouse is always real PostgreSQL.
if "airflow" not in sys.modules:
    _home = tempfile.mkdtemp(prefix="test-airflow-home-")
    atexit.register(shutil.rmtree, _home, True)
    os.environ.setdefault("AIRFLOW_HOME", _home)
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_home}/airflow.db")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))


@pytest.fixture(scope="session")
def airflow_metadata_db() -> str:
    """Airflow's metadata database migrated once per session, with the project's pools (what dag.test() needs)."""
    airflow = Path(sys.executable).parent / "airflow"
    for args in (["db", "migrate"], ["pools", "set", "warehouse_load", "1", "Serialises warehouse loads"]):
        proc = subprocess.run(
            [str(airflow), *args], capture_output=True, text=True, timeout=300, env=os.environ.copy(), check=False
        )
        assert proc.returncode == 0, f"airflow {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return os.environ["AIRFLOW_HOME"]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[local_postgres.LocalServer]:
    """A running PostgreSQL server, started (and stopped) by the test session."""
    data_dir = ROOT / ".local" / f"pgtest-{os.getpid()}"
    server = local_postgres.start(data_dir)
    try:
        yield server
    finally:
        local_postgres.stop(data_dir)
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)
        (data_dir.parent / f"{data_dir.name}.password").unlink(missing_ok=True)


def new_database(server: local_postgres.LocalServer, label: str = "t") -> str:
    """Create an empty database with a unique name; return its URL."""
    name = re.sub(r"[^a-z0-9_]", "_", f"{label}_{uuid.uuid4().hex[:8]}".lower())[:60]
    return local_postgres.create_database(server, name)


@pytest.fixture(scope="module")
def module_db(pg_server: local_postgres.LocalServer, request: pytest.FixtureRequest) -> str:
    """URL of a database migrated to the current schema (include/migrations), owned by one test module."""
    url = new_database(pg_server, request.module.__name__.rsplit(".", 1)[-1])
    with psycopg.connect(url) as conn:
        migrate(conn)
    return url


@pytest.fixture
def fresh_db(pg_server: local_postgres.LocalServer, request: pytest.FixtureRequest) -> str:
    """URL of a brand-new database migrated to the current schema, owned by one test."""
    url = new_database(pg_server, request.node.name)
    with psycopg.connect(url) as conn:
        migrate(conn)
    return url


@pytest.fixture
def empty_db(pg_server: local_postgres.LocalServer, request: pytest.FixtureRequest) -> str:
    """URL of a brand-new database without any table."""
    return new_database(pg_server, request.node.name)
