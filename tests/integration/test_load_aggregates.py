"""Customer aggregates follow each run's rows (a delta equal to a full recompute); the load logs seconds per step."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import random
from pathlib import Path

import psycopg
import pytest

import include.load
from include import pipeline
from include.config_loader import Settings
from include.load import CONVERSION_EXACT_BELOW
from tests.integration.test_load import ORDER_HEADER, query, sample_settings, write_inputs

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
    return sample_settings(tmp_path)


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


PRICES = {1: "9.99", 2: "49.50", 3: "250"}  # products of write_inputs: an order's unit price must match
EMAILS = ["ann@example.com", "bob@example.com", "cy@example.com", "dee@example.com", "eve@example.com"]


def drop_day(raw: Path, stamp: str, orders: list[list[str]], sessions: list[dict[str, object]]) -> None:
    """A landing day: orders_<stamp>.csv and user_sessions_<stamp>.jsonl (the stamp orders the versions)."""
    with (raw / f"orders_{stamp}.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(ORDER_HEADER)
        w.writerows(orders)
    (raw / f"user_sessions_{stamp}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sessions))


def session(sid: str, email: str, converted: bool) -> dict[str, object]:
    return {"session_id": sid, "customer_email": email, "session_start": "2026-10-01T09:00:00", "pages_viewed": 1,
            "conversion": converted}  # fmt: skip


def dated(ref: str, email: str, at: str, product: int = 2, qty: int = 1) -> list[str]:
    return [ref, email, str(product), str(qty), PRICES[product], at, "pending", "paypal"]


def test_a_changed_first_or_last_order_date_is_recomputed(settings: Settings, fresh_db: str) -> None:
    pipeline.run_all(settings, "run-1", fresh_db)
    first = dict((r[0], r[3:5]) for r in query(fresh_db, STORED))["ann@example.com"]
    assert [d.day for d in first] == [1, 3]  # ORD-1 on Oct 1st, ORD-2 on Oct 3rd
    # ann's first order moves to Oct 2nd and her last one to bob: neither range end can be extended from the
    # stored values (least/greatest), so ann is recomputed from her remaining orders.
    drop_day(
        settings.raw_data_dir,
        "2026-10-10",
        [dated("ORD-1", "ann@example.com", "2026-10-02T08:00:00", 1), dated("ORD-2", "bob@example.com", "2026-10-03T10:00:00", 3)],
        [session("S9", "ann@example.com", True)],
    )  # fmt: skip
    pipeline.run_all(settings, "run-2", fresh_db)
    stored = dict((r[0], r[1:5]) for r in query(fresh_db, STORED))
    assert stored["ann@example.com"][0] == 1
    assert [(d.day, d.hour) for d in stored["ann@example.com"][2:]] == [(2, 8), (2, 8)]
    assert query(fresh_db, STORED) == query(fresh_db, FULL)


def test_a_conversion_rate_over_too_many_sessions_to_invert_is_recomputed(settings: Settings, fresh_db: str) -> None:
    pipeline.run_all(settings, "run-1", fresh_db)
    n = 2 * CONVERSION_EXACT_BELOW
    with psycopg.connect(fresh_db) as conn:
        # bob: n sessions, one converted: the stored rate 1/n = 0.00005 rounds to 0.0001, which reads back as 2
        # converted sessions (0.0001 * n), not 1. The aggregates are set as a full recompute would set them.
        conn.execute(
            "INSERT INTO user_sessions (session_id, customer_id, session_start, pages_viewed, converted, etl_run_id)"
            " SELECT 'BULK-' || g, c.customer_id, '2026-09-01', 1, g = 1, 'seed' FROM generate_series(1, %s) g"
            " CROSS JOIN customers c WHERE c.email = 'bob@example.com'",
            (n,),
        )
        conn.execute(
            "UPDATE customers c SET session_count = s.n, conversion_rate = s.rate FROM ("
            " SELECT customer_id, count(*) n, round(avg(converted::int), 4) rate FROM user_sessions GROUP BY 1) s"
            " WHERE s.customer_id = c.customer_id"
        )
    assert query(fresh_db, STORED) == query(fresh_db, FULL)
    drop_day(settings.raw_data_dir, "2026-10-10", [dated("ORD-7", "bob@example.com", "2026-10-05T08:00:00")],
             [session("S9", "bob@example.com", False)])  # fmt: skip
    pipeline.run_all(settings, "run-2", fresh_db)
    bob = dict((r[0], r[5:]) for r in query(fresh_db, STORED))["bob@example.com"]
    assert bob == (n + 1, "0.0000")  # 1 / (n + 1) < 0.00005; the delta from 2 converted would say 0.0001
    assert query(fresh_db, STORED) == query(fresh_db, FULL)


def random_day(rng: random.Random, day: int) -> tuple[list[list[str]], list[dict[str, object]]]:
    """A small random export over a shared pool of keys: new keys, changed amounts, dates and owners, duplicates."""
    orders = []
    for ref in rng.sample(range(12), rng.randint(1, 6)):
        product, qty = rng.choice(list(PRICES)), rng.randint(1, 3)
        at = f"2026-10-0{rng.randint(1, 4)}T0{rng.choice([8, 9])}:00:00"  # few distinct dates: ties with first/last
        orders.append(dated(f"ORD-R{ref}", rng.choice(EMAILS), at, product, qty))
        if rng.random() < 0.2:  # a within-file duplicate (the later line wins)
            orders.append(dated(f"ORD-R{ref}", rng.choice(EMAILS), at, product, rng.randint(1, 3)))
    sessions = [
        session(f"S-R{k}", rng.choice(EMAILS), rng.random() < 0.4) for k in rng.sample(range(10), rng.randint(1, 5))
    ]
    orders.append(dated(f"ORD-D{day}", rng.choice(EMAILS), "2026-10-02T09:00:00"))  # every file has its own content
    return orders, sessions


@pytest.mark.parametrize("snapshot", ["probe", "join"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_loads_keep_the_aggregates_equal_to_a_full_recompute(
    settings: Settings, fresh_db: str, seed: int, snapshot: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Property: after every run of a random sequence (later files, and older ones whose existing keys are
    stale), the stored aggregates equal a full recompute from the tables — with either form of the snapshot
    (per-key probes for a daily file, a join for a backfill; chosen by table statistics, forced here)."""
    monkeypatch.setattr(include.load, "_is_backfill", lambda cur, entity: snapshot == "join")
    rng = random.Random(seed)
    pipeline.run_all(settings, "run-0", fresh_db)
    newer, older = 10, 9
    for i in range(1, 9):
        if rng.random() < 0.25:  # an old export dropped again: sorts before every loaded file
            stamp, older = f"2026-10-{older:02d}", older - 1
        else:
            stamp, newer = f"2026-10-{newer:02d}", newer + 1
        drop_day(settings.raw_data_dir, stamp, *random_day(rng, i))
        pipeline.run_all(settings, f"run-{i}", fresh_db)
        assert query(fresh_db, STORED) == query(fresh_db, FULL), f"seed {seed}, run {i} ({stamp})"


def test_loads_after_an_erasure_continue_from_its_recomputed_aggregates(settings: Settings, fresh_db: str) -> None:
    from include.privacy import erase_in_warehouse

    pipeline.run_all(settings, "run-1", fresh_db)
    # The erasure deletes bob's sessions, keeps his orders under a token address and recomputes that customer
    # (privacy.py); the next loads' deltas start from those values.
    with psycopg.connect(fresh_db) as conn:
        erase_in_warehouse(conn, "public", "bob@example.com", "0123456789abcdef0123456789abcdef")
    assert query(fresh_db, STORED) == query(fresh_db, FULL)
    drop_day(
        settings.raw_data_dir,
        "2026-10-10",
        [dated("ORD-4", "ann@example.com", "2026-10-02T09:00:00"), dated("ORD-8", "bob@example.com", "2026-10-06T09:00:00")],
        [session("S1", "bob@example.com", False)],
    )  # fmt: skip
    pipeline.run_all(settings, "run-2", fresh_db)
    assert query(fresh_db, STORED) == query(fresh_db, FULL)


@pytest.mark.parametrize(
    ("staged", "stored", "backfill"),
    [
        (10, 100, True),  # exactly 1/BACKFILL_SHARE of the table: a backfill
        (9, 100, False),  # one row fewer: a daily file, probed per key
        (10, 101, False),  # one stored row more: probed
        (11, 100, True),
        (1, 0, True),  # a table never analyzed (reltuples -1) or empty: any staged rows are a backfill
    ],
)
def test_snapshot_switches_to_a_join_at_the_backfill_share(
    fresh_db: str, staged: int, stored: int, backfill: bool
) -> None:
    assert include.load.BACKFILL_SHARE == 10
    entity = dataclasses.replace(include.load.ENTITIES[0], source="probe", table="probe_target")
    with psycopg.connect(fresh_db) as conn, conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE stg_probe AS SELECT g AS k FROM generate_series(1, %s) g", (staged,))
        cur.execute("CREATE TEMP TABLE probe_target AS SELECT g AS k FROM generate_series(1, %s) g", (stored,))
        cur.execute("ANALYZE stg_probe")
        if stored:
            cur.execute("ANALYZE probe_target")
        assert include.load._is_backfill(cur, entity) is backfill
