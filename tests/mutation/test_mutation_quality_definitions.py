"""The database-free part of the quality check definitions: which columns a check reads, its parameters.

What the checks' SQL finds is tested on PostgreSQL in tests/quality.
"""

from __future__ import annotations

from typing import Any

from include.quality import parse_quality_config
from include.quality.base import NUMERIC, TEMPORAL, ColumnRef


def _spec(check: dict[str, Any], table: str = "orders", max_reject_rate: float = 0.10) -> Any:
    cfg = parse_quality_config({"tables": {table: [check]}}, max_reject_rate=max_reject_rate)
    return cfg.checks[0]


def test_derived_product_reads_each_factor_with_its_key() -> None:
    spec = _spec({"check": "derived_product", "column": "total_amount", "factors": ["quantity", "unit_price"]})
    assert spec.check.extra_columns(spec) == [
        ColumnRef("orders", "quantity", f"{spec.key}.factors[0]", NUMERIC),
        ColumnRef("orders", "unit_price", f"{spec.key}.factors[1]", NUMERIC),
    ]


def test_derived_duration_reads_start_and_end_as_timestamps() -> None:
    spec = _spec(
        {"check": "derived_duration", "column": "duration_seconds", "start": "session_start", "end": "session_end"},
        table="sessions",
    )
    assert spec.check.extra_columns(spec) == [
        ColumnRef("sessions", "session_start", f"{spec.key}.start", TEMPORAL),
        ColumnRef("sessions", "session_end", f"{spec.key}.end", TEMPORAL),
    ]


def test_relationship_reads_the_referenced_column_and_reports_it() -> None:
    spec = _spec({"check": "relationship", "column": "customer_id", "references": "customers.customer_id"})
    assert spec.check.extra_columns(spec) == [ColumnRef("customers", "customer_id", f"{spec.key}.references")]
    assert spec.check.params() == {"to_table": "customers", "to_column": "customer_id"}


def test_reject_rate_defaults_to_the_etl_guard_and_keeps_its_own() -> None:
    default = _spec({"check": "reject_rate"}, max_reject_rate=0.25)
    assert default.check.max_rate == 0.25
    own = _spec({"check": "reject_rate", "max_rate": 0.05}, max_reject_rate=0.25)
    assert own.check.max_rate == 0.05
    zero = _spec({"check": "reject_rate", "max_rate": 0}, max_reject_rate=0.25)
    assert zero.check.max_rate == 0
