"""Customer aggregates are recomputed for the customers a run touches, and the load logs seconds per step."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import psycopg
import pytest

from include import pipeline
from include.config_loader import DEFAULT_CONFIG, Settings, load_config
from tests.integration.test_load import query, write_inputs

# The aggregates as a full recompute over every customer would set them.
FULL = """
SELECT c.email, coalesce(o.n, 0), coalesce(o.spent, 0)::numeric(12, 2)::text, o.first_at, o.last_at, coalesce(s.n, 0), s.rate::text
FROM customers c
LEFT JOIN (SELECT customer_id, count(*) n, sum(total_amount) spent, min(order_date) first_at, max(order_date) last_at
           FROM orders GROUP BY customer_id) o USING (customer_id)
LEFT JOIN (SELECT customer_id, count(*) n, round(avg(converted::int), 4) rate FROM user_sessions GROUP BY customer_id) s
     USING (customer_id)
ORDER BY c.email
"""
STORED = (
    "SELECT email, order_count, total_spent::text, first_order_at, last_order_at, session_count, conversion_rate::text"
    " FROM customers ORDER BY email"
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    write_inputs(tmp_path / "raw")
    return dataclasses.replace(
        load_config(DEFAULT_CONFIG),
        raw_data_dir=tmp_path / "raw",
        staging_dir=tmp_path / "staging",
        max_reject_rate=0.5,
    )


def order(ref: str, email: str, qty: str = "1") -> list[str]:
    return [ref, email, "2", qty, "49.50", "2026-10-06T09:00:00", "pending", "paypal"]


def test_an_order_that_moves_updates_its_old_and_new_customer(settings: Settings, fresh_db: str) -> None:
    pipeline.run_all(settings, "run-1", fresh_db)
    assert query(fresh_db, STORED) == query(fresh_db, FULL)
    before = dict((r[0], r[1:3]) for r in query(fresh_db, STORED))
    assert before["guest@example.com"] == (1, "198.00")
    # ORD-3 (guest's, who has no session in any input) now belongs to bob; a new customer's first order arrives.
    write_inputs(settings.raw_data_dir, [order("ORD-3", "bob@example.com"), order("ORD-9", "new@example.com", "2")])
    pipeline.run_all(settings, "run-2", fresh_db)
    after = dict((r[0], r[1:3]) for r in query(fresh_db, STORED))
    assert after["guest@example.com"] == (0, "0.00")
    assert after["bob@example.com"] == (2, "99.00")
    assert after["new@example.com"] == (1, "99.00")
    assert query(fresh_db, STORED) == query(fresh_db, FULL)


def test_only_customers_touched_by_the_run_are_recomputed(settings: Settings, fresh_db: str) -> None:
    pipeline.run_all(settings, "run-1", fresh_db)
    with psycopg.connect(fresh_db) as conn:  # a value no recompute would leave: shows whether ann was recomputed
        conn.execute("UPDATE customers SET order_count = 99 WHERE email = 'guest@example.com'")
    write_inputs(settings.raw_data_dir, [order("ORD-4", "bob@example.com", "3")])
    pipeline.run_all(settings, "run-2", fresh_db)
    stored = {r[0]: r[1:3] for r in query(fresh_db, STORED)}
    assert stored["guest@example.com"][0] == 99  # no order or session of run-2 is guest's
    assert stored["bob@example.com"] == (1, "148.50")  # ORD-4 updated in place: 3 x 49.50


def test_load_logs_seconds_per_step(settings: Settings, fresh_db: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="include.load"):
        pipeline.run_all(settings, "run-1", fresh_db)
    steps = [r.args[1] for r in caplog.records if r.name == "include.load" and "step" in r.msg]
    for expected in (
        "copy orders into staging",
        "upsert orders",
        "upsert user_sessions",
        "refresh customer aggregates",
        "commit",
    ):
        assert expected in steps
    assert all(isinstance(r.args[2], float) for r in caplog.records if r.name == "include.load" and "step" in r.msg)
