"""Every check type passes on clean data and fails on data built to break it (real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from include.quality import CheckResult

Check = Callable[[str, dict[str, Any]], CheckResult]
Exec = Callable[..., None]


def _passed(r: CheckResult) -> None:
    assert r.status == "passed", r.describe()
    assert r.passed is True


def _failed(r: CheckResult) -> None:
    assert r.status == "failed", r.describe()
    assert r.passed is False


def test_row_count(check: Check, sql_exec: Exec) -> None:
    r = check("orders", {"check": "row_count", "min": 1, "max": 10})
    _passed(r)
    assert r.observed == 3
    _failed(r := check("orders", {"check": "row_count", "min": 4}))
    assert r.observed == 3
    assert r.threshold == ">= 4"
    _failed(r := check("orders", {"check": "row_count", "min": 1, "max": 2}))
    assert r.threshold == "between 1 and 2"


def test_row_count_of_empty_table_fails(check: Check, sql_exec: Exec) -> None:
    sql_exec("DELETE FROM user_sessions")
    r = check("user_sessions", {"check": "row_count"})
    _failed(r)
    assert r.observed == 0


def test_not_null(check: Check, sql_exec: Exec) -> None:
    _passed(r := check("customers", {"check": "not_null", "column": "country"}))
    assert r.observed == 0
    sql_exec("UPDATE customers SET country = NULL WHERE customer_id IN (1, 2)")
    r = check("customers", {"check": "not_null", "column": "country"})
    _failed(r)
    assert r.observed == 2
    assert "2 of 3 rows" in r.message


def test_null_rate(check: Check, sql_exec: Exec) -> None:
    _passed(r := check("customers", {"check": "null_rate", "column": "country", "max_rate": 0.4}))
    assert r.observed == 0.0
    sql_exec("UPDATE customers SET country = NULL WHERE customer_id IN (1, 2)")
    r = check("customers", {"check": "null_rate", "column": "country", "max_rate": 0.4})
    _failed(r)
    assert r.observed == 0.6667
    assert r.severity == "warn"  # the type's default


def test_unique(check: Check, sql_exec: Exec) -> None:
    _passed(r := check("orders", {"check": "unique", "column": "order_reference"}))
    assert r.observed == 0
    r = check("orders", {"check": "unique", "column": "payment_method"})  # credit_card, paypal, credit_card
    _failed(r)
    assert r.observed == 1
    assert "1 duplicate row(s) over 1 value(s), e.g. credit_card" in r.message


def test_accepted_values(check: Check, sql_exec: Exec) -> None:
    decl = {"check": "accepted_values", "column": "status", "values": ["pending", "shipped", "delivered", "cancelled"]}
    _passed(r := check("orders", decl))
    assert r.observed == 0
    sql_exec("UPDATE orders SET status = 'lost' WHERE order_reference IN ('ORD-1', 'ORD-2')")
    r = check("orders", decl)
    _failed(r)
    assert r.observed == 2
    assert "'lost' (2)" in r.message


def test_range(check: Check, sql_exec: Exec) -> None:
    decl = {"check": "range", "column": "quantity", "min": 1, "max": 100}
    _passed(r := check("orders", decl))
    assert r.observed == 0
    sql_exec("UPDATE orders SET quantity = 500 WHERE order_reference = 'ORD-3'")
    r = check("orders", decl)
    _failed(r)
    assert r.observed == 1
    assert r.threshold == "between 1 and 100"
    assert "max 500" in r.message


def test_range_on_decimals_is_exact(check: Check) -> None:
    _passed(check("products", {"check": "range", "column": "price", "min": 9.99}))
    r = check("products", {"check": "range", "column": "price", "min": 10})
    _failed(r)
    assert r.observed == 1


def test_email(check: Check, sql_exec: Exec) -> None:
    _passed(r := check("customers", {"check": "email", "column": "email"}))
    assert r.observed == 0
    # The table's own CHECK would refuse these rows: drop it to build the broken data.
    sql_exec(
        "ALTER TABLE customers DROP CONSTRAINT customers_email_check",
        "UPDATE customers SET email = 'not-an-email' WHERE customer_id = 1",
        "UPDATE customers SET email = ' Bob@Example.org' WHERE customer_id = 2",
    )
    r = check("customers", {"check": "email", "column": "email"})
    _failed(r)
    assert r.observed == 2
    assert r.message == "2 invalid e-mail address(es)"  # no addresses: the message reaches logs and reports
    r = check("customers", {"check": "email", "column": "email", "lowercase": False})
    assert r.observed == 2  # the leading blank breaks the pattern too
    sql_exec("UPDATE customers SET email = 'Bob@Example.org' WHERE customer_id = 2")
    assert check("customers", {"check": "email", "column": "email", "lowercase": False}).observed == 1


def test_relationship(check: Check, sql_exec: Exec) -> None:
    decl = {"check": "relationship", "column": "customer_id", "references": "customers.customer_id"}
    _passed(r := check("orders", decl))
    assert r.observed == 0
    # Foreign keys are enforced by triggers; replica mode skips them so orphans can be built.
    sql_exec(
        "SET session_replication_role = replica",
        "UPDATE orders SET customer_id = 99 WHERE order_reference IN ('ORD-1', 'ORD-2')",
        "INSERT INTO user_sessions (session_id, customer_id, session_start, pages_viewed, converted, etl_run_id) "
        "VALUES ('s-orphan', 77, now(), 1, false, 'x')",
    )
    r = check("orders", decl)
    _failed(r)
    assert r.observed == 2
    assert "1 missing customers.customer_id" in r.message
    r = check(
        "user_sessions", {"check": "relationship", "column": "customer_id", "references": "customers.customer_id"}
    )
    assert r.observed == 1
    _passed(check("orders", {"check": "relationship", "column": "product_id", "references": "products.product_id"}))
    sql_exec("SET session_replication_role = replica", "DELETE FROM products WHERE product_id = 2")
    r = check("orders", {"check": "relationship", "column": "product_id", "references": "products.product_id"})
    assert (r.status, r.observed) == ("failed", 1)


def test_derived_product(check: Check, sql_exec: Exec) -> None:
    decl = {"check": "derived_product", "column": "total_amount", "factors": ["quantity", "unit_price"]}
    _passed(r := check("orders", decl))
    assert r.observed == 0
    sql_exec("UPDATE orders SET total_amount = 19.99 WHERE order_reference = 'ORD-1'")  # off by one cent
    r = check("orders", decl)
    _failed(r)
    assert r.observed == 1
    assert "largest difference 0.01" in r.message


def test_derived_duration(check: Check, sql_exec: Exec) -> None:
    decl = {"check": "derived_duration", "column": "duration_seconds", "start": "session_start", "end": "session_end"}
    _passed(r := check("user_sessions", decl))
    assert r.observed == 0
    sql_exec(
        "UPDATE user_sessions SET duration_seconds = 60 WHERE session_id = 's-1'",  # end - start = 3600
        "UPDATE user_sessions SET duration_seconds = 5 WHERE session_id = 's-2'",  # no end: must be NULL
    )
    r = check("user_sessions", decl)
    _failed(r)
    assert r.observed == 2
    assert "largest difference 3540" in r.message


def test_freshness_of_business_timestamp(check: Check, sql_exec: Exec) -> None:
    decl = {"check": "freshness", "column": "order_date", "max_age_hours": 24}
    _passed(r := check("orders", decl))
    assert isinstance(r.observed, float) and 0.9 < r.observed < 1.1  # newest order is an hour old
    sql_exec("UPDATE orders SET order_date = order_date - interval '10 days'")
    r = check("orders", decl)
    _failed(r)
    assert r.observed is not None and 240 < float(r.observed) < 242
    assert r.severity == "warn"
    assert r.threshold == "<= 24 h"


def test_freshness_of_empty_table_fails(check: Check, sql_exec: Exec) -> None:
    sql_exec("DELETE FROM user_sessions")
    r = check("user_sessions", {"check": "freshness", "column": "session_start", "max_age_hours": 24})
    _failed(r)
    assert r.observed is None
    assert "empty" in r.message


def test_load_freshness(check: Check, sql_exec: Exec) -> None:
    _passed(r := check("orders", {"check": "load_freshness", "max_age_hours": 36}))
    assert r.observed is not None and 0.9 < float(r.observed) < 1.1
    assert r.severity == "fail"
    sql_exec("UPDATE etl_runs SET finished_at = finished_at - interval '2 days' WHERE source = 'orders'")
    r = check("orders", {"check": "load_freshness", "max_age_hours": 36})
    _failed(r)
    assert r.observed is not None and 48.9 < float(r.observed) < 49.1
    sql_exec("DELETE FROM etl_runs WHERE source = 'orders'")
    r = check("orders", {"check": "load_freshness", "max_age_hours": 36})
    _failed(r)
    assert r.observed is None
    assert "no ETL load of source 'orders'" in r.message


def test_reconciliation(check: Check, sql_exec: Exec) -> None:
    _passed(r := check("orders", {"check": "reconciliation"}))
    assert r.observed == 0
    assert "read 301 = loaded 300 + rejected 1 + duplicates 0" in r.message
    # One quarantined row of the last run is missing.
    sql_exec("DELETE FROM rejected_records WHERE etl_run_id = 'manual__run4' AND source = 'orders'")
    r = check("orders", {"check": "reconciliation"})
    _failed(r)
    assert r.observed == 1
    assert "rejected_records differs from rows_rejected by -1" in r.message
    _passed(check("orders", {"check": "reconciliation", "compare_quarantine": False}))
    # A ledger that does not add up (the table's CHECK refuses it: drop it to build the case).
    sql_exec(
        "ALTER TABLE etl_runs DROP CONSTRAINT etl_runs_check",
        "UPDATE etl_runs SET rows_read = 1000 WHERE etl_run_id = 'manual__run4' AND source = 'user_sessions'",
    )
    r = check("user_sessions", {"check": "reconciliation", "compare_quarantine": False})
    _failed(r)
    assert r.observed == 799  # 1000 read, 200 + 1 + 0 accounted
    assert "ledger off by 799" in r.message


def test_reconciliation_without_runs_is_skipped(check: Check, sql_exec: Exec) -> None:
    sql_exec("DELETE FROM etl_runs")
    r = check("orders", {"check": "reconciliation"})
    assert (r.status, r.passed) == ("skipped", None)


def test_reject_rate(check: Check) -> None:
    r = check("orders", {"check": "reject_rate"})
    _passed(r)
    assert r.observed == 0.0033  # 1 of 301
    assert r.severity == "warn"


def test_reject_rate_default_is_the_etl_guard(check: Check, sql_exec: Exec) -> None:
    sql_exec(
        "UPDATE etl_runs SET rows_read = 100, rows_loaded = 90, rows_rejected = 10 WHERE etl_run_id = 'manual__run4'"
    )
    r = check("orders", {"check": "reject_rate"})
    _passed(r)  # exactly at the guard's limit: a run the ETL accepted never fails here
    assert (r.observed, r.threshold) == (0.1, "<= 0.1")
    r = check("orders", {"check": "reject_rate", "max_rate": 0.02, "severity": "warn"})
    _failed(r)
    assert r.observed == 0.1
    sql_exec(
        "UPDATE etl_runs SET rows_read = 100, rows_loaded = 89, rows_rejected = 11 WHERE etl_run_id = 'manual__run4'"
    )
    r = check("orders", {"check": "reject_rate", "severity": "fail"})
    _failed(r)
    assert r.observed == 0.11


def test_volume_anomaly(check: Check, sql_exec: Exec) -> None:
    decl = {"check": "volume_anomaly", "history_runs": 7, "min_history": 3, "tolerance": 0.5}
    _passed(r := check("orders", decl))
    assert r.observed == 300
    sql_exec(
        "ALTER TABLE etl_runs DROP CONSTRAINT etl_runs_check",
        "UPDATE etl_runs SET rows_loaded = 1000 WHERE source = 'orders' AND etl_run_id <> 'manual__run4'",
    )
    r = check("orders", decl)
    _failed(r)
    assert r.observed == 300
    assert r.threshold.startswith("between 500 and 1500")
    assert "previous median 1000" in r.message


def test_volume_anomaly_needs_history(check: Check, sql_exec: Exec) -> None:
    sql_exec("DELETE FROM etl_runs WHERE etl_run_id IN ('manual__run1', 'manual__run2')")
    r = check("orders", {"check": "volume_anomaly", "min_history": 3})
    assert (r.status, r.passed, r.observed) == ("skipped", None, 300)
    assert "not enough history: 1 previous run(s) of orders, need 3" in r.message


def test_sql_error_is_an_error_result_not_a_crash(check: Check, sql_exec: Exec) -> None:
    # A regex PostgreSQL cannot compile makes the query fail: the result says so, nothing is raised.
    r = check("customers", {"check": "email", "column": "email", "pattern": "(unclosed"})
    assert r.status == "error"
    assert r.passed is False
    assert r.blocking  # severity fail by default
    assert "check could not run" in r.message and "InvalidRegularExpression" in r.message


@pytest.mark.parametrize("severity,blocking", [("warn", False), ("fail", True)])
def test_severity_decides_blocking(check: Check, sql_exec: Exec, severity: str, blocking: bool) -> None:
    r = check("orders", {"check": "row_count", "min": 100, "severity": severity})
    _failed(r)
    assert r.blocking is blocking


def test_duplicate_samples_mask_email_addresses(check: Check, sql_exec: Exec) -> None:
    sql_exec(
        "ALTER TABLE customers DROP CONSTRAINT customers_email_key",
        "UPDATE customers SET email = (SELECT email FROM customers WHERE customer_id = 1) WHERE customer_id = 2",
    )
    r = check("customers", {"check": "unique", "column": "email"})
    _failed(r)
    assert "e.g. <email>" in r.message and "@" not in r.message
