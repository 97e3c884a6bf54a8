"""The sentences of the transform: a reject's detail and the reject-rate guard's message, pinned exactly.

Written to kill mutants of include/transform.py's _describe and check_reject_rates.
"""

from __future__ import annotations

from collections import Counter

import pytest

from include.transform import RejectRateExceeded, SourceResult, _describe, check_reject_rates


def test_detail_never_repeats_an_email_value() -> None:
    assert _describe("invalid_email", "customer_email", "secret@example.com") == (
        "customer_email must be an e-mail address such as name@example.com (value not shown: personal data)"
    )
    # whatever the rule, an e-mail field's value is personal data and is not repeated
    assert _describe("odd_rule", "email", "secret@example.com") == (
        "email must be an e-mail address such as name@example.com (value not shown: personal data)"
    )


def test_detail_shows_the_value_found() -> None:
    assert _describe("invalid_quantity", "quantity", "x") == "quantity must be an integer ≥ 1, got 'x'"
    assert _describe("invalid_quantity", "quantity", None) == "quantity must be an integer ≥ 1, got ''"
    assert _describe("invalid_quantity", "quantity", float("nan")) == "quantity must be an integer ≥ 1, got ''"
    assert _describe("invalid_quantity", "quantity", 1.5) == "quantity must be an integer ≥ 1, got '1.5'"


def test_detail_cuts_long_values_at_60_characters() -> None:
    assert _describe("invalid_quantity", "quantity", "9" * 60) == f"quantity must be an integer ≥ 1, got '{'9' * 60}'"
    assert _describe("invalid_quantity", "quantity", "9" * 61) == f"quantity must be an integer ≥ 1, got '{'9' * 60}'…"


def test_detail_of_a_reason_without_a_sentence() -> None:
    assert _describe("odd_rule", "status", "v") == "status fails odd_rule, got 'v'"


def _result(source: str, read: int, rejected: int, reasons: dict[str, int]) -> SourceResult:
    return SourceResult(
        source, f"{source}.csv", "c", "r", rows_read=read, rows_rejected=rejected, reasons=Counter(reasons)
    )


def test_guard_names_every_source_over_the_limit_with_its_top_three_reasons() -> None:
    results = {
        "orders": _result("orders", 10, 4, {"a": 1, "b": 4, "c": 3, "d": 2}),
        "products": _result("products", 10, 1, {"a": 1}),
        "sessions": _result("sessions", 4, 2, {"x": 2}),
    }
    with pytest.raises(RejectRateExceeded) as err:
        check_reject_rates(results, 0.1)
    assert str(err.value) == (
        "reject-rate guard: nothing loaded. "
        "orders (orders.csv): 4/10 rows rejected = 40.0% > 10.0%; top reasons {'b': 4, 'c': 3, 'd': 2}"
        " | sessions (sessions.csv): 2/4 rows rejected = 50.0% > 10.0%; top reasons {'x': 2}"
    )
