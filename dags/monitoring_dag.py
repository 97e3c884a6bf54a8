"""Monitoring of the e-commerce pipeline: host, warehouse database, data freshness and the DAGs themselves.

Four checks run in parallel, each storing its metrics in ``monitoring_metrics`` before judging them
against the ``monitoring.thresholds`` of config.yaml:

- ``check_system_metrics``: CPU, memory, disk of the worker; free space of the staging and reports directories.
- ``check_dag_status``: recent runs of the project's DAGs and Airflow's component health, through the
  REST API v2 (connection ``airflow_api``); skipped with a warning when that connection is not defined.
- ``check_data_freshness``: hours since the newest load of each table (``etl_runs``), the age of the oldest
  landing file not loaded yet per source, and the backups.
- ``check_database_health``: connect latency, connections, sizes, cache hit ratio, long queries,
  idle-in-transaction sessions, lock waits and dead tuples of the warehouse PostgreSQL.

A warning is logged and reported; a critical breach fails its check (after storing it), which fails
the run (``monitoring_verdict``) and sends one alert per incident. ``generate_monitoring_report``
always runs and writes the HTML + JSON report with trend charts.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

from include import notifications
from include.config_loader import load_config
from include.errors import fail_fast_on_non_retryable
from include.monitoring import monitoring_config

_settings = load_config()
_cfg = monitoring_config(_settings)


def _run_id() -> str:
    return str(get_current_context()["run_id"])


def _store_and_judge(check: str, metrics: list) -> dict[str, int]:
    from include.database import conninfo_from_connection
    from include.monitoring import persist_metrics, raise_on_critical

    settings = load_config()
    persist_metrics(conninfo_from_connection(settings.reporting_conn_id), settings.schema, _run_id(), metrics)
    raise_on_critical(check, metrics)
    return {s: sum(1 for m in metrics if m.status == s) for s in ("ok", "warn", "critical", "skipped")}


@dag(
    dag_id=_cfg.dag_id,
    schedule=_cfg.schedule,
    start_date=pendulum.parse(_cfg.start_date, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["ecommerce", "monitoring"],
    default_args={
        "owner": "data-platform",
        "retries": _cfg.retries,
        "retry_delay": timedelta(seconds=_cfg.retry_delay_seconds),
        "execution_timeout": timedelta(minutes=10),
        **notifications.task_callbacks(),
    },
    **notifications.dag_callbacks(_cfg.dag_id),
)
def monitoring_dag() -> None:
    @task
    @fail_fast_on_non_retryable()
    def check_system_metrics() -> dict[str, int]:
        from include.monitoring import collect_system_metrics

        settings = load_config()
        cfg = monitoring_config(settings)
        dirs = {"staging": settings.staging_dir, "reports": settings.reports_dir}
        return _store_and_judge("check_system_metrics", collect_system_metrics(cfg, dirs))

    @task
    @fail_fast_on_non_retryable()
    def check_dag_status() -> dict[str, int]:
        from include.database import conninfo_from_connection
        from include.monitoring import AirflowApiClient, collect_dag_status, collect_etl_status_from_ledger

        settings = load_config()
        cfg = monitoring_config(settings)
        client = AirflowApiClient.from_connection(cfg.api_conn_id, cfg.api_timeout_seconds)
        if client is None:  # no REST API (make run): the ETL's health from the run ledger etl_runs
            conninfo = conninfo_from_connection(settings.conn_id)
            metrics = collect_etl_status_from_ledger(cfg, conninfo, settings.schema, settings.dag_id)
            return _store_and_judge("check_dag_status", metrics)
        return _store_and_judge("check_dag_status", collect_dag_status(cfg, client))

    @task
    @fail_fast_on_non_retryable()
    def check_data_freshness() -> dict[str, int]:
        from include.database import conninfo_from_connection
        from include.monitoring import collect_backup_status, collect_freshness, collect_landing_backlog

        settings = load_config()
        cfg = monitoring_config(settings)
        conninfo = conninfo_from_connection(settings.reporting_conn_id)
        metrics = (
            collect_freshness(cfg, settings, conninfo)
            + collect_landing_backlog(cfg, settings, conninfo)
            + collect_backup_status(cfg, settings, conninfo)
        )
        return _store_and_judge("check_data_freshness", metrics)

    @task
    @fail_fast_on_non_retryable()
    def check_database_health() -> dict[str, int]:
        from include.database import conninfo_from_connection
        from include.monitoring import collect_database_metrics

        settings = load_config()
        cfg = monitoring_config(settings)
        metrics = collect_database_metrics(cfg, conninfo_from_connection(settings.reporting_conn_id), settings.schema)
        return _store_and_judge("check_database_health", metrics)

    @task(trigger_rule="all_done")
    @fail_fast_on_non_retryable()
    def generate_monitoring_report() -> dict[str, object]:
        from include.database import conninfo_from_connection
        from include.monitoring_report import build_report

        settings = load_config()
        cfg = monitoring_config(settings)
        return build_report(settings, cfg, conninfo_from_connection(settings.reporting_conn_id), _run_id())

    @task
    def monitoring_verdict() -> None:
        """Runs only when every check passed; otherwise upstream_failed makes the run red."""

    checks = [check_system_metrics(), check_dag_status(), check_data_freshness(), check_database_health()]
    report = generate_monitoring_report()
    checks >> report
    [*checks, report] >> monitoring_verdict()


monitoring_dag()
