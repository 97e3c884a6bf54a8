"""The orders rules, value by value: each column, each reject's reason/field/detail, the total-amount bound.

Written to kill mutants of include/transform.py's transform_orders that the rule tests let through;
only public behaviour of the rule function on an in-memory frame.
"""

from __future__ import annotations

from include.extract import LINE_COLUMN
from include.transform import TransformContext, transform_orders
from tests.mutation.frames import column, frame

CTX = TransformContext("o.csv", known_product_ids=frozenset({1, 7}), date_formats=("iso8601", "dd/mm/yyyy"))


def _order(**kw: str) -> dict[str, str]:
    base = {
        "order_reference": "R",
        "customer_email": "a@x.org",
        "product_id": "1",
        "quantity": "1",
        "unit_price": "1",
        "order_date": "2024-01-02",
        "status": "shipped",
        "payment_method": "card",
    }
    return {**base, **kw}


def test_orders_columns_exactly() -> None:
    rows = [
        _order(
            order_reference=" R1 ",
            customer_email=" Ann@X.ORG ",
            product_id="7",
            quantity="3",
            unit_price="10.5",
            order_date="2024-01-02T03:04:05Z",
            status=" Shipped ",
            payment_method=" PayPal ",
        ),
        # a free item is a valid order (price ≥ 0), and an empty payment method is stored as NULL
        _order(order_reference="R2", unit_price="0", payment_method="", order_date="31/01/2024"),
    ]
    valid, rejected = transform_orders(frame(rows), CTX)
    assert rejected.empty
    assert column(valid, "order_reference") == ["R1", "R2"]
    assert column(valid, "customer_email") == ["ann@x.org", "a@x.org"]
    assert column(valid, "product_id") == [7, 1]
    assert column(valid, "quantity") == [3, 1]
    assert column(valid, "unit_price") == ["10.50", "0.00"]
    assert column(valid, "total_amount") == ["31.50", "0.00"]
    # dd/mm/yyyy is accepted because the source configures it (not only the ISO default)
    assert [str(d) for d in valid["order_date"]] == ["2024-01-02 03:04:05+00:00", "2024-01-31 00:00:00+00:00"]
    assert column(valid, "status") == ["shipped", "shipped"]
    assert column(valid, "payment_method") == ["paypal", None]
    assert column(valid, LINE_COLUMN) == [2, 3]


def test_orders_total_amount_bound_is_exact() -> None:
    """numeric(14,2) holds totals up to 999999999999.99: exactly at the limit passes, one cent more is rejected."""
    rows = [
        # 239 × 4184100418.41 = 999999999999.99 (239 divides 10^14 − 1)
        _order(order_reference="at_limit", quantity="239", unit_price="4184100418.41"),
        # 100 × 9999999999.99 = 999999999999.00: the largest price times 100 still fits
        _order(order_reference="max_price", quantity="100", unit_price="9999999999.99"),
        # 125 × 8000000000.00 = 1000000000000.00: one cent over the largest total
        _order(order_reference="over", quantity="125", unit_price="8000000000.00"),
    ]
    valid, rejected = transform_orders(frame(rows), CTX)
    assert column(valid, "order_reference") == ["at_limit", "max_price"]
    assert column(valid, "total_amount") == ["999999999999.99", "999999999999.00"]
    assert column(rejected, "line_number") == [4]
    assert column(rejected, "reason") == ["total_amount_out_of_range"]
    assert column(rejected, "field") == ["quantity"]
    assert column(rejected, "detail") == ["quantity × unit_price must be below 1000000000000, got quantity '125'"]


def test_orders_rejects_name_reason_field_and_value() -> None:
    rows = [
        _order(order_reference=" "),
        _order(customer_email="a@b..c"),
        _order(product_id="x"),
        _order(product_id="2"),
        _order(quantity="0"),
        _order(unit_price="1.234"),
        _order(unit_price="-1"),
        _order(unit_price="abc"),
        _order(unit_price="10000000000"),
        _order(order_date="2024-02-30"),
        _order(order_date=""),
        _order(status=" "),
    ]
    valid, rejected = transform_orders(frame(rows), CTX)
    assert valid.empty
    assert column(rejected, "line_number") == list(range(2, 14))
    assert column(rejected, "reason") == [
        "missing_order_reference",
        "invalid_email",
        "invalid_product_id",
        "unknown_product",
        "invalid_quantity",
        "too_many_decimals",
        "invalid_unit_price",
        "invalid_unit_price",
        "invalid_unit_price",
        "invalid_order_date",
        "invalid_order_date",
        "missing_status",
    ]
    assert column(rejected, "field") == [
        "order_reference",
        "customer_email",
        "product_id",
        "product_id",
        "quantity",
        "unit_price",
        "unit_price",
        "unit_price",
        "unit_price",
        "order_date",
        "order_date",
        "status",
    ]
    money = "a plain decimal number ≥ 0 with at most 2 decimals (no exponent), below 10000000000"
    date = "a date with a year from 1900 to 2199 (ISO 8601 preferred)"
    assert column(rejected, "detail") == [
        "order_reference must not be empty",
        "customer_email must be an e-mail address such as name@example.com (value not shown: personal data)",
        "product_id must be a whole-number product id from 1 to 2147483647, got 'x'",
        "product_id must name a product of this run or of the warehouse, got '2'",
        "quantity must be an integer ≥ 1, got '0'",
        "unit_price must have at most 2 decimals (the warehouse keeps cents; no rounding), got '1.234'",
        f"unit_price must be {money}, got '-1'",
        f"unit_price must be {money}, got 'abc'",
        f"unit_price must be {money}, got '10000000000'",
        "order_date='2024-02-30' is not a valid date in the accepted formats (iso8601, dd/mm/yyyy; years 1900-2199)",
        f"order_date must be {date}, got ''",
        "status must not be empty",
    ]
    assert set(rejected["source"]) == {"orders"}
    assert set(rejected["source_file"]) == {"o.csv"}
