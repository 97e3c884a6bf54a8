"""The ETL steps as plain functions over small manifests; the DAG tasks are one call each.

Each step reads the settings and the manifests of the steps before it, writes files under the
run's staging folder and returns a small JSON-able manifest (paths and counts, never data).
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from include.config_loader import Settings
from include.database import conninfo_from_connection
from include.extract import DataExtractor
from include.load import DataLoader
from include.transform import DataTransformer

log = logging.getLogger(__name__)

EXTRACTORS = {
    "orders": lambda ex: ex.extract_csv("orders"),
    "customers": lambda ex: ex.extract_csv("customers"),
    "user_sessions": lambda ex: ex.extract_sessions(),
    "products": lambda ex: ex.extract_products(),
}


def run_dir(settings: Settings, dag_id: str, run_id: str) -> Path:
    """The staging folder of one run: a re-run of the same run reuses (and overwrites) it."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
    return settings.staging_dir / dag_id / safe


def extract(source: str, settings: Settings, staging: Path) -> dict[str, Any]:
    """Stage one source; return its manifest."""
    return EXTRACTORS[source](DataExtractor(settings, staging)).to_dict()


def transform(
    manifests: Mapping[str, Mapping[str, Any]], settings: Settings, staging: Path, conninfo: str | None = None
) -> dict[str, Any]:
    """Transform every source and apply the reject-rate guard; return per-source counts and file paths.

    Raises:
        RejectRateExceeded: a source is above the guard; nothing has been loaded.
    """
    conninfo = conninfo or conninfo_from_connection(settings.conn_id)
    loader = DataLoader(conninfo, schema=settings.schema)
    existing = loader.existing_product_ids()
    results = DataTransformer(settings, staging).transform_all(manifests, existing)
    return {"sources": {name: r.to_dict() for name, r in results.items()}}


def load(
    transformed: Mapping[str, Any],
    settings: Settings,
    run_id: str,
    conninfo: str | None = None,
    started_at: datetime | None = None,
) -> dict[str, Any]:
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
    sources = {}
    for name, src in transformed["sources"].items():
        sources[name] = {
            k: src[k]
            for k in ("source_file", "rows_read", "rows_loaded", "rows_rejected", "rows_duplicate", "top_reasons")
        }
        sources[name].update(
            {
                k: v
                for k, v in result["counts"].get(name, {}).items()
                if k in ("inserted", "updated", "unchanged", "derived")
            }
        )
    return {"run_id": run_id, "seconds": result["seconds"], "sources": sources, "rejects_table": "rejected_records"}


def run_all(
    settings: Settings, run_id: str, conninfo: str | None = None, dag_id: str = "etl_ecommerce_pipeline"
) -> dict[str, Any]:
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


def summary_lines(loaded: Mapping[str, Any]) -> list[str]:
    """A fixed-width table of a load manifest: one line per source."""
    head = f"{'source':<14}{'read':>10}{'loaded':>10}{'rejected':>10}{'duplicate':>10}{'inserted':>10}{'updated':>10}"
    lines = [head, "-" * len(head)]
    for name, s in loaded["sources"].items():
        lines.append(
            f"{name:<14}{s['rows_read']:>10}{s['rows_loaded']:>10}{s['rows_rejected']:>10}{s['rows_duplicate']:>10}"
            f"{s.get('inserted', 0):>10}{s.get('updated', 0):>10}"
        )
    derived = loaded["sources"].get("customers", {}).get("derived", 0)
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
