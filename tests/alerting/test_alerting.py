"""Alerting end to end: real DAG runs (``dag.test()``), a real SMTP server, a real HTTP Slack webhook.

Each scenario runs tiny DAGs (defined at the bottom of this file) in a child process with its own
AIRFLOW_HOME (SQLite for Airflow's metadata), the warehouse on the real PostgreSQL of the session,
``smtp_default`` pointing at an aiosmtpd server and ``slack_webhook_default`` at pytest-httpserver.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SLACK_PATH = "/services/T000/B000/XXXXSECRETTOKEN"
CUSTOMER_EMAIL = "jane.doe@example.com"


# ------------------------------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    subject: str
    body: str


@dataclass
class SmtpSink:
    host: str
    port: int
    mails: list[Mail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refuse: bool = False  # answer every message with a permanent error (a delivery that fails)
    refused: list[str] = field(default_factory=list)  # subjects of the refused messages

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = [p.get_content() for p in msg.walk() if p.get_content_maintype() == "text"]
        with self.lock:
            if self.refuse:
                self.refused.append(str(msg["Subject"]))
                return "554 5.7.1 Message refused by the test"
            self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), str(msg["Subject"]), "\n".join(parts)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server on 127.0.0.1 keeping every message it receives."""
    from aiosmtpd.controller import Controller

    sink = SmtpSink("127.0.0.1", free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ECOM_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__API__BASE_URL": "http://airflow.test:8080",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AIRFLOW_HOME with a migrated SQLite metadata database (Airflow's own state only)."""
    home = tmp_path_factory.mktemp("airflow_home")
    (home / "dags").mkdir()
    # dag.test() runs only serialized DAGs: the DAG folder exposes the tiny DAGs defined in this file
    (home / "dags" / "alert_test_dags.py").write_text(
        "# airflow dag shim\nfrom tests.alerting.test_alerting import _dags\n\nglobals().update(_dags())\n"
    )
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=base_env(home), check=True, capture_output=True, timeout=300)
    return home


def write_config(path: Path, alerting: dict[str, Any], notify_on_success: bool = False) -> Path:
    """The project's config.yaml with another alerting section (and etl.notify_on_success)."""
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    raw["alerting"] = alerting
    raw["etl"]["notify_on_success"] = notify_on_success
    for key in ("raw_data_dir", "staging_dir", "reports_dir"):
        raw["paths"][key] = str(path.parent / key)
    path.write_text(yaml.safe_dump(raw))
    return path


def smtp_conn(port: int) -> str:
    extra = {"disable_ssl": True, "disable_tls": True, "from_email": "airflow-alerts@example.org", "retry_limit": 0}
    return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": {**extra, "timeout": 5}})


def slack_conn(base_url: str) -> str:
    return json.dumps({"conn_type": "slackwebhook", "password": base_url.rstrip("/") + SLACK_PATH})


@pytest.fixture
def env(airflow_home: Path, fresh_db: str, smtp_sink: SmtpSink, httpserver: Any, tmp_path: Path) -> dict[str, str]:
    """Environment of a scenario: warehouse = a fresh real database, both channels on."""
    httpserver.expect_request(SLACK_PATH, method="POST").respond_with_data("ok")
    alerting = {"channels": ["email", "slack"], "email": {"to": ["oncall@example.org"]}}
    e = base_env(airflow_home)
    e.update(
        {
            "ECOM_CONFIG": str(write_config(tmp_path / "config.yaml", alerting)),
            "AIRFLOW_CONN_POSTGRES_DEFAULT": fresh_db,
            "AIRFLOW_CONN_SMTP_DEFAULT": smtp_conn(smtp_sink.port),
            "AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT": slack_conn(httpserver.url_for("/")),
            "ALERT_TEST_COUNTER": str(tmp_path / "attempts.txt"),
        }
    )
    return e


def run_scenario(env: dict[str, str], scenario: str, timeout: float = 300) -> dict[str, Any]:
    """Run `scenario` (bottom of this file) in a child process; returns its RESULT JSON."""
    proc = subprocess.run(
        [sys.executable, __file__, scenario], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(
            f"scenario {scenario} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-8000:]}"
        )
    result = dict(json.loads(lines[-1][len("RESULT ") :]))
    result["log"] = proc.stdout + proc.stderr
    return result


def slack_posts(httpserver: Any) -> list[dict[str, Any]]:
    return [json.loads(req.get_data(as_text=True)) for req, _ in httpserver.log if req.path == SLACK_PATH]


def assert_clean(text: str, password: str) -> None:
    assert password not in text
    assert CUSTOMER_EMAIL not in text
    assert "XXXXSECRETTOKEN" not in text


def db_password(url: str) -> str:
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).password or "")


# --------------------------------------------------------------------------------------------- tests
@pytest.mark.slow
def test_no_alert_while_retries_remain_then_one(
    env: dict[str, str], smtp_sink: SmtpSink, httpserver: Any, fresh_db: str
) -> None:
    result = run_scenario(env, "retry")
    assert result["states"] == ["failed"]
    assert Path(env["ALERT_TEST_COUNTER"]).read_text().count("x") == 2  # first try + the retry
    assert len(smtp_sink.mails) == 1, [m.subject for m in smtp_sink.mails]
    mail = smtp_sink.mails[0]
    assert mail.subject == "[FAILED] alert_retry / always_fails"
    assert mail.recipients == ["oncall@example.org"]
    assert "after 2 attempt(s)" in mail.body
    assert "http://airflow.test:8080/dags/alert_retry/runs/" in mail.body
    assert "RuntimeError" in mail.body
    posts = slack_posts(httpserver)
    assert len(posts) == 1
    assert "[FAILED] alert_retry / always_fails" in posts[0]["text"]
    assert "http://airflow.test:8080/dags/alert_retry/runs/" in json.dumps(posts[0]["blocks"])
    # the exception carried the warehouse password and a customer e-mail: neither leaves
    password = db_password(fresh_db)
    assert password
    assert "cannot load row of" in mail.body  # the reason is that leaky exception's text, scrubbed
    assert_clean(mail.subject + mail.body, password)
    assert_clean(json.dumps(posts[0]), password)


@pytest.mark.slow
def test_one_alert_per_incident_for_a_cascade(env: dict[str, str], smtp_sink: SmtpSink, httpserver: Any) -> None:
    result = run_scenario(env, "cascade")
    assert result["states"] == ["failed"]
    assert len(smtp_sink.mails) == 1, [m.subject for m in smtp_sink.mails]
    assert len(slack_posts(httpserver)) == 1
    body = smtp_sink.mails[0].body
    assert smtp_sink.mails[0].subject.startswith("[FAILED] alert_cascade / fails_")
    assert "Also failed: fails_" in body
    assert "downstream" not in body  # upstream_failed tasks are not separate failures


@pytest.mark.slow
def test_recovered_message_once_and_no_repeat_while_failing(
    env: dict[str, str], smtp_sink: SmtpSink, httpserver: Any
) -> None:
    result = run_scenario(env, "flaky")  # fail, fail, success, success
    assert result["states"] == ["failed", "failed", "success", "success"]
    subjects = [m.subject for m in smtp_sink.mails]
    assert subjects == ["[FAILED] alert_flaky / maybe_fails", "[RECOVERED] alert_flaky"], subjects
    assert "succeeded after 2 failed run(s)" in smtp_sink.mails[1].body
    assert [p["text"].splitlines()[0] for p in slack_posts(httpserver)] == subjects


@pytest.mark.slow
def test_delivery_failure_is_logged_and_does_not_mask_the_failure(
    env: dict[str, str], smtp_sink: SmtpSink, httpserver: Any
) -> None:
    smtp_sink.refuse = True  # the real server is reached and refuses the message
    httpserver.clear()
    httpserver.expect_request(SLACK_PATH, method="POST").respond_with_data("boom", status=500)
    result = run_scenario(env, "retry")
    assert result["states"] == ["failed"]  # the run is still red
    # both channels were tried, both failed, each failure is logged, and nothing was delivered
    assert smtp_sink.refused == ["[FAILED] alert_retry / always_fails"]
    assert smtp_sink.mails == []
    assert len(slack_posts(httpserver)) == 1
    assert "could not deliver alert '[FAILED] alert_retry / always_fails' by email" in result["log"]
    assert "could not deliver alert '[FAILED] alert_retry / always_fails' by slack" in result["log"]


@pytest.mark.slow
def test_run_summary_only_when_configured(env: dict[str, str], smtp_sink: SmtpSink, tmp_path: Path) -> None:
    run_scenario(env, "summary")
    assert smtp_sink.mails == []  # etl.notify_on_success is false
    alerting = {"channels": ["email"], "email": {"to": ["oncall@example.org"]}}
    env = {**env, "ECOM_CONFIG": str(write_config(tmp_path / "on.yaml", alerting, notify_on_success=True))}
    run_scenario(env, "summary")
    assert len(smtp_sink.mails) == 1
    mail = smtp_sink.mails[0]
    assert mail.subject == "[SUCCESS] etl_ecommerce_pipeline"
    assert "orders: read 10, loaded 8, rejected 1, duplicate 1" in mail.body
    assert "Rejected rows are in table rejected_records" in mail.body


def test_alerting_config_validation() -> None:
    from include.config_loader import ConfigError
    from include.notifications import parse_alerting

    assert parse_alerting({}).channels == ()
    with pytest.raises(ConfigError, match=r"alerting\.channels"):
        parse_alerting({"channels": ["pager"]})
    with pytest.raises(ConfigError, match="at least one recipient"):
        parse_alerting({"channels": ["email"]})


def test_scrub_removes_secrets_and_personal_data() -> None:
    from include.notifications import scrub

    text = (
        "OperationalError: postgresql://etl:hunter2@db.internal:5432/x password=s3cr3t token: abc "
        f"row of {CUSTOMER_EMAIL} from 192.168.1.7\nsecond line"
    )
    out = scrub(text)
    for leaked in ("hunter2", "s3cr3t", "abc", CUSTOMER_EMAIL, "192.168.1.7", "second line"):
        assert leaked not in out
    assert out.startswith("OperationalError: postgresql://***@db.internal:5432/x")
    assert len(scrub("x" * 1000)) == 300


# ------------------------------------------------------------------- tiny DAGs, run in the child process
def _dags() -> dict[str, Any]:
    from datetime import timedelta

    import pendulum
    from airflow.sdk import dag, task

    from include import notifications

    def count_attempt() -> None:
        with open(os.environ["ALERT_TEST_COUNTER"], "a") as fh:
            fh.write("x")

    def kwargs(dag_id: str, retries: int = 0) -> dict[str, Any]:
        return {
            "dag_id": dag_id,
            "start_date": pendulum.datetime(2024, 1, 1, tz="UTC"),
            "catchup": False,
            "default_args": {"retries": retries, "retry_delay": timedelta(seconds=0), **notifications.task_callbacks()},
            **notifications.dag_callbacks(dag_id),
        }

    def leaky_error() -> RuntimeError:
        return RuntimeError(f"cannot load row of {CUSTOMER_EMAIL} via {os.environ['AIRFLOW_CONN_POSTGRES_DEFAULT']}")

    @dag(schedule=None, **kwargs("alert_retry", retries=1))
    def alert_retry() -> None:
        @task
        def always_fails() -> None:
            count_attempt()
            raise leaky_error()

        always_fails()

    @dag(schedule=None, **kwargs("alert_cascade"))
    def alert_cascade() -> None:
        @task
        def fails_a() -> int:
            raise ValueError("a broke")

        @task
        def fails_b() -> int:
            raise ValueError("b broke")

        @task
        def downstream(a: int, b: int) -> None:
            pass

        downstream(fails_a(), fails_b())

    @dag(schedule=None, **kwargs("alert_flaky"))
    def alert_flaky() -> None:
        @task
        def maybe_fails() -> None:
            if os.environ.get("ALERT_TEST_FAIL") == "1":
                raise ValueError("flaky source unavailable")

        maybe_fails()

    return {"alert_retry": alert_retry(), "alert_cascade": alert_cascade(), "alert_flaky": alert_flaky()}


def _main(scenario: str) -> None:
    if scenario == "summary":
        from include.notifications import send_run_summary

        counts = {"rows_read": 10, "rows_loaded": 8, "rows_rejected": 1, "rows_duplicate": 1}
        send_run_summary(
            {
                "dag_id": "etl_ecommerce_pipeline",
                "run_id": "manual__1",
                "sources": {"orders": counts},
                "rejects_table": "rejected_records",
            }
        )
        print("RESULT " + json.dumps({"states": []}))
        return
    dags = _dags()
    states: list[str] = []
    if scenario == "flaky":
        for fail in ("1", "1", "0", "0"):
            os.environ["ALERT_TEST_FAIL"] = fail
            states.append(str(dags["alert_flaky"].test().state))
    else:
        states.append(str(dags[f"alert_{scenario}"].test().state))
    print("RESULT " + json.dumps({"states": states}))


if __name__ == "__main__":
    _main(sys.argv[1])
