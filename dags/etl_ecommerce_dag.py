"""
### E-commerce ETL: orders, sessions, customers and products into PostgreSQL

Extracts the raw files (and the products REST API when `ECOM_PRODUCTS_API_URL` is set) in parallel,
validates and enriches them, quarantines every row that breaks a rule in `rejected_records`, and
loads the rest into the warehouse in **one transaction** (COPY into staging, upsert on natural keys).
Every input row is accounted for in `etl_runs`: read = loaded + rejected + duplicates.

* Settings: `config.yaml` (+ `ECOM_*` overrides); target database: the `postgres_default` connection.
* Tasks hand each other small manifests (paths, counts); intermediate files live in the staging
  folder of the run.
* `load_data` emits one Asset per warehouse table; `data_quality_checks` is scheduled on them.
* A broken file, an API answering 4xx or a reject rate above the guard fails the run without retries
  and without loading anything.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

from include import notifications
from include.assets import WAREHOUSE_ASSETS
from include.config_loader import load_config
from include.entities import SOURCE_NAMES
from include.errors import fail_fast_on_non_retryable
from include.manifests import ExtractedSource, LoadManifest, RunSummary, TransformManifest
from include.run_failures import record_etl_failure

SETTINGS = load_config()


def _run_context() -> tuple[str, str]:
    ctx = get_current_context()
    return ctx["dag"].dag_id, ctx["run_id"]


@task(doc_md="Stage one source (file or API) as Parquet parts; structural damage fails the source.")
def extract(source: str) -> ExtractedSource:
    from include import pipeline

    dag_id, run_id = _run_context()
    with fail_fast_on_non_retryable():
        return pipeline.extract(source, SETTINGS, pipeline.run_dir(SETTINGS, dag_id, run_id))


@task(
    doc_md="Validate, clean and enrich every source; quarantine rejects; fail before loading when a reject rate is above the guard."
)
def transform_data(manifests: dict[str, ExtractedSource]) -> TransformManifest:
    from include import pipeline

    dag_id, run_id = _run_context()
    with fail_fast_on_non_retryable():
        return pipeline.transform(manifests, SETTINGS, pipeline.run_dir(SETTINGS, dag_id, run_id))


@task(
    outlets=list(WAREHOUSE_ASSETS),
    pool=SETTINGS.load_pool,
    doc_md="Load the run in one transaction (advisory lock, COPY + upsert, rejects, ledger); emits the table Assets.",
)
def load_data(transformed: TransformManifest) -> LoadManifest:
    from include import pipeline

    ctx = get_current_context()
    started = getattr(ctx.get("dag_run"), "start_date", None)
    with fail_fast_on_non_retryable():
        return pipeline.load(transformed, SETTINGS, ctx["run_id"], started_at=started)


@task(doc_md="Log the run summary (and send it when alerting is configured); prune old staging folders.")
def send_notification(loaded: LoadManifest) -> RunSummary:
    import logging

    from include import pipeline

    dag_id, run_id = _run_context()
    log = logging.getLogger(__name__)
    for line in pipeline.summary_lines(loaded):
        log.info(line)
    summary: RunSummary = {
        "dag_id": dag_id,
        "run_id": run_id,
        "sources": loaded["sources"],
        "rejects_table": loaded["rejects_table"],
    }
    with fail_fast_on_non_retryable():
        if SETTINGS.notify_on_success:
            notifications.send_run_summary(summary)  # type: ignore[arg-type]
        pipeline.prune_staging(SETTINGS, dag_id)
    return summary


@dag(
    dag_id=SETTINGS.dag_id,
    schedule=SETTINGS.schedule,
    start_date=pendulum.parse(SETTINGS.start_date, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["ecommerce", "etl"],
    default_args={
        "owner": "data-engineering",
        "retries": SETTINGS.retries,
        "retry_delay": timedelta(seconds=SETTINGS.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(seconds=SETTINGS.max_retry_delay_seconds),
        "execution_timeout": timedelta(minutes=SETTINGS.execution_timeout_minutes),
        # After the last try: the alert's reason, and the failed run as a fact in etl_runs.
        "on_failure_callback": [notifications.TaskFailureRecorder(), record_etl_failure],
    },
    **notifications.dag_callbacks(SETTINGS.dag_id),
)
def etl_ecommerce_pipeline() -> None:
    manifests = {source: extract.override(task_id=f"extract_{source}")(source) for source in SOURCE_NAMES}
    send_notification(load_data(transform_data(manifests)))


etl_ecommerce_pipeline()
