"""Boundaries of the ETL thresholds: exactly at each limit, one step below and one step above.

Covers transform.max_reject_rate (the guard), extract.max_file_mb, extract.max_field_chars,
extract.chunk_size and the ranges config.yaml accepts for them. Settings come from a real config
file through `load_config` (the public face), so the tests survive a change of the settings model.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from include.config_loader import DEFAULT_CONFIG, ConfigError, Settings, load_config
from include.extract import DataExtractor, InputFileError
from include.transform import DataTransformer, RejectRateExceeded, SourceResult, check_reject_rates

BOM = b"\xef\xbb\xbf"
ORDER_HEADER = [
    "order_reference",
    "customer_email",
    "product_id",
    "quantity",
    "unit_price",
    "order_date",
    "status",
    "payment_method",
]


def settings_with(tmp_path: Path, change: Callable[[dict[str, Any]], None] | None = None) -> Settings:
    """Settings from the shipped config.yaml with `change` applied, inputs under tmp_path/raw."""
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["paths"].update(
        raw_data_dir=str(tmp_path / "raw"), staging_dir=str(tmp_path / "stage"), reports_dir=str(tmp_path / "rep")
    )
    if change:
        change(raw)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    (tmp_path / "raw").mkdir(exist_ok=True)
    return load_config(path)


def staged_rows(manifest: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for part in manifest.parts:
        rows.extend(pq.read_table(part).to_pylist())
    return rows


def order_row(i: int, quantity: str = "1", status: str = "shipped") -> list[str]:
    return [f"ORD-{i:06d}", "ann@example.com", "1", quantity, "9.99", "2026-10-01T10:00:00", status, "paypal"]


def csv_bytes(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(ORDER_HEADER)
    w.writerows(rows)
    return buf.getvalue().encode()


def session(i: int, **kw: Any) -> dict[str, Any]:
    return {
        "session_id": f"S{i}",
        "customer_email": "ann@example.com",
        "session_start": "2026-10-01T10:00:00",
        "session_end": "2026-10-01T10:05:00",
        "pages_viewed": 1,
        "conversion": False,
        **kw,
    }


# ------------------------------------------------------------------------ reject-rate guard (pure decision)
def result(read: int, rejected: int, source: str = "orders") -> SourceResult:
    return SourceResult(
        source, f"{source}.csv", "clean.csv", "rejects.csv", rows_read=read, rows_valid=read - rejected,
        rows_rejected=rejected,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("read", "rejected", "limit", "passes"),
    [
        (1000, 99, 0.10, True),  # one row below the limit
        (1000, 100, 0.10, True),  # exactly at the limit: allowed (the guard is "above")
        (1000, 101, 0.10, False),  # one row past it
        (10, 1, 0.10, True),
        (10, 2, 0.10, False),
        (100, 0, 0.0, True),  # limit 0: not a single reject allowed ...
        (100, 1, 0.0, False),  # ... and the first one fails
        (100, 100, 1.0, True),  # limit 1: everything may be rejected
        (0, 0, 0.0, True),  # an empty source has rate 0, not a division by zero
    ],
)
def test_reject_rate_guard_decision(read: int, rejected: int, limit: float, passes: bool) -> None:
    results = {"orders": result(read, rejected), "products": result(5, 0, "products")}
    if passes:
        check_reject_rates(results, limit)
        return
    with pytest.raises(RejectRateExceeded) as err:
        check_reject_rates(results, limit)
    assert f"orders (orders.csv): {rejected}/{read} rows rejected" in str(err.value)
    assert "products" not in str(err.value)  # only the source above the limit is named


@pytest.mark.parametrize(("bad", "passes"), [(0, True), (1, True), (2, False)])
def test_reject_rate_guard_through_extract_and_transform(tmp_path: Path, bad: int, passes: bool) -> None:
    """10 orders against transform.max_reject_rate 0.10 in config: 1 bad row is exactly at the limit."""
    s = settings_with(tmp_path, lambda r: r["transform"].update(max_reject_rate=0.10))
    raw = tmp_path / "raw"
    (raw / "orders.csv").write_bytes(csv_bytes([order_row(i, quantity="0" if i < bad else "1") for i in range(10)]))
    (raw / "products.json").write_text(json.dumps([{"id": 1, "title": "Mug", "price": 5}]))
    (raw / "user_sessions.json").write_text(json.dumps([session(1)]))
    ex = DataExtractor(s, tmp_path / "stage")
    manifests = {
        "orders": ex.extract_csv("orders").to_dict(),
        "customers": ex.extract_csv("customers").to_dict(),  # optional, absent
        "user_sessions": ex.extract_sessions().to_dict(),
        "products": ex.extract_products().to_dict(),
    }
    transformer = DataTransformer(s, tmp_path / "stage")
    if passes:
        results = transformer.transform_all(manifests)
        assert (results["orders"].rows_read, results["orders"].rows_rejected) == (10, bad)
        return
    with pytest.raises(RejectRateExceeded, match=r"orders \(orders.csv\): 2/10 rows rejected = 20.0% > 10.0%"):
        transformer.transform_all(manifests)


# --------------------------------------------------------------------------------- JSON with a UTF-8 BOM
@pytest.mark.parametrize("layout", ["array", "jsonl"])
def test_sessions_file_with_utf8_bom(tmp_path: Path, layout: str) -> None:
    sessions = [session(1), session(2, customer_email="bø@example.com")]
    text = json.dumps(sessions) if layout == "array" else "\n".join(json.dumps(x) for x in sessions) + "\n"
    s = settings_with(tmp_path)
    (tmp_path / "raw" / "user_sessions.json").write_bytes(BOM + text.encode("utf-8"))
    m = DataExtractor(s, tmp_path / "stage").extract_sessions()
    rows = staged_rows(m)
    assert m.rows_read == 2
    assert [r["session_id"] for r in rows] == ["S1", "S2"]
    assert rows[1]["customer_email"] == "bø@example.com"
    assert all("\ufeff" not in (r["_raw"] or "") for r in rows)  # the BOM is not part of the first record


@pytest.mark.parametrize("layout", ["array", "jsonl"])
def test_products_file_with_utf8_bom(tmp_path: Path, layout: str) -> None:
    products = [{"id": 1, "title": "Mug", "price": 5.5}, {"id": 2, "title": "Bol", "price": 1}]
    text = json.dumps(products) if layout == "array" else "\n".join(json.dumps(x) for x in products) + "\n"
    s = settings_with(tmp_path)
    (tmp_path / "raw" / "products.json").write_bytes(BOM + text.encode("utf-8"))
    rows = staged_rows(DataExtractor(s, tmp_path / "stage").extract_products())
    assert [(r["id"], r["title"]) for r in rows] == [("1", "Mug"), ("2", "Bol")]


# ------------------------------------------------------------------------------------ extract.max_file_mb
def csv_of_exact_size(size: int) -> bytes:
    """A valid orders CSV of exactly `size` bytes (the last row's payment_method pads it)."""
    head = csv_bytes([])
    row = csv_bytes([order_row(0)])[len(head) :]
    n = (size - len(head)) // len(row) - 1
    body = csv_bytes([order_row(i) for i in range(n)])
    last = csv_bytes([order_row(n)])[len(head) :]
    pad = size - len(body) - len(last)
    assert pad >= 0
    last = last.replace(b"paypal\n", b"paypal" + b"x" * pad + b"\n")
    data = body + last
    assert len(data) == size
    return data


@pytest.mark.parametrize(("offset", "accepted"), [(-1, True), (0, True), (1, False)])
def test_max_file_mb_boundary(tmp_path: Path, offset: int, accepted: bool) -> None:
    s = settings_with(tmp_path, lambda r: r["extract"].update(max_file_mb=1))
    limit = 1024 * 1024
    (tmp_path / "raw" / "orders.csv").write_bytes(csv_of_exact_size(limit + offset))
    ex = DataExtractor(s, tmp_path / "stage")
    if accepted:
        m = ex.extract_csv("orders")
        assert m.rows_read > 10_000 and m.rows_read == len(staged_rows(m))
        return
    with pytest.raises(InputFileError) as err:
        ex.extract_csv("orders")
    assert f"file is {limit + 1} bytes, larger than extract.max_file_mb ({limit} bytes)" in str(err.value)


# -------------------------------------------------------------------------------- extract.max_field_chars
@pytest.mark.parametrize(("length", "accepted"), [(63, True), (64, True), (65, False)])
@pytest.mark.parametrize("char", ["x", "é"])  # characters, not bytes
def test_max_field_chars_boundary_csv(tmp_path: Path, length: int, accepted: bool, char: str) -> None:
    s = settings_with(tmp_path, lambda r: r["extract"].update(max_field_chars=64))
    (tmp_path / "raw" / "orders.csv").write_bytes(
        csv_bytes([order_row(1), order_row(2, status=char * length), order_row(3)])
    )
    ex = DataExtractor(s, tmp_path / "stage")
    if accepted:
        rows = staged_rows(ex.extract_csv("orders"))
        assert rows[1]["status"] == char * length
        return
    with pytest.raises(InputFileError) as err:
        ex.extract_csv("orders")
    assert (err.value.line, err.value.field) == (3, "status")
    assert "longer than extract.max_field_chars (65 > 64" in str(err.value)


@pytest.mark.parametrize(("length", "accepted"), [(63, True), (64, True), (65, False)])
def test_max_field_chars_boundary_json(tmp_path: Path, length: int, accepted: bool) -> None:
    s = settings_with(tmp_path, lambda r: r["extract"].update(max_field_chars=64))
    lines = [session(1), session(2, browser="é" * length)]
    (tmp_path / "raw" / "user_sessions.json").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    ex = DataExtractor(s, tmp_path / "stage")
    if accepted:
        assert staged_rows(ex.extract_sessions())[1]["browser"] == "é" * length
        return
    with pytest.raises(InputFileError) as err:
        ex.extract_sessions()
    assert (err.value.line, err.value.field) == (2, "browser")
    assert "longer than extract.max_field_chars (65 > 64)" in str(err.value)


# -------------------------------------------------------------------------------------- extract.chunk_size
@pytest.mark.parametrize("layout", ["array", "jsonl"])
@pytest.mark.parametrize(("rows", "parts"), [(999, 1), (1000, 1), (1001, 2)])
def test_chunk_size_boundary_json(tmp_path: Path, layout: str, rows: int, parts: int) -> None:
    """chunk_size 1000 (the smallest allowed): 1000 records are one part, one record more opens a second."""
    s = settings_with(tmp_path, lambda r: r["extract"].update(chunk_size=1000))
    sessions = [session(i) for i in range(rows)]
    sessions[-1]["session_id"] = "S0"  # the last record repeats the first key, across the part boundary
    text = json.dumps(sessions) if layout == "array" else "\n".join(json.dumps(x) for x in sessions) + "\n"
    (tmp_path / "raw" / "user_sessions.json").write_text(text)
    m = DataExtractor(s, tmp_path / "stage").extract_sessions()
    assert len(m.parts) == parts
    assert [pq.read_metadata(p).num_rows for p in m.parts] == ([rows] if parts == 1 else [1000, rows - 1000])
    assert [r["_line"] for r in staged_rows(m)] == list(range(1, rows + 1))
    r = DataTransformer(s, tmp_path / "stage").transform_source("user_sessions", m.to_dict())
    # The duplicate (one key twice) reaches the clean file: the load's DISTINCT ON keeps the last one.
    assert (r.rows_read, r.rows_valid, r.rows_duplicate, r.rows_loaded) == (rows, rows, 0, rows)


@pytest.mark.parametrize("rows", [1000, 1001])
def test_chunk_size_boundary_csv_loses_no_row(tmp_path: Path, rows: int) -> None:
    s = settings_with(tmp_path, lambda r: r["extract"].update(chunk_size=1000))
    (tmp_path / "raw" / "orders.csv").write_bytes(csv_bytes([order_row(i) for i in range(rows)]))
    m = DataExtractor(s, tmp_path / "stage").extract_csv("orders")
    staged = staged_rows(m)
    assert m.rows_read == rows == len(staged)
    assert [r["_line"] for r in staged] == list(range(2, rows + 2))
    assert staged[-1]["order_reference"] == f"ORD-{rows - 1:06d}"


# ------------------------------------------------------------------------------- ranges config.yaml accepts
@pytest.mark.parametrize(
    ("section", "key", "value", "accepted"),
    [
        ("extract", "chunk_size", 999, False),
        ("extract", "chunk_size", 1000, True),
        ("extract", "chunk_size", 5_000_000, True),
        ("extract", "chunk_size", 5_000_001, False),
        ("extract", "max_file_mb", 0, False),
        ("extract", "max_file_mb", 1, True),
        ("extract", "max_field_chars", 63, False),
        ("extract", "max_field_chars", 64, True),
        ("transform", "max_reject_rate", -0.01, False),
        ("transform", "max_reject_rate", 0, True),
        ("transform", "max_reject_rate", 1, True),
        ("transform", "max_reject_rate", 1.01, False),
    ],
)
def test_config_ranges_of_thresholds(tmp_path: Path, section: str, key: str, value: float, accepted: bool) -> None:
    def change(r: dict[str, Any]) -> None:
        r[section][key] = value

    if accepted:
        s = settings_with(tmp_path, change)
        got = {
            "chunk_size": s.chunk_size,
            "max_file_mb": s.max_file_bytes // (1024 * 1024),
            "max_field_chars": s.max_field_chars,
            "max_reject_rate": s.max_reject_rate,
        }[key]
        assert got == value
        return
    with pytest.raises(ConfigError) as err:
        settings_with(tmp_path, change)
    assert f"{section}.{key}" in str(err.value)
