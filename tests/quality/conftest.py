"""Fixtures of the data quality tests: clean warehouse data, a check runner, the environment of dag.test().

Airflow's own home and metadata database come from the root conftest (`airflow_metadata_db`);
the warehouse is always real PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest

from include.quality import CheckResult, CheckSpec, QualityConfig, parse_quality_config, run_check

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------------------------
# Warehouse data
# ---------------------------------------------------------------------------------------------

LAST_RUN = "manual__run4"
RUN_IDS = ("manual__run1", "manual__run2", "manual__run3", LAST_RUN)
ROWS_LOADED = {"customers": 300, "products": 200, "orders": 300, "user_sessions": 200}  # ledger counts per run


def seed_clean(conn: psycopg.Connection[Any]) -> None:
    """A small warehouse that passes every check: consistent rows, four ETL runs, the last one an hour ago."""
    conn.execute(
        "INSERT INTO customers (customer_id, email, first_name, country, total_spent, conversion_rate, etl_run_id) "
        "VALUES (1, 'ada@example.com', 'Ada', 'GB', 19.98, 0.5, %(r)s), "
        "(2, 'bob@example.org', 'Bob', 'DE', 49.50, NULL, %(r)s), "
        "(3, 'cy@example.net', 'Cy', 'FR', 29.97, 1, %(r)s)",
        {"r": LAST_RUN},
    )
    conn.execute(
        "INSERT INTO products (product_id, name, price, category, price_tier, rating_rate, etl_run_id) VALUES "
        "(1, 'Widget', 9.99, 'tools', 'budget', 4.5, %(r)s), (2, 'Gadget', 49.50, 'tools', 'standard', 3.9, %(r)s)",
        {"r": LAST_RUN},
    )
    conn.execute(
        "INSERT INTO orders (order_reference, customer_id, product_id, quantity, unit_price, total_amount, order_date, "
        "status, payment_method, etl_run_id) VALUES "
        "('ORD-1', 1, 1, 2, 9.99, 19.98, now() - interval '3 hours', 'delivered', 'credit_card', %(r)s), "
        "('ORD-2', 2, 2, 1, 49.50, 49.50, now() - interval '2 hours', 'shipped', 'paypal', %(r)s), "
        "('ORD-3', 3, 1, 3, 9.99, 29.97, now() - interval '1 hour', 'pending', 'credit_card', %(r)s)",
        {"r": LAST_RUN},
    )
    conn.execute(
        "INSERT INTO user_sessions (session_id, customer_id, session_start, session_end, duration_seconds, "
        "pages_viewed, converted, etl_run_id) VALUES "
        "('s-1', 1, now() - interval '2 hours', now() - interval '1 hour', 3600, 5, true, %(r)s), "
        "('s-2', 2, now() - interval '90 minutes', NULL, NULL, 2, false, %(r)s)",
        {"r": LAST_RUN},
    )
    for i, run in enumerate(RUN_IDS):
        age_days = len(RUN_IDS) - 1 - i
        for source, loaded in ROWS_LOADED.items():
            conn.execute(
                "INSERT INTO etl_runs (etl_run_id, source, source_file, rows_read, rows_loaded, rows_rejected, "
                "rows_duplicate, started_at, finished_at) VALUES (%s, %s, %s, %s, %s, 1, 0, "
                "now() - make_interval(days => %s, hours => 2), now() - make_interval(days => %s, hours => 1))",
                (run, source, f"{source}.csv", loaded + 1, loaded, age_days, age_days),
            )
            conn.execute(
                "INSERT INTO rejected_records (etl_run_id, source, source_file, line_number, reason, field, "
                "raw_record) VALUES (%s, %s, %s, 7, 'invalid_quantity', 'quantity', '{}')",
                (run, source, f"{source}.csv"),
            )
    conn.commit()


@pytest.fixture
def clean_db(fresh_db: str) -> str:
    """URL of a fresh warehouse seeded with `seed_clean`."""
    with psycopg.connect(fresh_db) as conn:
        seed_clean(conn)
    return fresh_db


@pytest.fixture
def sql_exec(clean_db: str) -> Callable[..., None]:
    """Run statements (e.g. to break the clean data) on the clean database, committed."""

    def run(*statements: str, params: Mapping[str, Any] | None = None) -> None:
        with psycopg.connect(clean_db) as conn:
            for stmt in statements:
                conn.execute(stmt, params)  # type: ignore[arg-type]

    return run


def config_with(tables: Mapping[str, list[Mapping[str, Any]]], **top: Any) -> QualityConfig:
    """A QualityConfig declaring `tables` (reject-rate default 0.10 like the ETL guard)."""
    return parse_quality_config({"tables": tables, **top}, max_reject_rate=0.10)


@pytest.fixture
def check(clean_db: str) -> Callable[..., CheckResult]:
    """Run the single check declared by (table, mapping) against the clean database; return its result."""

    def run(table: str, declaration: Mapping[str, Any]) -> CheckResult:
        cfg = config_with({table: [declaration]})
        spec: CheckSpec = cfg.checks[0]
        with psycopg.connect(clean_db, autocommit=True) as conn:
            return run_check(conn, spec)

    return run


@pytest.fixture
def airflow_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Point Airflow's postgres_default at a test database and the reports at a tmp dir; return the reports dir."""

    def point(db_url: str) -> Path:
        reports = tmp_path / "reports"
        monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", db_url)
        monkeypatch.setenv("ECOM_REPORTS_DIR", str(reports))
        return reports

    yield point
