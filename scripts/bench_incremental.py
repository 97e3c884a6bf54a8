"""`make bench-incremental` (also run by `make bench`): the cost of a daily run with a history in the warehouse.

Scenario (issue 9, "make bench gains an incremental scenario"):

- A history of ``--days`` daily files (default 30 x 100,000 orders, ``orders_2026-10-01.csv`` ...) and one
  sessions file per day (``user_sessions_2026-10-01.jsonl`` ..., ``--sessions-per-day``, default = orders),
  with ``customers.csv`` and ``products.json``, is generated with the project's generator
  (scripts/generate_data.py: one run of (days + 1) x N rows written in chunks of exactly one day, split at the
  chunk boundaries, so every daily file holds its own defects and within-file duplicates, and order references
  and session ids are unique across days).
- Every load goes through the landing path the DAG's tasks call (include/pipeline.py: ``claim`` ->
  ``extract_file`` per file -> ``transform_products`` -> ``transform_file`` per file -> ``load_files`` (one
  transaction, ``ingested_files`` registry, version rule) -> ``finish_files``), each run in its own process so
  its peak RSS is its own (the server's memory is not counted, as in `make bench`).

Measured paths (each printed with the 1-minute load average at its end):

- **reload** — the ``--days`` history files claimed in ONE run into a fresh warehouse (what a design that re-reads
  every file costs each day; this run is also what puts the history into the warehouse for ``new_day``);
- **new_day** — one new day's files dropped next to the loaded history: the run claims exactly those and skips
  the history (registry: same content already loaded; with ``--archive`` the history was moved away instead);
- **alone** — the same new day's files into an empty warehouse (products and customers loaded beforehand,
  untimed, exactly as they are already in the warehouse of ``new_day``).

Ratios: new_day / alone (target <= 2) and new_day / reload (target <= 1/10); peak RSS per path (target < 1 GiB);
sessions rows/s vs orders rows/s (seconds per source = its extract + transform + the load statements naming it).
Figures, never assertions: nothing here fails on time.
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
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / ".local" / "bench"
FIRST_DAY = date(2026, 10, 1)
DAG_ID = "bench_incremental"
SOURCES = ("orders", "user_sessions")
log = logging.getLogger("bench_incremental")


# ---- data ------------------------------------------------------------------------------------------------
def day_names(days: int) -> list[str]:
    """The date stamps of the history days and of the new day (the last one)."""
    return [(FIRST_DAY + timedelta(days=i)).isoformat() for i in range(days + 1)]


def _split_lines(src: Path, rows_per_part: int, targets: list[Path], header: bool) -> None:
    """Split a line-oriented file (CSV with a header, or JSON Lines) into parts of exactly `rows_per_part` lines."""
    with src.open("rb") as f:
        head = f.readline() if header else b""
        for target in targets:
            with target.open("wb") as out:
                out.write(head)
                for _ in range(rows_per_part):
                    line = f.readline()
                    if not line:
                        raise ValueError(f"{src}: fewer lines than {len(targets)} x {rows_per_part}")
                    out.write(line)
        if f.readline():
            raise ValueError(f"{src}: more lines than {len(targets)} x {rows_per_part}")


def generate_days(data: Path, days: int, orders_per_day: int, sessions_per_day: int, seed: int) -> dict[str, Any]:
    """Write the daily files into data/days (once per size and seed); return the generator's expected counts.

    The generator writes (days + 1) x N rows in chunks of exactly N rows (chunk_rows = N): each chunk has its own
    defects and duplicates (a duplicate repeats a row of the same chunk), so splitting at chunk boundaries gives
    self-contained daily files. Orders and sessions come from two generator calls with the same seed and size
    class, hence the same customers and products.
    """
    from scripts.generate_data import generate

    out = data / "days"
    done = data / "generated.json"
    if done.exists():
        return dict(json.loads(done.read_text()))
    shutil.rmtree(out, ignore_errors=True)
    gen_o, gen_s = data / "gen-orders", data / "gen-sessions"
    n = days + 1
    large = max(orders_per_day, sessions_per_day) * n >= 100_000
    t = time.monotonic()
    ro = generate(
        gen_o, orders=n * orders_per_day, sessions=0, seed=seed, large=large, jsonl=True,
        chunk_rows=orders_per_day, write_docs=False,
    )  # fmt: skip
    rs = generate(
        gen_s, orders=0, sessions=n * sessions_per_day, seed=seed, large=large, jsonl=True,
        chunk_rows=sessions_per_day, write_docs=False,
    )  # fmt: skip
    for name in ("customers.csv", "products.json"):
        if (gen_o / name).read_bytes() != (gen_s / name).read_bytes():
            raise RuntimeError(f"the two generator calls wrote different {name}")
    out.mkdir(parents=True)
    stamps = day_names(days)
    _split_lines(gen_o / "orders.csv", orders_per_day, [out / f"orders_{d}.csv" for d in stamps], header=True)
    _split_lines(
        gen_s / "user_sessions.json", sessions_per_day, [out / f"user_sessions_{d}.jsonl" for d in stamps], False
    )
    for name in ("customers.csv", "products.json"):
        os.replace(gen_o / name, out / name)
    shutil.rmtree(gen_o)
    shutil.rmtree(gen_s)
    expected = {
        "orders": ro["expected"]["orders"],
        "user_sessions": rs["expected"]["user_sessions"],
        "products": ro["expected"]["products"],
        "orders_rows": n * orders_per_day,
        "sessions_rows": n * sessions_per_day,
        "generate_s": round(time.monotonic() - t, 1),
    }
    done.write_text(json.dumps(expected))
    return expected


def _link(src: Path, dst_dir: Path) -> None:
    dst_dir.mkdir(parents=True, exist_ok=True)
    if not (dst_dir / src.name).exists():
        os.link(src, dst_dir / src.name)


def landing_dirs(data: Path, days: int) -> dict[str, Path]:
    """Fresh landing folders (hard links to data/days): the history warehouse's and the empty warehouse's."""
    src = data / "days"
    stamps = day_names(days)
    history, alone = data / "landing-history", data / "landing-alone"
    for folder in (history, alone):
        shutil.rmtree(folder, ignore_errors=True)
    for name in ("products.json", "customers.csv"):
        _link(src / name, history)
        _link(src / name, alone)
    for d in stamps[:-1]:
        _link(src / f"orders_{d}.csv", history)
        _link(src / f"user_sessions_{d}.jsonl", history)
    return {"history": history, "alone": alone, "new": src}


def drop_new_day(data: Path, days: int, landing: Path) -> None:
    """The new day's export arrives: its orders and sessions files appear in `landing`."""
    d = day_names(days)[-1]
    _link(data / "days" / f"orders_{d}.csv", landing)
    _link(data / "days" / f"user_sessions_{d}.jsonl", landing)


# ---- one landing run, in a child process -----------------------------------------------------------------
class _LoadSteps(logging.Handler):
    """Seconds per load statement, from the loader's own log lines ("load <run> step <name> took <s>")."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if " step " in str(record.msg) and isinstance(record.args, tuple) and len(record.args) == 3:
            name, took = str(record.args[1]), float(str(record.args[2]))
            self.seconds[name] = round(self.seconds.get(name, 0.0) + took, 3)


def _settings(landing: Path, staging: Path, archive: bool, parents_only: bool) -> Any:
    from include.config_loader import load_config

    os.environ["ECOM_RAW_DATA_DIR"] = str(landing)
    settings = load_config()
    sources = dict(settings.sources)
    if parents_only:  # the untimed set-up run of `alone` loads products and customers only
        sources = {k: dataclasses.replace(v, required=False) for k, v in sources.items()}
    return dataclasses.replace(
        settings,
        staging_dir=staging,
        sources=sources,
        landing=settings.landing.model_copy(update={"archive": archive}),
    )


def landing_run(settings: Any, run_id: str, conninfo: str) -> dict[str, Any]:
    """One ETL run through the steps the DAG's tasks call; seconds per step and per source, and the counts."""
    from include import pipeline

    steps = _LoadSteps()
    logging.getLogger("include.load").addHandler(steps)
    logging.getLogger("include.load").setLevel(logging.INFO)
    staging = pipeline.run_dir(settings, DAG_ID, run_id)
    per_source: dict[str, dict[str, float]] = {}

    def add(step: str, source: str, seconds: float) -> None:
        s = per_source.setdefault(source, {})
        s[step] = s.get(step, 0.0) + seconds

    started = datetime.now(UTC)
    t0 = t = time.monotonic()
    claimed = pipeline.claim(settings, run_id, conninfo)
    timings = {"claim": time.monotonic() - t}
    extracted = []
    t = time.monotonic()
    for ref in claimed["claimed"]:
        t1 = time.monotonic()
        extracted.append(pipeline.extract_file(ref, settings, staging))
        add("extract", ref["source"], time.monotonic() - t1)
    timings["extract"] = time.monotonic() - t
    t = time.monotonic()
    products = pipeline.transform_products(extracted, settings, staging, conninfo)
    add("transform", "products", time.monotonic() - t)
    transformed = []
    for f in extracted:
        t1 = time.monotonic()
        transformed.append(pipeline.transform_file(f, products, settings, staging, conninfo))
        if f["source"] != "products":
            add("transform", f["source"], time.monotonic() - t1)
    timings["transform"] = time.monotonic() - t
    t = time.monotonic()
    loaded = pipeline.load_files(
        transformed, claimed["skipped"], settings, run_id, conninfo=conninfo, started_at=started
    )
    timings["load"] = time.monotonic() - t
    t = time.monotonic()
    pipeline.finish_files(loaded, settings, conninfo)
    timings["archive"] = time.monotonic() - t
    seconds = time.monotonic() - t0
    shutil.rmtree(staging, ignore_errors=True)  # a 3M-row run stages GBs; the figures are taken
    for name, took in steps.seconds.items():
        for source in (*SOURCES, "customers", "products"):
            if name.endswith(f" {source}") or f" {source} " in name:
                add("load", source, took)
                break
    claimed_by_source: dict[str, int] = {}
    for ref in claimed["claimed"]:
        claimed_by_source[ref["source"]] = claimed_by_source.get(ref["source"], 0) + 1
    return {
        "seconds": round(seconds, 2),
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "per_source": {s: {k: round(v, 2) for k, v in d.items()} for s, d in per_source.items()},
        "load_steps": steps.seconds,
        "claimed": claimed_by_source,
        "skipped": len(claimed["skipped"]),
        "sources": {
            name: {
                k: s.get(k, 0) for k in ("rows_read", "rows_loaded", "rows_rejected", "inserted", "updated", "stale")
            }
            for name, s in loaded["sources"].items()
        },
        "tables": _table_counts(conninfo),
    }


def _table_counts(conninfo: str) -> dict[str, int]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(conninfo) as conn:
        out = {}
        for table in ("orders", "user_sessions", "customers", "products", "ingested_files"):
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            out[table] = int(row[0]) if row else 0
        return out


# Customers whose stored aggregates differ from a full recompute over the tables (the loader maintains them
# from each run's rows; this checks that delta at the bench's size, untimed, after the run's figures).
AGGREGATE_MISMATCHES = """
SELECT count(*) FROM customers c
LEFT JOIN (SELECT customer_id, count(*) n, sum(total_amount) spent, min(order_date) first_at, max(order_date) last_at
           FROM orders GROUP BY customer_id) o USING (customer_id)
LEFT JOIN (SELECT customer_id, count(*) n, round(avg(converted::int), 4) rate FROM user_sessions GROUP BY customer_id) s
     USING (customer_id)
WHERE (c.order_count, c.total_spent, c.first_order_at, c.last_order_at, c.session_count, c.conversion_rate)
      IS DISTINCT FROM (coalesce(o.n, 0), coalesce(o.spent, 0), o.first_at, o.last_at, coalesce(s.n, 0), s.rate)
"""


def aggregate_mismatches(conninfo: str) -> int:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        row = conn.execute(AGGREGATE_MISMATCHES).fetchone()
        return int(row[0]) if row else -1


# ---- a larger (or smaller) history without reloading it ------------------------------------------------------
# Loading 10M orders through the pipeline takes about an hour on this machine; the new day's figures only need a
# warehouse that *holds* that many orders. So the kept history is resized in SQL, untimed: copies of the real
# orders with new natural keys, same customers and products (the foreign keys hold by construction), their lineage
# marked 'synthetic-history' and their etl_run_id GROW_RUN_ID, so nobody takes them for loaded rows.
GROW_RUN_ID = "bench-grow-history"
SYNTHETIC_FILE = "synthetic-history"

# Copy k of the real orders: reference '<ref>~h<k>' (the generator's references never contain '~', so the keys are
# new and unique), order date k x 91 days earlier, so that the copies read as older years of the same shop rather
# than as a second order at the same instant (the real history spans the generator's 90-day window).
_GROW_ORDERS = """
INSERT INTO orders (order_reference, customer_id, product_id, quantity, unit_price, total_amount, order_date,
                    status, payment_method, etl_run_id, src_file, src_line, src_file_id)
SELECT o.order_reference || '~h' || %(k)s, o.customer_id, o.product_id, o.quantity, o.unit_price, o.total_amount,
       o.order_date - make_interval(days => 91 * %(k)s), o.status, o.payment_method, %(run)s, %(file)s, NULL, NULL
FROM orders o
WHERE o.src_file IS DISTINCT FROM %(file)s AND o.order_id <= %(last_id)s
"""

# Every customer's aggregates from its whole history, once, after the resize (the same definition as the loader's
# full recompute, include/load.py _REFRESH_AGGREGATES, for all customers instead of the touched ones); written by
# the loader's own SET_CUSTOMER_AGGREGATES.
_ALL_AGGREGATES = """
WITH o AS (
    SELECT customer_id, count(*) AS n, sum(total_amount) AS spent, min(order_date) AS first_at, max(order_date) AS last_at
    FROM orders GROUP BY customer_id
), s AS (
    SELECT customer_id, count(*) AS n, round(avg(converted::int), 4) AS rate FROM user_sessions GROUP BY customer_id
), agg AS (
    SELECT c.customer_id, coalesce(o.n, 0) AS order_count, coalesce(o.spent, 0) AS total_spent, o.first_at, o.last_at,
           coalesce(s.n, 0) AS session_count, s.rate
    FROM customers c LEFT JOIN o USING (customer_id) LEFT JOIN s USING (customer_id)
)
"""


def resize_history(conninfo: str, orders_to: int) -> dict[str, Any]:
    """Grow (copies of the real orders) or cut (the highest order ids) the warehouse's orders to `orders_to`; untimed.

    Sessions, customers, products and the registry stay as loaded: the resized warehouse differs from the real one in
    its number of orders only, so two resized warehouses compare on that alone. A cut keeps the first `orders_to`
    orders by id (the identity the loader assigned; a deterministic choice, not a claim about which days) and leaves the registry listing every history file as
    loaded: the new day's run sees the same 62 skipped files either way. Then every customer's aggregates are
    recomputed once and the tables vacuumed and analysed, as autovacuum would after a bulk change, so the new day
    meets statistics that describe the table it upserts into.
    """
    import psycopg

    from include.load import SET_CUSTOMER_AGGREGATES

    t = time.monotonic()
    with psycopg.connect(conninfo) as conn:
        before = int(conn.execute("SELECT count(*) FROM orders").fetchone()[0])  # type: ignore[index]
        real, last_id = conn.execute(
            "SELECT count(*), coalesce(max(order_id), 0) FROM orders WHERE src_file IS DISTINCT FROM %s",
            (SYNTHETIC_FILE,),
        ).fetchone()  # type: ignore[misc]
        if orders_to < before:
            # By id: deterministic, so a repeated cut keeps the same orders.
            conn.execute(
                "DELETE FROM orders WHERE order_id IN (SELECT order_id FROM orders ORDER BY order_id OFFSET %s)",
                (orders_to,),
            )
        k, have = 0, min(before, orders_to)
        while have < orders_to:
            k += 1
            need = orders_to - have
            # A whole copy while it fits, then the first `need` real orders by id for the last, partial one.
            cut = last_id
            if need < real:
                row = conn.execute(
                    "SELECT order_id FROM orders WHERE src_file IS DISTINCT FROM %s ORDER BY order_id OFFSET %s LIMIT 1",
                    (SYNTHETIC_FILE, need - 1),
                ).fetchone()
                cut = int(row[0])  # type: ignore[index]
            params = {"k": k, "run": GROW_RUN_ID, "file": SYNTHETIC_FILE, "last_id": cut}
            inserted = conn.execute(_GROW_ORDERS, params).rowcount
            have += inserted
            log.info(
                "history: copy %d of the real orders, %d rows, %d orders now (%.0fs)",
                k,
                inserted,
                have,
                time.monotonic() - t,
            )
        conn.execute(_ALL_AGGREGATES + SET_CUSTOMER_AGGREGATES)
        conn.commit()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) orders")
        conn.execute("VACUUM (ANALYZE) customers")
        after, synthetic = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE src_file = %s) FROM orders", (SYNTHETIC_FILE,)
        ).fetchone()  # type: ignore[misc]
        sessions = int(conn.execute("SELECT count(*) FROM user_sessions").fetchone()[0])  # type: ignore[index]
    return {
        "orders_before": before,
        "orders": int(after),
        "synthetic_orders": int(synthetic),
        "sessions": sessions,
        "copies": k,
        "seconds_untimed": round(time.monotonic() - t, 1),
        "aggregate_mismatches": aggregate_mismatches(conninfo),
    }


def _child(args: argparse.Namespace) -> dict[str, Any]:
    settings = _settings(Path(args.landing), Path(args.staging), args.archive, args.child == "parents")
    return landing_run(settings, args.run_id, args.url)


def measure(kind: str, landing: Path, url: str, staging: Path, archive: bool) -> dict[str, Any]:
    """Run one landing run in its own process; its figures, peak RSS and the 1-minute load average at its end."""
    cmd = [sys.executable, "-m", "scripts.bench_incremental", "--child", kind, "--landing", str(landing)]
    cmd += ["--url", url, "--staging", str(staging), "--run-id", f"bench-inc-{kind}"]
    cmd += ["--archive"] if archive else []
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_incremental path {kind} failed:\n{proc.stderr[-4000:]}")
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return figures


# ---- the scenario ----------------------------------------------------------------------------------------
def run_scenario(
    server: Any,
    data: Path,
    *,
    days: int,
    orders_per_day: int,
    sessions_per_day: int,
    seed: int = 7,
    archive: bool = False,
    db_prefix: str = "bench_inc",
    snapshot: bool = False,
    reuse: Mapping[str, Any] | None = None,
    history_orders: int | None = None,
) -> dict[str, Any]:
    """Generate (once), then measure reload, new_day and alone against `server`; return every figure.

    ``snapshot``: after the reload, copy its warehouse to ``<prefix>_history_base`` (CREATE DATABASE … TEMPLATE).
    ``reuse``: the figures of the run that made that copy; its reload is not run again, the new day loads into a
    fresh copy of the snapshot and the reload figures are that run's (``results["reload_from"]`` says when).
    ``history_orders`` (with ``reuse``): that copy is resized to this many orders before the new day
    (``resize_history``, untimed; ``results["history"]`` says how).
    """
    import psycopg
    from psycopg import sql

    from include import local_postgres
    from include.migrations import migrate

    data.mkdir(parents=True, exist_ok=True)
    expected = generate_days(data, days, orders_per_day, sessions_per_day, seed)
    dirs = landing_dirs(data, days)
    staging = data / "staging"
    urls = {}
    history: dict[str, Any] | None = None
    if history_orders is not None and reuse is None:
        raise ValueError("history_orders resizes the kept history: it needs reuse (--reuse-history)")
    base = f"{db_prefix}_history_base"
    for name in ("history", "alone"):
        db = f"{db_prefix}_{name}"
        local_postgres.drop_database(server, db)
        if name == "history" and reuse is not None:
            with psycopg.connect(server.url(), autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(db), sql.Identifier(base)))
            urls[name] = server.url(db)
            if history_orders is not None:
                log.info("history: resizing the copy to %d orders (untimed) ...", history_orders)
                history = resize_history(urls[name], history_orders)
            continue
        urls[name] = local_postgres.create_database(server, db)
        with psycopg.connect(urls[name], autocommit=True) as conn:
            migrate(conn)  # the loader runs no DDL
    results: dict[str, Any] = {"expected": expected, "load_avg_before": [round(x, 2) for x in os.getloadavg()]}
    if history is not None:
        results["history"] = history
    if reuse is not None:
        results["reload"] = reuse["reload"]
        results["reload_from"] = reuse.get("reload_from") or reuse.get("finished_at")
        # The history's files are in the copied registry: the landing folder only has to hold them (skipped).
    else:
        log.info("reload: %d days claimed in one run (load average %.2f) ...", days, os.getloadavg()[0])
        results["reload"] = measure("reload", dirs["history"], urls["history"], staging, archive)
        if snapshot:  # untimed: lets later runs measure the new day again without a 20-minute reload
            local_postgres.drop_database(server, base)
            with psycopg.connect(server.url(), autocommit=True) as conn:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                        sql.Identifier(base), sql.Identifier(f"{db_prefix}_history")
                    )
                )
    drop_new_day(data, days, dirs["history"])
    log.info("new_day: one new day next to the history (load average %.2f) ...", os.getloadavg()[0])
    results["new_day"] = measure("new_day", dirs["history"], urls["history"], staging, archive)
    results["new_day"]["aggregate_mismatches"] = aggregate_mismatches(urls["history"])
    log.info("alone: products and customers first (untimed), then the new day into the empty warehouse ...")
    results["parents"] = measure("parents", dirs["alone"], urls["alone"], staging, archive)
    drop_new_day(data, days, dirs["alone"])
    results["alone"] = measure("alone", dirs["alone"], urls["alone"], staging, archive)
    results["alone"]["aggregate_mismatches"] = aggregate_mismatches(urls["alone"])
    return results


# ---- report ----------------------------------------------------------------------------------------------
LABELS = {
    "reload": "reload: {days} days in one run, fresh warehouse",
    "new_day": "new day: 1 day with {days} days loaded",
    "alone": "alone: the same day, empty warehouse",
}


def _rows(r: Mapping[str, Any], source: str) -> int:
    return int(r["sources"].get(source, {}).get("rows_read", 0))


def report(results: Mapping[str, Any], days: int, orders_per_day: int, sessions_per_day: int) -> list[str]:
    """The figures as fixed-width lines (what `make bench-incremental` prints and docs/benchmarks.md quotes)."""
    lines = [
        f"== bench_incremental: {days} days x {orders_per_day:,} orders + {sessions_per_day:,} sessions, "
        f"then 1 new day; {os.cpu_count()} cores ==",
        "load average before: {:.2f} {:.2f} {:.2f}".format(*results["load_avg_before"]),
        *(
            [f"reload figures reused from the run finished {results['reload_from']} (--reuse-history)"]
            if results.get("reload_from")
            else []
        ),
        *(
            [
                "history resized in SQL before the new day (untimed, {seconds_untimed:.0f}s): {orders_before:,} loaded"
                " orders -> {orders:,} ({synthetic_orders:,} synthetic copies, src_file 'synthetic-history'),"
                " {sessions:,} sessions; customers whose aggregates differ after the resize: {aggregate_mismatches}".format(
                    **results["history"]
                )
            ]
            if results.get("history")
            else []
        ),
        f"{'path':<44}{'orders':>11}{'sessions':>11}{'files':>7}{'skipped':>8}{'seconds':>9}{'peak MB':>9}{'load':>7}",
    ]
    for k, label in LABELS.items():
        r = results[k]
        lines.append(
            f"{label.format(days=days):<44}{_rows(r, 'orders'):>11,}{_rows(r, 'user_sessions'):>11,}"
            f"{sum(r['claimed'].values()):>7}{r['skipped']:>8}{r['seconds']:>9.1f}{r['peak_mb']:>9.0f}"
            f"{r['load_avg_1m']:>7.2f}"
        )
    for k in LABELS:
        t = results[k]["timings"]
        lines.append(f"  {k:<8} steps: " + ", ".join(f"{s} {v:.1f}s" for s, v in t.items()))
    new, alone, reload = (float(results[k]["seconds"]) for k in ("new_day", "alone", "reload"))
    lines += [
        f"new_day / alone:  {new / alone:.2f} (target <= 2)",
        f"new_day / reload: {new / reload:.3f} = 1/{reload / new:.0f} (target <= 1/10)",
        "peak RSS: " + ", ".join(f"{k} {results[k]['peak_mb']:.0f} MB" for k in LABELS) + " (target < 1024 MB)",
    ]
    for k in ("reload", "new_day"):
        r = results[k]
        rates = {}
        for source in SOURCES:
            secs = sum(r["per_source"].get(source, {}).values())
            rates[source] = _rows(r, source) / secs if secs else 0.0
        ps = {s: r["per_source"].get(s, {}) for s in SOURCES}
        lines.append(
            f"{k}: orders {rates['orders']:,.0f} rows/s ({_fmt(ps['orders'])}), sessions "
            f"{rates['user_sessions']:,.0f} rows/s ({_fmt(ps['user_sessions'])}); orders/sessions "
            f"{rates['orders'] / rates['user_sessions'] if rates['user_sessions'] else 0:.2f}"
        )
    shared = {
        n: s
        for n, s in results["new_day"]["load_steps"].items()
        if not any(n.endswith(f" {x}") or f" {x} " in n for x in (*SOURCES, "customers", "products"))
    }
    lines.append(
        "customers whose aggregates differ from a full recompute: "
        + ", ".join(f"{k} {results[k].get('aggregate_mismatches', '-')}" for k in ("new_day", "alone"))
    )
    lines.append("new_day shared load steps: " + ", ".join(f"{n} {s:.2f}s" for n, s in sorted(shared.items())))
    return lines


def _fmt(d: Mapping[str, float]) -> str:
    return " + ".join(f"{k} {v:.1f}s" for k, v in d.items()) or "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30, help="history files (days) before the new one (default 30)")
    parser.add_argument("--orders-per-day", type=int, default=100_000, help="orders per daily file (>= 100)")
    parser.add_argument("--sessions-per-day", type=int, help="sessions per daily file (>= 100; default: orders)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--archive", action="store_true", help="landing.archive on: loaded files move away instead of being skipped"
    )
    parser.add_argument(
        "--snapshot-history",
        action="store_true",
        help="after the reload, keep a copy of its warehouse (bench_inc_history_base) for --reuse-history",
    )
    parser.add_argument(
        "--reuse-history",
        action="store_true",
        help="skip the reload: measure the new day on a fresh copy of the kept history (figures of its run reused)",
    )
    parser.add_argument(
        "--grow-history-to",
        type=int,
        metavar="N",
        help="with --reuse-history: resize the copied history to N orders in SQL before the new day (untimed;"
        " copies of the loaded orders with new keys, or the first N by id if N is smaller)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--landing", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--staging", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        logging.basicConfig(level=logging.WARNING)
        figures = _child(args)
        figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        sys.stdout.write(json.dumps(figures) + "\n")
        return 0

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    sessions = args.sessions_per_day or args.orders_per_day
    if args.days < 1 or min(args.orders_per_day, sessions) < 100:
        parser.error("--days >= 1 and at least 100 orders and sessions per day (the generator's smallest chunk)")
    from include import local_postgres

    data = BENCH / f"incremental-{args.days}x{args.orders_per_day}x{sessions}-s{args.seed}"
    out = data / ("results-archive.json" if args.archive else "results.json")
    if args.grow_history_to is not None:
        if not args.reuse_history or args.grow_history_to < 1:
            parser.error("--grow-history-to N needs --reuse-history and N >= 1")
        out = out.with_name(f"results-history-{args.grow_history_to}.json")
    reuse = None
    if args.reuse_history:
        kept = data / "history-base.json"
        if not kept.exists():
            parser.error(f"--reuse-history: no kept history ({kept}); run once with --snapshot-history")
        reuse = json.loads(kept.read_text())
    server = local_postgres.start(BENCH / "pg-incremental")
    try:
        results = run_scenario(
            server,
            data,
            days=args.days,
            orders_per_day=args.orders_per_day,
            sessions_per_day=sessions,
            seed=args.seed,
            archive=args.archive,
            snapshot=args.snapshot_history,
            reuse=reuse,
            history_orders=args.grow_history_to,
        )
    finally:
        local_postgres.stop(BENCH / "pg-incremental")
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if args.snapshot_history:
        base = {"reload": results["reload"], "reload_from": results["finished_at"], "archive": args.archive}
        (data / "history-base.json").write_text(json.dumps(base, indent=1))
    out.write_text(json.dumps(results, indent=1))
    sys.stdout.write("\n" + "\n".join(report(results, args.days, args.orders_per_day, sessions)) + "\n")
    sys.stdout.write(f"figures: {out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
