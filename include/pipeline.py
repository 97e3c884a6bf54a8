"""The ETL steps as plain functions over small manifests; the DAG tasks are one call each.

Each step reads the settings and the manifests of the steps before it, writes files under the
run's staging folder and returns a small JSON-able manifest (paths and counts, never data).
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from include.config_loader import Settings
from include.database import conninfo_from_connection
from include.entities import SOURCES, Source
from include.extract import DataExtractor, ExtractManifest
from include.load import DataLoader
from include.manifests import ExtractedSource, LoadedSource, LoadManifest, TransformManifest
from include.transform import DataTransformer

log = logging.getLogger(__name__)


def _extractor(source: Source) -> Callable[[DataExtractor], ExtractManifest]:
    if source.input_format == "csv":
        return lambda ex: ex.extract_csv(source.name)
    # JSON sources each have their own reader: sessions from a file, products from the API or a file.
    return {"user_sessions": DataExtractor.extract_sessions, "products": DataExtractor.extract_products}[source.name]


EXTRACTORS: dict[str, Callable[[DataExtractor], ExtractManifest]] = {s.name: _extractor(s) for s in SOURCES}


def run_dir(settings: Settings, dag_id: str, run_id: str) -> Path:
    """The staging folder of one run: a re-run of the same run reuses (and overwrites) it."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
    return settings.staging_dir / dag_id / safe


def extract(source: str, settings: Settings, staging: Path) -> ExtractedSource:
    """Stage one source; return its manifest."""
    return EXTRACTORS[source](DataExtractor(settings, staging)).to_dict()


def transform(
    manifests: Mapping[str, ExtractedSource], settings: Settings, staging: Path, conninfo: str | None = None
) -> TransformManifest:
    """Transform every source and apply the reject-rate guard; return per-source counts and file paths.

    Raises:
        RejectRateExceeded: a source is above the guard; nothing has been loaded.
    """
    conninfo = conninfo or conninfo_from_connection(settings.conn_id)
    loader = DataLoader(conninfo, schema=settings.schema)
    existing = loader.existing_product_ids()
    from include.privacy import suppression_for  # here: include.privacy imports the loader

    results = DataTransformer(settings, staging, suppression_for(conninfo, settings)).transform_all(manifests, existing)
    return {"sources": {name: r.to_dict() for name, r in results.items()}}


def load(
    transformed: TransformManifest,
    settings: Settings,
    run_id: str,
    conninfo: str | None = None,
    started_at: datetime | None = None,
) -> LoadManifest:
    """Load one run atomically; return the load manifest with per-source counts."""
    conninfo = conninfo or conninfo_from_connection(settings.conn_id)
    loader = DataLoader(
        conninfo,
        schema=settings.schema,
        lock_timeout_seconds=settings.lock_timeout_seconds,
        statement_timeout_seconds=settings.statement_timeout_seconds,
        idle_in_transaction_timeout_seconds=settings.idle_in_transaction_timeout_seconds,
        tcp_user_timeout_seconds=settings.tcp_user_timeout_seconds,
        keepalives_idle_seconds=settings.keepalives_idle_seconds,
    )
    result = loader.load(run_id, transformed["sources"], started_at)
    sources: dict[str, LoadedSource] = {}
    for name, src in transformed["sources"].items():
        loaded: LoadedSource = {
            "source_file": src["source_file"],
            "rows_read": src["rows_read"],
            "rows_loaded": src["rows_loaded"],
            "rows_rejected": src["rows_rejected"],
            "rows_duplicate": src["rows_duplicate"],
            "top_reasons": src["top_reasons"],
        }
        counts = result["counts"].get(name, {})
        for key in ("inserted", "updated", "unchanged", "derived"):
            if key in counts:
                loaded[key] = counts[key]  # type: ignore[literal-required]
        sources[name] = loaded
    return {"run_id": run_id, "seconds": result["seconds"], "sources": sources, "rejects_table": "rejected_records"}


def run_all(
    settings: Settings, run_id: str, conninfo: str | None = None, dag_id: str = "etl_ecommerce_pipeline"
) -> LoadManifest:
    """Extract, transform and load in one process (benchmarks, scripts); the DAG runs the same steps as tasks."""
    staging = run_dir(settings, dag_id, run_id)
    started = datetime.now(UTC)
    timings: dict[str, float] = {}
    t = time.monotonic()
    manifests = {s: extract(s, settings, staging) for s in EXTRACTORS}
    timings["extract"] = time.monotonic() - t
    t = time.monotonic()
    transformed = transform(manifests, settings, staging, conninfo)
    timings["transform"] = time.monotonic() - t
    t = time.monotonic()
    loaded = load(transformed, settings, run_id, conninfo, started)
    timings["load"] = time.monotonic() - t
    loaded["timings"] = {k: round(v, 2) for k, v in timings.items()}
    return loaded


def summary_lines(loaded: LoadManifest) -> list[str]:
    """A fixed-width table of a load manifest: one line per source."""
    head = f"{'source':<14}{'read':>10}{'loaded':>10}{'rejected':>10}{'duplicate':>10}{'inserted':>10}{'updated':>10}"
    lines = [head, "-" * len(head)]
    for name, s in loaded["sources"].items():
        lines.append(
            f"{name:<14}{s['rows_read']:>10}{s['rows_loaded']:>10}{s['rows_rejected']:>10}{s['rows_duplicate']:>10}"
            f"{s.get('inserted', 0):>10}{s.get('updated', 0):>10}"
        )
    customers = loaded["sources"].get("customers")
    derived = customers.get("derived", 0) if customers else 0
    if derived:
        lines.append(f"(+ {derived} customers created from order/session emails)")
    return lines


def prune_staging(settings: Settings, dag_id: str, keep_days: int | None = None) -> int:
    """Delete run folders older than paths.staging_retention_days; return how many were removed."""
    keep = settings.staging_retention_days if keep_days is None else keep_days
    base = settings.staging_dir / dag_id
    if not base.exists():
        return 0
    cutoff = time.time() - timedelta(days=keep).total_seconds()
    removed = 0
    for d in base.iterdir():
        if d.is_dir() and d.stat().st_mtime < cutoff:
            shutil.rmtree(d)
            removed += 1
    return removed
