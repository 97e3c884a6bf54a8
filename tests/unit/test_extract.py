"""DataExtractor on real files: dialects, encodings and damage; every structural error names file and line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from include.config_loader import DEFAULT_CONFIG, load_config
from include.extract import DataExtractor, InputFileError, detect_delimiter

HEADER = [
    "order_reference",
    "customer_email",
    "product_id",
    "quantity",
    "unit_price",
    "order_date",
    "status",
    "payment_method",
]
ROWS = [
    ["ORD-1", "ann@example.com", "1", "2", "9.99", "2026-10-01T10:00:00", "shipped", "paypal"],
    ["ORD-2", "bøb@example.com", "2", "1", "5.00", "2026-10-02T10:00:00", "pending", "credit_card"],
]


def extractor(tmp_path: Path, **changes: object) -> DataExtractor:
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    settings = dataclasses.replace(load_config(DEFAULT_CONFIG), raw_data_dir=raw, **changes)  # type: ignore[arg-type]
    return DataExtractor(settings, tmp_path / "stage")


def write(tmp_path: Path, name: str, data: bytes) -> None:
    (tmp_path / "raw").mkdir(exist_ok=True)
    (tmp_path / "raw" / name).write_bytes(data)


def staged(manifest: dict) -> list[dict]:
    rows: list[dict] = []
    for part in manifest["parts"]:
        rows.extend(pq.read_table(part).to_pylist())
    return rows


@pytest.mark.parametrize("delimiter", [",", ";", "|", "\t"])
@pytest.mark.parametrize(("encoding", "bom"), [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("latin-1", b"")])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_dialects_and_encodings(tmp_path: Path, delimiter: str, encoding: str, bom: bytes, newline: str) -> None:
    text = newline.join(delimiter.join(r) for r in [HEADER, *ROWS]) + newline
    write(tmp_path, "orders.csv", bom + text.encode(encoding))
    m = extractor(tmp_path).extract_csv("orders").to_dict()
    rows = staged(m)
    assert m["rows_read"] == 2
    assert m["detail"]["delimiter"] == delimiter
    assert rows[1]["customer_email"] == "bøb@example.com"  # decoded right in every encoding
    assert rows[0]["order_reference"] == "ORD-1" and rows[0]["payment_method"] == "paypal"
    assert [r["_line"] for r in rows] == [2, 3]


def test_quoted_fields_and_header_whitespace(tmp_path: Path) -> None:
    text = (
        " Order_Reference , customer_email,product_id,quantity,unit_price,order_date,status,payment_method\n"
        '"ORD-1","ann@example.com",1,2,"1,299.00","2026-10-01","shipped, late","pay ""pal"""\n'
    )
    write(tmp_path, "orders.csv", text.encode())
    rows = staged(extractor(tmp_path).extract_csv("orders").to_dict())
    assert rows[0]["unit_price"] == "1,299.00"
    assert rows[0]["status"] == "shipped, late"
    assert rows[0]["payment_method"] == 'pay "pal"'


def test_too_many_fields_names_file_and_line(tmp_path: Path) -> None:
    text = ",".join(HEADER) + "\n" + ",".join(ROWS[0]) + "\n" + ",".join([*ROWS[0], "extra"]) + "\n"
    write(tmp_path, "orders.csv", text.encode())
    with pytest.raises(InputFileError) as err:
        extractor(tmp_path).extract_csv("orders")
    assert err.value.file == "orders.csv" and err.value.line == 3
    assert "expected 8 fields, found 9" in str(err.value)
    assert "orders.csv, line 3" in str(err.value)
    assert "ORD-1,<email>,1,2" in str(err.value) and "ann@example.com" not in str(err.value)  # no e-mail in logs


def test_missing_trailing_fields_are_structural_damage(tmp_path: Path) -> None:
    text = ",".join(HEADER) + "\n" + ",".join(ROWS[0][:5]) + "\n"
    write(tmp_path, "orders.csv", text.encode())
    with pytest.raises(InputFileError, match=r"orders\.csv, line 2: expected 8 fields, found 5"):
        extractor(tmp_path).extract_csv("orders")


def test_unterminated_quote(tmp_path: Path) -> None:
    text = (
        ",".join(HEADER)
        + "\n"
        + ",".join(ROWS[0])
        + '\n"ORD-3,ann@example.com,1,1,1,2026-10-01,x,y\n'
        + ",".join(ROWS[1])
        + "\n"
    )
    write(tmp_path, "orders.csv", text.encode())
    with pytest.raises(InputFileError, match=r"orders\.csv: unterminated quoted field"):
        extractor(tmp_path).extract_csv("orders")


def test_missing_required_header(tmp_path: Path) -> None:
    header = [h for h in HEADER if h != "quantity"]
    write(tmp_path, "orders.csv", (",".join(header) + "\n").encode())
    with pytest.raises(InputFileError) as err:
        extractor(tmp_path).extract_csv("orders")
    assert err.value.line == 1 and "missing required column(s) ['quantity']" in str(err.value)


def test_optional_column_may_be_absent(tmp_path: Path) -> None:
    header = HEADER[:-1]
    write(tmp_path, "orders.csv", (",".join(header) + "\n" + ",".join(ROWS[0][:-1]) + "\n").encode())
    rows = staged(extractor(tmp_path).extract_csv("orders").to_dict())
    assert rows[0]["payment_method"] == ""


def test_nul_byte_and_oversize_field_are_named(tmp_path: Path) -> None:
    write(
        tmp_path,
        "orders.csv",
        (",".join(HEADER) + "\n" + ",".join(ROWS[0]).replace("shipped", "ship\x00ped") + "\n").encode(),
    )
    with pytest.raises(InputFileError) as err:
        extractor(tmp_path).extract_csv("orders")
    assert (err.value.line, err.value.field) == (2, "status") and "NUL byte" in str(err.value)
    write(
        tmp_path,
        "orders.csv",
        (",".join(HEADER) + "\n" + ",".join(ROWS[0]).replace("shipped", "x" * 200) + "\n").encode(),
    )
    with pytest.raises(InputFileError) as err:
        extractor(tmp_path, max_field_chars=100).extract_csv("orders")
    assert (err.value.line, err.value.field) == (2, "status") and "200 > 100" in str(err.value)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="required input for 'orders' not found"):
        extractor(tmp_path).extract_csv("orders")
    m = extractor(tmp_path).extract_csv("customers")  # optional
    assert m.rows_read == 0 and m.parts == ()


def test_file_size_cap(tmp_path: Path) -> None:
    write(tmp_path, "orders.csv", (",".join(HEADER) + "\n").encode() + b"x" * 2048)
    with pytest.raises(InputFileError, match=r"larger than extract\.max_file_mb"):
        extractor(tmp_path, max_file_bytes=1024).extract_csv("orders")


SESSIONS = [
    {
        "session_id": "S1",
        "customer_email": "a@example.com",
        "session_start": "2026-10-01T10:00:00",
        "session_end": None,
        "pages_viewed": 3,
        "items_viewed": None,
        "items_added_to_cart": [1, 2],
        "conversion": True,
        "device_type": "mobile",
        "browser": "x",
        "ip_address": "1.2.3.4",
    },
    {
        "session_id": "S2",
        "customer_email": "b@example.com",
        "session_start": "2026-10-01T10:00:00",
        "pages_viewed": "2",
        "items_viewed": [3],
        "items_added_to_cart": [],
        "conversion": "false",
    },
    {
        "session_id": "S3",
        "customer_email": "c@example.com",
        "session_start": "2026-10-01T10:00:00",
        "pages_viewed": 1,
        "conversion": 1,
    },
]


@pytest.mark.parametrize("layout", ["array", "jsonl"])
def test_sessions_json_array_and_lines(tmp_path: Path, layout: str) -> None:
    data = json.dumps(SESSIONS, indent=1) if layout == "array" else "\n".join(json.dumps(s) for s in SESSIONS) + "\n"
    write(tmp_path, "user_sessions.json", data.encode())
    rows = staged(extractor(tmp_path).extract_sessions().to_dict())
    assert [r["session_id"] for r in rows] == ["S1", "S2", "S3"]
    assert [r["conversion"] for r in rows] == ["true", "false", "1"]
    assert rows[0]["items_viewed"] is None and rows[0]["items_added_to_cart"] == "[1, 2]"
    assert json.loads(rows[1]["_raw"])["pages_viewed"] == "2"
    if layout == "jsonl":
        assert [r["_line"] for r in rows] == [1, 2, 3]


def test_invalid_json_lines_names_line(tmp_path: Path) -> None:
    write(tmp_path, "user_sessions.json", (json.dumps(SESSIONS[0]) + '\n{"session_id": "S2",\n').encode())
    with pytest.raises(InputFileError) as err:
        extractor(tmp_path).extract_sessions()
    assert err.value.line == 2 and "user_sessions.json, line 2" in str(err.value)


def test_invalid_json_array_and_non_objects(tmp_path: Path) -> None:
    write(tmp_path, "user_sessions.json", b'[{"session_id": "S1"}, {"session_id": ')
    with pytest.raises(InputFileError, match="invalid JSON after item 1"):
        extractor(tmp_path).extract_sessions()
    write(tmp_path, "user_sessions.json", b'[{"session_id": "S1"}, 42]')
    with pytest.raises(InputFileError, match=r"line 2: expected a JSON object, found int"):
        extractor(tmp_path).extract_sessions()


def test_products_file_is_flattened(tmp_path: Path) -> None:
    products = [
        {
            "id": 1,
            "title": "Mug",
            "price": 5.5,
            "description": "d",
            "category": "home",
            "image": "http://i",
            "rating": {"rate": 4.2, "count": 7},
        }
    ]
    write(tmp_path, "products.json", json.dumps(products).encode())
    rows = staged(extractor(tmp_path).extract_products().to_dict())
    assert rows[0]["id"] == "1" and rows[0]["rating_rate"] == "4.2" and rows[0]["rating_count"] == "7"


def test_delimiter_detection_prefers_expected_names() -> None:
    assert detect_delimiter("a;b|c;order_reference;quantity", ["order_reference", "quantity"]) == ";"


def test_stray_quote_that_swallows_lines_is_named(tmp_path: Path) -> None:
    text = (
        ",".join(HEADER)
        + "\n"
        + ",".join(ROWS[0])
        + '\nR2,b@example.com,1,1,1,2026-10-01,"paid,card\nR3,c@example.com,1,1,1,2026-10-01,paid",card\n'
        + ",".join(ROWS[1])
        + "\n"
    )
    write(tmp_path, "orders.csv", text.encode())
    with pytest.raises(InputFileError) as err:
        extractor(tmp_path).extract_csv("orders")
    assert (err.value.line, err.value.field) == (3, "status")
    assert "line break inside a field" in str(err.value)
    assert "c@example.com" not in str(err.value)


def test_windows_1252_is_told_apart_from_latin_1(tmp_path: Path) -> None:
    text = ",".join(HEADER) + "\n" + ",".join(ROWS[0]).replace("paypal", "pay €uro") + "\n"
    write(tmp_path, "orders.csv", text.encode("cp1252"))
    m = extractor(tmp_path).extract_csv("orders").to_dict()
    assert m["detail"]["encoding"] == "cp1252"
    assert staged(m)[0]["payment_method"] == "pay €uro"


def test_nan_in_json_lines_is_structural_damage(tmp_path: Path) -> None:
    write(tmp_path, "user_sessions.json", b'{"session_id": "S1", "pages_viewed": NaN}\n')
    with pytest.raises(
        InputFileError, match=r"user_sessions\.json, line 1: invalid JSON Lines record: NaN is not valid JSON"
    ):
        extractor(tmp_path).extract_sessions()


def test_parts_boundaries_keep_lines_and_duplicates(tmp_path: Path) -> None:
    from include.transform import DataTransformer

    sessions = [{**SESSIONS[2], "session_id": sid} for sid in ("A", "B", "C", "A", "D")]
    write(tmp_path, "user_sessions.json", ("\n".join(json.dumps(s) for s in sessions) + "\n").encode())
    ex = extractor(tmp_path, chunk_size=2)
    m = ex.extract_sessions().to_dict()
    assert len(m["parts"]) == 3
    assert [r["_line"] for r in staged(m)] == [1, 2, 3, 4, 5]
    r = DataTransformer(ex.settings, tmp_path / "stage").transform_source("user_sessions", m)
    # The duplicate reaches the clean file: the load's DISTINCT ON keeps the last one.
    assert (r.rows_read, r.rows_valid, r.rows_duplicate, r.rows_loaded) == (5, 5, 0, 5)


def test_csv_parts_hold_at_most_chunk_size_rows_in_file_order(tmp_path: Path) -> None:
    # Arrow reads small blocks (bounded read-ahead); the parts are assembled from them up to chunk_size rows.
    n = 60_000
    lines = [",".join(HEADER)] + [
        f"ORD-{i},c{i % 97}@example.com,{1 + i % 5},{1 + i % 3},{i % 50}.25,2026-10-01T10:00:00,shipped,paypal"
        for i in range(n)
    ]
    write(tmp_path, "orders.csv", ("\n".join(lines) + "\n").encode())
    m = extractor(tmp_path, chunk_size=25_000).extract_csv("orders").to_dict()
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in m["parts"]]
    assert sum(sizes) == n and len(sizes) >= 3 and max(sizes) <= 25_000
    rows = staged(m)
    assert [r["order_reference"] for r in rows] == [f"ORD-{i}" for i in range(n)]
    assert [r["_line"] for r in rows] == list(range(2, n + 2))
