"""Write a failed ETL run into the ledger (`etl_runs`, status 'failed') from an Airflow failure callback.

The row itself is written by ``include.ledger.record_failure`` (migration 0002, helper `schema`) in its
own short transaction; this module only turns a callback context into its arguments. Usable as the
DAG's ``on_failure_callback`` (one call per failed run: the failed task, no exception object) and as a
task's (after the last try: the exception is in the context).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg

log = logging.getLogger(__name__)


def failure_of(context: Mapping[str, Any]) -> tuple[str, str, BaseException | str]:
    """``(run_id, failed step, error)`` of a failure callback context; the error is one scrubbed line when no exception."""
    from include.run_summary import reason_line, root_exception

    ti = context.get("ti") or context.get("task_instance")
    run_id = str(context.get("run_id") or getattr(ti, "run_id", None) or "unknown_run")
    step = str(getattr(ti, "task_id", None) or "*")
    exc = context.get("exception")
    if isinstance(exc, BaseException):
        return run_id, step, root_exception(exc)
    why = context.get("reason") or "failed"
    return run_id, step, reason_line("DagRunFailed", f"task {step} failed ({why})" if step != "*" else str(why))


def record_etl_failure(context: Mapping[str, Any]) -> None:
    """Task ``on_failure_callback`` (after the last try): record the failed run in etl_runs; never raises."""
    from include.config_loader import ConfigError, load_config
    from include.database import conninfo_from_connection
    from include.ledger import record_failure

    run_id, step, error = failure_of(context)
    dag_run = context.get("dag_run")
    started = getattr(dag_run, "start_date", None)
    try:
        settings = load_config()
        record_failure(
            conninfo_from_connection(settings.conn_id), settings.schema, run_id, step, error, started_at=started
        )
    # A failure callback must not raise: it would hide the failure it reports (and Airflow only logs it).
    except (ConfigError, LookupError, psycopg.Error):
        log.exception("could not record the failed ETL run %s in etl_runs", run_id)
