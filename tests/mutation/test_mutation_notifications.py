"""The pure part of alerting (message composition, scrubbing, summary), pinned exactly: written to kill mutants.

The incident decisions (IncidentStore) need PostgreSQL and are tested in tests/alerting.
"""

from __future__ import annotations

import pytest

from include.config_loader import ConfigError
from include.notifications import (
    REASON_CHARS,
    Alert,
    _count,
    _ids,
    exception_reason,
    parse_alerting,
    run_url,
    scrub,
    summary_alert,
)

URL = "http://af.example:8080/dags/d/runs/r"


def test_subject_names_kind_dag_and_task() -> None:
    assert Alert("failure", "d", "r", "why", "t").subject == "[FAILED] d / t"
    assert Alert("reminder", "d", "r", "why").subject == "[STILL FAILING] d"
    assert Alert("recovered", "d", "r", "why").subject == "[RECOVERED] d"
    assert Alert("summary", "d", "r", "why").subject == "[SUCCESS] d"
    assert Alert("other", "d", "r", "why").subject == "[OTHER] d"


def test_lines_and_text_in_order() -> None:
    alert = Alert("failure", "d", "r", "why", "t", URL, ("also: x",))
    assert alert.lines() == ["DAG: d", "Task: t", "Run: r", "Reason: why", "also: x", f"Run in Airflow: {URL}"]
    assert alert.text() == "\n".join(["[FAILED] d / t", *alert.lines()])
    bare = Alert("failure", "d", "r", "why")
    assert bare.lines() == ["DAG: d", "Run: r", "Reason: why"]


def test_html_escapes_and_links_once() -> None:
    alert = Alert("failure", "d<x>", "r", "a & b", None, URL + "?a=1&b=2")
    assert alert.html() == (
        "<h3>[FAILED] d&lt;x&gt;</h3><ul><li>DAG: d&lt;x&gt;</li><li>Run: r</li><li>Reason: a &amp; b</li></ul>"
        '<p><a href="http://af.example:8080/dags/d/runs/r?a=1&amp;b=2">Open the run in Airflow</a></p>'
    )
    assert Alert("failure", "d", "r", "why").html() == (
        "<h3>[FAILED] d</h3><ul><li>DAG: d</li><li>Run: r</li><li>Reason: why</li></ul>"
    )


def test_slack_blocks_text_and_limits() -> None:
    alert = Alert("failure", "d", "r", "why", "t", URL)
    assert alert.slack_blocks() == [
        {"type": "header", "text": {"type": "plain_text", "text": "[FAILED] d / t"}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"• DAG: d\n• Task: t\n• Run: r\n• Reason: why\n<{URL}|Open the run in Airflow>",
            },
        },
    ]
    assert Alert("failure", "d", "r", "why").slack_blocks()[1]["text"]["text"] == "• DAG: d\n• Run: r\n• Reason: why"
    long = Alert("failure", "d" * 300, "r", "x" * 4000)
    blocks = long.slack_blocks()
    assert len(blocks[0]["text"]["text"]) == 150
    assert len(blocks[1]["text"]["text"]) == 2900


def test_run_url_quotes_and_trims_the_base() -> None:
    assert run_url("my dag", "manual__2026-01-01T00:00:00+00:00", "http://h:1/") == (
        "http://h:1/dags/my%20dag/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00"
    )
    assert run_url("d", "r", "http://h:1") == "http://h:1/dags/d/runs/r"


def test_scrub_keeps_the_first_non_empty_line_within_the_limit() -> None:
    assert scrub("\n  \n  first line  \nsecond") == "first line"
    assert scrub("") == ""
    exact = "a" * REASON_CHARS
    assert scrub(exact) == exact
    assert scrub(exact + "b") == "a" * (REASON_CHARS - 1) + "…"
    assert scrub("abcdef", 3) == "ab…"
    assert scrub("abc", 3) == "abc"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:pw@db/x", "postgresql://***@db/x"),
        ("password = hunter2 next", "password = *** next"),
        ("api_key: 'a b c' tail", "api_key: *** tail"),
        ("Authorization: Bearer abc.def", "Authorization: *** ***"),  # the token never survives
        ("sent Bearer abc.def-1", "sent Bearer ***"),
        ("to Jane.Doe@Example.com now", "to <email> now"),
        ("from 10.1.2.3 and 127.0.0.1", "from <ip> and 127.0.0.1"),
        ("v6 2001:db8:0:0:1:0:0:1 end", "v6 <ip> end"),
        ("v6 fe80::1 end", "v6 <ip> end"),
    ],
)
def test_scrub_patterns(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_exception_reason() -> None:
    assert exception_reason(None) == "failed"
    assert exception_reason(ValueError("bad\nmore")) == "ValueError: bad"
    assert exception_reason(ConfigError("config.yaml: x")) == (
        "ConfigError: config.yaml: x (runbook: docs/runbook.md#config-error)"
    )


def test_count_is_forgiving() -> None:
    assert _count(None) == 0
    assert _count("") == 0
    assert _count("7") == 7
    assert _count(3) == 3
    assert _count("x") == 0
    assert _count([1]) == 0


def test_summary_alert_counts_per_source_and_total() -> None:
    summary = {
        "dag_id": "etl",
        "run_id": "r1",
        "rejects_table": "etl_rejects",
        "sources": {
            "orders": {"rows_read": 10, "rows_loaded": 7, "rows_rejected": 2, "rows_duplicate": 1},
            "customers": {"rows_read": "5", "rows_loaded": 5},
            "broken": "not a mapping",
        },
    }
    alert = summary_alert(summary, "http://h")
    assert alert.kind == "summary"
    assert alert.dag_id == "etl"
    assert alert.run_id == "r1"
    assert alert.task_id is None
    assert alert.url == "http://h/dags/etl/runs/r1"
    assert alert.reason == "loaded 12 of 15 rows (2 rejected, 1 duplicate)"
    assert alert.details == (
        "broken: read 0, loaded 0, rejected 0, duplicate 0",
        "customers: read 5, loaded 5, rejected 0, duplicate 0",
        "orders: read 10, loaded 7, rejected 2, duplicate 1",
        "Rejected rows are in table etl_rejects",
    )


def test_summary_alert_defaults_and_no_rejects_line_without_rejects() -> None:
    alert = summary_alert({"rejects_table": "etl_rejects", "sources": {"a": {"rows_read": 1, "rows_loaded": 1}}}, "h")
    assert alert.dag_id == "etl_ecommerce_pipeline"
    assert alert.run_id == "unknown_run"
    assert alert.details == ("a: read 1, loaded 1, rejected 0, duplicate 0",)
    assert alert.reason == "loaded 1 of 1 rows (0 rejected, 0 duplicate)"
    rejected = summary_alert({"sources": {"a": {"rows_read": 1, "rows_rejected": 1}}}, "h")
    assert rejected.details == ("a: read 1, loaded 0, rejected 1, duplicate 0",)
    assert summary_alert({"sources": ["not", "a", "mapping"]}, "h").details == ()


def test_summary_alert_scrubs_and_truncates_names() -> None:
    alert = summary_alert({"dag_id": "d" * 150, "run_id": "a@b.example.com", "sources": {}}, "h")
    assert alert.dag_id == "d" * 99 + "…"
    assert alert.run_id == "<email>"


def test_parse_alerting_error_is_one_config_line() -> None:
    with pytest.raises(ConfigError) as err:
        parse_alerting({"chanels": ["email"]})
    assert str(err.value) == "unknown key 'alerting.chanels' — did you mean 'channels'?"


class _Ti:
    dag_id = "ti_dag"
    run_id = "ti_run"


class _Dag:
    dag_id = "ctx_dag"


def test_ids_prefer_the_context_then_the_task_instance() -> None:
    ti = _Ti()
    assert _ids({"ti": ti, "dag": _Dag(), "run_id": "ctx_run"}) == ("ctx_dag", "ctx_run", ti)
    assert _ids({"task_instance": ti}) == ("ti_dag", "ti_run", ti)
    assert _ids({}) == ("unknown_dag", "unknown_run", None)
    assert _ids({"dag": None, "run_id": 5}) == ("unknown_dag", "5", None)


def test_run_url_base_comes_from_airflow_api_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example:9090/")
    assert run_url("d", "r") == "http://airflow.example:9090/dags/d/runs/r"
    assert run_url("d", "r", "") == "http://airflow.example:9090/dags/d/runs/r"
    monkeypatch.delenv("AIRFLOW__API__BASE_URL")
    assert run_url("d", "r") == "http://localhost:8080/dags/d/runs/r"


def test_run_url_trims_only_trailing_slashes() -> None:
    assert run_url("d", "r", "http://boX//") == "http://boX/dags/d/runs/r"


def test_html_link_escapes_quotes_in_the_url() -> None:
    alert = Alert("failure", "d", "r", "why", url='http://h/x"onmouseover="y')
    assert '<a href="http://h/x&quot;onmouseover=&quot;y">' in alert.html()


def test_summary_shortens_long_run_ids_source_names_and_table_names() -> None:
    long_run = "r" * 250
    summary = {
        "run_id": long_run,
        "sources": {"s" * 70: {"rows_read": 2, "rows_loaded": 1, "rows_rejected": 1, "rows_duplicate": 0}},
        "rejects_table": "t" * 70,
    }
    alert = summary_alert(summary, "http://h")
    assert alert.run_id == "r" * 199 + "…"
    assert alert.details == (
        "s" * 59 + "…: read 2, loaded 1, rejected 1, duplicate 0",
        "Rejected rows are in table " + "t" * 59 + "…",
    )
    exact = summary_alert(
        {"run_id": "r" * 200, "sources": {"s" * 60: {"rows_read": 1, "rows_rejected": 1}}, "rejects_table": "t" * 60}
    )
    assert exact.run_id == "r" * 200
    assert exact.details == (
        "s" * 60 + ": read 1, loaded 0, rejected 1, duplicate 0",
        "Rejected rows are in table " + "t" * 60,
    )


def test_dag_and_task_callbacks_are_the_notifiers_under_airflows_keyword_names() -> None:
    from include import notifications

    dag = notifications.dag_callbacks("etl_ecommerce_pipeline")
    assert sorted(dag) == ["on_failure_callback", "on_success_callback"]
    assert isinstance(dag["on_failure_callback"], notifications.DagFailureNotifier)
    assert isinstance(dag["on_success_callback"], notifications.DagSuccessNotifier)
    task = notifications.task_callbacks()
    assert list(task) == ["on_failure_callback"]
    assert isinstance(task["on_failure_callback"], notifications.TaskFailureRecorder)
