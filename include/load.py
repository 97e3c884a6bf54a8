"""DataLoader: the only writer of the warehouse tables.

One transaction per run: take the load lock, COPY every clean file into a temporary staging table, upsert parents before children on natural keys (skipping unchanged rows,
so an identical re-run writes nothing), replace this run's quarantine rows, append this attempt to the ledger,
refresh customer aggregates, commit. The loader runs no DDL on the warehouse (only temporary staging
tables): the schema is created and upgraded by include/migrations.py as the owner role. Any failure rolls everything back: a run lands whole or not at all.

Merge semantics (declared per entity in `ENTITIES`): key = natural key; the last occurrence of a key
in the input wins; an existing row is updated in place only when a value differs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from include import entities
from include.database import classify_db_error, connect, describe, describe_db_error, require_migrated
from include.emails import redact_emails
from include.ledger import next_attempt
from include.transform import REJECT_COLUMNS

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every loader of this warehouse.
LOAD_LOCK_KEY = 7_300_421_155


@dataclass(frozen=True)
class Entity:
    """A warehouse table fed by one source: staging column types, natural key, merge columns."""

    source: str
    table: str
    key: str
    staging_types: Mapping[str, str]
    # Columns written to the table, as SQL expressions over the staging alias `s` (and customers `c`).
    select: Mapping[str, str]
    joins_customer: bool = False
    # Field of the raw record holding the natural key: reject_key is built from it.
    input_key: str = ""


# Derived from the entity registry, in load order (parents before children).
ENTITIES: tuple[Entity, ...] = tuple(
    Entity(s.name, s.table.name, s.natural_key, s.staging_types, s.select, s.joins_customer, s.input_key)
    for s in entities.SOURCES
)

# Customer aggregates (order_count, total_spent, first/last_order_at, session_count, conversion_rate) are maintained
# from the run's own rows, not recomputed from each touched customer's whole history (a daily file touches most
# customers: recomputing them read the full 3M-row history every day, 108 s of a 158 s run in the incremental bench).
# Before and after each order/session upsert the loader notes the stored version of every staged key (one row per
# key: before = what the upsert may replace, after = what it left); the run's change per customer is after - before.
# That is exact whatever the upsert did with a key (insert, update, unchanged, stale and not written, moved to
# another customer): an untouched key appears on both sides and cancels. Temporary, like staging.
_AGG_ROWS = sql.Identifier("stg_aggregate_rows")
# What each customer-owned entity contributes: the amount and date of an order, the conversion of a session.
_AGG_COLUMNS = {
    "orders": {"amount": "t.total_amount", "at": "t.order_date", "converted": "NULL::boolean"},
    "user_sessions": {"amount": "NULL::numeric", "at": "NULL::timestamptz", "converted": "t.converted"},
}
# Customers whose aggregates cannot be derived from the stored values plus the delta; they get a full recompute.
_TOUCHED = sql.Identifier("stg_touched_customers")
# conversion_rate is stored rounded to 4 places, so the stored converted count is recovered as round(rate * n):
# |rate * n - converted| <= 0.00005 * n, which is < 0.5 (one integer only) while n < 10000 sessions.
CONVERSION_EXACT_BELOW = 10_000

# Fallbacks: (1) an order that left a customer (moved to another one, or changed its date) carrying a date equal
# to the stored first or last order date: the customer's new first/last date cannot be known without reading
# the remaining orders (least/greatest only extend a range); (2) a customer with sessions in the run whose
# converted count cannot be recovered from the rounded rate (see CONVERSION_EXACT_BELOW), or whose stored rate
# is inconsistent with a non-zero session count.
_FALLBACK_CUSTOMERS = """
INSERT INTO stg_touched_customers
SELECT b.customer_id
FROM stg_aggregate_rows b
JOIN stg_aggregate_rows a ON a.entity = b.entity AND a.k = b.k AND a.phase = 1
JOIN customers c ON c.customer_id = b.customer_id
WHERE b.phase = -1 AND b.entity = 'orders'
  AND (a.customer_id, a.at) IS DISTINCT FROM (b.customer_id, b.at)
  AND b.at IN (c.first_order_at, c.last_order_at)
UNION
SELECT c.customer_id FROM customers c
WHERE c.customer_id IN (SELECT r.customer_id FROM stg_aggregate_rows r WHERE r.entity = 'user_sessions')
  AND (c.session_count >= %(exact_below)s OR (c.session_count > 0 AND c.conversion_rate IS NULL))
"""

# Writes a CTE `agg` (customer_id, order_count, total_spent, first_at, last_at, session_count, rate) to customers,
# leaving rows that would not change untouched (no new row version, no updated_at bump).
SET_CUSTOMER_AGGREGATES = """
UPDATE customers c
SET order_count = agg.order_count, total_spent = agg.total_spent, first_order_at = agg.first_at, last_order_at = agg.last_at,
    session_count = agg.session_count, conversion_rate = agg.rate, updated_at = now()
FROM agg
WHERE c.customer_id = agg.customer_id
  AND (c.order_count, c.total_spent, c.first_order_at, c.last_order_at, c.session_count, c.conversion_rate)
      IS DISTINCT FROM (agg.order_count, agg.total_spent, agg.first_at, agg.last_at, agg.session_count, agg.rate)
"""

# The stored aggregates plus the run's delta, for every customer with a noted row except the fallbacks.
# least/greatest skip NULLs: a customer's first order sets both dates. Same rounding as the full recompute:
# avg(converted::int) is sum / count in numeric, so round(converted / n, 4) gives the same value.
_APPLY_DELTA = (
    """
WITH d AS (
    SELECT customer_id,
           coalesce(sum(phase) FILTER (WHERE entity = 'orders'), 0) AS orders,
           coalesce(sum(phase * amount) FILTER (WHERE entity = 'orders'), 0) AS spent,
           min(at) FILTER (WHERE entity = 'orders' AND phase = 1) AS first_at,
           max(at) FILTER (WHERE entity = 'orders' AND phase = 1) AS last_at,
           coalesce(sum(phase) FILTER (WHERE entity = 'user_sessions'), 0) AS sessions,
           coalesce(sum(phase * converted::int) FILTER (WHERE entity = 'user_sessions'), 0) AS converted
    FROM stg_aggregate_rows
    WHERE customer_id NOT IN (SELECT customer_id FROM stg_touched_customers)
    GROUP BY customer_id
), agg AS (
    SELECT c.customer_id, c.order_count + d.orders AS order_count, c.total_spent + d.spent AS total_spent,
           CASE WHEN c.order_count + d.orders > 0 THEN least(c.first_order_at, d.first_at) END AS first_at,
           CASE WHEN c.order_count + d.orders > 0 THEN greatest(c.last_order_at, d.last_at) END AS last_at,
           c.session_count + d.sessions AS session_count,
           CASE WHEN c.session_count + d.sessions > 0 THEN round(
               (coalesce(round(c.conversion_rate * c.session_count), 0) + d.converted)::numeric
               / (c.session_count + d.sessions), 4) END AS rate
    FROM d JOIN customers c USING (customer_id)
)
"""
    + SET_CUSTOMER_AGGREGATES
)

# The full recompute of the customers in stg_touched_customers from their whole history (the fallbacks above;
# the same definition as privacy.py's recompute after an erasure and as the aggregates' column comments).
_REFRESH_AGGREGATES = (
    """
WITH t AS (
    SELECT DISTINCT customer_id FROM stg_touched_customers
), o AS (
    SELECT customer_id, count(*) AS n, sum(total_amount) AS spent, min(order_date) AS first_at, max(order_date) AS last_at
    FROM orders WHERE customer_id IN (SELECT customer_id FROM t) GROUP BY customer_id
), s AS (
    SELECT customer_id, count(*) AS n, round(avg(converted::int), 4) AS rate
    FROM user_sessions WHERE customer_id IN (SELECT customer_id FROM t) GROUP BY customer_id
), agg AS (
    SELECT t.customer_id, coalesce(o.n, 0) AS order_count, coalesce(o.spent, 0) AS total_spent, o.first_at, o.last_at,
           coalesce(s.n, 0) AS session_count, s.rate
    FROM t LEFT JOIN o USING (customer_id) LEFT JOIN s USING (customer_id)
)
"""
    + SET_CUSTOMER_AGGREGATES
)


def _create_aggregate_tables(cur: psycopg.Cursor[Any]) -> None:
    cur.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (entity text NOT NULL, phase smallint NOT NULL, k text NOT NULL,"
            " customer_id bigint NOT NULL, amount numeric, at timestamptz, converted boolean) ON COMMIT DROP"
        ).format(_AGG_ROWS)
    )
    cur.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (customer_id bigint) ON COMMIT DROP").format(_TOUCHED))


def note_touched_customers(cur: psycopg.Cursor[Any], entity: Entity, *, after: bool) -> None:
    """Note the stored version of each of `entity`'s staged keys, before (``after=False``) or after its upsert."""
    if not entity.joins_customer:
        return
    _create_aggregate_tables(cur)
    cols = _AGG_COLUMNS[entity.table]
    key = sql.Identifier(entity.key)
    # A daily file: one primary-key probe per distinct staged key (the LATERAL with OFFSET 0 is not flattened
    # into a join, so the planner cannot choose a sequential scan of the whole history): the cost follows the
    # file. A backfill (staged rows >= 1/BACKFILL_SHARE of the table): a hash join, one sequential scan — 10M
    # random probes into a 10M-row table took 314 s where a scan takes seconds. Same rows either way.
    if _is_backfill(cur, entity):
        probe = "JOIN {table} t ON t.{key} = s.k"
        select = "t.customer_id, {amount}, {at}, {converted}"
    else:
        probe = (
            "CROSS JOIN LATERAL (SELECT t.customer_id, {amount} AS amount, {at} AS at, {converted} AS converted"
            "  FROM {table} t WHERE t.{key} = s.k OFFSET 0) t"
        )
        select = "t.customer_id, t.amount, t.at, t.converted"
    cur.execute(
        sql.SQL(
            "INSERT INTO {rows} (entity, phase, k, customer_id, amount, at, converted)"
            " SELECT %(entity)s, %(phase)s, s.k, "
            + select
            + " FROM (SELECT DISTINCT x.{key} AS k FROM {stg} x) s "
            + probe
        ).format(
            rows=_AGG_ROWS,
            key=key,
            stg=_staging_name(entity.source),
            table=sql.Identifier(entity.table),
            amount=sql.SQL(cols["amount"]),
            at=sql.SQL(cols["at"]),
            converted=sql.SQL(cols["converted"]),
        ),
        {"entity": entity.table, "phase": 1 if after else -1},
    )


# Staged rows at least 1/BACKFILL_SHARE of the target table's rows: the aggregate snapshots join instead of probing.
BACKFILL_SHARE = 10


def _is_backfill(cur: psycopg.Cursor[Any], entity: Entity) -> bool:
    """Whether `entity`'s staged rows are a large share of its table (planner statistics: staging is analyzed)."""
    cur.execute(
        "SELECT coalesce((SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)), 0),"
        " greatest((SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)), 0)",
        (_staging_name(entity.source).as_string(cur), sql.Identifier(entity.table).as_string(cur)),
    )
    staged, stored = cur.fetchone() or (0, 0)
    return float(staged) * BACKFILL_SHARE >= float(stored)


def refresh_customer_aggregates(cur: psycopg.Cursor[Any]) -> int:
    """Apply this run's delta to the stored aggregates (full recompute for the fallbacks); return how many changed."""
    _create_aggregate_tables(cur)
    cur.execute(sql.SQL("ANALYZE {}").format(_AGG_ROWS))  # a temp table has no statistics otherwise
    cur.execute(_FALLBACK_CUSTOMERS, {"exact_below": CONVERSION_EXACT_BELOW})
    cur.execute(sql.SQL("ANALYZE {}").format(_TOUCHED))
    cur.execute(_APPLY_DELTA)
    changed = cur.rowcount
    cur.execute(_REFRESH_AGGREGATES)
    return changed + cur.rowcount


class _StepTimer:
    """Names the load's current step and logs the seconds each one took (the task log's per-statement timings)."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.seconds: dict[str, float] = {}
        self._name: str | None = None
        self._t = 0.0

    def __call__(self, name: str) -> str:
        self.stop()
        self._name, self._t = name, time.monotonic()
        return name

    def stop(self) -> None:
        if self._name is None:
            return
        took = time.monotonic() - self._t
        self.seconds[self._name] = self.seconds.get(self._name, 0.0) + took
        log.info("load %s step %r took %.3fs", self.run_id, self._name, took)
        self._name = None


def _reason(err: BaseException) -> str:
    """The error without the rows it quotes: PostgreSQL's DETAIL and CONTEXT repeat values (e-mails included)."""
    if isinstance(err, psycopg.Error):
        diag = err.diag
        where = f" (table {diag.table_name}, constraint {diag.constraint_name})" if diag.constraint_name else ""
        return f"{redact_emails(describe_db_error(err))}{where}"
    return f"{type(err).__name__}: {redact_emails(str(err))}"


class LoadError(RuntimeError):
    """The load failed and was rolled back; the message names the step and table."""


def _staging_name(source: str) -> sql.Identifier:
    return sql.Identifier(f"stg_{source}")


def _copy_file(cur: psycopg.Cursor[Any], target: sql.Composable, columns: list[str], path: Path) -> None:
    if not path.exists():  # COPY of a missing file must never silently load nothing
        raise FileNotFoundError(f"staged file missing: {path}")
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true)").format(
        target, sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with path.open("rb") as f, cur.copy(stmt) as copy:
        while block := f.read(1 << 20):
            copy.write(block)


# The one version rule (README "Data rules"): a row's version is (file path in byte order, registry file id,
# line); NULL lineage (rows of earlier releases, customers derived from e-mails) is the oldest version.
_VERSION = 'ROW({a}.src_file COLLATE "C", coalesce({a}.src_file_id, 0), {a}.src_line)'


def _version(alias: str) -> sql.SQL:
    return sql.SQL(_VERSION.format(a=alias))


def _winners_order(key: sql.Composable) -> sql.Composed:
    """ORDER BY of a DISTINCT ON that keeps the run's last version of each key (later file, then later line)."""
    return sql.SQL('{key}, s._file COLLATE "C" DESC, coalesce(s._file_id, 0) DESC, s._line DESC').format(key=key)


def _upsert(entity: Entity) -> sql.Composed:
    """INSERT … ON CONFLICT of the run's last version per key, never over a newer stored version.

    Returns one row per source file id: (file id, winners, inserted, updated, stale).
    """
    cols = list(entity.select)
    target = sql.Identifier(entity.table)
    key = sql.Identifier(entity.key)
    skey = sql.SQL("s.") + sql.Identifier(entity.key)
    exprs = sql.SQL(", ").join(sql.SQL("{} AS {}").format(sql.SQL(entity.select[c]), sql.Identifier(c)) for c in cols)
    join = sql.SQL(" JOIN customers c ON c.email = s.customer_email") if entity.joins_customer else sql.SQL("")
    others = [c for c in cols if c != entity.key]
    lineage = ["src_file", "src_line", "src_file_id"]
    updates = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in [*others, *lineage])
    current = sql.SQL(", ").join(sql.SQL("{}.{}").format(target, sql.Identifier(c)) for c in others)
    incoming = sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in others)
    col_list = sql.SQL(", ").join(map(sql.Identifier, cols))
    return sql.SQL(
        "WITH src AS MATERIALIZED ("
        " SELECT DISTINCT ON ({skey}) {exprs}, s._file AS src_file, s._line::integer AS src_line,"
        " s._file_id AS src_file_id FROM {stg} s{join} ORDER BY {order}"
        "), stale AS ("
        " SELECT src.src_file_id FROM src JOIN {target} t ON t.{key} = src.{key}"
        " WHERE t.src_file IS NOT NULL AND {tver} > {sver}"
        "), up AS ("
        " INSERT INTO {target} ({cols}, src_file, src_line, src_file_id, etl_run_id)"
        " SELECT {cols}, src_file, src_line, src_file_id, %(run_id)s FROM src"
        " ON CONFLICT ({key}) DO UPDATE SET {updates}, updated_at = now(), etl_run_id = EXCLUDED.etl_run_id"
        " WHERE ({target}.src_file IS NULL OR {cver} <= {ever})"
        " AND ROW({current}) IS DISTINCT FROM ROW({incoming})"
        " RETURNING src_file_id, (xmax = 0) AS inserted"
        ") SELECT src_file_id, sum(w)::bigint, sum(i)::bigint, sum(u)::bigint, sum(st)::bigint FROM ("
        " SELECT src_file_id, 1 AS w, 0 AS i, 0 AS u, 0 AS st FROM src"
        " UNION ALL SELECT src_file_id, 0, inserted::int, (NOT inserted)::int, 0 FROM up"
        " UNION ALL SELECT src_file_id, 0, 0, 0, 1 FROM stale) x GROUP BY src_file_id"
    ).format(
        target=target,
        cols=col_list,
        skey=skey,
        exprs=exprs,
        stg=_staging_name(entity.source),
        join=join,
        order=_winners_order(skey),
        key=key,
        tver=_version("t"),
        sver=_version("src"),
        cver=_version(entity.table),
        ever=_version("EXCLUDED"),
        updates=updates,
        current=current,
        incoming=incoming,
    )


class DataLoader:
    """Load one run's clean files into PostgreSQL atomically (see module docstring)."""

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "public",
        lock_timeout_seconds: int = 300,
        statement_timeout_seconds: int = 3600,
        idle_in_transaction_timeout_seconds: int = 120,
        tcp_user_timeout_seconds: int = 60,
        keepalives_idle_seconds: int = 30,
    ):
        self.conninfo = conninfo
        self.schema = schema
        self.lock_timeout_seconds = lock_timeout_seconds
        self.statement_timeout_seconds = statement_timeout_seconds
        self.idle_in_transaction_timeout_seconds = idle_in_transaction_timeout_seconds
        self.tcp_user_timeout_seconds = tcp_user_timeout_seconds
        self.keepalives_idle_seconds = keepalives_idle_seconds

    def _connect(self) -> psycopg.Connection[Any]:
        """A connection that cannot hold the load lock forever.

        A loader that stops inside its transaction (SIGSTOP, a frozen VM) is ended by the server after
        ``idle_in_transaction_session_timeout``; a peer that vanished from the network is detected by TCP
        keepalives and ``tcp_user_timeout`` (unacknowledged data). Between two statements of a load the
        loader only reads its own staged files, so it never sits idle anywhere near that long by itself.
        """
        # Appended to the connection's own `options` extra, which a keyword argument would otherwise replace.
        own = str(psycopg.conninfo.conninfo_to_dict(self.conninfo).get("options") or "")
        return connect(
            self.conninfo,
            schema=self.schema,
            keepalives=1,
            keepalives_idle=self.keepalives_idle_seconds,
            keepalives_interval=max(1, self.keepalives_idle_seconds // 3),
            keepalives_count=3,
            tcp_user_timeout=self.tcp_user_timeout_seconds * 1000,
            options=(
                f"{own} -c idle_in_transaction_session_timeout={self.idle_in_transaction_timeout_seconds * 1000}"
                f" -c statement_timeout={self.statement_timeout_seconds * 1000}"
                f" -c lock_timeout={self.lock_timeout_seconds * 1000}"
            ),
        )

    def existing_product_ids(self) -> set[int]:
        """Product ids already in the warehouse (orders may reference them)."""
        with self._connect() as conn:
            reg = conn.execute("SELECT to_regclass('products') IS NOT NULL").fetchone()
            if not reg or not reg[0]:
                return set()
            return {int(r[0]) for r in conn.execute("SELECT product_id FROM products")}

    def load(
        self, run_id: str, sources: Mapping[str, Mapping[str, Any]], started_at: datetime | None = None
    ) -> dict[str, Any]:
        """Load the transformed `sources` (one file each, no landing registry) of `run_id` in one transaction.

        Raises:
            LoadError: any step failed; the transaction was rolled back and the tables are as they were.
        """
        files = [
            {**src, "source": name, "rel_path": src["source_file"], "sha256": None} for name, src in sources.items()
        ]
        return self.load_files(run_id, files, started_at)

    def load_files(
        self,
        run_id: str,
        files: Sequence[Mapping[str, Any]],
        started_at: datetime | None = None,
        skipped: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """Load the transformed landing `files` of `run_id` in one transaction; return counts per source and file.

        Each file is a TransformedSource plus its landing reference (source, rel_path, sha256, bytes,
        reprocess; ``bad`` = the reason a broken file is quarantined instead of loaded). Files with a sha256
        are registered in ingested_files in this transaction; ``skipped`` files are only counted in the ledger.

        Raises:
            LoadError: any step failed; the transaction was rolled back and the tables are as they were.
        """
        started_at = started_at or datetime.now(UTC)
        t0 = time.monotonic()
        timed = _StepTimer(run_id)
        step = timed("connect")
        counts: dict[str, dict[str, int]] = {}
        per_file: list[dict[str, Any]] = []
        skipped = list(skipped)
        try:
            with self._connect() as conn, conn.transaction(), conn.cursor() as cur:
                step = timed("schema check")
                require_migrated(
                    conn, self.schema
                )  # a clear "run the migrations" instead of "relation … does not exist"
                step = timed("lock")
                cur.execute("SET LOCAL work_mem = '256MB'")
                # Staged rows are read 3-4 times (derive, note, upsert): keep them in the session's memory instead
                # of temp files (allowed only before the session's first temp table, which comes below).
                cur.execute("SET LOCAL temp_buffers = '256MB'")
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOAD_LOCK_KEY,))
                step = timed("register files")
                per_file = self._register(cur, run_id, files, skipped)
                loadable = [f for f in per_file if not f.get("bad")]
                for entity in ENTITIES:
                    mine = [f for f in loadable if f["source"] == entity.source]
                    if not mine:
                        continue
                    step = timed(f"copy {entity.source} into staging")
                    types = sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in entity.staging_types.items()
                    )
                    stg = _staging_name(entity.source)
                    cur.execute(
                        sql.SQL(
                            "CREATE TEMP TABLE {} ({}, _line bigint NOT NULL, _file text, _file_id bigint) ON COMMIT DROP"
                        ).format(stg, types)
                    )
                    for f in mine:
                        # The file's lineage as column defaults: COPY fills them without touching the clean file.
                        cur.execute(
                            sql.SQL(
                                "ALTER TABLE {} ALTER COLUMN _file SET DEFAULT {}, ALTER COLUMN _file_id SET DEFAULT {}"
                            ).format(stg, sql.Literal(f["rel_path"]), sql.Literal(f.get("file_id")))
                        )
                        _copy_file(cur, stg, [*entity.staging_types, "_line"], Path(f["clean_path"]))
                        staged, expected = cur.rowcount, int(f.get("rows_loaded", f.get("rows_valid", 0)))
                        if staged != expected:  # the transform and the database must agree on every row
                            raise psycopg.DataError(
                                f"{entity.source}: {staged} rows staged from {f['rel_path']}, transform reported {expected}"
                            )
                    # Real row counts for the planner (a temp table is never auto-analyzed): hash aggregates
                    # over the staged e-mails instead of sorts sized for the default 200-row guess.
                    cur.execute(sql.SQL("ANALYZE {}").format(stg))
                    if entity.joins_customer:
                        step = timed(f"derive customers from {entity.source}")
                        self._derive_customers(cur, entity, run_id, counts)
                        step = timed(f"note {entity.source} rows before upsert")
                        note_touched_customers(cur, entity, after=False)
                    step = timed(f"upsert {entity.table}")
                    counts.setdefault(entity.source, {}).update(self._upsert(cur, entity, run_id, mine))
                    if entity.joins_customer:
                        step = timed(f"note {entity.source} rows after upsert")
                        note_touched_customers(cur, entity, after=True)
                step = timed("quarantine rejected rows")
                self._write_rejects(cur, run_id, loadable)
                step = timed("refresh customer aggregates")
                refresh_customer_aggregates(cur)
                step = timed("update ingested_files")
                self._finish_registry(cur, per_file)
                step = timed("write etl_runs ledger")
                self._write_ledger(cur, run_id, per_file, skipped, counts=counts, started_at=started_at)
                step = timed("commit")
        except (psycopg.Error, OSError) as err:
            denied = classify_db_error(err, describe(self.conninfo))
            if denied is err:  # already classified by connect()
                raise
            if denied is not None:
                raise denied from err
            raise LoadError(
                f"load of run {run_id} into {describe(self.conninfo)} failed at step '{step}': {_reason(err)}; "
                "rolled back, no table was changed"
            ) from err
        timed.stop()
        elapsed = time.monotonic() - t0
        log.info("loaded run %s in %.1fs: %s", run_id, elapsed, counts)
        return {"run_id": run_id, "seconds": round(elapsed, 2), "counts": counts, "files": per_file, "skipped": skipped}

    @staticmethod
    def _register(
        cur: psycopg.Cursor[Any], run_id: str, files: Sequence[Mapping[str, Any]], skipped: list[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Give every file its registry id (inside the load lock); drop files another run loaded meanwhile."""
        out: list[dict[str, Any]] = []
        for f in files:
            entry = dict(f)
            sha = f.get("sha256")
            if not sha:  # no landing registry (direct loads of one file per source)
                entry["file_id"] = None
                out.append(entry)
                continue
            cur.execute(
                "SELECT file_id, etl_run_id, rel_path FROM ingested_files"
                " WHERE status = 'loaded' AND source = %s AND sha256 = %s",
                (f["source"], sha),
            )
            prior = cur.fetchone()
            api = str(f["rel_path"]).startswith("api:")
            if prior is not None and not (prior[1] == run_id or f.get("reprocess") or api):
                skipped.append(
                    {
                        "source": f["source"],
                        "rel_path": f["rel_path"],
                        "sha256": sha,
                        "reason": f"already loaded as {prior[2]} in run {prior[1]}",
                    }
                )
                continue
            if prior is not None:
                # Same content again (a re-executed run, a reprocessed archive, an unchanged API answer): its
                # original id keeps its original place in the version order.
                entry["file_id"] = int(prior[0])
                entry["registered"] = False
            else:
                cur.execute(
                    "INSERT INTO ingested_files (source, rel_path, sha256, bytes, etl_run_id, status, reason)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING file_id",
                    (
                        f["source"],
                        f["rel_path"],
                        sha,
                        int(f.get("bytes") or 0),
                        run_id,
                        "quarantined" if f.get("bad") else "loaded",
                        f.get("bad"),
                    ),
                )
                row = cur.fetchone()
                entry["file_id"] = int(row[0]) if row else None
                entry["registered"] = True
            out.append(entry)
        return out

    def _upsert(
        self, cur: psycopg.Cursor[Any], entity: Entity, run_id: str, files: list[dict[str, Any]]
    ) -> dict[str, int]:
        cur.execute(_upsert(entity), {"run_id": run_id})
        by_id = {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in cur.fetchall()}
        total = {"loaded": 0, "inserted": 0, "updated": 0, "stale": 0, "unchanged": 0, "duplicate": 0}
        for f in files:
            winners, inserted, updated, stale = by_id.get(f.get("file_id"), (0, 0, 0, 0))
            valid = int(f.get("rows_valid", f.get("rows_loaded", 0)))
            f["counts"] = {
                "loaded": winners,
                "inserted": inserted,
                "updated": updated,
                "stale": stale,
                "unchanged": winners - inserted - updated - stale,
                # Rows of this file that lost to a later version of their key in the same run.
                "duplicate": valid - winners,
            }
            for k, v in f["counts"].items():
                total[k] += v
        return total

    @staticmethod
    def _finish_registry(cur: psycopg.Cursor[Any], files: Sequence[Mapping[str, Any]]) -> None:
        rows = [
            (
                int(f.get("rows_read", 0)),
                f["counts"]["loaded"],
                int(f.get("rows_rejected", 0)),
                f["counts"]["duplicate"],
                f["counts"]["stale"],
                f["file_id"],
            )
            for f in files
            if f.get("file_id") is not None and f.get("registered") and "counts" in f
        ]
        if rows:
            cur.executemany(
                "UPDATE ingested_files SET rows_read = %s, rows_loaded = %s, rows_rejected = %s, rows_duplicate = %s,"
                " rows_stale = %s, loaded_at = clock_timestamp() WHERE file_id = %s",
                rows,
            )

    @staticmethod
    def _derive_customers(
        cur: psycopg.Cursor[Any], entity: Entity, run_id: str, counts: dict[str, dict[str, int]]
    ) -> None:
        # Every email of a loaded order or session becomes a customer (names only ever come from customers.csv);
        # a duplicate that lost to a later row of the same key creates nobody.
        key = sql.Identifier(entity.key)
        cur.execute(
            sql.SQL(
                "WITH winners AS (SELECT DISTINCT ON (s.{key}) s.customer_email FROM {stg} s ORDER BY {order}),"
                " ins AS (INSERT INTO customers (email, etl_run_id) SELECT DISTINCT customer_email, %s FROM winners"
                " ON CONFLICT (email) DO NOTHING RETURNING 1) SELECT count(*) FROM ins"
            ).format(key=key, order=_winners_order(sql.SQL("s.") + key), stg=_staging_name(entity.source)),
            (run_id,),
        )
        row = cur.fetchone()
        derived = counts.setdefault("customers", {})
        derived["derived"] = derived.get("derived", 0) + (int(row[0]) if row else 0)

    def _write_rejects(self, cur: psycopg.Cursor[Any], run_id: str, sources: Sequence[Mapping[str, Any]]) -> None:
        cur.execute(
            "CREATE TEMP TABLE stg_rejects (source text, source_file text, line_number integer, reason text, field text,"
            " detail text, raw_record jsonb) ON COMMIT DROP"
        )
        for src in sources:
            _copy_file(cur, sql.Identifier("stg_rejects"), REJECT_COLUMNS, Path(src["rejects_path"]))
        # A re-run of the same run replaces its own quarantine rows instead of adding them twice.
        cur.execute("DELETE FROM rejected_records WHERE etl_run_id = %s", (run_id,))
        # reject_key = the same reject in any run: source, natural key as read (the raw record when it has
        # none) and reason, hashed so the key itself carries no personal data (customers are keyed by e-mail).
        keys = [e.source for e in ENTITIES], [e.input_key for e in ENTITIES]
        cur.execute(
            "INSERT INTO rejected_records"
            " (etl_run_id, source, source_file, line_number, reason, field, detail, raw_record, reject_key)"
            " SELECT %s, r.source, r.source_file, r.line_number, r.reason, r.field, r.detail, r.raw_record,"
            "  md5(r.source || chr(31) || coalesce(nullif(btrim(r.raw_record ->> k.input_key), ''), r.raw_record::text)"
            "      || chr(31) || r.reason)"
            " FROM stg_rejects r LEFT JOIN unnest(%s::text[], %s::text[]) AS k (source, input_key) USING (source)",
            (run_id, *keys),
        )

    @staticmethod
    def _write_ledger(
        cur: psycopg.Cursor[Any],
        run_id: str,
        files: Sequence[Mapping[str, Any]],
        skipped: Sequence[Mapping[str, Any]],
        *,
        counts: Mapping[str, Mapping[str, int]],
        started_at: datetime,
    ) -> None:
        # Append-only: a re-executed committed run adds what THIS attempt did (e.g. 0 inserted / 0 updated)
        # and the first attempt's row stays (readers count it through etl_runs_effective).
        # One row per source: 'success' when a file of it was loaded, else 'nothing_new' (files skipped or none).
        attempt = next_attempt(cur, run_id)
        rows = []
        for entity in ENTITIES:
            name = entity.source
            mine = [f for f in files if f["source"] == name]
            good = [f for f in mine if not f.get("bad")]
            c = counts.get(name, {})
            read = sum(int(f.get("rows_read", 0)) for f in good)
            rejected = sum(int(f.get("rows_rejected", 0)) for f in good)
            loaded = int(c.get("loaded", 0))
            rows.append(
                (
                    run_id,
                    attempt,
                    name,
                    ", ".join(str(f["rel_path"]) for f in mine) or None,
                    read,
                    loaded,
                    rejected,
                    read - loaded - rejected,
                    int(c.get("inserted", 0)),
                    int(c.get("updated", 0)),
                    int(c.get("unchanged", 0)),
                    int(c.get("stale", 0)),
                    len(mine),
                    len(good),
                    sum(1 for s in skipped if s["source"] == name),
                    started_at,
                    "success" if good else "nothing_new",
                )
            )
        cur.executemany(
            "INSERT INTO etl_runs (etl_run_id, attempt, source, source_file, rows_read, rows_loaded, rows_rejected,"
            " rows_duplicate, rows_inserted, rows_updated, rows_unchanged, rows_stale, files_claimed, files_loaded,"
            " files_skipped, started_at, finished_at, status)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp(), %s)",
            rows,
        )
