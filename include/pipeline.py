"""The ETL steps as plain functions over small manifests; the DAG tasks are one call each.

Each step reads the settings and the manifests of the steps before it, writes files under the
run's staging folder and returns a small JSON-able manifest (paths and counts, never data).
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from include import landing
from include.config_loader import Settings
from include.database import conninfo_from_connection, require_migrated
from include.emails import redact_emails
from include.entities import SOURCES, Source
from include.errors import NonRetryable
from include.extract import DataExtractor, ExtractManifest, InputFileError
from include.landing import ClaimManifest, FileRef
from include.load import DataLoader
from include.manifests import (
    ExtractedFile,
    ExtractedSource,
    LoadedFile,
    LoadedSource,
    LoadManifest,
    ProductsStep,
    TransformedFile,
    TransformManifest,
)
from include.transform import DataTransformer, SourceResult, check_reject_rates

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
    """Load one run of single files (one per source, no landing registry) atomically; return the load manifest."""
    conninfo = conninfo or conninfo_from_connection(settings.conn_id)
    result = _loader(settings, conninfo).load(run_id, transformed["sources"], started_at)
    return _load_manifest(run_id, result)


def _loader(settings: Settings, conninfo: str) -> DataLoader:
    return DataLoader(
        conninfo,
        schema=settings.schema,
        lock_timeout_seconds=settings.lock_timeout_seconds,
        statement_timeout_seconds=settings.statement_timeout_seconds,
        idle_in_transaction_timeout_seconds=settings.idle_in_transaction_timeout_seconds,
        tcp_user_timeout_seconds=settings.tcp_user_timeout_seconds,
        keepalives_idle_seconds=settings.keepalives_idle_seconds,
    )


def _load_manifest(run_id: str, result: Mapping[str, Any]) -> LoadManifest:
    """Per source: the transform's counts summed over its files plus what the upsert did."""
    sources: dict[str, LoadedSource] = {}
    files: list[LoadedFile] = []
    for f in result["files"]:
        c = f.get("counts") or {}
        files.append(
            {
                "source": f["source"],
                "rel_path": f["rel_path"],
                "path": f.get("path"),
                "reprocess": bool(f.get("reprocess")),
                "file_id": f.get("file_id"),
                "bad": f.get("bad"),
                "rows_read": int(f.get("rows_read", 0)),
                "rows_loaded": int(c.get("loaded", 0)),
                "rows_stale": int(c.get("stale", 0)),
            }
        )
        if f.get("bad"):
            continue
        _add_file(sources, f["source"], str(f["rel_path"]), f)
    for name, s in sources.items():
        counts = result["counts"].get(name, {})
        s["rows_loaded"] = int(counts.get("loaded", 0))
        s["rows_duplicate"] = s["rows_read"] - s["rows_loaded"] - s["rows_rejected"]
        for key in ("inserted", "updated", "unchanged", "stale", "derived"):
            if key in counts:
                s[key] = counts[key]  # type: ignore[literal-required]
        s["top_reasons"] = dict(sorted(s["top_reasons"].items(), key=lambda kv: -kv[1])[:5])
    derived = result["counts"].get("customers", {}).get("derived")
    if derived and "customers" in sources:
        sources["customers"]["derived"] = derived
    return {
        "run_id": run_id,
        "seconds": result["seconds"],
        "sources": sources,
        "rejects_table": "rejected_records",
        "files": files,
        "skipped": [dict(x) for x in result.get("skipped", [])],  # type: ignore[misc]
    }


# ---- the landing zone: one task per file ---------------------------------------------------------
def claim(
    settings: Settings,
    run_id: str,
    conninfo: str | None = None,
    reprocess: Sequence[str] = (),
    *,
    dry_run: bool = False,
) -> ClaimManifest:
    """The files this run loads (products first) and those it skips (content already loaded).

    A dry run moves nothing (no archiving of an earlier run's leftovers).
    """
    from include.database import connect

    conninfo = conninfo or conninfo_from_connection(settings.conn_id)
    with connect(conninfo, schema=settings.schema) as conn:
        require_migrated(conn, settings.schema)
        return landing.claim(settings, conn, run_id, reprocess, archive_leftovers=not dry_run)


def extract_file(ref: FileRef, settings: Settings, staging: Path) -> ExtractedFile:
    """Stage one claimed file; a broken file fails (on_bad_file: fail) or is marked for quarantine."""
    source = ref["source"]
    ex = DataExtractor(settings, staging, Path(ref["path"]) if ref["path"] else None, tag=ref["tag"])
    try:
        manifest = EXTRACTORS[source](ex).to_dict()
    except InputFileError as err:
        if settings.landing.on_bad_file != "quarantine":
            raise
        log.warning("quarantining broken file %s: %s", ref["rel_path"], err)
        return {**ref, "manifest": None, "bad": redact_emails(str(err))}  # type: ignore[typeddict-item]
    out: ExtractedFile = {**ref, "manifest": manifest, "bad": None}  # type: ignore[typeddict-item]
    if ref["sha256"] is None:  # the API's pseudo-file: its content hash is known now
        out["sha256"] = manifest["sha256"]
    return out


def _transformer(settings: Settings, staging: Path, conninfo: str) -> DataTransformer:
    from include.privacy import suppression_for  # here: include.privacy imports the loader

    return DataTransformer(settings, staging, suppression_for(conninfo, settings))


def _transform_one(tr: DataTransformer, f: ExtractedFile, known: frozenset[int]) -> TransformedFile:
    if f["bad"] or f["manifest"] is None:
        return {**f, "transformed": None}  # type: ignore[typeddict-item]
    r = tr.transform_source(f["source"], f["manifest"], known, tag=f["tag"])
    return {**f, "transformed": r.to_dict()}  # type: ignore[typeddict-item]


def transform_products(
    extracted: Sequence[ExtractedFile], settings: Settings, staging: Path, conninfo: str | None = None
) -> ProductsStep:
    """Transform the run's product files (orders are validated against their ids); return them and the ids."""
    conninfo = conninfo or conninfo_from_connection(settings.conn_id)
    tr = _transformer(settings, staging, conninfo)
    done = [_transform_one(tr, f, frozenset()) for f in extracted if f["source"] == "products"]
    ids_file = staging / "transform" / "known_product_ids.txt"
    ids_file.parent.mkdir(parents=True, exist_ok=True)
    known = set(DataLoader(conninfo, schema=settings.schema).existing_product_ids())
    for f in done:
        t = f["transformed"]
        if t is not None:
            known |= {int(x) for x in pd.read_csv(t["clean_path"], usecols=["product_id"])["product_id"]}
    ids_file.write_text("\n".join(map(str, sorted(known))))  # a file, not XCom: the id list grows with the catalogue
    return {"products": done, "known_product_ids_path": str(ids_file)}


def transform_file(
    f: ExtractedFile, products: ProductsStep, settings: Settings, staging: Path, conninfo: str | None = None
) -> TransformedFile:
    """Transform one file against the known product ids (a product file: its result from transform_products)."""
    if f["source"] == "products":
        return next(p for p in products["products"] if p["tag"] == f["tag"])
    conninfo = conninfo or conninfo_from_connection(settings.conn_id)
    text = Path(products["known_product_ids_path"]).read_text()
    known = frozenset(int(x) for x in text.split()) if text else frozenset()
    return _transform_one(_transformer(settings, staging, conninfo), f, known)


def check_file_reject_rates(files: Sequence[TransformedFile], limit: float) -> None:
    """The reject-rate guard per source over all its files of the run (before anything is loaded).

    Raises:
        RejectRateExceeded: a source is above the guard.
    """
    results: dict[str, SourceResult] = {}
    for f in files:
        t = f["transformed"]
        if t is None:
            continue
        r = results.setdefault(f["source"], SourceResult(f["source"], "", "", ""))
        r.source_file = ", ".join(x for x in (r.source_file, f["rel_path"]) if x)
        r.rows_read += t["rows_read"]
        r.rows_rejected += t["rows_rejected"]
        r.reasons.update(t["top_reasons"])
    check_reject_rates(results, limit)


def load_files(
    files: Sequence[TransformedFile],
    skipped: Sequence[Mapping[str, Any]],
    settings: Settings,
    run_id: str,
    *,
    conninfo: str | None = None,
    started_at: datetime | None = None,
) -> LoadManifest:
    """Apply the reject-rate guard, then load every claimed file of the run in ONE transaction."""
    conninfo = conninfo or conninfo_from_connection(settings.conn_id)
    check_file_reject_rates(files, settings.max_reject_rate)
    entries: list[dict[str, Any]] = []
    for f in files:
        ref = {k: f[k] for k in ("source", "rel_path", "path", "sha256", "bytes", "reprocess", "tag")}  # type: ignore[literal-required]
        if f["bad"] or f["transformed"] is None:
            entries.append({**ref, "bad": f["bad"], "rows_read": 0, "rows_rejected": 0})
        else:
            entries.append({**ref, **f["transformed"], "bad": None})
    result = _loader(settings, conninfo).load_files(run_id, entries, started_at, skipped)
    return _load_manifest(run_id, result)


def _add_file(sources: dict[str, LoadedSource], source: str, rel_path: str, counts: Mapping[str, Any]) -> LoadedSource:
    """Add one file's rows_read, rows_rejected and top_reasons to its source's totals (created on its first file)."""
    s = sources.setdefault(
        source,
        {
            "source_file": "",
            "rows_read": 0,
            "rows_loaded": 0,
            "rows_rejected": 0,
            "rows_duplicate": 0,
            "top_reasons": {},
            "files": 0,
        },
    )
    s["source_file"] = ", ".join(x for x in (s["source_file"], rel_path) if x)
    s["rows_read"] += int(counts.get("rows_read", 0))
    s["rows_rejected"] += int(counts.get("rows_rejected", 0))
    s["files"] = s.get("files", 0) + 1
    for reason, n in (counts.get("top_reasons") or {}).items():
        s["top_reasons"][reason] = s["top_reasons"].get(reason, 0) + int(n)
    return s


def preview(
    files: Sequence[TransformedFile], skipped: Sequence[Mapping[str, Any]], settings: Settings, run_id: str
) -> LoadManifest:
    """A dry run's manifest: what would be loaded (per source and file), with reject reasons; nothing written."""
    sources: dict[str, LoadedSource] = {}
    for f in files:
        t = f["transformed"]
        if t is None:
            log.warning("dry run: %s would be %s", f["rel_path"], f"quarantined: {f['bad']}" if f["bad"] else "skipped")
            continue
        s = _add_file(sources, f["source"], f["rel_path"], t)
        s["rows_loaded"] += t["rows_valid"]  # before the database decides duplicates: an upper bound
    try:
        check_file_reject_rates(files, settings.max_reject_rate)
    except NonRetryable as err:  # a preview reports the guard instead of failing on it
        log.warning("dry run: the real run would fail: %s", err)
    return {
        "run_id": run_id,
        "seconds": 0.0,
        "sources": sources,
        "rejects_table": "rejected_records",
        "skipped": [dict(x) for x in skipped],  # type: ignore[misc]
        "dry_run": True,
    }


def finish_files(loaded: LoadManifest, settings: Settings, conninfo: str | None = None) -> list[str]:
    """After the commit: archive loaded files (landing.archive) and move quarantined ones to failed/."""
    conninfo = conninfo or conninfo_from_connection(settings.conn_id)
    moved = []
    for f in loaded.get("files", []):
        if f.get("bad") and f.get("path") and not f.get("reprocess"):
            moved.append(str(landing.quarantine_file(settings, f["source"], Path(str(f["path"])))))
    moved += landing.archive_loaded(settings, conninfo, [f for f in loaded.get("files", []) if not f.get("bad")])
    return moved


def run_all(
    settings: Settings,
    run_id: str,
    conninfo: str | None = None,
    dag_id: str = "etl_ecommerce_pipeline",
    reprocess: Sequence[str] = (),
) -> LoadManifest:
    """Claim, extract, transform, load and archive in one process (benchmarks, scripts); the DAG maps the same steps."""
    conninfo = conninfo or conninfo_from_connection(settings.conn_id)
    staging = run_dir(settings, dag_id, run_id)
    started = datetime.now(UTC)
    timings: dict[str, float] = {}
    t = time.monotonic()
    claimed = claim(settings, run_id, conninfo, reprocess)
    extracted = [extract_file(ref, settings, staging) for ref in claimed["claimed"]]
    timings["extract"] = time.monotonic() - t
    t = time.monotonic()
    products = transform_products(extracted, settings, staging, conninfo)
    transformed = [transform_file(f, products, settings, staging, conninfo) for f in extracted]
    timings["transform"] = time.monotonic() - t
    t = time.monotonic()
    loaded = load_files(transformed, claimed["skipped"], settings, run_id, conninfo=conninfo, started_at=started)
    timings["load"] = time.monotonic() - t
    finish_files(loaded, settings, conninfo)
    loaded["timings"] = {k: round(v, 2) for k, v in timings.items()}
    return loaded


def summary_lines(loaded: LoadManifest) -> list[str]:
    """A fixed-width table of a load manifest: one line per source, then the files claimed/loaded/skipped."""
    files = loaded.get("files", [])
    skipped = loaded.get("skipped", [])
    dry = bool(loaded.get("dry_run"))
    if not loaded["sources"] and not dry:
        lines = [f"nothing new: 0 files claimed, {len(skipped)} skipped (already loaded)"]
        lines += [f"  skipped {s['rel_path']}: {s['reason']}" for s in skipped]
        return lines
    head = (
        f"{'source':<14}{'read':>10}{'loaded':>10}{'rejected':>10}{'duplicate':>10}{'inserted':>10}{'updated':>10}"
        f"{'stale':>8}{'files':>7}"
    )
    lines = ["DRY RUN (nothing written): counts before the database decides duplicates"] if dry else []
    lines += [head, "-" * len(head)]
    for name, s in loaded["sources"].items():
        lines.append(
            f"{name:<14}{s['rows_read']:>10}{s['rows_loaded']:>10}{s['rows_rejected']:>10}{s['rows_duplicate']:>10}"
            f"{s.get('inserted', 0):>10}{s.get('updated', 0):>10}{s.get('stale', 0):>8}{s.get('files', 0):>7}"
        )
        if dry and s["top_reasons"]:
            lines.append(f"  reject reasons: {s['top_reasons']}")
    customers = loaded["sources"].get("customers")
    derived = customers.get("derived", 0) if customers else 0
    if derived:
        lines.append(f"(+ {derived} customers created from order/session emails)")
    bad = [f for f in files if f.get("bad")]
    if files or skipped:
        lines.append(
            f"files: {len(files)} claimed, {len(files) - len(bad)} loaded, {len(skipped)} skipped, {len(bad)} quarantined"
        )
    lines += [f"  quarantined {f['rel_path']}: {f['bad']}" for f in bad]
    lines += [f"  skipped {s['rel_path']}: {s['reason']}" for s in skipped]
    return lines


def prune_staging(settings: Settings, dag_id: str, keep_days: int | None = None) -> int:
    """Delete run folders older than paths.staging_retention_days (null: keep); return how many were removed."""
    keep = settings.staging_retention_days if keep_days is None else keep_days
    base = settings.staging_dir / dag_id
    if keep is None or not base.exists():
        return 0
    cutoff = time.time() - timedelta(days=keep).total_seconds()
    removed = 0
    for d in base.iterdir():
        if d.is_dir() and d.stat().st_mtime < cutoff:
            shutil.rmtree(d)
            removed += 1
    return removed
