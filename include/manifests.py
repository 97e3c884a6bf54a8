"""The manifests the ETL tasks hand each other through XCom: typed, small, JSON-able.

TypedDicts rather than classes: a manifest *is* the JSON object Airflow stores, so it needs no
to_dict/from_dict, and mypy checks every key a step reads. Paths and counts only, never data.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class ExtractedSource(TypedDict):
    """What extract staged for one source (Parquet parts of raw strings)."""

    source: str
    file: str
    staged_dir: str
    parts: list[str]
    rows_read: int
    sha256: str | None
    detail: dict[str, Any]


class TransformedSource(TypedDict):
    """One transformed source: its clean and rejects files and the row counts."""

    source: str
    source_file: str
    clean_path: str
    rejects_path: str
    rows_read: int
    rows_valid: int
    rows_loaded: int
    rows_rejected: int
    rows_duplicate: int
    top_reasons: dict[str, int]


class TransformManifest(TypedDict):
    """The transform task's output: every source, guard passed."""

    sources: dict[str, TransformedSource]


class LoadedSource(TypedDict):
    """One loaded source: the transform's counts plus what the upsert did."""

    source_file: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    rows_duplicate: int
    top_reasons: dict[str, int]
    inserted: NotRequired[int]
    updated: NotRequired[int]
    unchanged: NotRequired[int]
    derived: NotRequired[int]  # customers only: created from order/session e-mails


class LoadManifest(TypedDict):
    """The load task's output."""

    run_id: str
    seconds: float
    sources: dict[str, LoadedSource]
    rejects_table: str
    timings: NotRequired[dict[str, float]]  # run_all only: seconds per step


class RunSummary(TypedDict):
    """The notification task's output (and the run summary sent when etl.notify_on_success)."""

    dag_id: str
    run_id: str
    sources: dict[str, LoadedSource]
    rejects_table: str
