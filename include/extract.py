"""DataExtractor: read raw files and the products API into staged Parquet parts.

Extraction only checks *structure* (encoding, delimiter, header, column counts, quoting, sizes) and
stages every record as strings with its line number; the business rules live in transform.py.
Structural damage fails the whole source with the file, line and problem named: a damaged file
is never half-read.
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import json
import logging
import operator
import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import requests

from include import entities
from include.config_loader import Settings
from include.emails import redact_emails
from include.errors import NonRetryable
from include.manifests import ExtractedSource
from include.parsing import (
    EncodingProblem,
    EncodingScan,
    choose_encoding,
    reject_json_constant,
    scan_encoding,
    type_violation,
    utf8_lines_replacing_invalid,
)
from include.products_api import ProductsApiClient, redact_url

log = logging.getLogger(__name__)

LINE_COLUMN = "_line"
# Input headers and fields, from the entity registry.
ORDER_COLUMNS = entities.source("orders").input_fields
CUSTOMER_COLUMNS = entities.source("customers").input_fields
SESSION_FIELDS = entities.source("user_sessions").input_fields
PRODUCT_FIELDS = entities.source("products").input_fields
CSV_COLUMNS = {s.name: s.input_fields for s in entities.SOURCES if s.input_format == "csv"}
# Optional CSV columns may be absent from the header; required ones may not.
OPTIONAL_CSV_COLUMNS = {s.name: s.optional_inputs for s in entities.SOURCES if s.input_format == "csv"}
DELIMITERS = (",", ";", "|", "\t")
# Staged beside the fields: a record the extract already knows is broken (wrong JSON type, bytes that are not
# UTF-8 in a quarantined mixed file); the transform quarantines it with this reason, field and detail.
REJECT_MARK_COLUMNS = ("_reject_reason", "_reject_field", "_reject_detail")
# JSON type contract (include/parsing.type_violation): scalar = string/number/boolean/null.
PRODUCT_CONTRACT = {
    **dict.fromkeys(("id", "title", "price", "description", "category", "image"), "scalar"),
    "rating": "object",
}
SESSION_CONTRACT = {
    **dict.fromkeys(
        (
            "session_id",
            "customer_email",
            "session_start",
            "session_end",
            "pages_viewed",
            "conversion",
            "device_type",
            "browser",
            "ip_address",
        ),
        "scalar",
    ),
}  # items_viewed / items_added_to_cart: the transform's list rule already quarantines a non-array
# JSON Lines decoded per block of this many lines: bounds the Python objects alive at once (memory stays flat).
JSON_LINES_BLOCK_ROWS = 20_000
_RAW_LINE = "\x00raw"  # key under which a JSON Lines record carries its own text (cannot clash: JSON keys from files hold no NUL)


class InputFileError(ValueError, NonRetryable):
    """A raw input is structurally damaged; the message names file, line, field and value."""

    def __init__(
        self, file: str, problem: str, line: int | None = None, field: str | None = None, value: str | None = None
    ):
        # The message goes to logs and alerts: never a customer's e-mail address (redacted before any cut).
        problem = redact_emails(problem)
        value = None if value is None else redact_emails(value)
        self.file, self.problem, self.line, self.field, self.value = file, problem, line, field, value
        where = file + (f", line {line}" if line is not None else "") + (f", field '{field}'" if field else "")
        shown = "" if value is None else f" (value: {value[:80]!r}{'…' if len(value) > 80 else ''})"
        super().__init__(f"{where}: {problem}{shown}")


class MissingInputError(FileNotFoundError, NonRetryable):
    """A required input file is not where the settings say (a retry would not make it appear)."""


@dataclass(frozen=True)
class ExtractManifest:
    """What an extraction staged: small enough for XCom."""

    source: str
    file: str
    staged_dir: str
    parts: tuple[str, ...]
    rows_read: int
    sha256: str | None
    detail: Mapping[str, Any]

    def to_dict(self) -> ExtractedSource:
        return {
            "source": self.source,
            "file": self.file,
            "staged_dir": self.staged_dir,
            "parts": list(self.parts),
            "rows_read": self.rows_read,
            "sha256": self.sha256,
            "detail": dict(self.detail),
        }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _average_line_bytes(path: Path) -> int:
    """Mean line length over the first MiB: sizes Arrow's read blocks so a chunk holds about chunk_size rows."""
    with path.open("rb") as f:
        head = f.read(1 << 20)
    return max(16, len(head) // max(1, head.count(b"\n")))


def detect_encoding(path: Path, declared: str = "auto") -> str:
    """The codec of `path` under the rules of include/parsing.py (whole file scanned in 1 MiB blocks).

    Raises:
        InputFileError: the file mixes UTF-8 with other bytes, or contradicts its declared encoding
            (names the line and byte offset).
    """
    try:
        return choose_encoding(_scan(path), declared)
    except EncodingProblem as err:
        raise InputFileError(path.name, err.problem, line=err.line) from err


def _scan(path: Path) -> EncodingScan:
    with path.open("rb") as f:
        return scan_encoding(iter(lambda: f.read(1 << 20), b""))


def _read_header(path: Path, encoding: str) -> str:
    with path.open("r", encoding=encoding, newline="") as f:
        line = f.readline(1 << 16)
    return line.rstrip("\r\n")


def _normalise_name(name: str) -> str:
    return name.strip().strip('"').strip().lower().replace(" ", "_")


def detect_delimiter(header: str, expected: Iterable[str]) -> str:
    """The delimiter that splits `header` into the most expected column names."""
    wanted = set(expected)
    best, best_hits = ",", -1
    for d in DELIMITERS:
        hits = len(wanted & {_normalise_name(c) for c in header.split(d)})
        if hits > best_hits:
            best, best_hits = d, hits
    return best


class DataExtractor:
    """Stage the raw inputs of one run as Parquet parts under `staging_dir/extract/<source>`."""

    def __init__(self, settings: Settings, run_dir: Path, file: Path | None = None, tag: str | None = None):
        self.settings = settings
        self.run_dir = Path(run_dir)
        # One landing file (a mapped task instance); None: the source's single configured `file`.
        self.file = Path(file) if file is not None else None
        self.tag = tag

    def _source_path(self, source: str) -> Path:
        return self.file if self.file is not None else self.settings.source_path(source)

    def _fresh_dir(self, source: str) -> Path:
        d = self.run_dir / "extract" / source
        if self.tag:
            d = d / self.tag
        if d.exists():
            shutil.rmtree(d)  # a re-run of the same run replaces its own staging
        d.mkdir(parents=True)
        return d

    def _check_file(self, source: str) -> Path | None:
        path = self._source_path(source)
        if not path.exists():
            if self.settings.sources[source].required:
                raise MissingInputError(f"required input for '{source}' not found: {path}")
            log.info("optional input for '%s' not present (%s); nothing to extract", source, path)
            return None
        size = path.stat().st_size
        if size > self.settings.max_file_bytes:
            raise InputFileError(
                path.name,
                f"file is {size} bytes, larger than extract.max_file_mb ({self.settings.max_file_bytes} bytes)",
            )
        return path

    def _empty(self, source: str, file: str, out: Path) -> ExtractManifest:
        return ExtractManifest(source, file, str(out), (), 0, None, {})

    # ---- CSV -------------------------------------------------------------------------------
    def extract_csv(self, source: str) -> ExtractManifest:
        """Stage a CSV source (orders, customers).

        Raises:
            FileNotFoundError: a required file is missing.
            InputFileError: bad header, wrong column count, unterminated quote, NUL byte, oversize field.
        """
        out = self._fresh_dir(source)
        path = self._check_file(source)
        if path is None:
            return self._empty(source, self.settings.sources[source].file, out)
        name = path.name
        expected = CSV_COLUMNS[source]
        if path.stat().st_size == 0:
            return self._no_rows(source, path, out, "0 bytes")
        encoding, bad_lines = self._csv_encoding(source, path, out)
        if bad_lines is not None:
            path = out / "_utf8_copy.csv"  # invalid bytes replaced; those lines are quarantined below
        header_line = _read_header(path, encoding)
        if not header_line.strip():
            raise InputFileError(name, "file has no header (first line is blank)", line=1)
        delimiter = detect_delimiter(header_line, expected)
        header = [_normalise_name(c) for c in header_line.lstrip("\ufeff").split(delimiter)]
        missing = [c for c in expected if c not in header and c not in OPTIONAL_CSV_COLUMNS[source]]
        if missing:
            raise InputFileError(name, f"missing required column(s) {missing}; header has {header}", line=1)
        dupes = sorted({c for c in header if header.count(c) > 1})
        if dupes:
            raise InputFileError(name, f"duplicate column(s) {dupes} in header", line=1)

        invalid: list[tuple[int | None, int, int, str]] = []

        def on_invalid(row: Any) -> str:
            invalid.append((row.number, row.expected_columns, row.actual_columns, row.text))
            return "skip"

        avg_line = _average_line_bytes(path)
        try:
            reader = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(
                    use_threads=False,
                    encoding="utf8" if encoding.startswith("utf-8") else encoding,
                    column_names=header,
                    skip_rows=1,
                    # Arrow's streaming reader reads blocks ahead in a background thread (measured: ~32 blocks): blocks
                    # of ~chunk_size/8 rows keep that read-ahead to a few chunks' bytes whatever the file's size (whole-
                    # chunk blocks cost ~250 MB more at 10M rows than at 1M); parts are assembled to chunk_size rows.
                    block_size=int(min(8 << 20, max(1 << 20, self.settings.chunk_size * avg_line // 8))),
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=delimiter,
                    quote_char='"',
                    double_quote=True,
                    newlines_in_values=True,
                    invalid_row_handler=on_invalid,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(header, pa.string()),
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid as err:  # Arrow parses the first block on opening: its damage surfaces here
            raise InputFileError(name, f"CSV cannot be parsed: {err}") from err
        parts: list[str] = []
        rows = 0
        for batches in self._chunks(self._iter_batches(reader, name, invalid)):
            table = pa.Table.from_batches(batches).combine_chunks()
            self._check_fields(table, name, rows)
            for col in expected:
                if col not in table.column_names:
                    table = table.append_column(col, pa.array([""] * table.num_rows, pa.string()))
            table = table.select(list(expected))
            # Line of each record: header is line 1 (exact unless a field spans lines or blank lines precede it).
            table = table.append_column(LINE_COLUMN, pa.array(range(rows + 2, rows + 2 + table.num_rows), pa.int64()))
            if bad_lines:
                table = _mark_bad_encoding(table, bad_lines)
            part = out / f"part-{len(parts):05d}.parquet"
            pq.write_table(table, part, compression="snappy")
            parts.append(str(part))
            rows += table.num_rows
        detail: dict[str, Any] = {"encoding": encoding, "delimiter": delimiter}
        if bad_lines is not None:
            path.unlink()
            path = self._source_path(source)
            detail["mixed_encoding_lines"] = len(bad_lines)
        if rows == 0:
            return self._no_rows(source, path, out, "header only", detail)
        log.info(
            "extracted %s: %d rows from %s (encoding %s, delimiter %r) into %d part(s)",
            source,
            rows,
            name,
            encoding,
            delimiter,
            len(parts),
        )
        return ExtractManifest(source, name, str(out), tuple(parts), rows, _sha256(path), detail)

    def _csv_encoding(self, source: str, path: Path, out: Path) -> tuple[str, dict[int, str] | None]:
        """(codec, None), or for a mixed file under on_mixed_encoding=quarantine ('utf-8', {line: detail}).

        Raises:
            InputFileError: mixed (fail mode), or the declared encoding is contradicted.
        """
        declared = self.settings.sources[source].encoding
        scan = _scan(path)
        try:
            return choose_encoding(scan, declared), None
        except EncodingProblem as err:
            # Quarantine applies where the file is UTF-8 with some bad lines (auto: mixed; declared utf-8: any bad byte).
            utf8_with_bad_lines = scan.mixed if declared == "auto" else declared == "utf-8"
            if not (utf8_with_bad_lines and self.settings.on_mixed_encoding == "quarantine"):
                raise InputFileError(path.name, err.problem, line=err.line) from err
        with path.open("rb") as src, (out / "_utf8_copy.csv").open("wb") as dst:
            bad = utf8_lines_replacing_invalid(iter(lambda: src.read(1 << 20), b""), dst.write)
        if bad and bad[0].record <= 1:
            raise InputFileError(path.name, "header is not UTF-8 in a mixed-encoding file", line=1)
        log.warning("%s mixes encodings: quarantining %d line(s) with bytes that are not UTF-8", path.name, len(bad))
        return "utf-8-sig" if scan.bom else "utf-8", {
            b.record: f"byte 0x{b.position.byte:02X} at {b.position.describe()} is not UTF-8 "
            "(the file mixes UTF-8 and another encoding)"
            for b in bad
        }

    def _no_rows(
        self, source: str, path: Path, out: Path, what: str, detail: Mapping[str, Any] | None = None
    ) -> ExtractManifest:
        """An input without records: a reported no-op when optional or allowed, else an error naming the file.

        Raises:
            InputFileError: a required file is empty, or header-only without sources.<name>.allow_header_only.
        """
        cfg = self.settings.sources[source]
        if cfg.required and (what == "0 bytes" or not cfg.allow_header_only):
            hint = "" if what == "0 bytes" else f" (set sources.{source}.allow_header_only: true if that is expected)"
            raise InputFileError(path.name, f"required input has no records ({what}){hint}")
        log.warning("input for '%s' (%s) has no records (%s): nothing to load for this source", source, path.name, what)
        return ExtractManifest(source, path.name, str(out), (), 0, _sha256(path), {**(detail or {}), "empty": what})

    def _iter_batches(
        self, reader: Any, name: str, invalid: list[tuple[int | None, int, int, str]]
    ) -> Iterator[pa.RecordBatch]:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as err:
                raise InputFileError(name, f"CSV cannot be parsed: {err}") from err
            if invalid:
                self._raise_invalid(name, invalid[0])
            if batch.num_rows:  # a read block of blank lines comes back as 0 rows: no empty part for it
                yield batch
        if invalid:
            self._raise_invalid(name, invalid[0])

    def _chunks(self, batches: Iterator[pa.RecordBatch]) -> Iterator[list[pa.RecordBatch]]:
        """Consecutive batches grouped into parts of at most chunk_size rows (the transform's unit; one batch
        larger than that is a part by itself)."""
        pending: list[pa.RecordBatch] = []
        count = 0
        for batch in batches:
            if pending and count + batch.num_rows > self.settings.chunk_size:
                yield pending
                pending, count = [], 0
            pending.append(batch)
            count += batch.num_rows
        if pending:
            yield pending

    @staticmethod
    def _raise_invalid(name: str, row: tuple[int | None, int, int, str]) -> None:
        number, expected, actual, text = row
        if number is None or "\n" in text:
            raise InputFileError(
                name, "unterminated quoted field (a quote opens and the file ends before it closes)", value=text
            )
        raise InputFileError(name, f"expected {expected} fields, found {actual}", line=number, value=text)

    def _check_fields(self, table: pa.Table, name: str, rows_before: int) -> None:
        limit = self.settings.max_field_chars
        for col in table.column_names:
            arr = table.column(col)
            longest = pc.max(pc.utf8_length(arr)).as_py()
            if longest is not None and longest > limit:
                idx = pc.index(pc.greater(pc.utf8_length(arr), limit), True).as_py()
                raise InputFileError(
                    name,
                    f"field longer than extract.max_field_chars ({longest} > {limit} characters)",
                    line=rows_before + 2 + idx,
                    field=col,
                    value=str(arr[idx].as_py()),
                )
            has_nul = pc.any(pc.match_substring(arr, "\x00")).as_py()
            if has_nul:
                idx = pc.index(pc.match_substring(arr, "\x00"), True).as_py()
                raise InputFileError(
                    name,
                    "NUL byte in field (PostgreSQL text cannot hold it)",
                    line=rows_before + 2 + idx,
                    field=col,
                    value=str(arr[idx].as_py()).replace("\x00", "\\0"),
                )
            breaks = pc.match_substring_regex(arr, "[\r\n]")
            if pc.any(breaks).as_py():
                # No field of these files holds a line break: one here means a stray quote swallowed the next lines.
                idx = pc.index(breaks, True).as_py()
                raise InputFileError(
                    name,
                    "line break inside a field: an unbalanced quote joined several lines into one record",
                    line=rows_before + 2 + idx,
                    field=col,
                    value=str(arr[idx].as_py()),
                )

    # ---- JSON ------------------------------------------------------------------------------
    def extract_sessions(self) -> ExtractManifest:
        """Stage user_sessions from a JSON array or JSON Lines file.

        Raises:
            FileNotFoundError: the file is missing.
            InputFileError: invalid JSON (with line/item), an element that is not an object.
        """
        source = "user_sessions"
        out = self._fresh_dir(source)
        path = self._check_file(source)
        if path is None:
            return self._empty(source, self.settings.sources[source].file, out)
        # A mixed JSON file always fails: a JSON array has no lines to quarantine.
        encoding = detect_encoding(path, self.settings.sources[source].encoding)
        kind = _json_kind(path, encoding)
        if kind == "{" and encoding in ("utf-8", "utf-8-sig"):
            parts, rows = self._stage_json_lines(path, encoding, SESSION_FIELDS, out, SESSION_CONTRACT)
        else:
            records = _iter_json_encoded(path, encoding, kind)
            parts, rows = self._stage_records(records, SESSION_FIELDS, out, path.name, contract=SESSION_CONTRACT)
        if rows == 0:
            return self._no_rows(source, path, out, "no records")
        log.info("extracted %s: %d records from %s into %d part(s)", source, rows, path.name, len(parts))
        return ExtractManifest(source, path.name, str(out), tuple(parts), rows, _sha256(path), {})

    def extract_products(self, session: requests.Session | None = None) -> ExtractManifest:
        """Stage products from the API when configured, else from the products file.

        Raises:
            ApiError: the API failed (see ProductsApiClient.fetch).
            InputFileError / FileNotFoundError: the file is damaged or missing.
        """
        source = "products"
        out = self._fresh_dir(source)
        api = self.settings.products_api
        if api.url:
            data = ProductsApiClient(api, session=session).fetch()
            shown = redact_url(api.url)
            records: Iterator[tuple[int, Any]] = ((i + 1, item) for i, item in enumerate(data))
            parts, rows = self._stage_records(
                records, PRODUCT_FIELDS, out, shown, flatten=_flatten_product, contract=PRODUCT_CONTRACT
            )
            digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=_json_number).encode()).hexdigest()
            log.info("extracted products: %d from API %s", rows, shown)
            return ExtractManifest(source, shown, str(out), tuple(parts), rows, digest, {"origin": "api"})
        path = self._check_file(source)
        if path is None:
            return self._empty(source, self.settings.sources[source].file, out)
        parts, rows = self._stage_records(
            _iter_json_records(path, self.settings.sources[source].encoding),
            PRODUCT_FIELDS,
            out,
            path.name,
            flatten=_flatten_product,
            contract=PRODUCT_CONTRACT,
        )
        if rows == 0:
            return self._no_rows(source, path, out, "no records")
        log.info("extracted products: %d from %s", rows, path.name)
        return ExtractManifest(source, path.name, str(out), tuple(parts), rows, _sha256(path), {"origin": "file"})

    def _stage_records(
        self,
        records: Iterable[tuple[int, Any]],
        fields: tuple[str, ...],
        out: Path,
        name: str,
        *,
        flatten: Any = None,
        contract: Mapping[str, str] | None = None,
    ) -> tuple[list[str], int]:
        parts: list[str] = []
        rows = 0
        it = iter(records)
        while True:
            # A generator slice: at most one chunk of records is alive, as staged columns.
            chunk = itertools.islice(it, self.settings.chunk_size)
            table = _records_table(
                chunk, fields, name, self.settings.max_field_chars, flatten=flatten, contract=contract
            )
            if table is None:
                break
            parts.append(_write_part(out, len(parts), table))
            rows += table.num_rows
        return parts, rows

    def _stage_json_lines(
        self, path: Path, encoding: str, fields: tuple[str, ...], out: Path, contract: Mapping[str, str]
    ) -> tuple[list[str], int]:
        """Stage a UTF-8 JSON Lines file block by block: a vectorised decode, per-record only where a block needs it."""
        parts: list[str] = []
        rows = slow_blocks = 0
        limit = self.settings.max_field_chars
        pending: list[pa.Table] = []
        pending_rows = 0
        # Decoded Python objects live for one small block only; a part gathers blocks up to chunk_size rows.
        block_rows = max(1, min(self.settings.chunk_size, JSON_LINES_BLOCK_ROWS))
        for first_line, buf in _json_lines_blocks(path, encoding, block_rows):
            table = _json_lines_fast_table(buf, first_line, fields, contract, limit)
            if table is None:
                # Something the fast path does not decide (invalid JSON, a non-object, NUL, an oversize field, a lone
                # CR): the per-record reader takes this block and raises or quarantines exactly as it always did.
                slow_blocks += 1
                table = _records_table(
                    _json_lines_records(path.name, buf, first_line), fields, path.name, limit, contract=contract
                )
            del buf
            if table is not None and table.num_rows:
                pending.append(table)
                pending_rows += table.num_rows
            if pending_rows >= self.settings.chunk_size:
                parts.append(_write_part(out, len(parts), pa.concat_tables(pending)))
                rows += pending_rows
                pending, pending_rows = [], 0
        if pending:
            parts.append(_write_part(out, len(parts), pa.concat_tables(pending)))
            rows += pending_rows
        if slow_blocks:
            log.info("%s: %d block(s) read record by record", path.name, slow_blocks)
        return parts, rows


def _write_part(out: Path, index: int, table: pa.Table) -> str:
    part = out / f"part-{index:05d}.parquet"
    pq.write_table(table, part, compression="snappy")
    return str(part)


def _records_table(
    records: Iterable[tuple[int, Any]],
    fields: tuple[str, ...],
    name: str,
    limit: int,
    *,
    flatten: Any = None,
    contract: Mapping[str, str] | None = None,
) -> pa.Table | None:
    """Stage decoded JSON records (one chunk) as string columns + raw record + reject marks + line; None when empty.

    Raises:
        InputFileError: a record is not an object, holds a NUL character or an oversize field.
    """
    columns: dict[str, list[str | None]] = {f: [] for f in (*fields, "_raw", *REJECT_MARK_COLUMNS)}
    lines: list[int] = []
    for line, obj in records:
        if not isinstance(obj, dict):
            raise InputFileError(
                name, f"expected a JSON object, found {type(obj).__name__}", line=line, value=json.dumps(obj)
            )
        raw_line = obj.pop(_RAW_LINE, None)
        # JSON type contract: an object/array where a scalar is expected is quarantined, never stored as text.
        broken = type_violation(obj, contract) if contract else None
        for col, mark in zip(REJECT_MARK_COLUMNS, ("invalid_type", *broken) if broken else (None,) * 3, strict=True):
            columns[col].append(mark)
        record = flatten(obj) if flatten else obj
        # JSON Lines: the line itself is the raw record (no second serialisation of a million objects).
        raw = (
            raw_line
            if raw_line is not None and not flatten
            else json.dumps(record, ensure_ascii=False, default=_json_number)
        )
        if "\\u0000" in raw:
            raise InputFileError(name, "NUL character in a value (PostgreSQL text cannot hold it)", line=line)
        for f in fields:
            text = _to_text(record.get(f))
            if text is not None and len(text) > limit:
                raise InputFileError(
                    name,
                    f"field longer than extract.max_field_chars ({len(text)} > {limit})",
                    line=line,
                    field=f,
                    value=text,
                )
            columns[f].append(text)
        columns["_raw"].append(raw)
        lines.append(line)
    if not lines:
        return None
    arrays = {f: pa.array(v, pa.string()) for f, v in columns.items()}
    arrays[LINE_COLUMN] = pa.array(lines, pa.int64())
    return pa.table(arrays)


def _json_number(value: Any) -> Any:
    """json.dumps default for Decimal numbers: a float when it round-trips exactly, else the text."""
    if isinstance(value, Decimal):
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value else str(value)
    return str(value)


def _mark_bad_encoding(table: pa.Table, bad_lines: Mapping[int, str]) -> pa.Table:
    """Add the reject-mark columns: reason invalid_encoding on the staged lines that had bytes that are not UTF-8."""
    details = [bad_lines.get(n) for n in table.column(LINE_COLUMN).to_pylist()]
    reasons = [None if d is None else "invalid_encoding" for d in details]
    fields = [None if d is None else LINE_COLUMN for d in details]
    for col, values in zip(REJECT_MARK_COLUMNS, (reasons, fields, details), strict=True):
        table = table.append_column(col, pa.array(values, pa.string()))
    return table


def _to_text(value: Any) -> str | None:
    """Stage a JSON value as text; lists/objects as JSON, booleans as true/false (the transform parses them)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, default=_json_number)
    return str(value)


def _flatten_product(obj: dict[str, Any]) -> dict[str, Any]:
    rating = obj.get("rating")
    flat = {k: v for k, v in obj.items() if k != "rating"}
    if isinstance(rating, dict):
        flat["rating_rate"] = rating.get("rate")
        flat["rating_count"] = rating.get("count")
    return flat


def _iter_json_records(path: Path, declared: str = "auto") -> Iterator[tuple[int, Any]]:
    """Yield (line-or-item number, object) from a JSON array (streamed) or a JSON Lines file.

    Raises:
        InputFileError: the JSON is invalid, naming the line (JSON Lines) or item (array).
    """
    # A mixed JSON file always fails: a JSON array has no lines to quarantine.
    encoding = detect_encoding(path, declared)
    yield from _iter_json_encoded(path, encoding, _json_kind(path, encoding))


def _json_kind(path: Path, encoding: str) -> str:
    """The first character that is not whitespace: '[' (array), '{' (JSON Lines), '' (nothing)."""
    with path.open("r", encoding=encoding) as f:
        while True:
            ch = f.read(1)
            if not ch or not ch.isspace():
                return ch


def _iter_json_encoded(path: Path, encoding: str, first: str) -> Iterator[tuple[int, Any]]:
    if first == "":
        return
    if first == "[":
        yield from _iter_json_array(path, encoding)
    elif first == "{":
        with path.open("r", encoding=encoding) as f:
            for lineno, line in enumerate(f, start=1):
                if line.strip():
                    yield lineno, _json_line(path.name, lineno, line)
    else:
        raise InputFileError(
            path.name, f"expected a JSON array or JSON Lines objects, file starts with {first!r}", line=1
        )


def _json_line(name: str, lineno: int, line: str) -> Any:
    """One JSON Lines record, carrying its own text under _RAW_LINE.

    Raises:
        InputFileError: the line is not valid JSON (names line and column).
    """
    try:
        obj = json.loads(line, parse_constant=reject_json_constant, parse_float=Decimal)
    except ValueError as err:
        detail = f"{err.msg} at column {err.colno}" if isinstance(err, json.JSONDecodeError) else str(err)
        raise InputFileError(name, f"invalid JSON Lines record: {detail}", line=lineno, value=line.strip()) from err
    if isinstance(obj, dict):
        obj[_RAW_LINE] = line.strip()
    return obj


def _json_lines_blocks(path: Path, encoding: str, rows: int) -> Iterator[tuple[int, bytes]]:
    """(number of the block's first line, bytes of `rows` whole lines; fewer at the end of the file)."""
    size = max(1 << 16, rows * _average_line_bytes(path))
    lineno = 1
    pending = b""
    eof = False
    with path.open("rb") as f:
        if encoding == "utf-8-sig":
            f.read(3)
        while True:
            while not eof and pending.count(b"\n") < rows:
                more = f.read(size)
                eof = not more
                pending += more
            if not pending:
                return
            cut = 0
            for _ in range(rows):
                found = pending.find(b"\n", cut)
                if found < 0:
                    cut = len(pending)
                    break
                cut = found + 1
            buf, pending = pending[:cut], pending[cut:]
            yield lineno, buf
            lineno += _count_lines(buf)


def _count_lines(buf: bytes) -> int:
    """Lines in `buf` as a text-mode file counts them (universal newlines: \\n, \\r\\n and a lone \\r)."""
    lone_cr = buf.count(b"\r") - buf.count(b"\r\n")
    if lone_cr == 0:
        return buf.count(b"\n") + (0 if buf.endswith(b"\n") else 1)
    return sum(1 for _ in io.TextIOWrapper(io.BytesIO(buf), encoding="utf-8", newline=None))


def _json_lines_records(name: str, buf: bytes, first_line: int) -> Iterator[tuple[int, Any]]:
    """The per-record reader over one block: the same line splitting, checks and messages as the whole-file reader."""
    text = io.TextIOWrapper(io.BytesIO(buf), encoding="utf-8", newline=None)
    for lineno, line in enumerate(text, start=first_line):
        if line.strip():
            yield lineno, _json_line(name, lineno, line)


def _violating_types(expected: str | None, kinds: set[type]) -> set[type]:
    """The Python types among `kinds` that may break a field's JSON type contract (type_violation decides per row)."""
    if expected is None:
        return set()
    if expected == "scalar":
        return kinds & {dict, list}
    return kinds - {list if expected == "array" else dict}


def _text_array(values: list[Any], kinds: set[type]) -> pa.Array:
    """`values` staged as text, exactly as _to_text would: Arrow casts where the column has one JSON type."""
    if kinds <= {str}:
        return pa.array(values, pa.string())
    if kinds == {bool}:
        return pa.array(values, pa.bool_()).cast(pa.string())  # true / false
    if kinds == {int}:
        try:
            return pa.array(values, pa.int64()).cast(pa.string())
        except (OverflowError, pa.ArrowException):
            pass  # beyond 64 bits: Python's own text below
    if kinds == {list} and set(map(type, itertools.chain.from_iterable(v for v in values if v is not None))) <= {int}:
        try:
            lists = pa.array(values, pa.list_(pa.int64()))
        except (OverflowError, pa.ArrowException):
            pass
        else:
            # json.dumps' layout of a list of integers: "[1, 2]", "[]".
            joined = pc.binary_join(lists.cast(pa.list_(pa.string())), ", ")
            return pc.binary_join_element_wise("[", joined, "]", "")
    return pa.array([_to_text(v) for v in values], pa.string())


@functools.cache
def _struct_decoder(fields: tuple[str, ...]) -> msgspec.json.Decoder[Any]:
    """A decoder of JSON objects into a struct of `fields` (any JSON type each; other keys skipped, as staging does).

    Decimal: a number's text stays exact, as with json.loads; msgspec also keeps the last of a duplicate key and
    refuses NaN/Infinity like the per-record reader.
    """
    struct = msgspec.defstruct("JsonRecord", [(f, Any, None) for f in fields])
    return msgspec.json.Decoder(struct, float_hook=Decimal)


_NONE = type(None)


def _json_lines_fast_table(
    buf: bytes, first_line: int, fields: tuple[str, ...], contract: Mapping[str, str], limit: int
) -> pa.Table | None:
    """Stage one block of JSON Lines like _records_table would, with C-level decoding and Arrow columns.

    Returns None when the block holds anything whose outcome the per-record reader decides (invalid JSON, a
    line that is not an object, an escaped NUL, a field over `limit`, a lone CR that text mode counts as a line).
    msgspec decodes what json.loads does (see _struct_decoder), and one record of an unexpected JSON type does not fail the block (pyarrow's JSON reader would: it types a
    whole block by its first rows).
    """
    if b"\\u0000" in buf or buf.count(b"\r") != buf.count(b"\r\n"):
        return None
    lines = buf.split(b"\n")
    keep = [i for i, line in enumerate(lines) if line.strip()]
    decoder = _struct_decoder(tuple(dict.fromkeys((*fields, *contract))))
    try:
        objs = [decoder.decode(lines[i]) for i in keep]
    except msgspec.DecodeError:  # ValidationError (a line that is not an object) included
        return None
    if not objs:
        return None
    arrays: dict[str, pa.Array] = {}
    suspects: set[int] = set()
    for f in decoder.type.__struct_fields__:
        values = list(map(operator.attrgetter(f), objs))
        kinds = set(map(type, values)) - {_NONE}
        bad = _violating_types(contract.get(f), kinds)
        if bad:
            suspects.update(i for i, v in enumerate(values) if type(v) in bad)
        if f not in fields:
            continue
        arr = _text_array(values, kinds)
        longest = pc.max(pc.utf8_length(arr)).as_py() if len(arr) else None
        if longest is not None and longest > limit:
            return None
        arrays[f] = arr
    raw = pc.utf8_trim_whitespace(pa.array([lines[i] for i in keep], pa.binary()).cast(pa.string()))
    arrays["_raw"] = raw
    marks: list[list[str | None]] = [[None] * len(objs) for _ in REJECT_MARK_COLUMNS]
    for i in suspects:
        broken = type_violation(msgspec.structs.asdict(objs[i]), contract)
        if broken:
            for mark_col, mark in zip(marks, ("invalid_type", *broken), strict=True):
                mark_col[i] = mark
    for name, values in zip(REJECT_MARK_COLUMNS, marks, strict=True):
        arrays[name] = pa.array(values, pa.string())
    arrays[LINE_COLUMN] = pa.array([first_line + i for i in keep], pa.int64())
    return pa.table(arrays)


def _iter_json_array(path: Path, encoding: str) -> Iterator[tuple[int, Any]]:
    import ijson

    index = 0
    with path.open("rb") as raw:
        stream: Any = raw
        if encoding in ("latin-1", "cp1252"):
            stream = io.BytesIO(path.read_text(encoding=encoding).encode("utf-8"))  # rare: small legacy files
        elif encoding == "utf-8-sig":
            raw.read(3)
        try:
            # use_float=False: non-integer numbers arrive as Decimal (exact text), never as binary floats.
            for index, item in enumerate(ijson.items(stream, "item", use_float=False), start=1):
                yield index, item
        except ijson.JSONError as err:
            raise InputFileError(path.name, f"invalid JSON after item {index}: {err}", line=None) from err
