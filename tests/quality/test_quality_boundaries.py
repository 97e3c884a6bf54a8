"""Every data quality threshold exactly at its limit, one step inside and one step outside, on real PostgreSQL.

Checks are declared as in config.yaml (`parse_quality_config`) and run by the public runner
(`run_checks`) against a fresh warehouse holding just the rows each case needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import psycopg
import pytest

from include.quality import CheckResult, parse_quality_config, run_checks

Run = Callable[[str, Mapping[str, Any]], CheckResult]
Sql = Callable[..., None]


@pytest.fixture
def sql_run(fresh_db: str) -> Sql:
    def run(statement: str, params: Any = None) -> None:
        with psycopg.connect(fresh_db) as conn:
            conn.execute(statement, params)

    return run


@pytest.fixture
def check(fresh_db: str) -> Run:
    """Declare one check on `table` as config.yaml would, run it, return its result."""

    def run(table: str, declaration: Mapping[str, Any]) -> CheckResult:
        cfg = parse_quality_config({"tables": {table: [dict(declaration)]}}, max_reject_rate=0.10)
        with psycopg.connect(fresh_db, autocommit=True) as conn:
            (result,) = run_checks(conn, cfg.checks)
        return result

    return run


def status(passes: bool) -> str:
    return "passed" if passes else "failed"


def products(sql_run: Sql, prices: list[str]) -> None:
    for i, price in enumerate(prices, start=1):
        sql_run(
            "INSERT INTO products (product_id, name, price, price_tier, etl_run_id) VALUES (%s, %s, %s, 'budget', 'r')",
            (i, f"P{i}", price),
        )


def ledger(sql_run: Sql, runs: list[tuple[int, int]], finished_hours_ago: float = 1.0, source: str = "orders") -> None:
    """Ledger rows of `source`, oldest first: (rows_loaded, rows_rejected) per run; the last finished `finished_hours_ago`."""
    for i, (loaded, rejected) in enumerate(runs):
        age = finished_hours_ago + (len(runs) - 1 - i) * 24
        sql_run(
            "INSERT INTO etl_runs (etl_run_id, source, source_file, rows_read, rows_loaded, rows_rejected, "
            "rows_duplicate, started_at, finished_at) VALUES (%s, %s, 'f', %s, %s, %s, 0, "
            "now() - make_interval(secs => %s + 60), now() - make_interval(secs => %s))",
            (f"run{i}", source, loaded + rejected, loaded, rejected, age * 3600, age * 3600),
        )


# --------------------------------------------------------------------------------------------- row_count
@pytest.mark.parametrize(
    ("params", "passes"),
    [
        ({"min": 2}, True),
        ({"min": 3}, True),  # exactly min rows
        ({"min": 4}, False),  # one row short
        ({"min": 1, "max": 4}, True),
        ({"min": 1, "max": 3}, True),  # exactly max rows
        ({"min": 1, "max": 2}, False),  # one row too many
    ],
)
def test_row_count_boundaries(check: Run, sql_run: Sql, params: dict[str, int], passes: bool) -> None:
    products(sql_run, ["1", "2", "3"])
    r = check("products", {"check": "row_count", **params})
    assert (r.status, r.observed) == (status(passes), 3)


# --------------------------------------------------------------------------------------------- null_rate
@pytest.mark.parametrize(
    ("nulls", "total", "max_rate", "passes"),
    [
        (2, 10, 0.3, True),
        (3, 10, 0.3, True),  # exactly max_rate
        (4, 10, 0.3, False),  # one more NULL
        (0, 5, 0.0, True),
        (1, 5, 0.0, False),
        (5, 5, 1.0, True),
        (1, 3, 0.3334, True),
        (1, 3, 0.3333, False),  # 1/3 = 0.33333… is above 0.3333, although it prints as 0.3333
    ],
)
def test_null_rate_boundaries(
    check: Run, sql_run: Sql, *, nulls: int, total: int, max_rate: float, passes: bool
) -> None:
    for i in range(total):
        sql_run(
            "INSERT INTO customers (email, country, etl_run_id) VALUES (%s, %s, 'r')",
            (f"c{i}@example.com", None if i < nulls else "DE"),
        )
    r = check("customers", {"check": "null_rate", "column": "country", "max_rate": max_rate, "severity": "fail"})
    assert r.status == status(passes)
    assert r.observed == pytest.approx(nulls / total, abs=1e-4)


# ------------------------------------------------------------------------------------------------- range
@pytest.mark.parametrize(
    ("price", "params", "passes"),
    [
        ("10.00", {"min": 9.99}, True),
        ("9.99", {"min": 9.99}, True),  # exactly min
        ("9.98", {"min": 9.99}, False),  # one cent below
        ("9.99", {"max": 10}, True),
        ("10.00", {"max": 10}, True),  # exactly max
        ("10.01", {"max": 10}, False),  # one cent above
        ("0.00", {"min": 0, "max": 5}, True),
        ("5.00", {"min": 0, "max": 5}, True),
        ("5.01", {"min": 0, "max": 5}, False),
    ],
)
def test_range_boundaries(check: Run, sql_run: Sql, price: str, params: dict[str, float], passes: bool) -> None:
    products(sql_run, [price])
    r = check("products", {"check": "range", "column": "price", **params})
    assert (r.status, r.observed) == (status(passes), 0 if passes else 1)


# ------------------------------------------------------------------------------------------------- email
@pytest.fixture
def contacts(sql_run: Sql) -> Callable[[str], None]:
    """A text column without the warehouse's own e-mail constraint, so a drifted value can be stored."""
    sql_run("CREATE TABLE contacts (email text)")
    return lambda value: sql_run("INSERT INTO contacts (email) VALUES ('ok@example.com'), (%s)", (value,))


@pytest.mark.parametrize(
    ("value", "lowercase", "passes"),
    [
        ("Ann@Example.com", True, False),  # valid shape, only the case is wrong
        ("Ann@Example.com", False, True),  # lowercase: false accepts it
        ("ann@example.com ", True, False),  # only a trailing space (not trimmed)
        ("ann@example.com", True, True),
        ("ann@example", False, False),  # the pattern still applies without the lowercase rule
    ],
)
def test_email_lowercase_option(
    check: Run, contacts: Callable[[str], None], value: str, lowercase: bool, passes: bool
) -> None:
    contacts(value)
    r = check("contacts", {"check": "email", "column": "email", "lowercase": lowercase})
    assert (r.status, r.observed) == (status(passes), 0 if passes else 1)
    assert "Example.com" not in r.message and "ann@" not in r.message  # never the address itself


# ------------------------------------------------------------------------------------------- reject_rate
@pytest.mark.parametrize(
    ("rejected", "max_rate", "passes"),
    [
        (4, 0.05, True),
        (5, 0.05, True),  # exactly max_rate
        (6, 0.05, False),  # one more rejected row
        (10, None, True),  # default: the ETL guard's transform.max_reject_rate (0.10)
        (11, None, False),
    ],
)
def test_reject_rate_boundaries(check: Run, sql_run: Sql, rejected: int, max_rate: float | None, passes: bool) -> None:
    ledger(sql_run, [(100, 50), (100 - rejected, rejected)])  # only the newest run counts
    decl: dict[str, Any] = {"check": "reject_rate", "severity": "fail"}
    if max_rate is not None:
        decl["max_rate"] = max_rate
    r = check("orders", decl)
    assert r.status == status(passes)
    assert r.observed == pytest.approx(rejected / 100)


# ---------------------------------------------------------------------------------------- volume_anomaly
@pytest.mark.parametrize(
    ("last", "passes"),
    [(49, False), (50, True), (100, True), (150, True), (151, False)],  # median 100 ± 50 %
)
def test_volume_anomaly_tolerance_boundaries(check: Run, sql_run: Sql, last: int, passes: bool) -> None:
    ledger(sql_run, [(90, 0), (100, 0), (130, 0), (last, 0)])
    r = check("orders", {"check": "volume_anomaly", "history_runs": 7, "min_history": 3, "tolerance": 0.5})
    assert (r.status, r.observed) == (status(passes), last)
    assert "between 50 and 150" in r.threshold


@pytest.mark.parametrize(("previous", "judged"), [(2, False), (3, True), (4, True)])
def test_volume_anomaly_min_history_boundary(check: Run, sql_run: Sql, previous: int, judged: bool) -> None:
    ledger(sql_run, [(100, 0)] * previous + [(1, 0)])  # the last run collapsed
    r = check("orders", {"check": "volume_anomaly", "history_runs": 7, "min_history": 3, "tolerance": 0.5})
    assert r.status == ("failed" if judged else "skipped")


def test_volume_anomaly_reads_history_runs_previous_runs_only(check: Run, sql_run: Sql) -> None:
    # 3 old runs of 10 rows, then 3 of 100: with history_runs 3 the median is 100 and 100 passes
    ledger(sql_run, [(10, 0)] * 3 + [(100, 0)] * 3 + [(100, 0)])
    assert check("orders", {"check": "volume_anomaly", "history_runs": 3, "min_history": 3}).status == "passed"
    assert check("orders", {"check": "volume_anomaly", "history_runs": 6, "min_history": 3}).status == "failed"


# ---------------------------------------------------------------------------------- freshness (table data)
def orders_at(sql_run: Sql, hours_ago: float) -> None:
    sql_run("INSERT INTO customers (customer_id, email, etl_run_id) VALUES (1, 'a@example.com', 'r')")
    products(sql_run, ["1.00"])
    sql_run(
        "INSERT INTO orders (order_reference, customer_id, product_id, quantity, unit_price, total_amount, "
        "order_date, status, etl_run_id) VALUES ('O1', 1, 1, 1, 1, 1, now() - make_interval(secs => %s), 'x', 'r')",
        (hours_ago * 3600,),
    )


@pytest.mark.parametrize(("minutes", "passes"), [(-1, True), (1, False)])
def test_freshness_boundary(check: Run, sql_run: Sql, minutes: int, passes: bool) -> None:
    orders_at(sql_run, 48 + minutes / 60)
    r = check("orders", {"check": "freshness", "column": "order_date", "max_age_hours": 48, "severity": "fail"})
    assert r.status == status(passes)
    assert r.observed == pytest.approx(48 + minutes / 60, abs=0.01)


@pytest.mark.parametrize(("minutes", "passes"), [(-1, True), (1, False)])
def test_load_freshness_boundary(check: Run, sql_run: Sql, minutes: int, passes: bool) -> None:
    ledger(sql_run, [(10, 0)], finished_hours_ago=36 + minutes / 60)
    r = check("orders", {"check": "load_freshness", "max_age_hours": 36})
    assert r.status == status(passes)


# ------------------------------------------------------------------------------------- derived tolerances
@pytest.mark.parametrize(
    ("total", "passes"),
    [("10.00", True), ("10.01", True), ("9.99", True), ("10.02", False), ("9.98", False)],  # 2 × 5.00 ± 0.01
)
def test_derived_product_tolerance_boundary(check: Run, sql_run: Sql, total: str, passes: bool) -> None:
    sql_run("INSERT INTO customers (customer_id, email, etl_run_id) VALUES (1, 'a@example.com', 'r')")
    products(sql_run, ["5.00"])
    sql_run(
        "INSERT INTO orders (order_reference, customer_id, product_id, quantity, unit_price, total_amount, "
        "order_date, status, etl_run_id) VALUES ('O1', 1, 1, 2, 5.00, %s, now(), 'x', 'r')",
        (total,),
    )
    r = check(
        "orders",
        {
            "check": "derived_product",
            "column": "total_amount",
            "factors": ["quantity", "unit_price"],
            "tolerance": 0.01,
        },
    )
    assert (r.status, r.observed) == (status(passes), 0 if passes else 1)


@pytest.mark.parametrize(
    ("end", "duration", "passes"),
    [
        ("00:01:00", 59, True),  # off by exactly the tolerance (1 s)
        ("00:01:00", 61, True),
        ("00:01:00.001", 59, False),  # 1.001 s off
        ("00:00:59.999", 61, False),
        ("00:01:00", 60, True),
    ],
)
def test_derived_duration_tolerance_boundary(check: Run, sql_run: Sql, end: str, duration: int, passes: bool) -> None:
    sql_run("INSERT INTO customers (customer_id, email, etl_run_id) VALUES (1, 'a@example.com', 'r')")
    sql_run(
        "INSERT INTO user_sessions (session_id, customer_id, session_start, session_end, duration_seconds, "
        "pages_viewed, converted, etl_run_id) VALUES ('s1', 1, '2026-10-01 00:00:00+00', %s, %s, 1, false, 'r')",
        (f"2026-10-01 {end}+00", duration),
    )
    r = check(
        "user_sessions",
        {
            "check": "derived_duration",
            "column": "duration_seconds",
            "start": "session_start",
            "end": "session_end",
            "tolerance_seconds": 1,
        },
    )
    assert (r.status, r.observed) == (status(passes), 0 if passes else 1)
