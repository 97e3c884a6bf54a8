"""Incident de-duplication and re-arming of the alert callbacks, with a real SMTP server and warehouse.

The callbacks Airflow calls (`TaskFailureRecorder`, `DagFailureNotifier`, `DagSuccessNotifier`) are
invoked in this process with the context they would get; the incident state lives in a fresh real
PostgreSQL database, mail goes to a real aiosmtpd server that can be told to refuse messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from include.notifications import DagFailureNotifier, DagSuccessNotifier, TaskFailureRecorder
from tests.alerting.test_alerting import SmtpSink, free_port, smtp_conn, write_config

pytestmark = pytest.mark.slow  # a fresh database and several callbacks per test: a few seconds each

DAG = "etl_ecommerce_pipeline"
Configure = Callable[..., None]


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) keeping, or refusing, every message."""
    from aiosmtpd.controller import Controller

    server = SmtpSink("127.0.0.1", free_port())
    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_db: str, sink: SmtpSink) -> Configure:
    """Point the callbacks at the fresh warehouse and the SMTP sink, with these alerting settings."""

    def setup(**alerting: Any) -> None:
        section = {
            "channels": ["email"],
            "email": {"to": ["oncall@example.org"]},
            "ui_base_url": "http://airflow.test:8080",
            **alerting,
        }
        path = write_config(tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.yaml", section)
        monkeypatch.setenv("ECOM_CONFIG", str(path))
        monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", fresh_db)
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_conn(sink.port))

    return setup


def fail_run(run_id: str, task_id: str = "load") -> None:
    """What Airflow does when a run fails: the task callback (after its last try), then the DAG callback."""
    ti = SimpleNamespace(dag_id=DAG, run_id=run_id, task_id=task_id, try_number=1)
    TaskFailureRecorder().notify({"ti": ti, "run_id": run_id, "exception": RuntimeError("warehouse unreachable")})
    dag_callback_of_failed_run(run_id)


def dag_callback_of_failed_run(run_id: str) -> None:
    DagFailureNotifier().notify({"dag": SimpleNamespace(dag_id=DAG), "run_id": run_id, "reason": "task_failure"})


def succeed_run(run_id: str) -> None:
    DagSuccessNotifier().notify({"dag": SimpleNamespace(dag_id=DAG), "run_id": run_id})


def subjects(sink: SmtpSink) -> list[str]:
    return [m.subject for m in sink.mails]


def backdate_last_notification(db: str, minutes: int) -> None:
    """Let `minutes` pass for the incident (its last message was sent that long ago)."""
    with psycopg.connect(db) as conn:
        n = conn.execute(
            "UPDATE alert_state SET notified_at = notified_at - make_interval(mins => %s) WHERE dag_id = %s",
            (minutes, DAG),
        ).rowcount
    assert n == 1


FAILED = f"[FAILED] {DAG} / load"


def test_the_same_runs_failure_callback_delivered_twice_sends_one_alert(
    configure: Configure, sink: SmtpSink, fresh_db: str
) -> None:
    configure(repeat_after_minutes=1)
    fail_run("run-1")
    assert subjects(sink) == [FAILED]
    backdate_last_notification(fresh_db, 5)  # a reminder would now be due ...
    dag_callback_of_failed_run("run-1")  # ... but this is the same run's callback again (re-delivered)
    assert subjects(sink) == [FAILED]
    fail_run("run-2")  # a new failed run is what earns the reminder
    assert subjects(sink) == [FAILED, f"[STILL FAILING] {DAG} / load"]
    assert "(2 failed runs)" in sink.mails[1].body


def test_no_repeat_within_the_incident_without_reminders(configure: Configure, sink: SmtpSink) -> None:
    configure(repeat_after_minutes=0)
    fail_run("run-1")
    fail_run("run-2")
    dag_callback_of_failed_run("run-2")
    assert subjects(sink) == [FAILED]


def test_a_failed_delivery_is_rearmed_for_the_next_failed_run(
    configure: Configure, sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    configure()
    sink.refuse = True
    fail_run("run-1")
    assert sink.refused == [FAILED] and sink.mails == []  # tried, refused
    assert f"could not deliver alert '{FAILED}' by email" in caplog.text
    sink.refuse = False
    fail_run("run-2")  # the incident was not announced: this run announces it
    assert subjects(sink) == [FAILED]
    assert "Run: run-2" in sink.mails[0].body
    fail_run("run-3")  # announced now: no further message
    assert subjects(sink) == [FAILED]


@pytest.mark.parametrize("notify_recovery", [True, False])
def test_notify_recovery_switch(configure: Configure, sink: SmtpSink, notify_recovery: bool) -> None:
    configure(notify_recovery=notify_recovery)
    fail_run("run-1")
    succeed_run("run-2")
    recovered = [f"[RECOVERED] {DAG}"] if notify_recovery else []
    assert subjects(sink) == [FAILED, *recovered]
    fail_run("run-3")  # either way the incident was closed: a new failure is a new incident
    assert subjects(sink) == [FAILED, *recovered, FAILED]


@pytest.mark.parametrize(("elapsed_seconds", "reminded"), [(590, False), (600, True), (610, True)])
def test_repeat_after_minutes_boundary(
    configure: Configure, sink: SmtpSink, fresh_db: str, elapsed_seconds: int, reminded: bool
) -> None:
    """alerting.repeat_after_minutes 10: a failed run 10 minutes after the last message reminds, 9:50 does not."""
    configure(repeat_after_minutes=10)
    fail_run("run-1")
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "UPDATE alert_state SET notified_at = now() - make_interval(secs => %s) WHERE dag_id = %s",
            (elapsed_seconds, DAG),
        )
    fail_run("run-2")
    assert subjects(sink) == [FAILED, *([f"[STILL FAILING] {DAG} / load"] if reminded else [])]
