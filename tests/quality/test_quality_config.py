"""The quality: section is validated with messages naming the key; identifiers are checked against the real schema."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest

from include.config_loader import ConfigError, load_config
from include.quality import (
    CATEGORIES,
    CHECK_TYPES,
    fetch_schema,
    load_quality_config,
    parse_quality_config,
    run_category,
    validate_against_schema,
)


def _cfg(*checks: dict[str, Any], table: str = "orders", **top: Any) -> Any:
    return parse_quality_config({"tables": {table: list(checks)}, **top})


def test_shipped_config_declares_every_check_type_with_safe_defaults() -> None:
    settings = load_config()
    cfg = load_quality_config(settings)
    types = {c.check_type for c in cfg.checks}
    assert types == set(CHECK_TYPES)
    assert {c.table for c in cfg.checks} == {"customers", "products", "orders", "user_sessions"}
    assert {c.category for c in cfg.checks} == set(CATEGORIES)
    by_type: dict[str, set[str]] = {}
    for c in cfg.checks:
        by_type.setdefault(c.check_type, set()).add(c.severity)
    assert by_type["freshness"] == {"warn"}  # sample dates are in the past
    assert by_type["load_freshness"] == {"fail"}
    assert by_type["volume_anomaly"] == {"warn"}
    # A reject-rate check may fail only above the ETL guard (which already failed such a run).
    for c in cfg.checks:
        if c.check_type == "reject_rate" and c.severity == "fail":
            assert c.params["max_rate"] >= settings.max_reject_rate
    assert cfg.schedule == "0 6 * * *"


@pytest.mark.parametrize(
    ("checks", "message"),
    [
        ([{"check": "row_cnt"}], "'quality.tables.orders[0].check' must be one of"),
        ([{"check": "not_null"}], "missing required key 'quality.tables.orders[0].column'"),
        (
            [{"check": "not_null", "column": "a; DROP TABLE orders"}],
            "'quality.tables.orders[0].column' must be a plain SQL identifier",
        ),
        (
            [{"check": "row_count", "column": "x"}],
            "'quality.tables.orders[0].column' is not allowed: row_count is a table-level check",
        ),
        (
            [{"check": "row_count", "minimum": 1}],
            "unknown key 'quality.tables.orders[0].minimum' — did you mean 'min'?",
        ),
        (
            [{"check": "not_null", "column": "status", "severity": "warn", "max_rate": 0.1}],
            "unknown key 'quality.tables.orders[0].max_rate' (valid: check, name, severity, column)",
        ),
        (
            [{"check": "row_cnt"}],
            "'quality.tables.orders[0].check' must be one of row_count, not_null, null_rate, reconciliation, "
            "reject_rate, volume_anomaly, unique, accepted_values, range, email, relationship, derived_product, "
            "derived_duration, freshness, load_freshness, got 'row_cnt' — did you mean 'row_count'?",
        ),
        ([{"severity": "warn"}], "missing required key 'quality.tables.orders[0].check'"),
        (
            [{"check": "row_count", "severity": "error"}],
            "'quality.tables.orders[0].severity' must be one of 'warn' or 'fail', got 'error'",
        ),
        ([{"check": "row_count", "min": 5, "max": 2}], "'quality.tables.orders[0].max' must be >= 5"),
        ([{"check": "range", "column": "quantity"}], "'quality.tables.orders[0]' needs 'min' and/or 'max'"),
        (
            [{"check": "accepted_values", "column": "status", "values": []}],
            "'quality.tables.orders[0].values' must have at least 1 item(s), got []",
        ),
        ([{"check": "relationship", "column": "customer_id", "references": "customers"}], "must be '<table>.<column>'"),
        (
            [{"check": "derived_product", "column": "total_amount", "factors": ["quantity"]}],
            "'quality.tables.orders[0].factors'",
        ),
        ([{"check": "reject_rate", "max_rate": 2}], "'quality.tables.orders[0].max_rate' must be <= 1"),
        (
            [{"check": "volume_anomaly", "history_runs": 2, "min_history": 3}],
            "'quality.tables.orders[0].min_history' must be <= 2",
        ),
        ([{"check": "reconciliation", "source": "invoices"}], "'quality.tables.orders[0].source' must be one of"),
        ([{"check": "row_count"}, {"check": "row_count"}], "duplicate check name 'orders.row_count'"),
        (["row_count"], "'quality.tables.orders[0]' must be a mapping"),
    ],
)
def test_bad_declarations_name_the_key(checks: list[Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(*checks)
    assert message in str(err.value)


def test_bad_top_level_keys() -> None:
    with pytest.raises(ConfigError, match=re.escape("'quality.tables' must declare checks")):
        parse_quality_config({"tables": {}})
    with pytest.raises(ConfigError, match=re.escape("missing required key 'quality.tables'")):
        parse_quality_config({"schedule": "@daily"})
    with pytest.raises(ConfigError, match=re.escape("'quality.retries' must be <= 10")):
        _cfg({"check": "row_count"}, retries=99)
    with pytest.raises(
        ConfigError, match=re.escape("'quality.tables.bad-name' (table name) must be a plain SQL identifier")
    ):
        parse_quality_config({"tables": {"bad-name": [{"check": "row_count"}]}})


def test_bad_schedule_is_a_config_error() -> None:
    from include.assets import WAREHOUSE_ASSETS
    from include.quality import build_schedule

    with pytest.raises(ConfigError, match=re.escape("'quality.schedule'")):
        build_schedule(_cfg({"check": "row_count"}, schedule="every day"), WAREHOUSE_ASSETS)
    with pytest.raises(ConfigError, match=re.escape("'quality.schedule'")):
        build_schedule(_cfg({"check": "row_count"}, schedule="@daily", timezone="Mars/Olympus"), WAREHOUSE_ASSETS)


def test_names_default_to_table_column_type() -> None:
    cfg = _cfg({"check": "unique", "column": "order_reference"}, {"check": "row_count", "name": "orders volume"})
    assert [c.name for c in cfg.checks] == ["orders.order_reference.unique", "orders volume"]


def test_missing_table_and_column_are_reported_with_their_keys(fresh_db: str) -> None:
    cfg = parse_quality_config(
        {
            "tables": {
                "orders": [
                    {"check": "not_null", "column": "order_ref"},
                    {"check": "relationship", "column": "customer_id", "references": "clients.id"},
                    {"check": "derived_product", "column": "total_amount", "factors": ["quantity", "price"]},
                ],
                "invoices": [{"check": "row_count"}],
            }
        }
    )
    with psycopg.connect(fresh_db) as conn:
        columns = fetch_schema(conn, "public")
    with pytest.raises(ConfigError) as err:
        validate_against_schema(cfg.checks, columns, "public")
    msg = str(err.value)
    assert "'quality.tables.orders[0].column': column 'order_ref' does not exist in table public.orders" in msg
    assert "'quality.tables.orders[1]': table public.clients does not exist" in msg
    assert "'quality.tables.orders[2].factors[1]': column 'price' does not exist in table public.orders" in msg
    assert "'quality.tables.invoices[0]': table public.invoices does not exist" in msg


def test_column_of_wrong_type_is_reported(fresh_db: str) -> None:
    cfg = _cfg(
        {"check": "range", "column": "status", "min": 0},
        {"check": "freshness", "column": "quantity", "max_age_hours": 1},
        {"check": "email", "column": "customer_id"},
    )
    with psycopg.connect(fresh_db) as conn:
        columns = fetch_schema(conn, "public")
    with pytest.raises(ConfigError) as err:
        validate_against_schema(cfg.checks, columns, "public")
    msg = str(err.value)
    assert "column public.orders.status is text, but range needs a numeric column" in msg
    assert "column public.orders.quantity is integer, but freshness needs a date/timestamp column" in msg
    assert "column public.orders.customer_id is bigint, but email needs a text column" in msg


def test_run_category_refuses_bad_config_before_running_or_persisting(fresh_db: str) -> None:
    cfg = _cfg({"check": "not_null", "column": "nope"}, {"check": "row_count"})
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        with pytest.raises(ConfigError, match=re.escape("column 'nope' does not exist in table public.orders")):
            run_category(conn, cfg, "completeness", "run-x")
        assert conn.execute("SELECT count(*) FROM data_quality_results").fetchone() == (0,)


def test_checks_on_a_database_without_the_schema_fail_clearly(empty_db: str) -> None:
    cfg = _cfg({"check": "row_count"})
    with (
        psycopg.connect(empty_db, autocommit=True) as conn,
        pytest.raises(ConfigError, match=re.escape("table public.orders does not exist")),
    ):
        run_category(conn, cfg, "completeness", "run-x")
