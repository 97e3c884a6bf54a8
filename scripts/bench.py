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
import itertools
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


# Paths that run the project's own pipeline (input directory per path: see main()).
PIPELINE_PATHS = ("pipeline", "full", "full_200k", "sessions", "sessions_200k", "explain")
PATHS = ("pipeline", "floor", "to_sql", "to_sql_psycopg3", "full", "full_200k", "sessions", "sessions_200k")
EXPLAINED = ("INSERT", "UPDATE", "DELETE", "WITH")


class _StepLog(logging.Handler):
    """Collects the loader's per-step seconds from its log records ("load <run> step <name> took <s>")."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if " step " in str(record.msg) and isinstance(record.args, tuple) and len(record.args) == 3:
            name, took = str(record.args[1]), float(record.args[2])
            self.seconds[name] = round(self.seconds.get(name, 0.0) + took, 3)


def _explain_loads(out: Path) -> None:
    """Make every loader write statement also run as EXPLAIN (ANALYZE, BUFFERS) in a rolled-back savepoint.

    The plans (with real row counts, timings and buffer hits) go to `out`; the real statement then runs as
    usual, so the load's results are unchanged (it takes about twice as long).
    """
    import psycopg
    from psycopg import sql

    from include import load

    out.write_text("")

    class ExplainingCursor(psycopg.Cursor):  # type: ignore[type-arg]
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            text = query.as_string(self) if isinstance(query, sql.Composable) else str(query)
            if text.lstrip().split(None, 1)[0].upper() in EXPLAINED:
                with self.connection.transaction(force_rollback=True):
                    super().execute("EXPLAIN (ANALYZE, BUFFERS) " + text, params)
                    plan = "\n".join(r[0] for r in self.fetchall())
                with out.open("a") as f:
                    f.write(f"-- {' '.join(text.split())[:300]}\n{plan}\n\n")
            return super().execute(query, params, **kwargs)

    connect = load.DataLoader._connect

    def _connect(self: Any) -> Any:
        conn = connect(self)
        conn.cursor_factory = ExplainingCursor
        return conn

    load.DataLoader._connect = _connect  # type: ignore[method-assign]


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
    if kind in PIPELINE_PATHS:
        steps = _StepLog()
        logging.getLogger("include.load").addHandler(steps)
        logging.getLogger("include.load").setLevel(logging.INFO)
        if kind == "explain":
            _explain_loads(Path(raw).parent / "explain.txt")
        t = time.monotonic()
        out = pipeline.run_all(settings, f"bench-{kind}", url)
        seconds = time.monotonic() - t
        counted = "user_sessions" if kind.startswith("sessions") else "orders"
        return {
            "rows": out["sources"][counted]["rows_read"],
            "sessions": out["sources"]["user_sessions"]["rows_read"],
            "seconds": seconds,
            **{f"{k}_s": v for k, v in out["timings"].items()},
            "loaded": out["sources"][counted]["rows_loaded"],
            "steps": steps.seconds,
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


def _input_dirs(data: Path, n: int) -> dict[str, Path]:
    """One input directory per path, sharing the generated files through hard links."""
    full = data / "full"
    header = "order_reference,customer_email,product_id,quantity,unit_price,order_date,status,payment_method\n"
    sessions_200k = data / "user_sessions_200k.json"
    if not sessions_200k.exists():
        with (full / "user_sessions.json").open("rb") as src:
            json_lines = src.read(64).lstrip().startswith(b"{")
        if n <= 200_000 or not json_lines:  # small runs write a JSON array: the whole file
            os.link(full / "user_sessions.json", sessions_200k)
        else:
            with (full / "user_sessions.json").open("rb") as src, sessions_200k.open("wb") as dst:
                dst.writelines(itertools.islice(src, 200_000))  # JSON Lines: the first 200k sessions
    layout = {
        "orders_only": ("orders", None),
        "full": ("orders", "user_sessions.json"),
        "full_200k": ("orders", sessions_200k),
        "sessions": (None, "user_sessions.json"),
        "sessions_200k": (None, sessions_200k),
    }
    dirs = {}
    for name, (orders, sessions) in layout.items():
        d = data / name
        if name != "full":
            d.mkdir(exist_ok=True)
            for f in ("products.json", "customers.csv", *(["orders.csv"] if orders else [])):
                if not (d / f).exists():
                    os.link(full / f, d / f)
            if not orders:
                (d / "orders.csv").write_text(header)
            target = d / "user_sessions.json"
            if sessions is None:
                target.write_text("[]")
            elif not target.exists():
                os.link(sessions if isinstance(sessions, Path) else full / sessions, target)
        dirs[name] = d
    return dirs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--to-sql-sample", type=int, default=0, help="rows for the to_sql paths (default: all)")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated subset of {','.join(PATHS)}")
    parser.add_argument(
        "--explain", action="store_true", help="also write EXPLAIN (ANALYZE, BUFFERS) of every load statement"
    )
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
    if not (data / "full" / "user_sessions.json").exists():
        log.info("generating %d orders and %d sessions ...", args.orders, args.orders)
        _measure("generate", data / "full", "", args.orders)
    dirs = _input_dirs(data, args.orders)
    inputs = {"full": dirs["full"], "full_200k": dirs["full_200k"], "explain": dirs["full_200k"]}
    inputs |= {"sessions": dirs["sessions"], "sessions_200k": dirs["sessions_200k"]}
    paths = [p for p in args.paths.split(",") if p] + (["explain"] if args.explain else [])

    server = local_postgres.start(BENCH / "pg")
    results: dict[str, dict[str, Any]] = {}
    started = os.getloadavg()
    try:
        for kind in paths:
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
            log.info("measuring %s (load average %.2f) ...", kind, os.getloadavg()[0])
            results[kind] = _measure(
                kind, inputs.get(kind, dirs["orders_only"]), url, args.to_sql_sample or args.orders
            )
            results[kind]["load_avg_1m"] = round(os.getloadavg()[0], 2)
            log.info("%s: %s", kind, results[kind])
    finally:
        local_postgres.stop(BENCH / "pg")
    report(args.orders, results, started)
    if "explain" in results:
        sys.stdout.write(f"EXPLAIN (ANALYZE, BUFFERS) of every load statement: {data / 'explain.txt'}\n")
    (data / "results.json").write_text(json.dumps(results, indent=1))
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


def report(n: int, r: dict[str, dict[str, Any]], load_before: tuple[float, float, float]) -> None:
    def rate(k: str) -> float:
        return float(r[k]["rows"]) / float(r[k]["seconds"])

    out = sys.stdout.write
    out(f"\n== make bench: {n:,} orders, PostgreSQL, {os.cpu_count()} cores ==\n")
    out(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}\n")
    out(f"{'path':<46}{'rows':>11}{'seconds':>10}{'rows/s':>11}{'peak MB':>10}{'load':>7}\n")
    labels = {
        "pipeline": "pipeline extract+transform+load (orders)",
        "floor": "COPY to UNLOGGED + same upsert (floor)",
        "to_sql": "pandas to_sql, default driver (psycopg2)",
        "to_sql_psycopg3": "pandas to_sql, psycopg 3 driver",
        "full": "full pipeline: orders + N sessions",
        "full_200k": "full pipeline: orders + 200k sessions",
        "sessions": "pipeline, sessions only (N)",
        "sessions_200k": "pipeline, sessions only (200k)",
        "explain": "orders + 200k sessions under EXPLAIN",
    }
    for k, label in labels.items():
        if k not in r:
            continue
        f = r[k]
        out(
            f"{label:<46}{int(f['rows']):>11,}{float(f['seconds']):>10.1f}{rate(k):>11,.0f}"
            f"{float(f['peak_mb']):>10.0f}{float(f.get('load_avg_1m', 0)):>7.2f}\n"
        )
    for k in ("pipeline", "full_200k", "full"):
        if k in r:
            p = r[k]
            out(
                f"\n{k} steps: extract {p.get('extract_s', 0):.1f}s, transform {p.get('transform_s', 0):.1f}s, "
                f"load {p.get('load_s', 0):.1f}s; load statements:\n"
            )
            for step, took in sorted(p.get("steps", {}).items(), key=lambda kv: -kv[1]):
                out(f"    {step:<40}{took:>8.2f}s\n")
    if "floor" in r:
        out(f"floor COPY alone {float(r['floor'].get('copy_s', 0)):.1f}s\n")
        for k in ("pipeline", "full_200k"):
            if k in r:
                out(f"{k} / floor: {r['floor']['seconds'] / r[k]['seconds']:.2f} (floor seconds / ETL seconds)\n")
    if "to_sql" in r and "pipeline" in r:
        out(f"pipeline / to_sql throughput: {rate('pipeline') / rate('to_sql'):.1f}x\n")
    if "sessions" in r and "pipeline" in r:
        out(f"orders rows/s / sessions rows/s: {rate('pipeline') / rate('sessions'):.2f} (target <= 1.5)\n")
    if "sessions" in r and "sessions_200k" in r:
        a, b = float(r["sessions_200k"]["peak_mb"]), float(r["sessions"]["peak_mb"])
        out(f"sessions peak memory: {a:.0f} MB at 200k, {b:.0f} MB at N ({b / a - 1:+.0%}; target within 10%)\n")
    if "pipeline" in r:
        out(f"pipeline peak memory: {float(r['pipeline']['peak_mb']):.0f} MB (target < 1024 MB)\n")


if __name__ == "__main__":
    sys.exit(main())
