"""
### Data quality checks of the e-commerce warehouse

Runs after every ETL load (scheduled on the Assets `load_data` emits) and daily as a safety net
(`quality.schedule` in config.yaml). The checks are declared per table and column in the `quality:`
section of config.yaml; each is validated against the real schema and run as SQL with quoted
identifiers and bound parameters.

- `check_data_completeness`: row counts, NULLs, reconciliation of the last ETL run, reject rate, volume anomaly.
- `check_data_consistency`: uniqueness, accepted values, ranges, e-mail validity, referential integrity, derived values.
- `check_data_freshness`: age of the newest business timestamp and of the newest load.
- `generate_quality_report`: HTML + JSON report with trends, written even when a check task failed.
- `quality_gate`: the leaf; it runs only when every check task succeeded, so the run's state is the checks' verdict.

Every result is appended to `data_quality_results` (history kept). A failed check of severity `fail`
fails its task without retry, naming the check, table, observed value and threshold; `warn` checks
are reported and keep the run green.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task

from include import notifications
from include.assets import WAREHOUSE_ASSETS
from include.config_loader import load_config
from include.errors import fail_fast_on_non_retryable
from include.quality import build_schedule, load_quality_config

log = logging.getLogger(__name__)

DAG_ID = "data_quality_checks"
_settings = load_config()  # reads config.yaml only: no database, network or Variable at parse time
_quality = load_quality_config(_settings)


def _run_checks(category: str, run_id: str) -> dict[str, Any]:
    """Run one category of checks; turn a failed `fail` check or a bad config into a failure without retry."""
    from include import quality

    with fail_fast_on_non_retryable():
        return quality.execute_task(category, run_id, load_config())


@dag(
    dag_id=DAG_ID,
    schedule=build_schedule(_quality, WAREHOUSE_ASSETS),
    start_date=pendulum.from_format(_settings.start_date, "YYYY-MM-DD", tz=_quality.timezone),
    catchup=False,
    # One at a time, so runs finish in order and the alert incident state ("recovered") stays truthful.
    # Known upstream issue (apache/airflow#56050, Airflow 3.3.2): asset events that arrive while a run is
    # active may wait for the next load; the daily schedule above is the safety net.
    max_active_runs=1,
    doc_md=__doc__,
    tags=["ecommerce", "data-quality"],
    default_args={
        "owner": "data-platform",
        "retries": _quality.retries,
        "retry_delay": timedelta(seconds=_quality.retry_delay_seconds),
        "execution_timeout": timedelta(minutes=_settings.execution_timeout_minutes),
        **notifications.task_callbacks(),
    },
    **notifications.dag_callbacks(DAG_ID),
)
def data_quality_checks() -> None:
    """Three check tasks in parallel, then the report, then the gate."""

    @task
    def check_data_completeness(run_id: str | None = None) -> dict[str, Any]:
        """Row counts, NULLs, ETL run reconciliation, reject rate, volume anomaly."""
        return _run_checks("completeness", str(run_id))

    @task
    def check_data_consistency(run_id: str | None = None) -> dict[str, Any]:
        """Uniqueness, accepted values, ranges, e-mails, referential integrity, derived values."""
        return _run_checks("consistency", str(run_id))

    @task
    def check_data_freshness(run_id: str | None = None) -> dict[str, Any]:
        """Age of the newest business timestamps and of the newest load."""
        return _run_checks("freshness", str(run_id))

    @task(trigger_rule="all_done")
    def generate_quality_report(run_id: str | None = None) -> dict[str, Any]:
        """Write the HTML + JSON report of this run; return the paths (a small manifest)."""
        from include import quality_report

        with fail_fast_on_non_retryable():
            return quality_report.execute_task(str(run_id), load_config())

    @task
    def quality_gate(completeness: Any, consistency: Any, freshness: Any, report: Any) -> dict[str, Any]:
        """Leaf task: runs only when every check task succeeded, so a failed `fail` check turns the DAG run red.

        (The report runs with trigger rule all_done and would otherwise be the only leaf and keep the run green.)
        """
        summaries = [completeness, consistency, freshness]
        totals = {
            k: sum(int(s[k]) for s in summaries) for k in ("checks", "passed", "warned", "failed", "skipped", "errors")
        }
        log.info("data quality passed: %s; report %s", totals, report.get("html"))
        return {**totals, "report": report.get("html")}

    checks = [check_data_completeness(), check_data_consistency(), check_data_freshness()]
    report = generate_quality_report()
    checks >> report
    quality_gate(checks[0], checks[1], checks[2], report)


data_quality_checks()
