"""
### E-commerce ETL: orders, sessions, customers and products into PostgreSQL

Claims the **new** files of the landing folder (`paths.raw_data_dir`, globs per source; content already
loaded is skipped and reported), extracts and transforms them **one task per file** (products first),
validates and enriches them, quarantines every row that breaks a rule in `rejected_records`, and
loads the rest into the warehouse in **one transaction** (COPY into staging, upsert on natural keys).
Every input row is accounted for in `etl_runs`: read = loaded + rejected + duplicates.

* Settings: `config.yaml` (+ `ECOM_*` overrides); target database: the `postgres_default` connection.
* Tasks hand each other small manifests (paths, counts); intermediate files live in the staging
  folder of the run.
* Starts on its cron **or** when the exporter drops the marker file (`landing.marker`) in the landing folder.
* Params: `reprocess` (archived file globs or archive-date ranges `YYYY-MM-DD..YYYY-MM-DD` to ingest again),
  `dry_run` (preview: nothing is loaded).
* `publish_assets` emits one Asset per warehouse table when rows were loaded; `data_quality_checks` runs on them.
* Loaded files are archived after the commit (`landing.archive`).
* A broken file, an API answering 4xx or a reject rate above the guard fails the run without retries
  and without loading anything.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task

from include import notifications
from include.assets import WAREHOUSE_ASSETS, landing_marker_asset
from include.config_loader import load_config
from include.errors import fail_fast_on_non_retryable
from include.landing import ClaimManifest, FileRef
from include.manifests import ExtractedFile, LoadManifest, ProductsStep, RunSummary, TransformedFile
from include.run_failures import record_etl_failure

SETTINGS = load_config()
MAX_PARALLEL = SETTINGS.landing.max_parallel_files


def _run_context() -> tuple[str, str]:
    ctx = get_current_context()
    return ctx["dag"].dag_id, ctx["run_id"]


def _params() -> tuple[list[str], bool]:
    params = get_current_context()["params"]
    raw = params.get("reprocess") or []
    reprocess = [raw] if isinstance(raw, str) else [str(x) for x in raw]
    return [r.strip() for r in reprocess if r and r.strip()], bool(params.get("dry_run"))


@task(doc_md="List the landing folder; claim files whose content is not loaded yet (name order); push the skipped.")
def claim_files() -> list[FileRef]:
    from include import pipeline

    ctx = get_current_context()
    reprocess, dry_run = _params()
    with fail_fast_on_non_retryable():
        claim: ClaimManifest = pipeline.claim(SETTINGS, ctx["run_id"], reprocess=reprocess, dry_run=dry_run)
    # The mapped tasks expand over the return value; the skipped list goes to the load (ledger, summary).
    ctx["ti"].xcom_push(key="skipped", value=claim["skipped"])
    return claim["claimed"]


@task(max_active_tis_per_dagrun=MAX_PARALLEL, doc_md="Stage one claimed file as Parquet parts (one task per file).")
def extract_file(ref: FileRef) -> ExtractedFile:
    from include import pipeline

    dag_id, run_id = _run_context()
    with fail_fast_on_non_retryable():
        return pipeline.extract_file(ref, SETTINGS, pipeline.run_dir(SETTINGS, dag_id, run_id))


@task(
    trigger_rule="none_failed",
    doc_md="Transform the product files first (orders are validated against their ids); hand on the other files.",
)
def transform_products(extracted: list[ExtractedFile] | None) -> ProductsStep:
    from include import pipeline

    dag_id, run_id = _run_context()
    with fail_fast_on_non_retryable():
        return pipeline.transform_products(list(extracted or []), SETTINGS, pipeline.run_dir(SETTINGS, dag_id, run_id))


@task(max_active_tis_per_dagrun=MAX_PARALLEL, doc_md="Validate, clean and enrich one file; quarantine its rejects.")
def transform_file(f: ExtractedFile, products: ProductsStep) -> TransformedFile:
    from include import pipeline

    dag_id, run_id = _run_context()
    with fail_fast_on_non_retryable():
        return pipeline.transform_file(f, products, SETTINGS, pipeline.run_dir(SETTINGS, dag_id, run_id))


@task(
    pool=SETTINGS.load_pool,
    trigger_rule="none_failed",
    doc_md="Reject-rate guard, then load every file of the run in ONE transaction (registry, rows, rejects, ledger).",
)
def load_data(transformed: list[TransformedFile] | None) -> LoadManifest:
    from include import pipeline

    ctx = get_current_context()
    _, dry_run = _params()
    files = list(transformed or [])
    skipped = ctx["ti"].xcom_pull(task_ids="claim_files", key="skipped") or []
    with fail_fast_on_non_retryable():
        if dry_run:
            return pipeline.preview(files, skipped, SETTINGS, ctx["run_id"])
        started = getattr(ctx.get("dag_run"), "start_date", None)
        return pipeline.load_files(files, skipped, SETTINGS, ctx["run_id"], started_at=started)


@task(
    outlets=list(WAREHOUSE_ASSETS),
    doc_md="Emit the table Assets (quality runs on them) only when rows were loaded; nothing new / dry run: skipped.",
)
def publish_assets(loaded: LoadManifest) -> None:
    from airflow.exceptions import AirflowSkipException

    if loaded.get("dry_run") or not loaded["sources"]:
        raise AirflowSkipException("nothing loaded (nothing new or dry run): no asset event")


@task(doc_md="After the commit: archive loaded files (landing.archive), move quarantined files to failed/.")
def archive_files(loaded: LoadManifest) -> list[str]:
    from include import pipeline

    if loaded.get("dry_run"):
        return []
    with fail_fast_on_non_retryable():
        return pipeline.finish_files(loaded, SETTINGS)


@task(
    trigger_rule="none_failed",
    doc_md="Log the run summary (and send it when alerting is configured); prune old staging folders.",
)
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
        if SETTINGS.notify_on_success and loaded["sources"] and not loaded.get("dry_run"):
            notifications.send_run_summary(summary)  # type: ignore[arg-type]
        pipeline.prune_staging(SETTINGS, dag_id)
    return summary


def _schedule() -> Any:
    """The cron (etl.schedule) OR the exporter's marker file in the landing folder (asset watcher)."""
    marker = landing_marker_asset(SETTINGS.raw_data_dir, SETTINGS.landing.marker)
    if SETTINGS.schedule is None:
        return [marker]
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(SETTINGS.schedule, timezone="UTC"), assets=[marker])


@dag(
    dag_id=SETTINGS.dag_id,
    schedule=_schedule(),
    start_date=pendulum.parse(SETTINGS.start_date, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["ecommerce", "etl"],
    params={
        "reprocess": Param(
            [],
            type="array",
            items={"type": "string"},
            title="Reprocess archived files",
            description="Archived files to ingest again: globs of file names (e.g. orders_2026-10-0*.csv) and/or "
            "archive-date ranges YYYY-MM-DD..YYYY-MM-DD, inclusive (e.g. 2026-10-01..2026-10-07 = the files "
            "archived under archive/<source>/2026-10-01/ to .../2026-10-07/, i.e. loaded on those UTC days). "
            "Their rows keep their original version: stale against anything newer. A malformed range fails the "
            "run at once.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run (preview)",
            description="Claim, extract and transform, report counts and reject reasons; load nothing.",
        ),
    },
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
    extracted = extract_file.expand(ref=claim_files())
    products = transform_products(extracted)
    loaded = load_data(transform_file.partial(products=products).expand(f=extracted))
    publish_assets(loaded)
    archive_files(loaded)
    send_notification(loaded)


etl_ecommerce_pipeline()
