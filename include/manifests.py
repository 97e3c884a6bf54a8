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
    stale: NotRequired[int]  # rows older than the stored version (version rule): not written
    files: NotRequired[int]  # landing files of the source loaded by the run
    derived: NotRequired[int]  # customers only: created from order/session e-mails


class ExtractedFile(TypedDict):
    """One claimed landing file after extract (include/landing.FileRef + the extract manifest)."""

    source: str
    rel_path: str
    path: str | None
    sha256: str | None
    bytes: int
    reprocess: bool
    tag: str
    manifest: ExtractedSource | None  # None: the file is broken and quarantined (on_bad_file: quarantine)
    bad: str | None  # why the file is quarantined


class TransformedFile(ExtractedFile):
    """One landing file after transform."""

    transformed: TransformedSource | None


class ProductsStep(TypedDict):
    """The products transform: its files and where the known product ids are (a file, not XCom)."""

    products: list[TransformedFile]
    known_product_ids_path: str


class LoadedFile(TypedDict):
    """One file of a load: where it is (for the archive step) and what it contributed."""

    source: str
    rel_path: str
    path: str | None
    reprocess: bool
    file_id: int | None
    bad: str | None
    rows_read: int
    rows_loaded: int
    rows_stale: int


class LoadManifest(TypedDict):
    """The load task's output."""

    run_id: str
    seconds: float
    sources: dict[str, LoadedSource]
    rejects_table: str
    files: NotRequired[list[LoadedFile]]  # landing files of the run (claimed and loaded or quarantined)
    skipped: NotRequired[list[dict[str, str]]]  # landing files skipped: source, rel_path, sha256, reason
    timings: NotRequired[dict[str, float]]  # run_all only: seconds per step
    dry_run: NotRequired[bool]  # a preview: nothing was written


class RunSummary(TypedDict):
    """The notification task's output (and the run summary sent when etl.notify_on_success)."""

    dag_id: str
    run_id: str
    sources: dict[str, LoadedSource]
    rejects_table: str
