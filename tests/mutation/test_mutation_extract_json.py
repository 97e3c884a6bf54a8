"""The JSON side of the extract, exactly, on real files (no database): routing, blocks, line numbers, text, marks.

Written for mutation testing of include/extract.py: what user_sessions / products stage (values as text, `_line`,
`_raw`, reject marks, parts and their row counts, manifest, log lines) and the exact message of every failure.
"""

from __future__ import annotations

import hashlib
import json
import locale
import logging
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from pytest_httpserver import HTTPServer

from include import extract
from include.extract import DataExtractor, ExtractManifest, InputFileError
from tests.mutation.inputs import extract_settings

SESSIONS = "user_sessions.json"
SLOW = "block(s) read record by record"


def _write(tmp_path: Path, data: bytes, name: str = SESSIONS) -> Path:
    path = tmp_path / "raw" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def _rows(parts: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    return [row for part in parts for row in pq.read_table(part).to_pylist()]


def _sizes(parts: tuple[str, ...]) -> list[int]:
    return [pq.ParquetFile(p).metadata.num_rows for p in parts]


def _session(sid: str, **extra: object) -> str:
    record = {"session_id": sid, "customer_email": f"{sid.lower()}@example.com", **extra}
    return json.dumps(record, ensure_ascii=False)  # accents as themselves: the file's encoding matters


def _jsonl(*lines: str, newline: str = "\n") -> bytes:
    return (newline.join(lines) + newline).encode()


def _sessions(tmp_path: Path, data: bytes, **kw: Any) -> ExtractManifest:
    _write(tmp_path, data)
    return DataExtractor(extract_settings(tmp_path, **kw), tmp_path / "run").extract_sessions()


@pytest.fixture
def ascii_locale() -> Iterator[None]:
    """LC_CTYPE C, as on a bare worker: a codec taken from the locale would be ASCII and fail on 'é'."""
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, before)


# ---- manifests, empty and missing inputs ---------------------------------------------------------------------


@pytest.mark.parametrize(("source", "file"), [("user_sessions", SESSIONS), ("products", "products.json")])
def test_a_missing_optional_json_input_is_an_empty_manifest(tmp_path: Path, source: str, file: str) -> None:
    settings = extract_settings(tmp_path, sources={source: {"required": False}})
    ex = DataExtractor(settings, tmp_path / "run")
    m = ex.extract_sessions() if source == "user_sessions" else ex.extract_products()
    out = tmp_path / "run" / "extract" / source
    assert m == ExtractManifest(source, file, str(out), (), 0, None, {})
    assert out.is_dir()


EMPTY_BODIES = [
    ("user_sessions", SESSIONS, b"[]"),
    ("user_sessions", SESSIONS, b" \n\r\n\t\n"),  # nothing but whitespace: neither an array nor JSON Lines
    ("user_sessions", SESSIONS, b""),
    ("products", "products.json", b"[ ]"),
]


@pytest.mark.parametrize(("source", "file", "body"), EMPTY_BODIES)
def test_a_required_json_input_without_records_fails_naming_file_and_setting(
    tmp_path: Path, source: str, file: str, body: bytes
) -> None:
    _write(tmp_path, body, file)
    ex = DataExtractor(extract_settings(tmp_path), tmp_path / "run")
    with pytest.raises(InputFileError) as err:
        ex.extract_sessions() if source == "user_sessions" else ex.extract_products()
    assert str(err.value) == (
        f"{file}: required input has no records (no records)"
        f" (set sources.{source}.allow_header_only: true if that is expected)"
    )


@pytest.mark.parametrize(("source", "file", "body"), EMPTY_BODIES)
@pytest.mark.parametrize("setting", [{"allow_header_only": True}, {"required": False}])
def test_an_allowed_json_input_without_records_is_an_empty_manifest_with_its_digest(
    tmp_path: Path, source: str, file: str, body: bytes, setting: dict[str, object]
) -> None:
    path = _write(tmp_path, body, file)
    out = tmp_path / "run" / "extract" / source
    out.mkdir(parents=True)
    (out / "part-00007.parquet").write_bytes(b"left by an earlier attempt")
    ex = DataExtractor(extract_settings(tmp_path, sources={source: setting}), tmp_path / "run")
    m = ex.extract_sessions() if source == "user_sessions" else ex.extract_products()
    digest = hashlib.sha256(body).hexdigest()
    assert m == ExtractManifest(source, file, str(out), (), 0, digest, {"empty": "no records"})
    assert path.exists() and not list(out.iterdir())


@pytest.mark.parametrize("layout", ["jsonl", "array"])
def test_sessions_manifest_parts_and_log_line(tmp_path: Path, layout: str, caplog: pytest.LogCaptureFixture) -> None:
    records = [_session(f"S{i}", pages_viewed=i) for i in range(1, 4)]
    data = _jsonl(*records) if layout == "jsonl" else ("[" + ",\n".join(records) + "]").encode()
    with caplog.at_level(logging.INFO, logger="include.extract"):
        m = _sessions(tmp_path, data, chunk_size=2)
    out = tmp_path / "run" / "extract" / "user_sessions"
    assert m == ExtractManifest(
        "user_sessions",
        SESSIONS,
        str(out),
        (str(out / "part-00000.parquet"), str(out / "part-00001.parquet")),
        3,
        hashlib.sha256(data).hexdigest(),
        {},
    )
    assert _sizes(m.parts) == [2, 1]
    assert [(r["_line"], r["session_id"], r["pages_viewed"]) for r in _rows(m.parts)] == [
        (1, "S1", "1"),
        (2, "S2", "2"),
        (3, "S3", "3"),
    ]
    assert caplog.messages == ["extracted user_sessions: 3 records from user_sessions.json into 2 part(s)"]


@pytest.mark.parametrize("layout", ["jsonl", "array"])
def test_parts_are_snappy_parquet_with_text_columns_even_when_a_column_is_all_null(tmp_path: Path, layout: str) -> None:
    records = [_session("S1", conversion=True), _session("S2", conversion=False)]
    data = _jsonl(*records) if layout == "jsonl" else ("[" + ",".join(records) + "]").encode()
    m = _sessions(tmp_path, data)
    (part,) = m.parts
    meta = pq.ParquetFile(part).metadata
    assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {"SNAPPY"}
    schema = pq.read_schema(part)
    expected = [*extract.SESSION_FIELDS, "_raw", *extract.REJECT_MARK_COLUMNS]
    assert sorted(schema.names) == sorted([*expected, "_line"])
    assert {n: schema.field(n).type for n in expected} == dict.fromkeys(expected, pa.string())
    assert schema.field("_line").type == pa.int64()
    assert [r["conversion"] for r in _rows(m.parts)] == ["true", "false"]


# ---- JSON Lines blocks: part sizes and line numbers ---------------------------------------------------------


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_json_lines_blocks_hold_chunk_size_lines_and_parts_gather_whole_blocks(tmp_path: Path, bom: bytes) -> None:
    # chunk_size 2: blocks of 2 lines; the blank line 3 makes the second block one record short, so the second
    # part gathers two blocks (3 rows). A reader of records (the JSON array path) would cut [2, 2, 2, 1].
    lines = [_session(s) for s in "AB"] + [""] + [_session(s) for s in "CDEFG"]
    m = _sessions(tmp_path, bom + _jsonl(*lines), chunk_size=2)
    assert _sizes(m.parts) == [2, 3, 2]
    rows = _rows(m.parts)
    assert [(r["_line"], r["session_id"]) for r in rows] == list(zip([1, 2, 4, 5, 6, 7, 8], "ABCDEFG", strict=True))
    assert m.rows_read == 7


def test_chunk_size_one_stages_one_record_per_part(tmp_path: Path) -> None:
    m = _sessions(tmp_path, _jsonl(*(_session(s) for s in "ABC")), chunk_size=1)
    assert _sizes(m.parts) == [1, 1, 1]
    assert [r["_line"] for r in _rows(m.parts)] == [1, 2, 3]


def test_lone_cr_blocks_are_read_record_by_record_with_exact_lines_and_marks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # chunk_size 3: blocks of 3 "\n" lines. A lone CR ends a line in text mode (as Python's reader counts it):
    # block 1 holds lines 1-4, block 2 lines 5-7 (the fast path), block 3 lines 8-10 with a type violation.
    a, b, c, d, e, f, g, h, j = (_session(s) for s in "ABCDEFGHJ")
    i = _session("I", browser={"name": "Chrome"})
    data = f"{a}\n{b}\r{c}\n{d}\n{e}\n{f}\n{g}\n{h}\r{i}\n{j}\n".encode()
    with caplog.at_level(logging.INFO, logger="include.extract"):
        m = _sessions(tmp_path, data, chunk_size=3)
    rows = _rows(m.parts)
    assert [(r["_line"], r["session_id"]) for r in rows] == list(zip(range(1, 11), "ABCDEFGHIJ", strict=True))
    assert _sizes(m.parts) == [4, 3, 3]
    assert [(r["session_id"], r["_reject_reason"], r["_reject_field"], r["_reject_detail"]) for r in rows[7:]] == [
        ("H", None, None, None),
        ("I", "invalid_type", "browser", "browser must be a string, got object"),
        ("J", None, None, None),
    ]
    assert rows[8]["_raw"] == i
    assert f"user_sessions.json: 2 {SLOW}" in caplog.messages


def test_a_block_of_blank_lines_stages_nothing_and_is_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="include.extract"):
        m = _sessions(tmp_path, _jsonl(_session("A"), _session("B"), "", "  ", _session("C")), chunk_size=2)
    assert [(r["_line"], r["session_id"]) for r in _rows(m.parts)] == [(1, "A"), (2, "B"), (5, "C")]
    assert _sizes(m.parts) == [2, 1]
    assert f"user_sessions.json: 1 {SLOW}" in caplog.messages


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_blocks_the_fast_reader_decides_log_no_record_by_record_line(
    tmp_path: Path, newline: str, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [_session("A", browser="x" * 64), _session("B", browser={"a": 1}), "", _session("C")]
    with caplog.at_level(logging.INFO, logger="include.extract"):
        m = _sessions(tmp_path, _jsonl(*lines, newline=newline), chunk_size=2, max_field_chars=64)
    rows = _rows(m.parts)
    assert [(r["_line"], r["_reject_field"]) for r in rows] == [(1, None), (2, "browser"), (4, None)]
    assert rows[0]["browser"] == "x" * 64  # exactly at max_field_chars: staged
    assert [msg for msg in caplog.messages if SLOW in msg] == []


# ---- per-record checks on every path: size limit, NUL, type contract -----------------------------------------

LAYOUTS = {
    # how a record with the given session line lands at line/item 2
    "jsonl": lambda rec: _jsonl(_session("A"), rec),
    "jsonl-lone-cr": lambda rec: f"{_session('A')}\r{rec}\n".encode(),  # per-record reader of a block
    "jsonl-cp1252": lambda rec: _jsonl(_session("A", browser="caf\u00e9"), rec).decode().encode("cp1252"),
    "array": lambda rec: ("[" + _session("A") + ",\n" + rec + "]").encode(),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_field_exactly_at_max_field_chars_is_staged_and_one_more_fails(tmp_path: Path, layout: str) -> None:
    ok = _sessions(tmp_path, LAYOUTS[layout](_session("B", browser="y" * 64)), max_field_chars=64)
    assert [r["browser"] for r in _rows(ok.parts)][1] == "y" * 64
    with pytest.raises(InputFileError) as err:
        _sessions(tmp_path, LAYOUTS[layout](_session("B", browser="y" * 65)), max_field_chars=64)
    assert str(err.value) == (
        "user_sessions.json, line 2, field 'browser': field longer than extract.max_field_chars (65 > 64)"
        f" (value: {'y' * 65!r})"
    )
    assert (err.value.line, err.value.field, err.value.value) == (2, "browser", "y" * 65)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_nul_character_in_a_value_fails_naming_the_line(tmp_path: Path, layout: str) -> None:
    with pytest.raises(InputFileError) as err:
        _sessions(tmp_path, LAYOUTS[layout]('{"session_id": "B", "browser": "a\\u0000b"}'))
    assert str(err.value) == "user_sessions.json, line 2: NUL character in a value (PostgreSQL text cannot hold it)"
    assert (err.value.file, err.value.line) == (SESSIONS, 2)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_object_in_a_scalar_session_field_is_marked_on_every_path(tmp_path: Path, layout: str) -> None:
    m = _sessions(tmp_path, LAYOUTS[layout](_session("B", device_type=["a"], pages_viewed={"n": 1})))
    marks = [(r["session_id"], r["_reject_reason"], r["_reject_field"], r["_reject_detail"]) for r in _rows(m.parts)]
    assert marks == [
        ("A", None, None, None),
        ("B", "invalid_type", "pages_viewed", "pages_viewed must be a number, got object"),
    ]


def _products(tmp_path: Path, body: str) -> ExtractManifest:
    _write(tmp_path, body.encode(), "products.json")
    return DataExtractor(extract_settings(tmp_path), tmp_path / "run").extract_products()


PRODUCTS = [{"id": 1, "title": "Mug", "rating": 5}, {"id": 2, "title": {"en": "Cup"}, "rating": {"rate": 4.5}}]
PRODUCT_MARKS = [
    ("1", "invalid_type", "rating", "rating must be an object, got number"),
    ("2", "invalid_type", "title", "title must be a string, got object"),
]


def test_products_from_a_file_are_marked_by_the_type_contract(tmp_path: Path) -> None:
    m = _products(tmp_path, json.dumps(PRODUCTS))
    assert [(r["id"], r["_reject_reason"], r["_reject_field"], r["_reject_detail"]) for r in _rows(m.parts)] == (
        PRODUCT_MARKS
    )


def test_products_from_the_api_use_the_given_session_and_the_type_contract(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    # The route only answers a request carrying the caller's session header: a new session would get HTTP 500.
    httpserver.expect_request("/products", headers={"X-Probe": "caller"}).respond_with_json(PRODUCTS)
    session = requests.Session()
    session.headers["X-Probe"] = "caller"
    settings = extract_settings(tmp_path, url=httpserver.url_for("/products"))
    m = DataExtractor(settings, tmp_path / "run").extract_products(session=session)
    rows = _rows(m.parts)
    assert [(r["id"], r["_reject_reason"], r["_reject_field"], r["_reject_detail"]) for r in rows] == PRODUCT_MARKS
    assert rows[1]["rating_rate"] == "4.5"


def test_a_product_from_the_api_that_is_not_an_object_names_the_url_and_item(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/products").respond_with_json([{"id": 1}, 3])
    url = httpserver.url_for("/products")
    with pytest.raises(InputFileError) as err:
        DataExtractor(extract_settings(tmp_path, url=url + "?key=SECRET"), tmp_path / "run").extract_products()
    assert str(err.value) == f"{url}, line 2: expected a JSON object, found int (value: '3')"


def test_records_without_a_contract_stage_objects_as_json_text() -> None:
    records = iter([(4, {"session_id": "S", "browser": {"b": "é"}})])
    table = extract._records_table(records, ("session_id", "browser"), "f.json", 100)
    assert table is not None
    assert table.to_pylist() == [
        {
            "session_id": "S",
            "browser": '{"b": "é"}',
            "_raw": '{"session_id": "S", "browser": {"b": "é"}}',
            "_reject_reason": None,
            "_reject_field": None,
            "_reject_detail": None,
            "_line": 4,
        }
    ]


# ---- values as text ---------------------------------------------------------------------------------------------


def test_json_lines_values_are_staged_as_their_exact_text(tmp_path: Path) -> None:
    # One JSON type per column takes the fast Arrow casts: Decimal text, booleans, integer lists, big integers.
    lines = [
        _session("A", pages_viewed=1.5, conversion=True, items_viewed=[1, 2], session_end=2**70),
        '{"session_id": "B", "pages_viewed": 1.10, "conversion": false, "items_viewed": [], "session_end": 3}',
        '{"session_id": "C", "pages_viewed": 1.0E+2, "items_viewed": ["caf\u00e9", 1.5]}',
    ]
    rows = _rows(_sessions(tmp_path, _jsonl(*lines)).parts)
    assert [(r["pages_viewed"], r["conversion"], r["items_viewed"], r["session_end"]) for r in rows] == [
        ("1.5", "true", "[1, 2]", str(2**70)),
        ("1.10", "false", "[]", "3"),
        ("1.0E+2", None, '["café", 1.5]', None),
    ]
    assert rows[2]["_raw"] == lines[2]


def test_json_array_values_and_raw_records_keep_exact_numbers_and_accents(tmp_path: Path) -> None:
    body = (
        '[{"session_id": "caf\u00e9", "pages_viewed": 1.10, "items_viewed": ["\u00e9t\u00e9", 1.5],'
        ' "items_added_to_cart": [0.1000000000000000000001], "conversion": true}]'
    )
    (row,) = _rows(_sessions(tmp_path, body.encode()).parts)
    assert (row["session_id"], row["pages_viewed"], row["conversion"]) == ("café", "1.10", "true")
    assert row["items_viewed"] == '["été", 1.5]'
    # A number that a float cannot hold exactly keeps its text (as a JSON string) rather than being rounded.
    assert row["items_added_to_cart"] == '["0.1000000000000000000001"]'
    assert row["_raw"] == (
        '{"session_id": "café", "pages_viewed": 1.1, "items_viewed": ["été", 1.5],'
        ' "items_added_to_cart": ["0.1000000000000000000001"], "conversion": true}'
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.5"), 1.5),
        (Decimal("0.1"), 0.1),
        (Decimal("0.1000000000000000000001"), "0.1000000000000000000001"),
        (Decimal("1E+400"), "1E+400"),
        (Path("a/b"), "a/b"),  # anything else json cannot encode: its text
    ],
)
def test_json_number_default(value: object, expected: object) -> None:
    got = extract._json_number(value)
    assert (type(got), got) == (type(expected), expected)


# ---- encodings, file kinds and the messages of damaged JSON ---------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "data", "browser"),
    [
        ("auto", '[{"session_id": "A", "browser": "caf\u00e9 \u20ac"}]'.encode("cp1252"), "café €"),
        ("cp1252", '[{"session_id": "A", "browser": "caf\u00e9 \u20ac"}]'.encode("cp1252"), "café €"),
        ("latin-1", '[{"session_id": "A", "browser": "caf\u00e9 \u00bd"}]'.encode("latin-1"), "café ½"),
        ("auto", b'\xef\xbb\xbf[{"session_id": "A", "browser": "caf\xc3\xa9"}]', "café"),
    ],
)
def test_json_arrays_in_every_encoding_are_read_as_text(
    tmp_path: Path, declared: str, data: bytes, browser: str
) -> None:
    m = _sessions(tmp_path, data, sources={"user_sessions": {"encoding": declared}})
    assert [(r["_line"], r["session_id"], r["browser"]) for r in _rows(m.parts)] == [(1, "A", browser)]


def test_cp1252_json_lines_are_read_line_by_line(tmp_path: Path) -> None:
    data = "\n".join(["", _session("A", browser="caf\u00e9"), "", _session("B", browser="\u20ac")]).encode("cp1252")
    m = _sessions(tmp_path, data, chunk_size=1)
    assert [(r["_line"], r["browser"]) for r in _rows(m.parts)] == [(2, "café"), (4, "€")]
    assert _sizes(m.parts) == [1, 1]


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
def test_an_invalid_json_lines_record_names_line_column_and_value(tmp_path: Path, encoding: str) -> None:
    data = "\n".join([_session("A", browser="caf\u00e9"), "", '{"session_id": "B" "x"}']).encode(encoding)
    with pytest.raises(InputFileError) as err:
        _sessions(tmp_path, data)
    assert str(err.value) == (
        "user_sessions.json, line 3: invalid JSON Lines record: Expecting ',' delimiter at column 20"
        ' (value: \'{"session_id": "B" "x"}\')'
    )
    assert err.value.line == 3


@pytest.mark.parametrize("source", ["user_sessions", "products"])
def test_the_declared_encoding_of_a_json_source_is_honoured(tmp_path: Path, source: str) -> None:
    file = SESSIONS if source == "user_sessions" else "products.json"
    _write(tmp_path, '[{"id": 1, "session_id": "caf\u00e9"}]'.encode("cp1252"), file)
    ex = DataExtractor(extract_settings(tmp_path, sources={source: {"encoding": "utf-8"}}), tmp_path / "run")
    with pytest.raises(InputFileError) as err:
        ex.extract_sessions() if source == "user_sessions" else ex.extract_products()
    assert str(err.value) == (
        f"{file}, line 1: declared encoding utf-8 but byte 0xE9 at line 1, byte offset 29 (0xE9) is not UTF-8"
    )


def test_json_records_are_read_under_auto_encoding_by_default(tmp_path: Path) -> None:
    path = _write(tmp_path, '[{"title": "caf\u00e9"}]'.encode("cp1252"), "products.json")
    assert list(extract._iter_json_records(path)) == [(1, {"title": "café"})]


@pytest.mark.parametrize(
    ("data", "lines"),
    [(b"\n \n\t[" + _session("A").encode() + b"]", [1]), (b"\n\r\n " + _jsonl(_session("A")), [3])],
)
def test_leading_whitespace_before_the_json_is_skipped(tmp_path: Path, data: bytes, lines: list[int]) -> None:
    assert [r["_line"] for r in _rows(_sessions(tmp_path, data).parts)] == lines


@pytest.mark.parametrize("first", ["x", '"'])
def test_a_file_that_is_neither_array_nor_json_lines_fails_at_line_1(tmp_path: Path, first: str) -> None:
    with pytest.raises(InputFileError) as err:
        _sessions(tmp_path, f"  {first}session".encode())
    assert str(err.value) == (
        f"user_sessions.json, line 1: expected a JSON array or JSON Lines objects, file starts with {first!r}"
    )
    assert err.value.line == 1


@pytest.mark.parametrize(("body", "after"), [("[x]", 0), ('[{"session_id": "A"}, {"session_id": "B"}, x]', 2)])
def test_invalid_json_in_an_array_names_the_last_good_item(tmp_path: Path, body: str, after: int) -> None:
    with pytest.raises(InputFileError) as err:
        _sessions(tmp_path, body.encode())
    assert str(err.value).startswith(f"user_sessions.json: invalid JSON after item {after}: lexical error")
    assert err.value.line is None


# ---- the block reader's helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("buf", "lines"),
    [
        (b"a\n", 1),
        (b"a\nb", 2),
        (b"a", 1),
        (b"a\r\nb\r\n", 2),
        (b"a\r\nb", 2),
        (b"a\rb\n", 2),
        (b"a\rb", 2),
        (b"a\r\r\nb\rc\n", 4),
        ("caf\u00e9\r\u00e9t\u00e9\n".encode(), 2),
    ],
)
def test_count_lines_counts_as_a_text_mode_file_does(buf: bytes, lines: int) -> None:
    assert extract._count_lines(buf) == lines


def test_json_lines_blocks_read_a_large_file_in_bounded_pieces(tmp_path: Path) -> None:
    # 4 MB of JSON Lines in blocks of 100 lines: read 64 KiB at a time, never the whole file at once.
    line = _session("S", browser="b" * 60)
    path = _write(tmp_path, _jsonl(*[line] * 40_000))
    tracemalloc.start()
    try:
        blocks = [(first, len(buf), buf.count(b"\n")) for first, buf in extract._json_lines_blocks(path, "utf-8", 100)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert blocks == [(1 + 100 * i, 100 * (len(line) + 1), 100) for i in range(400)]
    assert peak < 2 << 20  # the 1 MiB head that sizes the reads + a few 64 KiB reads; the whole file is 4 MB


def test_lone_cr_blocks_are_decoded_as_utf8_whatever_the_locale(ascii_locale: None) -> None:
    buf = (_session("A", browser="caf\u00e9") + "\r" + _session("B") + "\n").encode()
    assert extract._count_lines(buf) == 2
    assert [(n, r["browser"] if "browser" in r else None) for n, r in extract._json_lines_records("f", buf, 7)] == [
        (7, "café"),
        (8, None),
    ]


@pytest.mark.parametrize(
    ("expected", "kinds", "violating"),
    [
        (None, {dict, list, str}, set()),
        ("scalar", {dict, list, str, int, bool, Decimal}, {dict, list}),
        ("scalar", {str, int}, set()),
        ("object", {dict, list, str}, {list, str}),
        ("array", {dict, list, str}, {dict, str}),
        ("array", {list}, set()),
    ],
)
def test_violating_types_per_contract_word(expected: str | None, kinds: set[type], violating: set[type]) -> None:
    assert extract._violating_types(expected, kinds) == violating


def test_contract_fields_that_are_not_staged_are_still_checked_in_a_fast_block() -> None:
    # Like products' `rating`: in the contract, not a staged column. Each such field is checked, not only the first.
    fields = ("id",)
    contract = {"id": "scalar", "rating": "object", "tags": "array"}
    buf = _jsonl('{"id": 1, "rating": {"r": 1}, "tags": []}', '{"id": 2, "rating": null, "tags": {"t": 1}}')
    fast = extract._json_lines_fast_table(buf, 1, fields, contract, 100)
    reference = extract._records_table(extract._json_lines_records("f", buf, 1), fields, "f", 100, contract=contract)
    assert fast is not None and reference is not None
    assert fast.to_pylist() == reference.to_pylist()
    assert fast.column("_reject_detail").to_pylist() == [None, "tags must be an array, got object"]
