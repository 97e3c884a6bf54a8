"""The block-wise JSON Lines reader: the same staged rows as the per-record reader, with per-record fallback."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from include import extract
from include.config_loader import DEFAULT_CONFIG, load_config
from include.extract import DataExtractor, InputFileError

BASE = {
    "session_id": "S1",
    "customer_email": "ann@example.com",
    "session_start": "2026-10-01T10:00:00",
    "session_end": "2026-10-01T10:05:00",
    "pages_viewed": 3,
    "items_viewed": [1, 2],
    "items_added_to_cart": [],
    "conversion": False,
    "device_type": "mobile",
    "browser": "Firefox",
    "ip_address": "10.0.0.1",
}

# Every JSON shape a field takes in real exports (and the generator): mixed types in one column, Decimal text,
# integers beyond 64 bits, non-ASCII, duplicate keys, extra keys, blank lines, CRLF endings.
LINES = [
    json.dumps(BASE),
    json.dumps({**BASE, "session_id": "S2", "conversion": "true", "items_viewed": None, "pages_viewed": "7"}),
    json.dumps({**BASE, "session_id": "S3", "conversion": 1, "items_viewed": [1.50, 2], "pages_viewed": 2**70}),
    "",
    '{"session_id": "S4", "session_id": "S4b", "browser": "Sa\\u0301fari \u00e9", "pages_viewed": 1.0E+2, "x": {"y": 1}}',
    json.dumps({**BASE, "session_id": "S5", "items_added_to_cart": "not a list", "items_viewed": [True, 3]}),
    "   ",
    json.dumps({**BASE, "session_id": "S6", "browser": {"name": "Chrome"}}),  # object where a string belongs
    json.dumps({**BASE, "session_id": "S7", "device_type": ["a"], "ip_address": 5}),
]


def _reference(buf: bytes) -> dict[str, list[object]]:
    table = extract._records_table(
        extract._json_lines_records("s.jsonl", buf, 1),
        extract.SESSION_FIELDS,
        "s.jsonl",
        100_000,
        contract=extract.SESSION_CONTRACT,
    )
    assert table is not None
    return table.to_pydict()


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_fast_block_stages_exactly_what_the_per_record_reader_stages(newline: str) -> None:
    buf = (newline.join(LINES) + newline).encode()
    fast = extract._json_lines_fast_table(buf, 1, extract.SESSION_FIELDS, extract.SESSION_CONTRACT, 100_000)
    assert fast is not None  # the fast path decided this block itself
    assert fast.to_pydict() == _reference(buf)
    rows = fast.to_pylist()
    assert [r["_line"] for r in rows] == [1, 2, 3, 5, 6, 8, 9]
    assert [r["conversion"] for r in rows[:3]] == ["false", "true", "1"]
    assert rows[2]["items_viewed"] == "[1.5, 2]" and rows[2]["pages_viewed"] == str(2**70)
    assert rows[3]["session_id"] == "S4b" and rows[3]["pages_viewed"] == "1.0E+2"
    # The JSON type contract: a record with an object/array in a scalar field is marked for quarantine.
    marks = {r["session_id"]: (r["_reject_reason"], r["_reject_field"]) for r in rows}
    assert marks["S6"] == ("invalid_type", "browser")
    assert marks["S7"] == ("invalid_type", "device_type")
    assert marks["S1"] == (None, None) and marks["S5"] == (None, None)  # the list rule is the transform's


@pytest.mark.parametrize(
    "line",
    [
        '{"session_id": "S9", "pages_viewed": NaN}',  # json.loads refuses it: structural damage
        '{"session_id": "S9"} {"session_id": "S10"}',
        '["S9"]',
        '{"session_id": "a\\u0000b"}',
        '{"session_id": "' + "x" * 50 + '"}',  # over max_field_chars (40 below)
    ],
)
def test_blocks_the_fast_path_does_not_decide_go_record_by_record(line: str) -> None:
    buf = (json.dumps(BASE) + "\n" + line + "\n").encode()
    assert extract._json_lines_fast_table(buf, 1, extract.SESSION_FIELDS, extract.SESSION_CONTRACT, 40) is None


def _extractor(tmp_path: Path, chunk_size: int) -> DataExtractor:
    raw = tmp_path / "raw"
    settings = dataclasses.replace(load_config(DEFAULT_CONFIG), raw_data_dir=raw, chunk_size=chunk_size)
    return DataExtractor(settings, tmp_path / "stage")


def test_extract_sessions_blocks_keep_line_numbers_and_quarantine_marks(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "user_sessions.json").write_bytes(b"\xef\xbb\xbf" + ("\n".join(LINES) + "\n").encode())
    m = _extractor(tmp_path, chunk_size=2).extract_sessions().to_dict()
    rows = [r for part in m["parts"] for r in pq.read_table(part).to_pylist()]
    assert m["rows_read"] == 7
    assert [r["_line"] for r in rows] == [1, 2, 3, 5, 6, 8, 9]
    assert [r["session_id"] for r in rows] == ["S1", "S2", "S3", "S4b", "S5", "S6", "S7"]
    assert rows[0]["_raw"] == json.dumps(BASE)  # the line itself is the raw record
    assert [r["_reject_reason"] for r in rows].count("invalid_type") == 2


def test_damage_in_a_later_block_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    good = [json.dumps({**BASE, "session_id": f"S{i}"}) for i in range(7)]
    text = "\r\n".join([*good[:3], "", *good[3:], '{"session_id": "bad",}', *good[:2]]) + "\r\n"
    (tmp_path / "raw" / "user_sessions.json").write_bytes(text.encode())
    with pytest.raises(InputFileError, match=r"user_sessions\.json, line 9: invalid JSON Lines record"):
        _extractor(tmp_path, chunk_size=3).extract_sessions()


def test_typed_columns_of_a_clean_block_match_the_per_record_text() -> None:
    # One JSON type per column (the usual export): integer lists, booleans and integers take the Arrow casts.
    lines = [
        json.dumps({**BASE, "session_id": f"S{i}", "items_viewed": list(range(i)), "conversion": i % 2 == 0})
        for i in range(4)
    ]
    buf = ("\n".join([*lines, json.dumps({**BASE, "items_viewed": None, "pages_viewed": -0})]) + "\n").encode()
    fast = extract._json_lines_fast_table(buf, 1, extract.SESSION_FIELDS, extract.SESSION_CONTRACT, 100_000)
    assert fast is not None
    assert fast.to_pydict() == _reference(buf)
    assert fast.column("items_viewed").to_pylist() == ["[]", "[0]", "[0, 1]", "[0, 1, 2]", None]
    assert fast.column("conversion").to_pylist()[:2] == ["true", "false"]
