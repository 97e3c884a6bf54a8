"""Privacy: erasure and access requests (``privacy_requests``) and daily maintenance (``privacy_maintenance``).

``privacy_requests`` processes the requests queued in the warehouse by ``make privacy-request EMAIL=...
ACTION=erase|export``. Its only Param is a request id (empty: every pending request): the address never
enters Airflow's metadata (run conf, XCom, logs). See include/privacy.py and README "Privacy".

``privacy_maintenance`` re-applies every erasure (a safety net for restores and reprocessed files),
deletes what is older than the ``privacy:`` retention limits, then writes an encrypted backup and proves
it restores (restore-check into a scratch database); outcomes are monitoring metrics.
Airflow's own metadata is trimmed by ``airflow db clean`` on the same schedule (README "Privacy").
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from include import notifications
from include.config_loader import load_config
from include.errors import fail_fast_on_non_retryable
from include.privacy import privacy_config

_settings = load_config()
_cfg = privacy_config(_settings)
_START = pendulum.datetime(2024, 1, 1, tz="UTC")
_DEFAULTS = {"owner": "data-platform", "retries": 1, "retry_delay": timedelta(minutes=2)}


def _run() -> tuple[str, str]:
    ctx = get_current_context()
    return str(ctx["run_id"]), f"airflow:{ctx['dag'].dag_id}"


@dag(
    dag_id="privacy_requests",
    schedule=_cfg.requests_schedule,
    start_date=_START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["ecommerce", "privacy"],
    params={
        "request_id": Param(
            None,
            type=["null", "string"],
            description="A request id printed by `make privacy-request` (never an e-mail address); empty = all pending",
            pattern=r"^[0-9a-fA-F-]{36}$",
        )
    },
    default_args={**_DEFAULTS, "execution_timeout": timedelta(minutes=60), **notifications.task_callbacks()},
    **notifications.dag_callbacks("privacy_requests"),
)
def privacy_requests() -> None:
    @task
    @fail_fast_on_non_retryable()
    def process_requests() -> dict[str, Any]:
        from include.database import conninfo_from_connection
        from include.privacy import Dirs, process_requests, secret_key

        settings = load_config()
        cfg = privacy_config(settings)
        run_id, actor = _run()
        request_id = get_current_context()["params"].get("request_id") or None
        done = process_requests(
            conninfo_from_connection(cfg.conn_id or settings.conn_id),
            settings.schema,
            Dirs.of(settings, cfg),
            secret_key(cfg.key_conn_id),
            run_id=run_id,
            actor=actor,
            request_id=request_id,
        )
        # Ids, actions and statuses only: no address, no export path (it names nobody, but stays out of XCom).
        return {"processed": len(done), "requests": [[d["request_id"], d["action"], d["status"]] for d in done]}

    process_requests()


@dag(
    dag_id="privacy_maintenance",
    schedule=_cfg.maintenance_schedule,
    start_date=_START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["ecommerce", "privacy", "backup"],
    default_args={**_DEFAULTS, "execution_timeout": timedelta(hours=3), **notifications.task_callbacks()},
    **notifications.dag_callbacks("privacy_maintenance"),
)
def privacy_maintenance() -> None:
    @task
    @fail_fast_on_non_retryable()
    def reapply_erasures() -> dict[str, int]:
        from include.database import conninfo_from_connection
        from include.privacy import reapply_erasures, secret_key

        settings = load_config()
        cfg = privacy_config(settings)
        run_id, actor = _run()
        return reapply_erasures(
            conninfo_from_connection(cfg.conn_id or settings.conn_id),
            settings.schema,
            secret_key(cfg.key_conn_id),
            cfg.backup_dir,
            run_id=run_id,
            actor=actor,
        )

    @task
    @fail_fast_on_non_retryable()
    def enforce_retention() -> dict[str, int]:
        from include.database import conninfo_from_connection
        from include.privacy import Dirs, enforce_retention

        settings = load_config()
        cfg = privacy_config(settings)
        run_id, actor = _run()
        return enforce_retention(
            conninfo_from_connection(cfg.conn_id or settings.conn_id),
            settings.schema,
            cfg,
            Dirs.of(settings, cfg),
            staging_days=settings.staging_retention_days,
            run_id=run_id,
            actor=actor,
            # monitoring_metrics belongs to the reporting role (the loader may not write it)
            metrics_conninfo=conninfo_from_connection(settings.reporting_conn_id),
        )

    @task
    @fail_fast_on_non_retryable()
    def backup_and_restore_check() -> dict[str, Any]:
        from include.backup import backup_and_check
        from include.database import conninfo_from_connection
        from include.privacy import secret_key

        settings = load_config()
        cfg = privacy_config(settings)
        run_id, _ = _run()
        return backup_and_check(
            conninfo_from_connection(cfg.conn_id or settings.conn_id),
            cfg,
            secret_key(cfg.backup_key_conn_id),
            run_id,
            metrics_conninfo=conninfo_from_connection(settings.reporting_conn_id),
        )

    reapply_erasures() >> enforce_retention() >> backup_and_restore_check()


privacy_requests()
privacy_maintenance()
