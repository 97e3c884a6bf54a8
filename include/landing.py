"""The landing zone: which files a run claims, and where loaded or broken files go after the commit.

A source's files are the matches of its glob (`sources.<name>.pattern`, else its single `file`) under
paths.raw_data_dir, in name order (byte order of the relative path = PostgreSQL ``COLLATE "C"``): date-stamped
names sort chronologically, and that order is the version order of their rows (README "Data rules").
Never claimed: names starting with ``.``, ending ``.part``/``.tmp``, the marker file, files younger than
``landing.min_file_age_seconds`` (still being written), and content already registered as loaded in
``ingested_files`` (reported as skipped). Archiving happens only after the load committed; a crash in
between is repaired by the next claim (the file is in the registry, so it is skipped and archived).
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import psycopg

from include.config_loader import Settings
from include.entities import SOURCE_NAMES
from include.errors import NonRetryable
from include.extract import MissingInputError
from include.products_api import redact_url

log = logging.getLogger(__name__)

NOT_READY_SUFFIXES = (".part", ".tmp")
_DATE_RANGE = re.compile(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})")


class InvalidParamError(NonRetryable):
    """A trigger-form Param holds a value the run cannot use (the message names the Param and the value)."""


DateRange = tuple[date, date]


def parse_reprocess(values: Iterable[str]) -> tuple[list[str], list[DateRange]]:
    """Split the `reprocess` Param into globs and inclusive archive-date ranges (``YYYY-MM-DD..YYYY-MM-DD``).

    An entry containing ``..`` is a date range (a glob has no use for ``..`` in the archive); one day is ``D..D``.

    Raises:
        InvalidParamError: a range that is not two valid ISO dates, or whose start is after its end.
    """
    globs: list[str] = []
    ranges: list[DateRange] = []
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        if ".." not in value:
            globs.append(value)
            continue
        m = _DATE_RANGE.fullmatch(value)
        expected = "expected YYYY-MM-DD..YYYY-MM-DD (inclusive), e.g. 2026-10-01..2026-10-07"
        if m is None:
            raise InvalidParamError(f"reprocess: invalid date range {value!r}: {expected}")
        try:
            start, end = date.fromisoformat(m[1]), date.fromisoformat(m[2])
        except ValueError as err:
            raise InvalidParamError(f"reprocess: invalid date range {value!r}: {err}") from None
        if start > end:
            raise InvalidParamError(f"reprocess: invalid date range {value!r}: the start is after the end")
        ranges.append((start, end))
    return globs, ranges


def archive_day(path: Path, source_dir: Path) -> date | None:
    """The archive date of a file under archive/<source>/<YYYY-MM-DD>/ (None outside that layout)."""
    parts = path.relative_to(source_dir).parts
    if len(parts) < 2:
        return None
    try:
        return date.fromisoformat(parts[0])
    except ValueError:
        return None


class FileRef(TypedDict):
    """One claimed landing file (or the products API's pseudo-file)."""

    source: str
    rel_path: str  # under raw_data_dir (an archived file keeps the path it was loaded under); api:<url> for the API
    path: str | None  # absolute path to read; None for the API
    sha256: str | None  # None for the API (known after the fetch)
    bytes: int
    reprocess: bool  # re-ingested from the archive on request: keeps its original file_id (so older = stale)
    tag: str  # unique per run: staging sub-folder and task map index label


class SkippedFile(TypedDict):
    source: str
    rel_path: str
    sha256: str
    reason: str


class ClaimManifest(TypedDict):
    """What a run claimed, in load order (products first), and what it skipped."""

    claimed: list[FileRef]
    skipped: list[SkippedFile]
    archived: NotRequired[list[str]]  # leftovers of an earlier committed run, archived by this claim


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, streamed (flat memory whatever the size)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _rel(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


def is_claimable(path: Path, settings: Settings, now: float | None = None) -> bool:
    """Whether a matched file is complete: not hidden, not a partial upload, not the marker, old enough."""
    name = path.name
    if name.startswith(".") or name.endswith(NOT_READY_SUFFIXES) or name == settings.landing.marker:
        return False
    if not path.is_file():
        return False
    age = (time.time() if now is None else now) - path.stat().st_mtime
    return age >= settings.landing.min_file_age_seconds


def candidates(settings: Settings, source: str) -> list[Path]:
    """The claimable files of `source` under raw_data_dir, in name order (byte order of the relative path)."""
    base = settings.raw_data_dir
    if not base.exists():
        return []
    now = time.time()
    skip_dirs = {settings.archive_dir.resolve(), settings.failed_dir.resolve()}
    found = []
    for p in base.glob(settings.source_pattern(source)):
        if any(parent.resolve() in skip_dirs for parent in p.parents):
            continue
        if any(part.startswith(".") for part in p.relative_to(base).parts):
            continue
        if is_claimable(p, settings, now):
            found.append(p)
    return sorted(found, key=lambda p: _rel(p, base).encode())


def _tag(source: str, index: int) -> str:
    return f"{source}-{index:04d}"


def _registered(conn: psycopg.Connection[Any], source: str, shas: Sequence[str]) -> dict[str, tuple[str, str, int]]:
    """sha256 → (rel_path, etl_run_id, file_id) of the loaded registry rows of `source` among `shas`."""
    if not shas:
        return {}
    rows = conn.execute(
        "SELECT sha256, rel_path, etl_run_id, file_id FROM ingested_files"
        " WHERE status = 'loaded' AND source = %s AND sha256 = ANY(%s)",
        (source, list(shas)),
    ).fetchall()
    return {r[0]: (r[1], r[2], int(r[3])) for r in rows}


def _ever_loaded(conn: psycopg.Connection[Any], source: str) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM ingested_files WHERE source = %s)", (source,)).fetchone()
    return bool(row and row[0])


def archived_matches(settings: Settings, source: str, patterns: Iterable[str]) -> list[Path]:
    """Archived files of `source` selected by the `reprocess` Param (see `parse_reprocess`).

    A glob selects by name or archive-relative path (``orders_2026-10-0*.csv``, ``orders/2026-10-02/*``); a date
    range ``YYYY-MM-DD..YYYY-MM-DD`` (inclusive) selects by **archive date**, the ``<YYYY-MM-DD>`` folder of
    ``archive/<source>/<YYYY-MM-DD>/<name>`` (the UTC day the file was loaded and archived). A date in the file
    name is matched with a glob instead (``orders_2026-10-0[1-7].csv``).

    Raises:
        InvalidParamError: a malformed date range.
    """
    globs, ranges = parse_reprocess(patterns)
    base = settings.archive_dir / source
    if not (globs or ranges) or not base.exists():
        return []
    out = []
    for p in sorted(base.rglob("*")):
        if not p.is_file():
            continue
        rel = _rel(p, settings.archive_dir)
        day = archive_day(p, base) if ranges else None
        if any(fnmatch.fnmatchcase(p.name, g) or fnmatch.fnmatchcase(rel, g) for g in globs) or (
            day is not None and any(start <= day <= end for start, end in ranges)
        ):
            out.append(p)
    return out


def claim(
    settings: Settings,
    conn: psycopg.Connection[Any],
    run_id: str,
    reprocess: Sequence[str] = (),
    *,
    archive_leftovers: bool = True,
) -> ClaimManifest:
    """List, hash and claim the new files of every source (products first); skip content already loaded.

    Files loaded by `run_id` itself stay claimable: a re-executed run (Airflow is at-least-once) loads
    them again and its ledger attempt says what it did. `reprocess`: globs of archived file names and/or
    archive-date ranges (``2026-10-01..2026-10-07``, `archived_matches`) to ingest again; they keep their
    original version, so their rows are stale against anything newer.

    Raises:
        MissingInputError: a required source has no file and none was ever loaded (first run).
        InvalidParamError: a malformed `reprocess` date range.
    """
    parse_reprocess(reprocess)  # a malformed date range fails before any file is hashed
    claimed: list[FileRef] = []
    skipped: list[SkippedFile] = []
    leftovers: list[tuple[str, Path]] = []
    base = settings.raw_data_dir
    for source in SOURCE_NAMES:  # load order: products before the orders that reference them
        if source == "products" and settings.products_api.url:
            claimed.append(
                FileRef(
                    source=source,
                    rel_path=f"api:{redact_url(settings.products_api.url)}",
                    path=None,
                    sha256=None,
                    bytes=0,
                    reprocess=False,
                    tag=_tag(source, 0),
                )
            )
            continue
        files = [(p, sha256_of(p)) for p in candidates(settings, source)]
        known = _registered(conn, source, [s for _, s in files])
        seen: dict[str, str] = {}
        for p, sha in files:
            rel = _rel(p, base)
            prior = known.get(sha)
            if prior is not None and prior[1] != run_id:
                skipped.append(
                    SkippedFile(
                        source=source,
                        rel_path=rel,
                        sha256=sha,
                        reason=f"already loaded as {prior[0]} in run {prior[1]}",
                    )
                )
                leftovers.append((source, p))
                continue
            if sha in seen:
                skipped.append(
                    SkippedFile(
                        source=source, rel_path=rel, sha256=sha, reason=f"same content as {seen[sha]} in this run"
                    )
                )
                continue
            seen[sha] = rel
            claimed.append(
                FileRef(
                    source=source,
                    rel_path=rel,
                    path=str(p),
                    sha256=sha,
                    bytes=p.stat().st_size,
                    reprocess=False,
                    tag=_tag(source, len([c for c in claimed if c["source"] == source])),
                )
            )
        again = [(p, sha256_of(p)) for p in archived_matches(settings, source, reprocess)]
        original = _registered(conn, source, [s for _, s in again])
        for p, sha in again:
            if sha in seen:
                continue
            seen[sha] = str(p)
            prior = original.get(sha)
            claimed.append(
                FileRef(
                    source=source,
                    # The path it was loaded under: its rows keep their original place in the version order.
                    rel_path=prior[0] if prior else _rel(p, settings.archive_dir),
                    path=str(p),
                    sha256=sha,
                    bytes=p.stat().st_size,
                    reprocess=True,
                    tag=_tag(source, len([c for c in claimed if c["source"] == source])),
                )
            )
        if (
            settings.sources[source].required
            and not any(c["source"] == source for c in claimed)
            and not any(s["source"] == source for s in skipped)
            and not _ever_loaded(conn, source)
        ):
            raise MissingInputError(
                f"required input for '{source}' not found: no file matches {settings.source_pattern(source)!r} "
                f"in {base} and none was ever loaded"
            )
    manifest = ClaimManifest(claimed=claimed, skipped=skipped)
    if settings.landing.archive and leftovers and archive_leftovers:
        # Loaded by an earlier run that crashed between its commit and its archive step: finish that step.
        manifest["archived"] = [str(archive_file(settings, src, p, conn)) for src, p in leftovers]
    for s in skipped:
        log.info("skipped %s (%s): %s", s["rel_path"], s["source"], s["reason"])
    log.info("claimed %d file(s), skipped %d", len(claimed), len(skipped))
    return manifest


def archive_file(
    settings: Settings, source: str, path: Path, conn: psycopg.Connection[Any] | None = None, day: str | None = None
) -> Path:
    """Move a loaded file to archive_dir/<source>/<YYYY-MM-DD>/<name>; idempotent; record it in the registry."""
    day = day or datetime.now(UTC).strftime("%Y-%m-%d")
    target = settings.archive_dir / source / day / path.name
    if path.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and sha256_of(target) != sha256_of(path):
            target = target.with_name(f"{target.stem}.{int(time.time())}{target.suffix}")
        shutil.move(str(path), target)
        log.info("archived %s to %s", path.name, target)
    if conn is not None:
        conn.execute(
            "UPDATE ingested_files SET archived_to = %s WHERE status = 'loaded' AND source = %s AND sha256 = %s",
            (_rel(target, settings.archive_dir), source, sha256_of(target) if target.exists() else ""),
        )
    return target


def archive_loaded(settings: Settings, conninfo: str, files: Sequence[Mapping[str, Any]]) -> list[str]:
    """After the commit: archive the loaded files (reprocessed ones are already in the archive)."""
    from include.database import connect

    if not settings.landing.archive:
        return []
    done = []
    with connect(conninfo, schema=settings.schema) as conn:
        for f in files:
            if f.get("path") and not f.get("reprocess"):
                done.append(str(archive_file(settings, f["source"], Path(f["path"]), conn)))
    return done


def quarantine_file(settings: Settings, source: str, path: Path) -> Path:
    """Move a broken file to failed_dir/<source>/ (after the commit that registered it as quarantined)."""
    target = settings.failed_dir / source / path.name
    if path.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)
        log.warning("moved broken file %s to %s", path.name, target)
    return target
