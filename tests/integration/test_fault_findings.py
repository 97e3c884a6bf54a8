"""Issue 12, findings 1, 2, 4, 5, 7: no silent corruption in parsing, through the whole pipeline on a real PostgreSQL.

Each test reproduces one finding of the fault campaign: on the code before the fix it loaded wrong data
(mojibake names, a JSON object as a product name, 1.005 stored as 1.00, 03/04 guessed as 4 March) or
failed/succeeded for the wrong reason (empty inputs). Table digests show what a refused run leaves.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from pytest_httpserver import HTTPServer

from include import pipeline
from include.config_loader import DEFAULT_CONFIG, Settings, load_config
from include.extract import InputFileError

TABLES = ("customers", "products", "orders", "user_sessions", "rejected_records", "etl_runs")
ORDER_HEADER = "order_reference,customer_email,product_id,quantity,unit_price,order_date,status,payment_method"
CUSTOMERS = [
    ("ana.lopez@example.com", "Ana", "López", "es", "2025-01-02"),
    ("zoe.muller@example.com", "Zoë", "Müller", "de", "2025-02-03"),
    ("sean.moreau@example.com", "Seán", "Moreau", "ie", "2025-03-04"),
]


def csv_text(header: str, rows: list[tuple[str, ...]]) -> str:
    buf = io.StringIO()
    buf.write(header + "\n")
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_inputs(raw: Path, *, orders: list[tuple[str, ...]] | None = None, products: list[dict] | None = None) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    products = products or [
        {"id": i, "title": f"Product {i}", "price": p, "category": "home", "rating": {"rate": 4, "count": 2}}
        for i, p in ((1, 9.99), (2, 49.5))
    ]
    (raw / "products.json").write_text(json.dumps(products))
    (raw / "customers.csv").write_text(csv_text("email,first_name,last_name,country,signup_date", CUSTOMERS))
    orders = orders or [
        ("ORD-1", "ana.lopez@example.com", "1", "2", "9.99", "2026-10-01T10:00:00", "shipped", "paypal")
    ]
    (raw / "orders.csv").write_text(csv_text(ORDER_HEADER, orders))
    sessions = [
        {
            "session_id": "S1",
            "customer_email": "ana.lopez@example.com",
            "session_start": "2026-10-01T09:00:00",
            "pages_viewed": 1,
        }
    ]
    (raw / "user_sessions.json").write_text(json.dumps(sessions))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    write_inputs(tmp_path / "raw")
    # The reject-rate guard is not under test here: tiny inputs with several deliberate rejects.
    return dataclasses.replace(
        load_config(DEFAULT_CONFIG),
        raw_data_dir=tmp_path / "raw",
        staging_dir=tmp_path / "staging",
        max_reject_rate=1.0,
    )


def with_source(settings: Settings, source: str, **changes: Any) -> Settings:
    sources = {**settings.sources, source: dataclasses.replace(settings.sources[source], **changes)}
    return dataclasses.replace(settings, sources=sources)


def digest(url: str) -> dict[str, str]:
    """md5 of every row of each table (all columns)."""
    stmt = sql.SQL("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t")
    with psycopg.connect(url) as conn:
        return {t: conn.execute(stmt.format(sql.Identifier(t))).fetchone()[0] for t in TABLES}  # type: ignore[index]


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def rejects(url: str, source: str) -> list[tuple[Any, ...]]:
    return query(
        url, "SELECT line_number, reason, field, detail FROM rejected_records WHERE source = %s ORDER BY 1", source
    )


# ---- 1: mixed encoding -------------------------------------------------------------------------
def _mojibake_file(raw: Path) -> tuple[int, int]:
    """customers.csv in UTF-8 with one stray Latin-1 byte (0xE9) on line 4; returns (line, byte offset)."""
    text = csv_text("email,first_name,last_name,country,signup_date", CUSTOMERS).encode()
    stray = b"rene.dubois@example.com,Ren\xe9,Dubois,fr,2025-04-05\n"
    (raw / "customers.csv").write_bytes(text + stray)
    return 5, len(text) + stray.index(b"\xe9")


def test_mixed_encoding_fails_naming_file_line_offset_and_changes_nothing(settings: Settings, fresh_db: str) -> None:
    pipeline.run_all(settings, "run-good", fresh_db)
    before = digest(fresh_db)
    assert query(fresh_db, "SELECT last_name FROM customers WHERE email = 'ana.lopez@example.com'") == [("López",)]
    line, offset = _mojibake_file(settings.raw_data_dir)
    with pytest.raises(InputFileError) as err:
        pipeline.run_all(settings, "run-mojibake", fresh_db)
    msg = str(err.value)
    assert msg.startswith(f"customers.csv, line {line}: mixed encoding")
    assert f"byte offset {offset} (0xE9)" in msg
    assert digest(fresh_db) == before  # no LÃ³pez: the customers stay as they were


def test_mixed_encoding_quarantine_mode_rejects_only_that_line(settings: Settings, fresh_db: str) -> None:
    line, offset = _mojibake_file(settings.raw_data_dir)
    out = pipeline.run_all(dataclasses.replace(settings, on_mixed_encoding="quarantine"), "run-q", fresh_db)
    assert out["sources"]["customers"]["rows_rejected"] == 1
    assert rejects(fresh_db, "customers") == [
        (
            line,
            "invalid_encoding",
            "_line",
            f"byte 0xE9 at line {line}, byte offset {offset} (0xE9) is not UTF-8 "
            "(the file mixes UTF-8 and another encoding)",
        )
    ]
    names = query(fresh_db, "SELECT first_name, last_name FROM customers WHERE first_name IS NOT NULL ORDER BY 2")
    assert names == [("Ana", "López"), ("Seán", "Moreau"), ("Zoë", "Müller")]


def test_declared_single_byte_encoding_decides_for_an_ambiguous_file(settings: Settings, fresh_db: str) -> None:
    # A cp1252 file that happens to hold "Ã©" (bytes C3 A9, valid UTF-8) and "é" (E9): auto refuses it as mixed.
    rows = [("ana.lopez@example.com", "AnÃ©", "Lé", "es", "2025-01-02")]
    data = csv_text("email,first_name,last_name,country,signup_date", rows).encode("cp1252")
    (settings.raw_data_dir / "customers.csv").write_bytes(data)
    with pytest.raises(InputFileError, match="mixed encoding"):
        pipeline.run_all(settings, "run-auto", fresh_db)
    pipeline.run_all(with_source(settings, "customers", encoding="cp1252"), "run-cp1252", fresh_db)
    assert query(fresh_db, "SELECT first_name, last_name FROM customers WHERE email = 'ana.lopez@example.com'") == [
        ("AnÃ©", "Lé")
    ]


# ---- 2: JSON types -----------------------------------------------------------------------------
NESTED = [
    {"id": 1, "title": "Mug", "price": 9.99},
    {"id": 2, "title": {"en": "Lamp", "fr": "Lampe"}, "price": 49.5},
    {"id": 3, "title": "Chair", "price": [20]},
]


def _assert_nested_quarantined(url: str) -> None:
    assert query(url, "SELECT product_id, name FROM products ORDER BY 1") == [(1, "Mug")]
    assert [r[1:] for r in rejects(url, "products")] == [
        ("invalid_type", "title", "title must be a string, got object"),
        ("invalid_type", "price", "price must be a number, got array"),
    ]


def test_nested_json_in_products_file_is_quarantined(settings: Settings, fresh_db: str) -> None:
    (settings.raw_data_dir / "products.json").write_text(json.dumps(NESTED))
    pipeline.run_all(settings, "run-nested", fresh_db)
    _assert_nested_quarantined(fresh_db)


def test_nested_json_from_products_api_is_quarantined(
    settings: Settings, fresh_db: str, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/products").respond_with_json(NESTED)
    api = dataclasses.replace(settings.products_api, url=httpserver.url_for("/products"))
    pipeline.run_all(dataclasses.replace(settings, products_api=api), "run-api", fresh_db)
    _assert_nested_quarantined(fresh_db)


def test_nested_json_in_sessions_is_quarantined(settings: Settings, fresh_db: str) -> None:
    sessions = [
        {
            "session_id": "S1",
            "customer_email": "ana.lopez@example.com",
            "session_start": "2026-10-01T09:00:00",
            "pages_viewed": 1,
        },
        {
            "session_id": ["S2"],
            "customer_email": "ana.lopez@example.com",
            "session_start": "2026-10-01T09:00:00",
            "pages_viewed": 1,
        },
        {
            "session_id": "S3",
            "customer_email": "ana.lopez@example.com",
            "session_start": {"at": "2026-10-01"},
            "pages_viewed": 1,
        },
    ]
    (settings.raw_data_dir / "user_sessions.json").write_text("\n".join(json.dumps(s) for s in sessions))  # JSON Lines
    pipeline.run_all(settings, "run-sessions", fresh_db)
    assert query(fresh_db, "SELECT session_id FROM user_sessions") == [("S1",)]
    assert rejects(fresh_db, "user_sessions") == [
        (2, "invalid_type", "session_id", "session_id must be a string, got array"),
        (3, "invalid_type", "session_start", "session_start must be a string, got object"),
    ]


# ---- 4: decimals -------------------------------------------------------------------------------
def test_money_and_quantities_are_exact_or_rejected(tmp_path: Path, fresh_db: str) -> None:
    base = ("ana.lopez@example.com", "1", "{q}", "{p}", "2026-10-01T10:00:00", "shipped", "paypal")
    cases = [("ORD-OK", "3", "1.50"), ("ORD-A", "1", "1.005"), ("ORD-B", "1", "0.005"), ("ORD-C", "1e1", "2")]
    cases += [("ORD-D", "2.0", "2"), ("ORD-E", "1", "1e1"), ("ORD-F", "2", "0.10")]
    orders = [(ref, *[v.format(q=q, p=p) for v in base]) for ref, q, p in cases]
    products = [{"id": 1, "title": "Mug", "price": 9.99}, {"id": 2, "title": "Pen", "price": 1.005}]
    write_inputs(tmp_path / "raw", orders=orders, products=products)
    settings = dataclasses.replace(
        load_config(DEFAULT_CONFIG), raw_data_dir=tmp_path / "raw", staging_dir=tmp_path / "stg", max_reject_rate=1.0
    )
    pipeline.run_all(settings, "run-decimals", fresh_db)
    assert query(fresh_db, "SELECT order_reference, quantity, unit_price, total_amount FROM orders ORDER BY 1") == [
        ("ORD-F", 2, Decimal("0.10"), Decimal("0.20")),
        ("ORD-OK", 3, Decimal("1.50"), Decimal("4.50")),
    ]
    assert [(r[1], r[2]) for r in rejects(fresh_db, "orders")] == [
        ("too_many_decimals", "unit_price"),  # 1.005: PostgreSQL would round to 1.01, a float path gave 1.00
        ("too_many_decimals", "unit_price"),  # 0.005
        ("invalid_quantity", "quantity"),  # 1e1 (was 10)
        ("invalid_quantity", "quantity"),  # 2.0 (was 2)
        ("invalid_unit_price", "unit_price"),  # 1e1: exponent notation is not plain decimal text
    ]
    assert [(r[1], r[2]) for r in rejects(fresh_db, "products")] == [("too_many_decimals", "price")]
    assert query(fresh_db, "SELECT product_id, price FROM products") == [(1, Decimal("9.99"))]


# ---- 5: dates ----------------------------------------------------------------------------------
def _slash_orders(raw: Path) -> None:
    orders = [
        ("ORD-1", "ana.lopez@example.com", "1", "1", "9.99", "03/04/2026", "shipped", "paypal"),
        ("ORD-2", "ana.lopez@example.com", "1", "1", "9.99", "2026-04-05T10:00:00", "shipped", "paypal"),
        ("ORD-3", "ana.lopez@example.com", "1", "1", "9.99", "25/04/2026 10:30", "shipped", "paypal"),
    ]
    (raw / "orders.csv").write_text(csv_text(ORDER_HEADER, orders))


def test_slash_dates_are_rejected_unless_configured(settings: Settings, fresh_db: str) -> None:
    _slash_orders(settings.raw_data_dir)
    pipeline.run_all(settings, "run-iso", fresh_db)
    assert [r[0] for r in query(fresh_db, "SELECT order_reference FROM orders")] == ["ORD-2"]
    got = rejects(fresh_db, "orders")
    assert [(r[0], r[1]) for r in got] == [(2, "invalid_order_date"), (4, "invalid_order_date")]
    assert got[0][3] == (
        "order_date='03/04/2026' is not a valid date in the accepted formats (iso8601; years 1900-2199)"
    )


def test_french_shop_reads_day_first(settings: Settings, fresh_db: str) -> None:
    _slash_orders(settings.raw_data_dir)
    french = with_source(settings, "orders", date_formats=("dd/mm/yyyy", "iso8601"))
    pipeline.run_all(french, "run-fr", fresh_db)
    rows = query(fresh_db, "SELECT order_reference, order_date AT TIME ZONE 'UTC' FROM orders ORDER BY 1")
    assert [(r, d.isoformat()) for r, d in rows] == [
        ("ORD-1", "2026-04-03T00:00:00"),  # 3 April, not 4 March
        ("ORD-2", "2026-04-05T10:00:00"),
        ("ORD-3", "2026-04-25T10:30:00"),
    ]


def test_both_slash_formats_make_ambiguous_dates_rejects(settings: Settings, fresh_db: str) -> None:
    _slash_orders(settings.raw_data_dir)
    both = with_source(settings, "orders", date_formats=("dd/mm/yyyy", "mm/dd/yyyy", "iso8601"))
    pipeline.run_all(both, "run-both", fresh_db)
    assert [r[0] for r in query(fresh_db, "SELECT order_reference FROM orders ORDER BY 1")] == ["ORD-2", "ORD-3"]
    assert rejects(fresh_db, "orders") == [
        (
            2,
            "invalid_order_date",
            "order_date",
            "order_date='03/04/2026' is ambiguous between the accepted formats "
            "(dd/mm/yyyy, mm/dd/yyyy, iso8601); not guessed",
        )
    ]


# ---- 7: empty and header-only inputs -----------------------------------------------------------
@pytest.mark.parametrize("content", [b"", b"email,first_name,last_name,country,signup_date\n"])
def test_empty_optional_file_is_a_reported_no_op(
    settings: Settings, fresh_db: str, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (settings.raw_data_dir / "customers.csv").write_bytes(content)
    out = pipeline.run_all(settings, "run-empty-optional", fresh_db)
    assert out["sources"]["customers"]["rows_read"] == 0
    assert out["sources"]["orders"]["rows_loaded"] == 1  # the other sources load as usual
    assert "input for 'customers' (customers.csv) has no records" in caplog.text
    assert query(fresh_db, "SELECT email, first_name FROM customers") == [("ana.lopez@example.com", None)]


def test_header_only_required_file_fails_unless_allowed(settings: Settings, fresh_db: str) -> None:
    pipeline.run_all(settings, "run-1", fresh_db)
    before = digest(fresh_db)
    (settings.raw_data_dir / "orders.csv").write_text(ORDER_HEADER + "\n")
    with pytest.raises(InputFileError, match=r"^orders\.csv: required input has no records \(header only\)") as err:
        pipeline.run_all(settings, "run-header-only", fresh_db)
    assert "sources.orders.allow_header_only" in str(err.value)
    assert digest(fresh_db) == before
    out = pipeline.run_all(with_source(settings, "orders", allow_header_only=True), "run-allowed", fresh_db)
    assert out["sources"]["orders"]["rows_read"] == 0
    assert query(fresh_db, "SELECT count(*) FROM orders") == [(1,)]  # nothing deleted, nothing added


def test_mixed_json_file_fails_naming_line_and_offset(settings: Settings, fresh_db: str) -> None:
    good = json.dumps(
        {"session_id": "S1", "customer_email": "zoë@example.com", "session_start": "2026-10-01"}, ensure_ascii=False
    )
    bad = b'{"session_id": "S2", "browser": "N\xe9tscape"}'
    (settings.raw_data_dir / "user_sessions.json").write_bytes(good.encode() + b"\n" + bad + b"\n")
    before = digest(fresh_db)
    # JSON cannot quarantine a line (an array has none): even in quarantine mode the whole file fails.
    quarantine = dataclasses.replace(settings, on_mixed_encoding="quarantine")
    with pytest.raises(InputFileError, match=r"^user_sessions\.json, line 2: mixed encoding") as err:
        pipeline.run_all(quarantine, "run-json-mixed", fresh_db)
    offset = len(good.encode()) + 1 + bad.index(b"\xe9")
    assert f"byte offset {offset} (0xE9)" in str(err.value)
    assert "zoë" not in str(err.value)
    assert digest(fresh_db) == before
