"""The whole ETL path against a real PostgreSQL: load, idempotency, in-place update, atomicity, guard, lock."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from include import pipeline
from include.config_loader import DEFAULT_CONFIG, Settings, load_config
from include.load import LOAD_LOCK_KEY, DataLoader, LoadError
from include.transform import RejectRateExceeded

TABLES = ("customers", "products", "orders", "user_sessions")
ORDER_HEADER = [
    "order_reference",
    "customer_email",
    "product_id",
    "quantity",
    "unit_price",
    "order_date",
    "status",
    "payment_method",
]


def sample_settings(tmp_path: Path, max_reject_rate: float = 0.5) -> Settings:
    """The default config over the tiny inputs of write_inputs in tmp_path/raw, staging in tmp_path/staging."""
    write_inputs(tmp_path / "raw")
    return dataclasses.replace(
        load_config(DEFAULT_CONFIG),
        raw_data_dir=tmp_path / "raw",
        staging_dir=tmp_path / "staging",
        max_reject_rate=max_reject_rate,
    )


def write_inputs(raw: Path, orders: list[list[str]] | None = None) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    products = [
        {
            "id": i,
            "title": f"Product {i}",
            "price": p,
            "description": "",
            "category": " Home ",
            "image": "",
            "rating": {"rate": 4, "count": 2},
        }
        for i, p in ((1, 9.99), (2, 49.5), (3, 250))
    ]
    (raw / "products.json").write_text(json.dumps(products))
    with (raw / "customers.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["email", "first_name", "last_name", "country", "signup_date"])
        w.writerow(["Ann@Example.com", "Ann", "Lee", "us", "2025-01-02"])
        w.writerow(["bob@example.com", "Bob", "", "de", ""])
    if orders is None:
        orders = [
            ["ORD-1", "ann@example.com", "1", "2", "9.99", "2026-10-01T10:00:00", "shipped", "paypal"],
            ["ORD-2", "ann@example.com", "3", "1", "250", "2026-10-03T10:00:00", "delivered", "credit_card"],
            ["ORD-3", "guest@example.com", "2", "4", "49.50", "2026-10-02T09:00:00", "pending", ""],
            ["ORD-4", "bob@example.com", "2", "1", "49.50", "2026-10-02T09:00:00", "pending", "paypal"],
            [
                "ORD-4",
                "bob@example.com",
                "2",
                "1",
                "49.50",
                "2026-10-02T09:00:00",
                "processing",
                "paypal",
            ],  # duplicate: last wins
            ["ORD-5", "bob@example.com", "99", "1", "1", "2026-10-02T09:00:00", "pending", "paypal"],  # unknown product
        ]
    with (raw / "orders.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(ORDER_HEADER)
        w.writerows(orders)
    sessions = [
        {
            "session_id": "S1",
            "customer_email": "ann@example.com",
            "session_start": "2026-10-01T09:50:00",
            "session_end": "2026-10-01T10:01:00",
            "pages_viewed": 5,
            "items_viewed": [1, 3],
            "items_added_to_cart": [1],
            "conversion": True,
            "device_type": "desktop",
            "browser": "Firefox",
            "ip_address": "198.51.100.23",
        },
        {
            "session_id": "S2",
            "customer_email": "visitor@example.com",
            "session_start": "2026-10-04T09:50:00",
            "session_end": None,
            "pages_viewed": "2",
            "items_viewed": None,
            "items_added_to_cart": [],
            "conversion": "false",
            "device_type": "mobile",
            "browser": "Safari",
            "ip_address": "2001:db8:1:2:3:4:5:6",
        },
        {
            "session_id": "S3",
            "customer_email": "ann@example.com",
            "session_start": "2026-10-05T09:50:00",
            "session_end": "2026-10-05T09:40:00",
            "pages_viewed": 1,
            "conversion": 0,
        },  # ends before it starts
    ]
    (raw / "user_sessions.json").write_text(json.dumps(sessions))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return sample_settings(tmp_path)


DIGESTED = {
    **{t: "t.*" for t in TABLES},
    "etl_runs": "t.*",
    # a re-run of a run replaces its quarantine rows: compare their content, not their ids and times
    "rejected_records": "t.etl_run_id, t.source, t.source_file, t.line_number, t.reason, t.field, t.detail, t.raw_record",
}


def digest(url: str) -> dict[str, str]:
    """md5 of every row of each table (all columns, timestamps and ids included)."""
    with psycopg.connect(url) as conn:
        return {
            t: conn.execute(
                f"SELECT md5(coalesce(string_agg(ROW({cols})::text, '|' ORDER BY ROW({cols})::text), '')) FROM {t} t"
            ).fetchone()[0]
            for t, cols in DIGESTED.items()
        }


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def test_load_accounts_for_every_row(settings: Settings, fresh_db: str) -> None:
    out = pipeline.run_all(settings, "run-1", fresh_db)
    s = out["sources"]
    assert (
        s["orders"]["rows_read"],
        s["orders"]["rows_loaded"],
        s["orders"]["rows_rejected"],
        s["orders"]["rows_duplicate"],
    ) == (6, 4, 1, 1)
    assert (s["user_sessions"]["rows_loaded"], s["user_sessions"]["rows_rejected"]) == (2, 1)
    ledger = query(
        fresh_db,
        "SELECT source, rows_read, rows_loaded, rows_rejected, rows_duplicate FROM etl_runs WHERE etl_run_id = 'run-1' ORDER BY 1",
    )
    assert ledger == [
        ("customers", 2, 2, 0, 0),
        ("orders", 6, 4, 1, 1),
        ("products", 3, 3, 0, 0),
        ("user_sessions", 3, 2, 1, 0),
    ]
    assert all(r[1] == r[2] + r[3] + r[4] for r in ledger)

    orders = query(
        fresh_db,
        "SELECT o.order_reference, c.email, o.quantity, o.unit_price::text, o.total_amount::text, o.status, o.payment_method"
        " FROM orders o JOIN customers c USING (customer_id) ORDER BY 1",
    )
    assert orders == [
        ("ORD-1", "ann@example.com", 2, "9.99", "19.98", "shipped", "paypal"),
        ("ORD-2", "ann@example.com", 1, "250.00", "250.00", "delivered", "credit_card"),
        ("ORD-3", "guest@example.com", 4, "49.50", "198.00", "pending", None),
        ("ORD-4", "bob@example.com", 1, "49.50", "49.50", "processing", "paypal"),
    ]

    customers = query(
        fresh_db,
        "SELECT email, first_name, last_name, country, order_count, total_spent::text, session_count,"
        " conversion_rate::text FROM customers ORDER BY email",
    )
    assert customers == [
        ("ann@example.com", "Ann", "Lee", "US", 2, "269.98", 1, "1.0000"),
        ("bob@example.com", "Bob", None, "DE", 1, "49.50", 0, None),
        ("guest@example.com", None, None, None, 1, "198.00", 0, None),  # no invented names
        ("visitor@example.com", None, None, None, 0, "0.00", 1, "0.0000"),
    ]

    sessions = query(
        fresh_db,
        "SELECT session_id, duration_seconds, items_viewed_count, converted, host(ip_network) || '/' || masklen(ip_network)"
        " FROM user_sessions ORDER BY 1",
    )
    assert sessions == [("S1", 660, 2, True, "198.51.100.0/24"), ("S2", None, 0, False, "2001:db8:1::/48")]
    assert query(fresh_db, "SELECT product_id, category, price_tier FROM products ORDER BY 1") == [
        (1, "home", "budget"),
        (2, "home", "standard"),
        (3, "home", "premium"),
    ]

    rejects = query(
        fresh_db,
        "SELECT source, source_file, line_number, reason, raw_record->>'order_reference' FROM rejected_records ORDER BY source",
    )
    assert rejects == [
        ("orders", "orders.csv", 7, "unknown_product", "ORD-5"),
        ("user_sessions", "user_sessions.json", 3, "session_end_before_start", None),
    ]


def test_rerun_changes_nothing(settings: Settings, fresh_db: str) -> None:
    pipeline.run_all(settings, "run-1", fresh_db)
    before = digest(fresh_db)
    out = pipeline.run_all(settings, "run-1", fresh_db)  # the same run again (e.g. a retry)
    assert digest(fresh_db) | {"etl_runs": ""} == before | {"etl_runs": ""}
    assert query(fresh_db, "SELECT count(*) FROM rejected_records") == [(2,)]
    assert out["sources"]["orders"]["inserted"] == 0 and out["sources"]["orders"]["updated"] == 0
    pipeline.run_all(settings, "run-2", fresh_db)  # a new run of the same input
    after = digest(fresh_db)
    for t in TABLES:
        assert after[t] == before[t], f"{t} changed on an identical re-run"
    assert query(fresh_db, "SELECT count(DISTINCT etl_run_id) FROM etl_runs") == [(2,)]


def test_changed_order_is_updated_in_place(settings: Settings, fresh_db: str) -> None:
    pipeline.run_all(settings, "run-1", fresh_db)
    (order_id,) = query(fresh_db, "SELECT order_id FROM orders WHERE order_reference = 'ORD-1'")[0]
    write_inputs(
        settings.raw_data_dir,
        [["ORD-1", "ann@example.com", "1", "5", "9.99", "2026-10-01T10:00:00", "Cancelled", "paypal"]],
    )
    out = pipeline.run_all(settings, "run-2", fresh_db)
    assert out["sources"]["orders"]["updated"] == 1 and out["sources"]["orders"]["inserted"] == 0
    assert query(
        fresh_db,
        "SELECT order_id, quantity, total_amount::text, status, etl_run_id FROM orders WHERE order_reference = 'ORD-1'",
    ) == [(order_id, 5, "49.95", "cancelled", "run-2")]
    assert query(fresh_db, "SELECT count(*) FROM orders") == [(4,)]  # the other orders stay
    assert query(fresh_db, "SELECT order_count, total_spent::text FROM customers WHERE email = 'ann@example.com'") == [
        (2, "299.95")
    ]


def test_failed_load_leaves_tables_as_they_were(settings: Settings, fresh_db: str) -> None:
    pipeline.run_all(settings, "run-1", fresh_db)
    before = digest(fresh_db)
    write_inputs(
        settings.raw_data_dir, [["ORD-9", "new@example.com", "1", "1", "1", "2026-10-09T10:00:00", "pending", "paypal"]]
    )
    staging = pipeline.run_dir(settings, "etl_ecommerce_pipeline", "run-2")
    manifests = {s: pipeline.extract(s, settings, staging) for s in pipeline.EXTRACTORS}
    transformed = pipeline.transform(manifests, settings, staging, fresh_db)
    # Break the clean orders file after the transform so that the database refuses it midway (quantity 0).
    clean = Path(transformed["sources"]["orders"]["clean_path"])
    text = clean.read_text()
    assert '"new@example.com",1,1,' in text
    clean.write_text(text.replace('"new@example.com",1,1,', '"new@example.com",1,0,'))
    with pytest.raises(LoadError) as err:
        pipeline.load(transformed, settings, "run-2", fresh_db)
    assert "failed at step 'upsert orders'" in str(err.value) and "rolled back" in str(err.value)
    assert digest(fresh_db) == before  # not even the customer derived from the new order, nor a ledger row
    assert query(fresh_db, "SELECT count(*) FROM customers WHERE email = 'new@example.com'") == [(0,)]
    # The next run converges.
    pipeline.run_all(settings, "run-3", fresh_db)
    assert query(fresh_db, "SELECT count(*) FROM orders WHERE order_reference = 'ORD-9'") == [(1,)]


def test_reject_rate_guard_loads_nothing(settings: Settings, fresh_db: str) -> None:
    pipeline.run_all(settings, "run-1", fresh_db)
    before = digest(fresh_db)
    bad = [
        [f"B-{i}", "x@example.com", "1", "0" if i % 2 else "1", "1", "2026-10-01", "pending", "paypal"]
        for i in range(10)
    ]
    write_inputs(settings.raw_data_dir, bad)
    strict = dataclasses.replace(settings, max_reject_rate=0.1)
    with pytest.raises(
        RejectRateExceeded,
        match=r"orders \(orders.csv\): 5/10 rows rejected = 50.0% > 10.0%; top reasons \{'invalid_quantity': 5\}",
    ):
        pipeline.run_all(strict, "run-2", fresh_db)
    assert digest(fresh_db) == before


def test_concurrent_load_waits_for_the_lock_and_gives_up_clearly(settings: Settings, fresh_db: str) -> None:
    staging = pipeline.run_dir(settings, "etl_ecommerce_pipeline", "run-1")
    manifests = {s: pipeline.extract(s, settings, staging) for s in pipeline.EXTRACTORS}
    transformed = pipeline.transform(manifests, settings, staging, fresh_db)
    with psycopg.connect(fresh_db) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (LOAD_LOCK_KEY,))  # another load in progress
        loader = DataLoader(fresh_db, lock_timeout_seconds=1)
        with pytest.raises(LoadError, match=r"failed at step 'lock'.*lock timeout"):
            loader.load("run-1", transformed["sources"])
    assert query(fresh_db, "SELECT count(*) FROM orders") == [(0,)]
    DataLoader(fresh_db).load("run-1", transformed["sources"])  # lock released: loads
    assert query(fresh_db, "SELECT count(*) FROM orders") == [(4,)]


def test_missing_staged_file_is_an_error_not_an_empty_load(settings: Settings, fresh_db: str) -> None:
    staging = pipeline.run_dir(settings, "etl_ecommerce_pipeline", "run-1")
    manifests = {s: pipeline.extract(s, settings, staging) for s in pipeline.EXTRACTORS}
    transformed = pipeline.transform(manifests, settings, staging, fresh_db)
    Path(transformed["sources"]["orders"]["clean_path"]).unlink()
    with pytest.raises(LoadError, match="staged file missing"):
        pipeline.load(transformed, settings, "run-1", fresh_db)
    assert query(fresh_db, "SELECT count(*) FROM products") == [(0,)]


def test_killed_load_leaves_tables_as_they_were(settings: Settings, fresh_db: str, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    pipeline.run_all(settings, "run-1", fresh_db)
    before = digest(fresh_db)
    write_inputs(
        settings.raw_data_dir,
        [
            ["ORD-1", "ann@example.com", "1", "7", "9.99", "2026-10-01T10:00:00", "refunded", "paypal"],
            ["ORD-8", "late@example.com", "2", "1", "49.50", "2026-10-08T10:00:00", "pending", "paypal"],
        ],
    )
    staging = pipeline.run_dir(settings, "etl_ecommerce_pipeline", "run-2")
    manifests = {s: pipeline.extract(s, settings, staging) for s in pipeline.EXTRACTORS}
    manifest_file = tmp_path / "transformed.json"
    manifest_file.write_text(json.dumps(pipeline.transform(manifests, settings, staging, fresh_db)))
    loader = (
        "import json, sys\nfrom include.load import DataLoader\n"
        "DataLoader(sys.argv[1]).load('run-2', json.load(open(sys.argv[2]))['sources'])\n"
    )
    with psycopg.connect(fresh_db) as blocker:
        # Hold ORD-1's row: the load gets past products and customers, then waits inside its transaction.
        blocker.execute("SELECT 1 FROM orders WHERE order_reference = 'ORD-1' FOR UPDATE")
        proc = subprocess.Popen([sys.executable, "-c", loader, fresh_db, str(manifest_file)], env=os.environ.copy())
        deadline = time.monotonic() + 60
        waiting: list[Any] = []
        while time.monotonic() < deadline and not waiting:
            waiting = query(
                fresh_db,
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'ecommerce_etl' AND wait_event_type = 'Lock'",
            )
            time.sleep(0.1)
        assert waiting, "the load never reached the orders upsert"
        assert query(fresh_db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted") == [(1,)]
        proc.send_signal(signal.SIGKILL)  # the worker dies mid-transaction
        proc.wait(timeout=30)
        blocker.rollback()
    deadline = time.monotonic() + 60
    while query(fresh_db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ecommerce_etl'") != [(0,)]:
        assert time.monotonic() < deadline, "the killed load's session did not end"
        time.sleep(0.1)
    assert digest(fresh_db) == before
    assert query(fresh_db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == [(0,)]
    pipeline.run_all(settings, "run-2", fresh_db)  # the next run converges
    assert query(fresh_db, "SELECT quantity, status FROM orders WHERE order_reference = 'ORD-1'") == [(7, "refunded")]
    assert query(fresh_db, "SELECT count(*) FROM orders") == [(5,)]


def test_duplicate_that_lost_creates_no_customer(settings: Settings, fresh_db: str) -> None:
    write_inputs(
        settings.raw_data_dir,
        [
            ["ORD-1", "first@example.com", "1", "1", "9.99", "2026-10-01T10:00:00", "pending", "paypal"],
            ["ORD-1", "second@example.com", "1", "1", "9.99", "2026-10-01T10:00:00", "pending", "paypal"],
        ],
    )
    pipeline.run_all(settings, "run-1", fresh_db)
    assert query(fresh_db, "SELECT c.email FROM orders o JOIN customers c USING (customer_id)") == [
        ("second@example.com",)
    ]
    assert query(fresh_db, "SELECT count(*) FROM customers WHERE email = 'first@example.com'") == [(0,)]


def test_load_error_quotes_no_customer_data(settings: Settings, fresh_db: str) -> None:
    staging = pipeline.run_dir(settings, "etl_ecommerce_pipeline", "run-1")
    manifests = {s: pipeline.extract(s, settings, staging) for s in pipeline.EXTRACTORS}
    transformed = pipeline.transform(manifests, settings, staging, fresh_db)
    clean = Path(transformed["sources"]["customers"]["clean_path"])
    clean.write_text(clean.read_text().replace('"ann@example.com"', '"Ann@Example.com"'))  # breaks the lower-case CHECK
    with pytest.raises(LoadError) as err:
        pipeline.load(transformed, settings, "run-1", fresh_db)
    message = str(err.value)
    assert "CheckViolation [23514]" in message and "constraint customers_email_check" in message
    assert "ann@example.com" not in message.lower()
