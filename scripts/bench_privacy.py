"""Benchmark of one GDPR erasure in a warehouse of ~1M orders (docs/benchmarks.md "Privacy erasure").

Starts an embedded PostgreSQL (``.local/bench_privacy/pg``), creates a fresh database from the migrations and
fills it with SQL ``generate_series`` (not the pipeline: the load is not what is measured, and this is ~20x
faster): ``--customers`` customers, ``--orders`` orders and ``--sessions`` sessions spread over them, and
``--rejects`` quarantined rows whose JSON raw record carries an address. The data subject (one customer)
has orders, sessions and one quarantined row, and appears in a staged CSV and a report file.

Then it erases that customer through the real request path (`submit_request` + `process_requests`, with the
load lock, files, audit and VACUUM) and prints the total seconds and the seconds per step (from the
``include.privacy`` DEBUG step timings), then ``EXPLAIN (ANALYZE, BUFFERS)`` of the statements the erasure
runs, in a rolled-back transaction, with ``--explain``. Figures only: nothing fails on time.

    python -m scripts.bench_privacy                 # 1M orders, 100k customers, 300k sessions, 20k rejects
    python -m scripts.bench_privacy --orders 100000 --explain
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from include import local_postgres

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".local" / "bench_privacy"
KEY = b"bench-privacy-key-0123456789abcdef"
log = logging.getLogger("bench_privacy")

FILL = [
    (
        "products",
        "INSERT INTO products (product_id, name, price, category, price_tier, etl_run_id)"
        " SELECT i, 'product ' || i, (i %% 200) + 0.99, 'cat' || (i %% 7), 'standard', 'bench'"
        " FROM generate_series(1, 50) i",
    ),
    (
        "customers",
        "INSERT INTO customers (customer_id, email, first_name, last_name, country, signup_date, etl_run_id)"
        " SELECT i, 'customer' || i || '@example.com', 'First' || i, 'Last' || i, 'FR', date '2024-01-01' + (i %% 600),"
        " 'bench' FROM generate_series(1, %(customers)s) i",
    ),
    (
        "orders",
        "INSERT INTO orders (order_reference, customer_id, product_id, quantity, unit_price, total_amount, order_date,"
        " status, payment_method, etl_run_id)"
        " SELECT 'ORD-' || lpad(i::text, 9, '0'), 1 + (i::bigint * 7919) %% %(customers)s, 1 + i %% 50, 1 + i %% 5, 10.50,"
        " (1 + i %% 5) * 10.50, timestamptz '2025-01-01' + make_interval(mins => i),"
        " (ARRAY['pending','shipped','delivered','cancelled'])[1 + i %% 4], 'paypal', 'bench-' || (i / 100000)"
        " FROM generate_series(1, %(orders)s) i",
    ),
    (
        "user_sessions",
        "INSERT INTO user_sessions (session_id, customer_id, session_start, session_end, duration_seconds, pages_viewed,"
        " items_viewed, items_added_to_cart, items_viewed_count, items_added_to_cart_count, converted, device_type,"
        " browser, ip_network, etl_run_id)"
        " SELECT 'sess-' || i, 1 + (i::bigint * 104729) %% %(customers)s, timestamptz '2025-06-01' + make_interval(mins => i),"
        " timestamptz '2025-06-01' + make_interval(mins => i, secs => 300), 300, 1 + i %% 9,"
        " jsonb_build_array(1 + i %% 50, 1 + (i + 3) %% 50), jsonb_build_array(1 + i %% 50), 2, 1, i %% 3 = 0,"
        " (ARRAY['desktop','mobile','tablet'])[1 + i %% 3], 'Firefox', '203.0.113.0/24', 'bench'"
        " FROM generate_series(1, %(sessions)s) i",
    ),
    (
        "rejected_records",
        "INSERT INTO rejected_records (etl_run_id, source, source_file, line_number, reason, field, detail, raw_record)"
        " SELECT 'bench', 'orders', 'orders.csv', i, 'invalid_quantity', 'quantity', 'quantity must be >= 1',"
        " jsonb_build_object('order_reference', 'REJ-' || i, 'customer_email', 'customer' || (1 + i %% %(customers)s)"
        " || '@example.com', 'quantity', '0') FROM generate_series(1, %(rejects)s) i",
    ),
]


def fill(url: str, sizes: dict[str, int]) -> dict[str, float]:
    """Fill the warehouse with `sizes`; return seconds per table."""
    seconds: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for table, statement in FILL:
            t0 = time.monotonic()
            conn.execute(statement, sizes)  # type: ignore[arg-type]
            seconds[table] = round(time.monotonic() - t0, 2)
            log.info("filled %s in %.1fs", table, seconds[table])
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('customers', 'customer_id'), (SELECT max(customer_id) FROM customers))"
        )
        t0 = time.monotonic()
        conn.execute("VACUUM ANALYZE")
        seconds["vacuum_analyze"] = round(time.monotonic() - t0, 2)
    return seconds


class StepTimes(logging.Handler):
    """Collects the ``erase step <name>: <seconds>`` DEBUG records of include.privacy."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.steps: list[tuple[str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "erase step %s: %.3fs":
            name, secs = record.args  # type: ignore[misc]
            self.steps.append((str(name), float(secs)))


def explain(url: str, subject: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the erasure's statements for `subject`, rolled back."""
    from include.privacy import erase_in_warehouse, token

    lines: list[str] = []
    with psycopg.connect(url) as conn:
        original = psycopg.Cursor.execute

        def traced(self: psycopg.Cursor[Any], query: Any, params: Any = None, **kw: Any) -> Any:
            text = query.as_string(conn) if hasattr(query, "as_string") else str(query)
            if (
                text.lstrip().upper().startswith(("UPDATE", "DELETE", "SELECT CUSTOMER_ID", "SELECT EXISTS"))
                and "EXPLAIN" not in text
            ):
                plan = original(self, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + text, params, **kw).fetchall()
                lines.append(text)
                lines.extend("    " + r[0] for r in plan)
                lines.append("")
            return original(self, query, params, **kw)

        psycopg.Cursor.execute = traced  # type: ignore[method-assign,assignment]
        try:
            erase_in_warehouse(conn, "public", subject, token(subject, KEY))
        finally:
            psycopg.Cursor.execute = original  # type: ignore[method-assign]
            conn.rollback()
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=300_000)
    parser.add_argument("--rejects", type=int, default=20_000)
    parser.add_argument("--explain", action="store_true", help="also EXPLAIN ANALYZE each erasure statement")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from include.migrations import migrate
    from include.privacy import Dirs, process_requests, submit_request

    sizes = {"orders": args.orders, "customers": args.customers, "sessions": args.sessions, "rejects": args.rejects}
    subject_id = 42
    subject = f"customer{subject_id}@example.com"
    files = WORK / "files"
    shutil.rmtree(files, ignore_errors=True)
    dirs = Dirs(files / "staging", files / "reports", files / "exports", files / "backups")
    (dirs.staging / "etl" / "run-1").mkdir(parents=True)
    (dirs.staging / "etl" / "run-1" / "customers.csv").write_text(f"email,first_name\n{subject},First42\n")
    dirs.reports.mkdir(parents=True)
    (dirs.reports / "extract.csv").write_text(f"email,orders\n{subject},3\nother@example.org,1\n")

    server = local_postgres.start(WORK / "pg")
    try:
        local_postgres.drop_database(server, "bench_privacy")
        url = local_postgres.create_database(server, "bench_privacy")
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
        t0 = time.monotonic()
        filled = fill(url, sizes)
        fill_seconds = time.monotonic() - t0
        with psycopg.connect(url) as conn:
            held = conn.execute(
                "SELECT (SELECT count(*) FROM orders WHERE customer_id = %s), "
                "(SELECT count(*) FROM user_sessions WHERE customer_id = %s), "
                "(SELECT count(*) FROM rejected_records WHERE raw_record->>'customer_email' = %s), "
                "pg_size_pretty(pg_database_size(current_database()))",
                (subject_id, subject_id, subject),
            ).fetchone()
        plans = explain(url, subject) if args.explain else ""

        handler = StepTimes()
        privacy_log = logging.getLogger("include.privacy")
        privacy_log.addHandler(handler)
        privacy_log.setLevel(logging.DEBUG)
        rid = submit_request(url, "public", subject, "erase")
        t0 = time.monotonic()
        summary = process_requests(url, "public", dirs, KEY, run_id="bench", actor="bench_privacy", request_id=str(rid))
        total = time.monotonic() - t0
        privacy_log.removeHandler(handler)
        t0 = time.monotonic()
        again = process_requests(url, "public", dirs, KEY, run_id="bench-2", actor="bench_privacy", request_id=str(rid))
        repeat = time.monotonic() - t0
        with psycopg.connect(url) as conn:
            left = conn.execute("SELECT count(*) FROM customers WHERE email = %s", (subject,)).fetchone()[0]  # type: ignore[index]
    finally:
        local_postgres.stop(WORK / "pg")

    out = sys.stdout
    out.write(f"\nPrivacy erasure benchmark ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f})\n")
    out.write(
        f"warehouse: {args.orders:,} orders, {args.customers:,} customers, {args.sessions:,} sessions, "
        f"{args.rejects:,} quarantined rows; database size {held[3] if held else '?'}\n"
    )
    out.write(f"fill (SQL generate_series + VACUUM ANALYZE): {fill_seconds:.1f}s {filled}\n")
    out.write(
        f"subject: {held[0] if held else '?'} orders, {held[1] if held else '?'} sessions, "
        f"{held[2] if held else '?'} quarantined row(s), 1 staged file, 1 report file\n"
    )
    out.write(f"erasure (process_requests, one request): {total:.2f}s  counts={summary[0].get('counts')}\n")
    for name, secs in handler.steps:
        out.write(f"  {name:<40} {secs:8.3f}s\n")
    out.write(f"repeat of the same request: {repeat:.3f}s status={again[0]['status']}\n")
    out.write(f"customers still holding the address: {left}\n")
    if plans:
        out.write("\nEXPLAIN (ANALYZE, BUFFERS) of the erasure's statements (rolled back):\n" + plans + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
