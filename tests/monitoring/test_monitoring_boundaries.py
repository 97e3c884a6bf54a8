"""Every monitoring warn/critical limit exactly at the limit and one step each side.

"above" metrics breach at value >= limit, "below" metrics at value < limit (config.yaml). The pure
evaluation (`judge`) is checked for every metric and subject that has a limit in the shipped config
or in the defaults; the real collectors (freshness from the ledger, DAG run metrics) at their limits too.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from include.config_loader import DEFAULT_CONFIG, load_config
from include.monitoring import METRICS, collect_freshness, dag_run_metrics, judge, parse_monitoring

CFG = parse_monitoring(load_config(DEFAULT_CONFIG).monitoring)
T = CFG.thresholds


def limit_cases() -> list[Any]:
    """(metric, subject, level, limit) for every limit set by config.yaml or the defaults."""
    cases = []
    for name in sorted(METRICS):
        mt = T.root.get(name)
        subjects: list[str | None] = [None, *sorted(mt.subjects if mt is not None else {})]
        for subject in subjects:
            lim = T.for_(name, subject)
            for level in ("warn", "critical"):
                value = getattr(lim, level)
                if value is not None:
                    cases.append(pytest.param(name, subject, level, value, id=f"{name}[{subject or '*'}].{level}"))
    return cases


CASES = limit_cases()


def test_the_shipped_config_sets_the_limits_this_file_walks() -> None:
    ids = {c.id for c in CASES}
    # a sample of what config.yaml declares, so an empty walk cannot pass silently
    assert {
        "system.dir_free_mb[*].critical",
        "db.cache_hit_ratio[*].warn",
        "freshness.age_hours[customers].warn",
        "dag.consecutive_failures[monitoring_dag].warn",
        "airflow.health[*].critical",
        "airflow.health[triggerer].warn",
    } <= ids
    assert "dag.consecutive_failures[monitoring_dag].critical" not in ids  # critical: null in config
    assert len(CASES) >= 25


def status_of(name: str, value: float, subject: str | None) -> str:
    return judge(name, value, T, subject=subject).status


@pytest.mark.parametrize(("name", "subject", "level", "limit"), CASES)
def test_judge_at_and_around_each_limit(name: str, subject: str | None, level: str, limit: float) -> None:
    lim = T.for_(name, subject)
    inside = math.nextafter(limit, -math.inf)  # the nearest float on the "smaller" side
    outside = math.nextafter(limit, math.inf)
    # the level reached when this limit is not breached: warn when a warn limit is already breached there
    if METRICS[name].direction == "above":
        below_level = "warn" if level == "critical" and lim.warn is not None and inside >= lim.warn else "ok"
        assert status_of(name, inside, subject) == below_level
        assert status_of(name, limit, subject) == level  # value >= limit breaches
        assert status_of(name, outside, subject) == level
    else:
        not_breached = "warn" if level == "critical" and lim.warn is not None and limit < lim.warn else "ok"
        assert status_of(name, outside, subject) == not_breached
        assert status_of(name, limit, subject) == not_breached  # value < limit breaches: the limit itself does not
        assert status_of(name, inside, subject) == level


def test_judge_reports_the_limits_it_applied() -> None:
    m = judge("dag.consecutive_failures", 3, T, subject="monitoring_dag")
    assert (m.status, m.warn, m.critical) == ("warn", 1, None)  # never critical about itself
    m = judge("dag.consecutive_failures", 3, T, subject="etl_ecommerce_pipeline")
    assert (m.status, m.warn, m.critical) == ("critical", 1, 3)


# ------------------------------------------------------------------------------------ real collectors
FINISHED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
# Ages are reported in hours rounded to 0.001 h (3.6 s) before they are judged: one step is 10 s.
STEP = timedelta(seconds=10)


@pytest.mark.parametrize(
    ("age", "orders_status", "customers_status"),
    [
        (timedelta(hours=26) - STEP, "ok", "ok"),
        (timedelta(hours=26), "warn", "ok"),  # exactly warn
        (timedelta(hours=50) - STEP, "warn", "ok"),
        (timedelta(hours=50), "critical", "ok"),  # exactly critical
        (timedelta(hours=170) - STEP, "critical", "ok"),
        (timedelta(hours=170), "critical", "warn"),  # customers: warn 170, no critical
    ],
)
def test_collect_freshness_at_the_limits(
    fresh_db: str, age: timedelta, orders_status: str, customers_status: str
) -> None:
    settings = load_config(DEFAULT_CONFIG)
    with psycopg.connect(fresh_db) as conn:
        for source in ("orders", "customers", "products", "user_sessions"):
            conn.execute(
                "INSERT INTO etl_runs (etl_run_id, source, source_file, rows_read, rows_loaded, rows_rejected, "
                "rows_duplicate, started_at, finished_at) VALUES ('r1', %s, 'f', 1, 1, 0, 0, %s, %s)",
                (source, FINISHED - timedelta(minutes=1), FINISHED),
            )
    metrics = {m.subject: m for m in collect_freshness(CFG, settings, fresh_db, now=FINISHED + age)}
    assert metrics["orders"].status == orders_status
    assert metrics["customers"].status == customers_status
    assert metrics["orders"].value == pytest.approx(age.total_seconds() / 3600, abs=1e-3)


NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def runs(states: list[str], durations: list[float] | None = None, success_age: timedelta | None = None) -> list[dict]:
    out = []
    for i, state in enumerate(states):
        end = NOW - timedelta(hours=i)
        if state == "success" and success_age is not None:
            end = NOW - success_age
        duration = durations[i] if durations else 60.0
        out.append({"state": state, "end_date": end.isoformat(), "duration": duration})
    return out


def dag_metric(name: str, dag_id: str, dag_runs: list[dict]) -> Any:
    (m,) = [m for m in dag_run_metrics(CFG, dag_id, dag_runs, NOW) if m.name == name]
    return m


@pytest.mark.parametrize(
    ("failures", "etl", "monitor"),
    [(0, "ok", "ok"), (1, "warn", "warn"), (2, "warn", "warn"), (3, "critical", "warn"), (4, "critical", "warn")],
)
def test_consecutive_failures_at_the_limits(failures: int, etl: str, monitor: str) -> None:
    history = runs(["failed"] * failures + ["success", "failed"])  # an older failure does not count
    m = dag_metric("dag.consecutive_failures", "etl_ecommerce_pipeline", history)
    assert (m.value, m.status) == (failures, etl)
    assert dag_metric("dag.consecutive_failures", "monitoring_dag", history).status == monitor


@pytest.mark.parametrize(
    ("age", "etl", "monitor"),
    [
        (timedelta(hours=3) - STEP, "ok", "ok"),
        (timedelta(hours=3), "ok", "warn"),  # monitoring_dag: warn 3 h
        (timedelta(hours=26) - STEP, "ok", "warn"),
        (timedelta(hours=26), "warn", "warn"),
        (timedelta(hours=50) - STEP, "warn", "warn"),
        (timedelta(hours=50), "critical", "warn"),  # monitoring_dag: no critical
    ],
)
def test_hours_since_success_at_the_limits(age: timedelta, etl: str, monitor: str) -> None:
    history = runs(["success"], success_age=age)
    assert dag_metric("dag.hours_since_success", "etl_ecommerce_pipeline", history).status == etl
    assert dag_metric("dag.hours_since_success", "monitoring_dag", history).status == monitor


@pytest.mark.parametrize(("last", "status"), [(179.0, "ok"), (180.0, "warn"), (181.0, "warn")])
def test_duration_ratio_at_the_limit(last: float, status: str) -> None:
    history = runs(["success"] * 4, durations=[last, 50.0, 60.0, 70.0])  # median of the previous three: 60 s
    m = dag_metric("dag.duration_ratio", "etl_ecommerce_pipeline", history)
    assert (m.value, m.status) == (pytest.approx(last / 60, abs=1e-3), status)


@pytest.mark.parametrize(("previous", "judged"), [(2, False), (3, True)])
def test_duration_ratio_needs_three_previous_runs(previous: int, judged: bool) -> None:
    history = runs(["success"] * (previous + 1), durations=[600.0] + [60.0] * previous)
    names = [m.name for m in dag_run_metrics(CFG, "etl_ecommerce_pipeline", history, NOW)]
    assert ("dag.duration_ratio" in names) is judged
