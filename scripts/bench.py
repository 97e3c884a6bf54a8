"""`make bench`: throughput of the pipeline's load of N orders against the naive and the floor paths.

Generates N orders (default 1,000,000) and matching sessions with scripts/generate_data.py, starts
an embedded PostgreSQL, and in fresh databases measures, each in its own process (so peak memory
is that path's own):

1. pipeline   — the pipeline's extract + transform + load of the orders (DataExtractor, DataTransformer,
                DataLoader: COPY into staging + upsert, one transaction), products and customers included;
2. floor      — `COPY` of the same orders.csv into an UNLOGGED table, then the same upsert into the
                indexed orders table (only a SQL filter of rows the database would refuse:
                the fastest idempotent load);
3. to_sql     — naive `pandas.read_csv` + `DataFrame.to_sql` into a fresh unindexed table, on a sample: with
                SQLAlchemy's default PostgreSQL driver (psycopg2) and with psycopg 3;
4. full run   — the whole pipeline over orders *and* the N matching sessions.

Prints rows/s, seconds and peak RSS per path. Figures, not assertions: nothing here fails on time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / ".local" / "bench"
log = logging.getLogger("bench")

FLOOR_SQL = """
WITH up AS (
  INSERT INTO orders (order_reference, customer_id, product_id, quantity, unit_price, total_amount, order_date, status, payment_method, etl_run_id)
  SELECT DISTINCT ON (r.order_reference) r.order_reference, c.customer_id, r.product_id::int, r.quantity::int, r.unit_price::numeric,
         r.quantity::int * r.unit_price::numeric, r.order_date::timestamptz, lower(btrim(r.status)), lower(btrim(r.payment_method)), 'floor'
  FROM raw_orders r JOIN customers c ON c.email = lower(btrim(r.customer_email))
  ORDER BY r.order_reference, r._line DESC
  ON CONFLICT (order_reference) DO UPDATE SET customer_id = EXCLUDED.customer_id, product_id = EXCLUDED.product_id,
      quantity = EXCLUDED.quantity, unit_price = EXCLUDED.unit_price, total_amount = EXCLUDED.total_amount,
      order_date = EXCLUDED.order_date, status = EXCLUDED.status, payment_method = EXCLUDED.payment_method, updated_at = now()
  WHERE ROW(orders.customer_id, orders.product_id, orders.quantity, orders.unit_price, orders.total_amount, orders.order_date,
            orders.status, orders.payment_method)
        IS DISTINCT FROM ROW(EXCLUDED.customer_id, EXCLUDED.product_id, EXCLUDED.quantity, EXCLUDED.unit_price,
            EXCLUDED.total_amount, EXCLUDED.order_date, EXCLUDED.status, EXCLUDED.payment_method)
  RETURNING 1
) SELECT count(*) FROM up
"""
# The floor only loads rows the database accepts: the generator's deliberate defects are filtered by SQL here.
FLOOR_FILTER = """
DELETE FROM raw_orders WHERE NOT coalesce((
  btrim(order_reference) <> '' AND lower(btrim(customer_email)) ~ '^[^@[:space:]]+@[^@[:space:]]+\\.[^@[:space:].]+$'
  AND btrim(quantity) ~ '^[0-9]+$' AND btrim(quantity)::bigint BETWEEN 1 AND 2000000000
  AND btrim(unit_price) ~ '^[0-9]+(\\.[0-9]+)?$' AND product_id ~ '^[0-9]+$' AND product_id::int IN (SELECT product_id FROM products)
  AND pg_input_is_valid(order_date, 'timestamptz')), false)
"""


def _allow_no_rows(settings: Any) -> Any:
    """The bench's inputs are empty on purpose for some sources ('[]' sessions, header-only orders): allow it."""
    sources = {k: dataclasses.replace(v, allow_header_only=True) for k, v in settings.sources.items()}
    return dataclasses.replace(settings, sources=sources)


def _child(kind: str, raw: str, url: str, sample: int) -> dict[str, float | int]:
    """Run one measured path in this (child) process; return figures."""
    import psycopg

    from include import pipeline
    from include.config_loader import load_config

    os.environ["ECOM_RAW_DATA_DIR"] = raw
    settings = dataclasses.replace(load_config(), staging_dir=BENCH / "staging", max_reject_rate=0.5)
    settings = _allow_no_rows(settings)
    orders_csv = Path(raw) / "orders.csv"
    if kind in ("pipeline", "full"):
        t = time.monotonic()
        out = pipeline.run_all(settings, f"bench-{kind}", url)
        seconds = time.monotonic() - t
        return {
            "rows": out["sources"]["orders"]["rows_read"],
            "seconds": seconds,
            **{f"{k}_s": v for k, v in out["timings"].items()},
            "loaded": out["sources"]["orders"]["rows_loaded"],
        }
    if kind == "generate":
        from scripts.generate_data import generate

        generate(Path(raw), orders=sample, sessions=sample, seed=7, write_docs=False)
        return {"rows": sample, "seconds": 0.0}
    if kind == "parents":
        _child_parents(Path(raw), url, Path(raw).parent / "full" / "orders.csv")
        return {"rows": 0, "seconds": 0.0}
    if kind == "floor":
        # Parents were loaded beforehand (not timed): the floor measures the orders COPY + upsert only.
        with psycopg.connect(url, autocommit=True) as conn:
            t = time.monotonic()
            conn.execute(
                "CREATE UNLOGGED TABLE raw_orders (order_reference text, customer_email text, product_id text, quantity text,"
                " unit_price text, order_date text, status text, payment_method text, _line bigserial)"
            )
            cur = conn.cursor()
            columns = (
                "order_reference, customer_email, product_id, quantity, unit_price, order_date, status, payment_method"
            )
            with (
                orders_csv.open("rb") as f,
                cur.copy(f"COPY raw_orders ({columns}) FROM STDIN (FORMAT csv, HEADER true)") as copy,
            ):
                while block := f.read(1 << 20):
                    copy.write(block)
            rows = cur.rowcount  # records, as the pipeline counts them
            copy_s = time.monotonic() - t
            conn.execute(FLOOR_FILTER)
            with conn.transaction():
                conn.execute("SET LOCAL work_mem = '256MB'")
                row = conn.execute(FLOOR_SQL).fetchone()
            seconds = time.monotonic() - t
        return {"rows": rows, "seconds": seconds, "copy_s": copy_s, "loaded": int(row[0]) if row else 0}
    if kind in ("to_sql", "to_sql_psycopg3"):
        import pandas as pd
        import sqlalchemy

        # The naive path as usually written: create_engine("postgresql://...") picks SQLAlchemy's default driver, psycopg2.
        engine = sqlalchemy.create_engine(
            url if kind == "to_sql" else url.replace("postgresql://", "postgresql+psycopg://")
        )
        t = time.monotonic()
        df = pd.read_csv(orders_csv, nrows=sample, dtype=str)
        df.to_sql(
            "orders_to_sql", engine, index=False, if_exists="replace"
        )  # the call as usually written: all defaults
        return {"rows": len(df), "seconds": time.monotonic() - t}
    raise ValueError(kind)


def _measure(kind: str, raw: Path, url: str, sample: int) -> dict[str, float | int]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.bench",
            "--child",
            kind,
            "--raw",
            str(raw),
            "--url",
            url,
            "--sample",
            str(sample),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench path {kind} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--to-sql-sample", type=int, default=0, help="rows for the to_sql paths (default: all)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--raw", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--sample", type=int, default=200_000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        logging.basicConfig(level=logging.WARNING)
        figures = _child(args.child, args.raw, args.url, args.sample)
        figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        sys.stdout.write(json.dumps(figures) + "\n")
        return 0

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    from include import local_postgres

    BENCH.mkdir(parents=True, exist_ok=True)
    data = BENCH / f"data-{args.orders}"
    if not (data / "full" / "manifest.json").exists():
        log.info("generating %d orders and %d sessions ...", args.orders, args.orders)
        _measure("generate", data / "full", "", args.orders)
    # The orders-only input: the same orders, products and customers, and no sessions to speak of.
    orders_only = data / "orders_only"
    orders_only.mkdir(exist_ok=True)
    for name in ("orders.csv", "products.json", "customers.csv"):
        target = orders_only / name
        if not target.exists():
            os.link(data / "full" / name, target)
    (orders_only / "user_sessions.json").write_text("[]")

    server = local_postgres.start(BENCH / "pg")
    results: dict[str, dict[str, float | int]] = {}
    try:
        for kind in ("pipeline", "floor", "to_sql", "to_sql_psycopg3", "full"):
            db = f"bench_{kind}"
            local_postgres.drop_database(server, db)
            url = local_postgres.create_database(server, db)
            _migrate(url)  # the loader runs no DDL: the schema comes from the migrations
            if kind == "floor":  # parents the floor's upsert joins to, loaded by the pipeline beforehand (untimed)
                parents = data / "parents"
                shutil.rmtree(parents, ignore_errors=True)
                parents.mkdir()
                (parents / "orders.csv").write_text(
                    "order_reference,customer_email,product_id,quantity,unit_price,order_date,status,payment_method\n"
                )
                for name in ("products.json", "customers.csv"):
                    (parents / name).write_bytes((data / "full" / name).read_bytes())
                (parents / "user_sessions.json").write_text("[]")
                _measure("parents", parents, url, 0)
            log.info("measuring %s ...", kind)
            results[kind] = _measure(
                kind, orders_only if kind != "full" else data / "full", url, args.to_sql_sample or args.orders
            )
            log.info("%s: %s", kind, results[kind])
    finally:
        local_postgres.stop(BENCH / "pg")
    report(args.orders, results)
    return 0


def _migrate(url: str) -> None:
    import psycopg

    from include.migrations import migrate

    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)


def _child_parents(parents: Path, url: str, orders_csv: Path) -> None:
    """Load products, customers.csv and every order email as customers, so the floor's join finds them (untimed)."""
    import psycopg

    from include import pipeline
    from include.config_loader import load_config

    os.environ["ECOM_RAW_DATA_DIR"] = str(parents)
    settings = dataclasses.replace(load_config(), staging_dir=BENCH / "staging", max_reject_rate=1.0)
    settings = _allow_no_rows(settings)
    pipeline.run_all(settings, "bench-parents", url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TEMP TABLE e (order_reference text, customer_email text, product_id text, quantity text, unit_price text,"
            " order_date text, status text, payment_method text)"
        )
        with orders_csv.open("rb") as f, conn.cursor().copy("COPY e FROM STDIN (FORMAT csv, HEADER true)") as copy:
            while block := f.read(1 << 20):
                copy.write(block)
        conn.execute(
            "INSERT INTO customers (email, etl_run_id) SELECT DISTINCT lower(btrim(customer_email)), 'bench' FROM e"
            " WHERE lower(btrim(customer_email)) ~ '^[^@[:space:]]+@[^@[:space:]]+\\.[^@[:space:].]+$' ON CONFLICT (email) DO NOTHING"
        )


def report(n: int, r: dict[str, dict[str, float | int]]) -> None:
    def rate(k: str) -> float:
        return float(r[k]["rows"]) / float(r[k]["seconds"])

    out = sys.stdout.write
    out(f"\n== make bench: {n:,} orders, PostgreSQL {os.cpu_count()} cores ==\n")
    out(f"{'path':<44}{'rows':>11}{'seconds':>10}{'rows/s':>11}{'peak MB':>10}\n")
    labels = {
        "pipeline": "pipeline extract+transform+load (orders)",
        "floor": "COPY to UNLOGGED + same upsert (floor)",
        "to_sql": "pandas to_sql, default driver (psycopg2)",
        "to_sql_psycopg3": "pandas to_sql, psycopg 3 driver",
        "full": "full pipeline: orders + sessions",
    }
    for k, label in labels.items():
        f = r[k]
        out(
            f"{label:<44}{int(f['rows']):>11,}{float(f['seconds']):>10.1f}{rate(k):>11,.0f}{float(f['peak_mb']):>10.0f}\n"
        )
    p = r["pipeline"]
    out(
        f"\npipeline steps: extract {p.get('extract_s', 0):.1f}s, transform {p.get('transform_s', 0):.1f}s, load {p.get('load_s', 0):.1f}s; "
        f"floor COPY alone {float(r['floor'].get('copy_s', 0)):.1f}s\n"
    )
    out(f"pipeline / floor throughput: {rate('pipeline') / rate('floor'):.0%} (target >= 50%)\n")
    out(f"pipeline / to_sql throughput: {rate('pipeline') / rate('to_sql'):.1f}x (target >= 10x)\n")
    out(f"pipeline peak memory: {float(p['peak_mb']):.0f} MB (target < 1024 MB)\n")


if __name__ == "__main__":
    sys.exit(main())
