"""Database errors say what happened: wrong credentials are non-retryable, a lost connection is named as such."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from include import pipeline
from include.config_loader import Settings
from include.database import DatabaseAccessDenied, classify_db_error, describe_db_error
from include.errors import NonRetryable
from include.load import DataLoader, LoadError
from tests.integration.test_load import query, sample_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return sample_settings(tmp_path)


def _transformed(settings: Settings, url: str, run_id: str) -> dict:
    staging = pipeline.run_dir(settings, "etl_ecommerce_pipeline", run_id)
    manifests = {s: pipeline.extract(s, settings, staging) for s in pipeline.EXTRACTORS}
    return pipeline.transform(manifests, settings, staging, url)


def test_a_wrong_password_fails_the_load_without_retry(settings: Settings, fresh_db: str) -> None:
    transformed = _transformed(settings, fresh_db, "run-1")
    params = psycopg.conninfo.conninfo_to_dict(fresh_db)
    bad = psycopg.conninfo.make_conninfo(fresh_db, password="wrong-" + str(params["password"])[:4])
    with pytest.raises(DatabaseAccessDenied) as err:
        DataLoader(bad).load("run-1", transformed["sources"])
    assert isinstance(err.value, NonRetryable)
    text = str(err.value)
    assert "authentication failed at 127.0.0.1:" in text and "(SQLSTATE 28P01)" in text and "not retried" in text
    assert "wrong-" not in text
    assert query(fresh_db, "SELECT count(*) FROM orders") == [(0,)]


def test_a_terminated_backend_during_a_load_names_the_connection_loss(settings: Settings, fresh_db: str) -> None:
    pipeline.run_all(settings, "run-1", fresh_db)
    transformed = _transformed(settings, fresh_db, "run-2")
    errors: list[BaseException] = []

    def load() -> None:
        try:
            DataLoader(fresh_db).load("run-2", transformed["sources"])
        except LoadError as err:
            errors.append(err)

    with psycopg.connect(fresh_db) as blocker:
        blocker.execute("SELECT 1 FROM orders WHERE order_reference = 'ORD-1' FOR UPDATE")  # the load waits here
        worker = threading.Thread(target=load)
        worker.start()
        deadline = time.monotonic() + 60
        pids: list[tuple[int]] = []
        while not pids and time.monotonic() < deadline:
            pids = query(
                fresh_db,
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'ecommerce_etl' AND wait_event_type = 'Lock'",
            )
            time.sleep(0.1)
        assert pids, "the load never reached the orders upsert"
        query(fresh_db, "SELECT pg_terminate_backend(%s)", pids[0][0])  # what a crash-restart does to the session
        worker.join(60)
        blocker.rollback()
    assert len(errors) == 1
    message = str(errors[0])
    assert "the server closed the connection (crash or restart?) SQLSTATE 57P01" in message, message
    assert "failed at step 'upsert orders'" in message and "rolled back" in message
    assert classify_db_error(errors[0].__cause__) is None  # retryable: a restarted server may be back


def test_describe_db_error_without_sqlstate_is_a_connection_loss() -> None:
    assert describe_db_error(psycopg.OperationalError("server closed the connection unexpectedly")).startswith(
        "the server closed the connection (crash or restart?) SQLSTATE -"
    )
    assert describe_db_error(ValueError("x\ny")) == "ValueError: x"


def test_conninfo_comes_from_the_postgres_hook_with_its_extras(fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from include.database import connect, conninfo_from_connection

    p = psycopg.conninfo.conninfo_to_dict(fresh_db)
    monkeypatch.setenv(
        "AIRFLOW_CONN_WH_JSON",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": p["host"],
                "port": int(str(p["port"])),
                "login": p["user"],
                "password": p["password"],
                "schema": p["dbname"],
                # libpq parameters pass through; the provider's own options (cursor, sqlalchemy_*) do not
                "extra": {"sslmode": "disable", "options": "-c statement_timeout=5s", "cursor": "dictcursor"},
            }
        ),
    )
    conninfo = conninfo_from_connection("wh_json")
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    assert params["sslmode"] == "disable" and params["dbname"] == p["dbname"] and "cursor" not in params
    with connect(conninfo) as conn:
        assert conn.execute("SELECT current_setting('statement_timeout')").fetchone() == ("5s",)
    with pytest.raises(LookupError, match="Airflow connection 'nope_missing' is not defined"):
        conninfo_from_connection("nope_missing")
