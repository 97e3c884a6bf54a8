"""The extract's encoding and empty-input decisions, exactly, on real files (no database).

Written for mutation testing of include/extract.py (`make mutate`): the mixed-encoding
quarantine, the failures it must not swallow, and what an input without records gives.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pytest_httpserver import HTTPServer

from include.config_loader import Settings
from include.extract import DataExtractor, InputFileError
from tests.mutation.inputs import extract_settings

HEADER = b"order_reference,customer_email,product_id,quantity,unit_price,order_date,status,payment_method\n"
GOOD = "R1,a@x.org,1,1,1,2024-01-01,caf\u00e9,card\n".encode()  # valid UTF-8 "é" (C3 A9) at byte 126
BAD = b"R2,a@x.org,1,1,1,2024-01-01,caf\xe9,card\n"  # cp1252 "é" (E9) at byte 165
MIXED = "mixed encoding: valid UTF-8 multi-byte characters (first at line 2, byte offset 126 (0xC3)) and a byte that"


def _settings(tmp_path: Path, data: bytes, *, mode: str = "quarantine", **source: object) -> Settings:
    settings = extract_settings(tmp_path, sources={"orders": source}, on_mixed_encoding=mode)
    (tmp_path / "raw" / "orders.csv").write_bytes(data)
    return settings


def _rows(parts: tuple[str, ...]) -> list[dict[str, object]]:
    return [row for part in parts for row in pq.read_table(part).to_pylist()]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_mixed_file_under_quarantine_marks_the_bad_line_and_keeps_the_rest(tmp_path: Path, bom: bytes) -> None:
    m = DataExtractor(_settings(tmp_path, bom + HEADER + GOOD + BAD), tmp_path / "run").extract_csv("orders")
    assert m.rows_read == 2
    assert m.detail == {"encoding": "utf-8-sig" if bom else "utf-8", "delimiter": ",", "mixed_encoding_lines": 1}
    rows = _rows(m.parts)
    assert [r["order_reference"] for r in rows] == ["R1", "R2"]  # the header's first name survives a BOM
    assert rows[0]["status"] == "café" and rows[0]["_reject_reason"] is None
    assert (rows[1]["_line"], rows[1]["_reject_reason"], rows[1]["_reject_field"]) == (3, "invalid_encoding", "_line")
    offset = 165 + len(bom)
    assert rows[1]["_reject_detail"] == (
        f"byte 0xE9 at line 3, byte offset {offset} (0xE9) is not UTF-8 (the file mixes UTF-8 and another encoding)"
    )


def test_a_mixed_file_fails_in_fail_mode_naming_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as err:
        DataExtractor(_settings(tmp_path, HEADER + GOOD + BAD, mode="fail"), tmp_path / "run").extract_csv("orders")
    assert (err.value.file, err.value.line) == ("orders.csv", 3)
    assert str(err.value).startswith(f"orders.csv, line 3: {MIXED}")


def test_declared_utf8_quarantines_any_bad_line_even_without_multibyte_characters(tmp_path: Path) -> None:
    settings = _settings(tmp_path, HEADER + BAD, encoding="utf-8")
    m = DataExtractor(settings, tmp_path / "run").extract_csv("orders")
    assert m.detail["mixed_encoding_lines"] == 1
    assert [r["_reject_reason"] for r in _rows(m.parts)] == ["invalid_encoding"]


def test_auto_reads_a_file_that_is_all_cp1252_without_quarantine(tmp_path: Path) -> None:
    m = DataExtractor(_settings(tmp_path, HEADER + BAD), tmp_path / "run").extract_csv("orders")
    assert m.detail == {"encoding": "cp1252", "delimiter": ","}
    assert _rows(m.parts)[0]["status"] == "café"


def test_a_declared_single_byte_encoding_contradicted_by_utf8_fails_even_under_quarantine(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as err:
        DataExtractor(_settings(tmp_path, HEADER + GOOD, encoding="latin-1"), tmp_path / "run").extract_csv("orders")
    assert (err.value.file, err.value.line) == ("orders.csv", 2)
    assert "declared encoding latin-1 but the file is valid UTF-8" in str(err.value)


def test_a_header_that_is_not_utf8_in_a_mixed_file_fails(tmp_path: Path) -> None:
    header = HEADER.replace(b"status", b"st\xe9tus")
    with pytest.raises(InputFileError) as err:
        DataExtractor(_settings(tmp_path, header + GOOD), tmp_path / "run").extract_csv("orders")
    assert str(err.value) == "orders.csv, line 1: header is not UTF-8 in a mixed-encoding file"
    assert err.value.line == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "orders.csv: required input has no records (0 bytes)"),
        (
            HEADER,
            "orders.csv: required input has no records (header only)"
            " (set sources.orders.allow_header_only: true if that is expected)",
        ),
    ],
)
def test_a_required_input_without_records_fails_naming_the_file(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(InputFileError) as err:
        DataExtractor(_settings(tmp_path, data), tmp_path / "run").extract_csv("orders")
    assert str(err.value) == message


def test_an_allowed_header_only_input_is_an_empty_manifest(tmp_path: Path) -> None:
    m = DataExtractor(_settings(tmp_path, HEADER, allow_header_only=True), tmp_path / "run").extract_csv("orders")
    assert (m.source, m.file, m.parts, m.rows_read) == ("orders", "orders.csv", (), 0)
    assert m.detail["empty"] == "header only"
    assert m.sha256 is not None and len(m.sha256) == 64


def test_an_optional_empty_input_is_reported_and_clears_older_parts(tmp_path: Path) -> None:
    settings = _settings(tmp_path, b"", required=False)
    out = tmp_path / "run" / "extract" / "orders"
    out.mkdir(parents=True)
    (out / "part-00000.parquet").write_bytes(b"left by an earlier attempt")
    m = DataExtractor(settings, tmp_path / "run").extract_csv("orders")
    assert (m.parts, m.rows_read, m.detail["empty"], m.staged_dir) == ((), 0, "0 bytes", str(out))
    assert not list(out.glob("part-*.parquet"))


def _products_settings(tmp_path: Path, body: str, url: str | None = None) -> Settings:
    settings = extract_settings(tmp_path, url=url)
    (tmp_path / "raw" / "products.json").write_text(body, encoding="utf-8")
    return settings


PRODUCTS = [{"id": 1, "title": "Mug", "price": 5.5, "rating": {"rate": 4.2, "count": 7}}, {"id": 2, "title": "Cup"}]


def test_products_from_a_file_are_numbered_from_1_flattened_and_hashed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps(PRODUCTS)
    with caplog.at_level(logging.INFO, logger="include.extract"):
        m = DataExtractor(_products_settings(tmp_path, body), tmp_path / "run").extract_products()
    assert (m.source, m.file, m.rows_read, m.detail) == ("products", "products.json", 2, {"origin": "file"})
    assert m.staged_dir == str(tmp_path / "run" / "extract" / "products")
    assert m.sha256 == hashlib.sha256(body.encode()).hexdigest()
    rows = _rows(m.parts)
    assert [(r["_line"], r["id"], r["rating_rate"], r["rating_count"]) for r in rows] == [
        (1, "1", "4.2", "7"),
        (2, "2", None, None),
    ]
    assert rows[0]["_raw"] == '{"id": 1, "title": "Mug", "price": 5.5, "rating_rate": 4.2, "rating_count": 7}'
    assert "extracted products: 2 from products.json" in caplog.messages


def test_products_from_the_api_name_the_redacted_url_and_hash_the_decoded_body(
    tmp_path: Path, httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/products").respond_with_json(PRODUCTS)
    url = httpserver.url_for("/products")
    settings = _products_settings(tmp_path, "[]", url=url + "?key=SECRET")
    with caplog.at_level(logging.INFO, logger="include.extract"):
        m = DataExtractor(settings, tmp_path / "run").extract_products()
    assert (m.source, m.file, m.rows_read, m.detail) == ("products", url, 2, {"origin": "api"})
    assert m.staged_dir == str(tmp_path / "run" / "extract" / "products")
    assert m.sha256 == hashlib.sha256(json.dumps(PRODUCTS, sort_keys=True).encode()).hexdigest()
    assert [(r["_line"], r["title"], r["rating_rate"]) for r in _rows(m.parts)] == [(1, "Mug", "4.2"), (2, "Cup", None)]
    assert f"extracted products: 2 from API {url}" in caplog.messages


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "[]",
            "products.json: required input has no records (no records)"
            " (set sources.products.allow_header_only: true if that is expected)",
        ),
        (
            '[{"id": 1, "title": "a\\u0000b"}]',
            "products.json, line 1: NUL character in a value (PostgreSQL text cannot hold it)",
        ),
        ("[3]", "products.json, line 1: expected a JSON object, found int (value: '3')"),
    ],
)
def test_products_that_cannot_be_staged_fail_naming_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(InputFileError) as err:
        DataExtractor(_products_settings(tmp_path, body), tmp_path / "run").extract_products()
    assert str(err.value) == message
