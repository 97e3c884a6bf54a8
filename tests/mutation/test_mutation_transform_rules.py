"""The products and customers rules, value by value (each column, each reject's reason/field/detail).

Written to kill mutants of include/transform.py's rule functions; only public behaviour of one rule
function on an in-memory frame (no files, manifests or duplicate counting).
"""

from __future__ import annotations

import pandas as pd

from include.config_loader import DEFAULT_CONFIG, load_config
from include.extract import LINE_COLUMN
from include.transform import TransformContext, transform_customers, transform_products
from tests.mutation.frames import column, frame

SETTINGS = load_config(DEFAULT_CONFIG)


def _product(**kw: str) -> dict[str, str]:
    base = {
        "id": "1",
        "title": "T",
        "price": "1",
        "description": "d",
        "category": "c",
        "image": "i",
        "rating_rate": "1",
        "rating_count": "1",
    }
    return {**base, **kw}


def test_products_columns_exactly() -> None:
    rows = [
        _product(id="1", price="0", description="", category=" Men ", image="", rating_rate="99.994", rating_count="0"),
        _product(id="2", price="10.5", category="", image="http://i", rating_rate="-0.001", rating_count="2147483647"),
        _product(id="3", rating_rate="0", rating_count="2147483648"),
        _product(id="4", rating_rate="99.995", rating_count="-1"),
        _product(id="5", rating_rate="0.5", rating_count="1.5"),
    ]
    valid, rejected = transform_products(frame(rows), TransformContext("p.csv", SETTINGS.price_tiers))
    assert rejected.empty
    assert column(valid, "product_id") == [1, 2, 3, 4, 5]
    assert column(valid, "name") == ["T"] * 5
    assert column(valid, "description") == [None, "d", "d", "d", "d"]
    assert column(valid, "price") == ["0.00", "10.50", "1.00", "1.00", "1.00"]
    assert column(valid, "category") == ["men", None, "c", "c", "c"]
    assert column(valid, "image_url") == [None, "http://i", "i", "i", "i"]
    # numeric(4,2): rounded to cents, kept from 0 up to (not including) 100, else NULL
    assert column(valid, "rating_rate") == [99.99, 0.0, 0.0, None, 0.5]
    # integer: whole numbers from 0 to 2147483647, else NULL
    assert column(valid, "rating_count") == [0, 2147483647, None, None, None]
    assert str(valid["rating_count"].dtype) == "Int64"
    assert column(valid, LINE_COLUMN) == [2, 3, 4, 5, 6]


def test_products_rejects_name_reason_field_and_value() -> None:
    rows = [
        _product(id="x", title="", price="1.234"),
        _product(id="6", title="", price="1.234"),
        _product(id="7", price="1.234"),
        _product(id="8", price="-1"),
        _product(id="9", price="10000000000"),
        _product(id="10", price="9999999999.99"),
    ]
    valid, rejected = transform_products(frame(rows), TransformContext("p.csv", SETTINGS.price_tiers))
    assert column(valid, "product_id") == [10]
    assert column(valid, "price") == ["9999999999.99"]
    assert column(rejected, "line_number") == [2, 3, 4, 5, 6]
    assert column(rejected, "reason") == [
        "invalid_product_id",
        "missing_title",
        "too_many_decimals",
        "invalid_price",
        "invalid_price",
    ]
    assert column(rejected, "field") == ["id", "title", "price", "price", "price"]
    money = "a plain decimal number ≥ 0 with at most 2 decimals (no exponent), below 10000000000"
    assert column(rejected, "detail") == [
        "id must be a whole-number product id from 1 to 2147483647, got 'x'",
        "title must not be empty",
        "price must have at most 2 decimals (the warehouse keeps cents; no rounding), got '1.234'",
        f"price must be {money}, got '-1'",
        f"price must be {money}, got '10000000000'",
    ]
    assert set(rejected["source"]) == {"products"}
    assert set(rejected["source_file"]) == {"p.csv"}


def test_customers_columns_and_rejects_exactly() -> None:
    rows = [
        {"email": " Ann@Example.COM ", "first_name": "", "last_name": " L ", "country": " de ", "signup_date": ""},
        {"email": "b@x.org", "first_name": "F", "last_name": "", "country": "", "signup_date": "2024-02-30"},
        {"email": "bad", "first_name": "F", "last_name": "", "country": "", "signup_date": "2024-02-30"},
        {"email": "c@x.org", "first_name": "F", "last_name": "", "country": "", "signup_date": "01/02/2024"},
        {"email": "d@x.org", "first_name": "F", "last_name": "N", "country": "fr", "signup_date": "2024-03-01T10:00Z"},
    ]
    ctx = TransformContext("c.csv", date_formats=("iso8601", "dd/mm/yyyy"))
    valid, rejected = transform_customers(frame(rows), ctx)
    assert column(valid, "email") == ["ann@example.com", "c@x.org", "d@x.org"]
    assert column(valid, "first_name") == [None, "F", "F"]
    assert column(valid, "last_name") == ["L", None, "N"]
    assert column(valid, "country") == ["DE", None, "FR"]
    assert column(valid, "signup_date") == [None, "2024-02-01", "2024-03-01"]
    assert column(valid, LINE_COLUMN) == [2, 5, 6]
    assert column(rejected, "line_number") == [3, 4]
    assert column(rejected, "reason") == ["invalid_signup_date", "invalid_email"]
    assert column(rejected, "field") == ["signup_date", "email"]
    assert column(rejected, "detail") == [
        "signup_date='2024-02-30' is not a valid date in the accepted formats (iso8601, dd/mm/yyyy; years 1900-2199)",
        "email must be an e-mail address such as name@example.com (value not shown: personal data)",
    ]
    assert set(rejected["source"]) == {"customers"}


def test_customers_default_date_format_is_iso_only() -> None:
    rows = [{"email": "a@x.org", "first_name": "", "last_name": "", "country": "", "signup_date": "01/02/2024"}]
    valid, rejected = transform_customers(frame(rows), TransformContext("c.csv"))
    assert valid.empty
    assert column(rejected, "reason") == ["invalid_signup_date"]
    assert column(rejected, "detail") == [
        "signup_date='01/02/2024' is not a valid date in the accepted formats (iso8601; years 1900-2199)"
    ]


def test_price_tiers_first_matching_upper_bound_wins() -> None:
    from include.config_loader import PriceTier
    from include.transform import price_tier

    tiers = (PriceTier("low", 10.0), PriceTier("mid", 100.0), PriceTier("high", None))
    prices = pd.Series([0.0, 10.0, 10.01, 100.0, 100.01, 1e12], index=[5, 6, 7, 8, 9, 10])
    tiered = price_tier(prices, tiers)
    assert tiered.tolist() == ["low", "low", "mid", "mid", "high", "high"]
    assert tiered.index.tolist() == [5, 6, 7, 8, 9, 10]
    assert tiered.dtype == object
    four = (PriceTier("a", 10.0), PriceTier("b", 100.0), PriceTier("c", 1000.0), PriceTier("d", None))
    assert price_tier(pd.Series([5.0, 50.0, 500.0, 5000.0]), four).tolist() == ["a", "b", "c", "d"]
    open_middle = (PriceTier("a", 10.0), PriceTier("b", None), PriceTier("c", None))
    assert price_tier(pd.Series([5.0, 5000.0]), open_middle).tolist() == ["a", "b"]


def test_a_rule_records_the_first_failure_per_row_and_fails_a_missing_verdict() -> None:
    from include.transform import _Rules

    r = _Rules(pd.Index([10, 11, 12, 13]))
    r.check(pd.Series([True, pd.NA, False, True], index=r.reason.index, dtype="boolean"), "first", "a")
    r.check(
        pd.Series([True, False, False, False], index=r.reason.index),
        "second",
        "b",
        pd.Series(["d0", "d1", "d2", "d3"], index=r.reason.index),
    )
    assert r.failed.tolist() == [False, True, True, True]
    assert column(pd.DataFrame({"x": r.reason}), "x") == [None, "first", "first", "second"]
    assert column(pd.DataFrame({"x": r.field}), "x") == [None, "a", "a", "b"]
    assert column(pd.DataFrame({"x": r.detail}), "x") == [None, None, None, "d3"]
