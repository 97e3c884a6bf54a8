"""Every transform rule: what passes, what is rejected (with which reason), what is derived."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from include.config_loader import DEFAULT_CONFIG, IpPolicy, load_config
from include.extract import LINE_COLUMN
from include.transform import (
    DataTransformer,
    RejectRateExceeded,
    TransformContext,
    ip_networks,
    transform_customers,
    transform_orders,
    transform_products,
    transform_sessions,
)

SETTINGS = load_config(DEFAULT_CONFIG)
CTX = TransformContext("test.csv", SETTINGS.price_tiers, SETTINGS.ip_policy, frozenset({1, 2, 3}))


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows).astype(object).where(lambda d: d.notna(), None)
    df[LINE_COLUMN] = range(2, 2 + len(df))
    return df


def order(**kw: Any) -> dict[str, Any]:
    base = {
        "order_reference": "ORD-1",
        "customer_email": "ann@example.com",
        "product_id": "1",
        "quantity": "2",
        "unit_price": "9.99",
        "order_date": "2026-10-01T12:00:00",
        "status": "shipped",
        "payment_method": "paypal",
    }
    return {**base, **kw}


def test_valid_order_is_cleaned_and_enriched() -> None:
    valid, rejected = transform_orders(
        frame(
            [
                order(
                    customer_email="  Ann@Example.COM ",
                    status=" Shipped ",
                    payment_method="PayPal",
                    quantity="3",
                    unit_price="19.99",
                )
            ]
        ),
        CTX,
    )
    assert rejected.empty
    row = valid.iloc[0]
    assert row["customer_email"] == "ann@example.com"
    assert row["status"] == "shipped" and row["payment_method"] == "paypal"
    assert row["quantity"] == 3 and row["unit_price"] == "19.99"  # exact decimal text, never a float
    assert row["total_amount"] == "59.97"
    assert str(row["order_date"]) == "2026-10-01 12:00:00+00:00"


@pytest.mark.parametrize(
    ("override", "reason", "field"),
    [
        ({"order_reference": "  "}, "missing_order_reference", "order_reference"),
        ({"customer_email": "not-an-email"}, "invalid_email", "customer_email"),
        ({"customer_email": "a b@example.com"}, "invalid_email", "customer_email"),
        ({"customer_email": "ann@example"}, "invalid_email", "customer_email"),
        ({"product_id": "abc"}, "invalid_product_id", "product_id"),
        ({"product_id": "999"}, "unknown_product", "product_id"),
        ({"quantity": "0"}, "invalid_quantity", "quantity"),
        ({"quantity": "1.5"}, "invalid_quantity", "quantity"),
        ({"quantity": "abc"}, "invalid_quantity", "quantity"),
        ({"unit_price": "-1"}, "invalid_unit_price", "unit_price"),
        ({"unit_price": ""}, "invalid_unit_price", "unit_price"),
        ({"order_date": "not a date"}, "invalid_order_date", "order_date"),
        ({"order_date": "2026-13-45"}, "invalid_order_date", "order_date"),
        ({"status": ""}, "missing_status", "status"),
    ],
)
def test_order_rules_reject_with_reason(override: dict[str, str], reason: str, field: str) -> None:
    valid, rejected = transform_orders(frame([order(**override)]), CTX)
    assert valid.empty
    assert rejected.loc[0, "reason"] == reason
    assert rejected.loc[0, "field"] == field
    assert rejected.loc[0, "line_number"] == 2
    assert rejected.loc[0, "source"] == "orders" and rejected.loc[0, "source_file"] == "test.csv"
    assert json.loads(rejected.loc[0, "raw_record"])["order_reference"] == order(**override)["order_reference"]


def test_reject_detail_never_repeats_an_email() -> None:
    _, rejected = transform_orders(frame([order(customer_email="secret.person@example")]), CTX)
    assert "secret.person" not in rejected.loc[0, "detail"]
    _, rejected = transform_orders(frame([order(quantity="-4")]), CTX)
    assert "'-4'" in rejected.loc[0, "detail"]


def test_first_broken_rule_is_the_reason() -> None:
    _, rejected = transform_orders(frame([order(order_reference="", quantity="0")]), CTX)
    assert rejected.loc[0, "reason"] == "missing_order_reference"


def test_dates_with_offsets_and_other_formats_are_utc() -> None:
    valid, rejected = transform_orders(
        frame(
            [
                order(order_date="2026-10-01T12:00:00+02:00"),
                order(order_reference="B", order_date="2026-10-01 08:30"),
                order(order_reference="C", order_date="Oct 3, 2026 10:00"),
            ]
        ),
        CTX,
    )
    assert [str(d) for d in valid["order_date"]] == ["2026-10-01 10:00:00+00:00", "2026-10-01 08:30:00+00:00"]
    # Spelled-out dates are not a configured format (issue 12 #5: configured formats only, never guessed).
    assert list(rejected["reason"]) == ["invalid_order_date"]
    assert "accepted formats (iso8601" in rejected.loc[0, "detail"]


def session(**kw: Any) -> dict[str, Any]:
    base = {
        "session_id": "S1",
        "customer_email": "ann@example.com",
        "session_start": "2026-10-01T10:00:00",
        "session_end": "2026-10-01T10:05:30",
        "pages_viewed": "4",
        "items_viewed": "[1, 2, 3]",
        "items_added_to_cart": "[2]",
        "conversion": "true",
        "device_type": "Mobile",
        "browser": "Firefox",
        "ip_address": "203.0.113.77",
    }
    return {**base, **kw}


def test_valid_session_is_enriched_and_ip_truncated() -> None:
    valid, rejected = transform_sessions(frame([session()]), CTX)
    assert rejected.empty
    row = valid.iloc[0]
    assert row["duration_seconds"] == 330
    assert row["items_viewed_count"] == 3 and row["items_added_to_cart_count"] == 1
    assert row["converted"] is True or row["converted"] == True  # noqa: E712 - numpy bool
    assert row["ip_network"] == "203.0.113.0/24"
    assert row["device_type"] == "mobile"


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("True", True), ("1", True), ("false", False), ("0", False), (None, False)]
)
def test_conversion_booleans(value: str | None, expected: bool) -> None:
    valid, _ = transform_sessions(frame([session(conversion=value)]), CTX)
    assert bool(valid.iloc[0]["converted"]) is expected


def test_null_items_viewed_means_empty_and_no_end_means_no_duration() -> None:
    valid, rejected = transform_sessions(frame([session(items_viewed=None, session_end=None)]), CTX)
    assert rejected.empty
    assert valid.iloc[0]["items_viewed"] == "[]" and valid.iloc[0]["items_viewed_count"] == 0
    assert pd.isna(valid.iloc[0]["duration_seconds"])


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"session_id": ""}, "missing_session_id"),
        ({"customer_email": "nobody"}, "invalid_email"),
        ({"session_start": "soon"}, "invalid_session_start"),
        ({"session_end": "later"}, "invalid_session_end"),
        ({"session_end": "2026-10-01T09:00:00"}, "session_end_before_start"),
        ({"pages_viewed": "-1"}, "invalid_pages_viewed"),
        ({"items_viewed": '{"a": 1}'}, "invalid_items_viewed"),
        ({"conversion": "maybe"}, "invalid_conversion"),
    ],
)
def test_session_rules(override: dict[str, str], reason: str) -> None:
    valid, rejected = transform_sessions(frame([session(**override)]), CTX)
    assert valid.empty and rejected.loc[0, "reason"] == reason


def test_ip_policies() -> None:
    ips = pd.Series(["203.0.113.77", "2001:db8:abcd:12:1:2:3:4", "", "garbage"])

    def values(s: pd.Series) -> list[str | None]:
        return [None if pd.isna(v) else v for v in s]

    assert values(ip_networks(ips, IpPolicy("truncate", 24, 48))) == [
        "203.0.113.0/24",
        "2001:db8:abcd::/48",
        None,
        None,
    ]
    assert values(ip_networks(ips, IpPolicy("truncate", 16, 32)))[:2] == ["203.0.0.0/16", "2001:db8::/32"]
    assert values(ip_networks(ips, IpPolicy("keep", 24, 48)))[0] == "203.0.113.77/32"
    assert values(ip_networks(ips, IpPolicy("drop", 24, 48))) == [None, None, None, None]


def test_ipv6_networks_repeated_values_and_policies() -> None:
    # Each distinct address is converted once per chunk; a repeat, an invalid one between repeats and the same
    # addresses under another policy in the next call must each get their own network (no stale memo).
    ips = pd.Series(
        ["2001:db8:1:2::1", "nope", "2001:db8:1:2::1", "2001:db8:ff::5", "2001:db8:1:2::1"], index=[7, 3, 9, 1, 4]
    )

    def values(s: pd.Series) -> list[str | None]:
        return [None if pd.isna(v) else v for v in s]

    assert values(ip_networks(ips, IpPolicy("truncate", 24, 48))) == [
        "2001:db8:1::/48",
        None,
        "2001:db8:1::/48",
        "2001:db8:ff::/48",
        "2001:db8:1::/48",
    ]
    assert values(ip_networks(ips, IpPolicy("truncate", 24, 64)))[0] == "2001:db8:1:2::/64"
    assert values(ip_networks(ips, IpPolicy("keep", 24, 48)))[3] == "2001:db8:ff::5/128"
    assert list(ip_networks(ips, IpPolicy("truncate", 24, 48)).index) == [7, 3, 9, 1, 4]


def test_products_rules_and_price_tiers() -> None:
    rows = [
        {
            "id": "1",
            "title": " Mug ",
            "price": "5",
            "category": " Home Goods ",
            "rating_rate": "4.5",
            "rating_count": "10",
        },
        {"id": "2", "title": "Lamp", "price": "20", "category": "home"},
        {"id": "3", "title": "Chair", "price": "20.01", "category": "home"},
        {"id": "4", "title": "Sofa", "price": "1000", "category": "home"},
        {"id": "x", "title": "Bad id", "price": "1"},
        {"id": "6", "title": "", "price": "1"},
        {"id": "7", "title": "Negative", "price": "-3"},
    ]
    valid, rejected = transform_products(frame(rows), CTX)
    assert list(valid["price_tier"]) == ["budget", "budget", "standard", "premium"]
    assert valid.iloc[0]["name"] == "Mug" and valid.iloc[0]["category"] == "home goods"
    assert list(rejected["reason"]) == ["invalid_product_id", "missing_title", "invalid_price"]


def test_customers_rules() -> None:
    rows = [
        {
            "email": " Bob@Example.com ",
            "first_name": " Bob ",
            "last_name": "",
            "country": "de",
            "signup_date": "2025-02-03",
        },
        {"email": "broken", "first_name": "X"},
        {"email": "c@example.com", "signup_date": "31/31/2025"},
    ]
    valid, rejected = transform_customers(frame(rows), CTX)
    first = {k: (None if pd.isna(v) else v) for k, v in valid.iloc[0].to_dict().items()}
    assert first == {
        "email": "bob@example.com",
        "first_name": "Bob",
        "last_name": None,
        "country": "DE",
        "signup_date": "2025-02-03",
        LINE_COLUMN: 2,
    }
    assert list(rejected["reason"]) == ["invalid_email", "invalid_signup_date"]


def _stage(tmp_path: Path, source: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    part = tmp_path / f"{source}.parquet"
    df = frame(rows)
    pq.write_table(
        pa.Table.from_pandas(df.astype({c: object for c in df.columns if c != LINE_COLUMN}), preserve_index=False), part
    )
    return {"file": f"{source}.x", "parts": [str(part)]}


def test_duplicates_are_kept_for_the_load_to_decide_not_rejected(tmp_path: Path) -> None:
    # Last-wins is decided by the load's DISTINCT ON across every file of the run (flat memory: no key set
    # here); tests/integration/test_landing.py counts the duplicates in the database.
    t = DataTransformer(SETTINGS, tmp_path)
    manifest = _stage(
        tmp_path,
        "orders",
        [
            order(order_reference="A"),
            order(order_reference="B"),
            order(order_reference="A", status="cancelled"),
            order(order_reference="C", quantity="0"),
        ],
    )
    r = t.transform_source("orders", manifest, frozenset({1}))
    assert (r.rows_read, r.rows_valid, r.rows_rejected, r.rows_duplicate, r.rows_loaded) == (4, 3, 1, 0, 3)
    clean = pd.read_csv(r.clean_path)
    assert list(clean["order_reference"]) == ["A", "B", "A"]  # the loader keeps the last A (highest _line)
    assert list(clean[LINE_COLUMN]) == [2, 3, 4]


def test_reject_rate_guard_names_source_rate_and_reasons(tmp_path: Path) -> None:
    t = DataTransformer(SETTINGS, tmp_path)
    manifests = {
        "products": _stage(tmp_path, "products", [{"id": "1", "title": "Mug", "price": "5"}]),
        "customers": {"file": "customers.csv", "parts": []},
        "orders": _stage(
            tmp_path, "orders", [order(order_reference=f"O{i}", quantity="0" if i < 3 else "1") for i in range(10)]
        ),
        "user_sessions": _stage(tmp_path, "user_sessions", [session()]),
    }
    with pytest.raises(RejectRateExceeded) as err:
        t.transform_all(manifests)
    msg = str(err.value)
    assert "orders (orders.x): 3/10 rows rejected = 30.0% > 10.0%" in msg
    assert "'invalid_quantity': 3" in msg


@pytest.mark.parametrize("value", ["3pm", "Jan", "now", "today", "0001-01-01", "2500-01-01T00:00:00", "12/13"])
def test_dates_without_a_plausible_year_are_rejected(value: str) -> None:
    valid, rejected = transform_orders(frame([order(order_date=value)]), CTX)
    assert valid.empty and rejected.loc[0, "reason"] == "invalid_order_date"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"quantity": "3000000000"}, "invalid_quantity"),
        ({"unit_price": "10000000000"}, "invalid_unit_price"),
        ({"quantity": "2000000000", "unit_price": "9000"}, "total_amount_out_of_range"),
    ],
)
def test_values_beyond_the_column_types_are_quarantined(override: dict[str, str], reason: str) -> None:
    valid, rejected = transform_orders(frame([order(**override)]), CTX)
    assert valid.empty and rejected.loc[0, "reason"] == reason


def test_session_and_product_ranges() -> None:
    _, rejected = transform_sessions(frame([session(pages_viewed="10000000000")]), CTX)
    assert rejected.loc[0, "reason"] == "invalid_pages_viewed"
    _, rejected = transform_sessions(
        frame([session(session_start="1950-01-01T00:00:00", session_end="2026-01-01T00:00:00")]), CTX
    )
    assert rejected.loc[0, "reason"] == "session_too_long"
    valid, _ = transform_products(
        frame([{"id": "1", "title": "x", "price": "1", "rating_rate": "99.999", "rating_count": "1e12"}]), CTX
    )
    assert pd.isna(valid.iloc[0]["rating_rate"]) and pd.isna(valid.iloc[0]["rating_count"])


def test_ipv4_with_leading_zeros_is_not_an_address() -> None:
    assert pd.isna(ip_networks(pd.Series(["010.0.0.1"]), IpPolicy("truncate", 24, 48))[0])
