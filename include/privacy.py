"""Privacy by design: erasure (GDPR art. 17) and access (art. 15) requests, suppression, retention.

- A request enters the warehouse table ``privacy.privacy_requests`` (``make privacy-request``), never
  Airflow's metadata: the ``privacy_requests`` DAG sees only request ids. Processing replaces the address
  in the request row with its token.
- The token is a keyed hash (HMAC-SHA256, key = the Airflow connection ``privacy.key_conn_id``) of the
  normalised address: stable, and not reversible by hashing guessed addresses without the key.
- Erasure, under the load's advisory lock: the customer row keeps its id and orders (accounting) but its
  e-mail becomes ``erased-<token>@erased.invalid`` and names, country and signup date are cleared; its
  sessions are deleted (browsing history has no accounting purpose); every ``rejected_records`` row whose
  text holds the address is deleted; any other text column of the warehouse holding it is rewritten to
  the token address; staging, report and export files holding it are rewritten (text) or deleted.
- The suppression list ``privacy.privacy_suppressions`` (tokens only) lives outside the backed-up schema
  and is mirrored to ``<backup_dir>/suppressions.json``: ``reapply_erasures`` erases again anything a
  restore or a reprocessed file brought back; ``suppress`` maps incoming rows to the token address.
- Retention deletes what is older than the limits of the ``privacy:`` config section, counted in
  ``privacy.privacy_audit`` and in ``monitoring_metrics`` (category ``retention``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql
from pydantic import ValidationError

from include.config_loader import ConfigError, Settings, read_config_file
from include.database import connect
from include.load import LOAD_LOCK_KEY
from include.settings.privacy import PrivacyConfig

log = logging.getLogger(__name__)

PRIVACY_SCHEMA = "privacy"
ERASED_DOMAIN = "erased.invalid"
SUPPRESSIONS_FILE = "suppressions.json"
_TEXT_SUFFIXES = {".csv", ".json", ".jsonl", ".ndjson", ".html", ".htm", ".txt", ".md", ".log", ".xml", ".tsv"}
_EMAIL_LIKE = re.compile(r"[^\s\"'<>(),;:\[\]{}\\]+@[^\s\"'<>(),;:\[\]{}\\]+")


# Environment overrides (declared with the others in config_loader.ENV_OVERRIDES).
from include.config_loader import ENV_BACKUP_DIR, ENV_EXPORTS_DIR, ENV_PG_BIN_DIR  # noqa: E402


def privacy_config(settings: Settings) -> PrivacyConfig:
    """The validated ``privacy:`` section of the settings' config file.

    Raises:
        ConfigError: a key is unknown or a value invalid (one line naming the key).
    """
    raw = read_config_file(settings.config_path).get("privacy") or {}
    try:
        cfg = PrivacyConfig.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in ("privacy", *first["loc"]))
        raise ConfigError(f"{settings.config_path.name}: '{where}': {first['msg']}") from None
    overrides: dict[str, Any] = {}
    if os.environ.get(ENV_EXPORTS_DIR):
        overrides["exports_dir"] = Path(os.environ[ENV_EXPORTS_DIR])
    if os.environ.get(ENV_BACKUP_DIR):
        overrides["backup_dir"] = Path(os.environ[ENV_BACKUP_DIR])
    if os.environ.get(ENV_PG_BIN_DIR):
        overrides["pg_bin_dir"] = Path(os.environ[ENV_PG_BIN_DIR])
    return cfg.model_copy(update=overrides).resolved(settings.config_path.parent)


def secret_key(conn_id: str) -> bytes:
    """The secret of Airflow connection `conn_id` (its password, or extra ``key``), as bytes.

    Raises:
        ConfigError: the connection is missing or its secret is shorter than 16 characters.
    """
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException as err:
        raise ConfigError(
            f"Airflow connection '{conn_id}' (a secret key) is not defined: set AIRFLOW_CONN_{conn_id.upper()}"
        ) from err
    value = conn.password or (conn.extra_dejson or {}).get("key") or ""
    if len(value) < 16:
        raise ConfigError(f"Airflow connection '{conn_id}': the secret (password) must be at least 16 characters")
    return value.encode()


# ---- tokens and suppression ---------------------------------------------------------------------
def normalise(address: str) -> str:
    """The e-mail rule's normal form: trimmed, lower case."""
    return address.strip().lower()


def token(address: str, key: bytes) -> str:
    """Keyed hash of the normalised address (128 bits, hex)."""
    return hmac.new(key, normalise(address).encode(), hashlib.sha256).hexdigest()[:32]


def token_address(tok: str) -> str:
    """The pseudonymous address of a token; passes the warehouse's e-mail rule."""
    return f"erased-{tok}@{ERASED_DOMAIN}"


def suppress(frame: pd.DataFrame, email_column: str, tokens: Iterable[str], key: bytes) -> pd.DataFrame:
    """`frame` with every address of `email_column` whose token is in `tokens` replaced by its token address.

    In the rows concerned, any other text column holding the address (e.g. the raw record ``_raw`` the
    extract keeps for the quarantine) gets the token address too. Pure (returns a copy when something
    changes); values that are not strings are left alone.
    """
    wanted = set(tokens)
    if not wanted or email_column not in frame.columns or frame.empty:
        return frame
    col = frame[email_column]
    mapping: dict[str, str] = {}
    for value in col.dropna().unique():
        if isinstance(value, str):
            t = token(value, key)
            if t in wanted:
                mapping[value] = token_address(t)
    if not mapping:
        return frame
    out = frame.copy()
    rows = col.map(lambda v: isinstance(v, str) and v in mapping)
    patterns = {v: re.compile(re.escape(normalise(v)), re.IGNORECASE) for v in mapping}
    for name in out.columns:
        if name == email_column or not (out[name].dtype == object or pd.api.types.is_string_dtype(out[name])):
            continue
        for idx in out.index[rows.to_numpy(dtype=bool)]:
            text, original = out.at[idx, name], col.at[idx]
            if isinstance(text, str):
                out.at[idx, name] = patterns[original].sub(mapping[original], text)
    out[email_column] = col.map(lambda v: mapping.get(v, v) if isinstance(v, str) else v)
    return out


def suppressed_tokens(conn: psycopg.Connection[Any]) -> set[str]:
    """Every token of the suppression list."""
    return {r[0] for r in conn.execute("SELECT token FROM privacy.privacy_suppressions")}


# The e-mail column of each source that suppress() applies to (products carry none).
EMAIL_COLUMNS = {"orders": "customer_email", "user_sessions": "customer_email", "customers": "email"}


def suppression_for(conninfo: str, settings: Settings) -> tuple[frozenset[str], bytes | None]:
    """(tokens, key) for the transform: the key is read only when something was erased.

    So a set-up without the ``privacy_key`` secret keeps working until its first erasure.

    Raises:
        ConfigError: tokens exist but the key connection is missing.
    """
    with connect(conninfo, schema=settings.schema) as conn:
        reg = conn.execute("SELECT to_regclass('privacy.privacy_suppressions') IS NOT NULL").fetchone()
        tokens = frozenset(suppressed_tokens(conn)) if reg and reg[0] else frozenset()
    if not tokens:
        return tokens, None
    return tokens, secret_key(privacy_config(settings).key_conn_id)


def write_suppressions_file(conn: psycopg.Connection[Any], backup_dir: Path) -> Path:
    """Mirror the suppression list (tokens and dates only) into `backup_dir`, where a restore cannot roll it back."""
    rows = conn.execute("SELECT token, erased_at FROM privacy.privacy_suppressions ORDER BY token").fetchall()
    doc = {"tokens": [{"token": t, "erased_at": at.isoformat()} for t, at in rows]}
    path = backup_dir / SUPPRESSIONS_FILE
    write_private(path, json.dumps(doc, indent=1).encode())
    return path


def read_suppressions_file(backup_dir: Path) -> list[tuple[str, datetime]]:
    path = backup_dir / SUPPRESSIONS_FILE
    if not path.exists():
        return []
    doc = json.loads(path.read_text(encoding="utf-8"))
    return [(d["token"], datetime.fromisoformat(d["erased_at"])) for d in doc.get("tokens", [])]


def write_private(path: Path, data: bytes) -> None:
    """Write `data` atomically to `path`, readable by the owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # re-raised: only removes the partial file
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- requests -----------------------------------------------------------------------------------
def submit_request(conninfo: str, schema: str, address: str, action: str) -> uuid.UUID:
    """Queue a request; return its id (the only thing to pass to Airflow).

    Raises:
        ValueError: unknown action or not an e-mail address.
    """
    if action not in ("erase", "export"):
        raise ValueError(f"action must be erase or export, got {action!r}")
    addr = normalise(address)
    if not re.match(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$", addr):
        raise ValueError("not an e-mail address")
    request_id = uuid.uuid4()
    with connect(conninfo, schema=schema) as conn:
        conn.execute(
            "INSERT INTO privacy.privacy_requests (request_id, action, email) VALUES (%s, %s, %s)",
            (request_id, action, addr),
        )
        conn.commit()
    return request_id


@dataclass(frozen=True)
class Dirs:
    """Folders the project writes that may hold an address."""

    staging: Path
    reports: Path
    exports: Path
    backup: Path

    @classmethod
    def of(cls, settings: Settings, cfg: PrivacyConfig) -> Dirs:
        return cls(settings.staging_dir, settings.reports_dir, cfg.exports_dir, cfg.backup_dir)


def process_requests(
    conninfo: str,
    schema: str,
    dirs: Dirs,
    key: bytes,
    *,
    run_id: str,
    actor: str,
    request_id: str | None = None,
) -> list[dict[str, Any]]:
    """Process one request (`request_id`) or every pending one; return small summaries (ids and counts only).

    A request already processed is a no-op (summary status ``already_done``).

    Raises:
        LookupError: `request_id` does not exist.
    """
    with connect(conninfo, schema=schema) as conn:
        if request_id:
            row = conn.execute(
                "SELECT request_id, status FROM privacy.privacy_requests WHERE request_id = %s",
                (uuid.UUID(request_id),),
            ).fetchone()
            if row is None:
                raise LookupError(f"privacy request {request_id} does not exist")
            ids = [row[0]]
        else:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT request_id FROM privacy.privacy_requests WHERE status = 'pending' ORDER BY created_at"
                )
            ]
        conn.rollback()
    summaries = [_process_one(conninfo, schema, dirs, key, rid, run_id=run_id, actor=actor) for rid in ids]
    log.info("privacy requests processed: %s", [(s["request_id"], s["action"], s["status"]) for s in summaries])
    return summaries


def _pending(conn: psycopg.Connection[Any], rid: uuid.UUID) -> tuple[str, str | None]:
    row = conn.execute(
        "SELECT action, email FROM privacy.privacy_requests WHERE request_id = %s FOR UPDATE", (rid,)
    ).fetchone()
    if row is None:
        raise LookupError(f"privacy request {rid} does not exist")
    return str(row[0]), row[1]


def _process_one(
    conninfo: str, schema: str, dirs: Dirs, key: bytes, rid: uuid.UUID, *, run_id: str, actor: str
) -> dict[str, Any]:
    with connect(conninfo, schema=schema) as conn:
        action, address = _pending(conn, rid)
        conn.rollback()
        if address is None:
            return {"request_id": str(rid), "action": action, "status": "already_done", "counts": {}}
        tok = token(address, key)
        if action == "export":
            path = export_subject(conn, address, dirs.exports, str(rid))
            with conn.transaction():
                _, still = _pending(conn, rid)
                if still is None:
                    return {"request_id": str(rid), "action": action, "status": "already_done", "counts": {}}
                _audit(conn, rid, tok, "export", {"export_file": 1}, run_id=run_id, actor=actor)
                _close_request(conn, rid, tok)
            log.info("access request %s exported to %s", rid, path)
            return {"request_id": str(rid), "action": action, "status": "done", "path": str(path)}
        # The load lock for the whole erasure (session level; the transaction below re-enters it): no load
        # is between reading its staged files and committing while they are scrubbed.
        conn.execute("SELECT pg_advisory_lock(%s)", (LOAD_LOCK_KEY,))
        conn.commit()
        try:
            # Files first: if the database step fails, the address is still in the request row for the retry.
            with _step("files: scrub staging, reports, exports"):
                files = scrub_files(dirs, address, token_address(tok))
            with conn.transaction():
                _, still = _pending(conn, rid)
                if still is None:
                    return {"request_id": str(rid), "action": action, "status": "already_done", "counts": {}}
                counts = erase_in_warehouse(conn, schema, address, tok)
                counts.update(files)
                conn.execute(
                    "INSERT INTO privacy.privacy_suppressions (token) VALUES (%s) ON CONFLICT (token) DO NOTHING",
                    (tok,),
                )
                _audit(conn, rid, tok, "erase", counts, run_id=run_id, actor=actor)
                _close_request(conn, rid, tok)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOAD_LOCK_KEY,))
            conn.commit()
        write_suppressions_file(conn, dirs.backup)
        with _step("vacuum analyze the changed tables"):
            _vacuum(conn, schema, [t for t, n in counts.items() if n and not t.endswith("_files")])
        return {"request_id": str(rid), "action": action, "status": "done", "token": tok, "counts": counts}


def _vacuum(conn: psycopg.Connection[Any], schema: str, tables: Iterable[str]) -> None:
    """VACUUM ANALYZE the changed tables: frees the dead row versions still holding the address and
    re-samples the planner statistics (pg_statistic keeps sampled values, e-mails included)."""
    conn.rollback()
    conn.autocommit = True
    try:
        for table in sorted(set(tables)):
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(schema, table)))
    finally:
        conn.autocommit = False


def _close_request(conn: psycopg.Connection[Any], rid: uuid.UUID, tok: str) -> None:
    conn.execute(
        "UPDATE privacy.privacy_requests SET email = NULL, token = %s, status = 'done', processed_at = now()"
        " WHERE request_id = %s",
        (tok, rid),
    )


def _audit(
    conn: psycopg.Connection[Any],
    rid: uuid.UUID | None,
    tok: str | None,
    action: str,
    counts: Mapping[str, int],
    *,
    run_id: str,
    actor: str,
) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO privacy.privacy_audit (request_id, token, action, table_name, rows_changed, run_id, actor)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(rid, tok, action, name, int(n), run_id, actor) for name, n in sorted(counts.items())],
        )


# ---- erasure in the warehouse -------------------------------------------------------------------
@contextmanager
def _step(name: str) -> Iterator[None]:
    """Time one step of an erasure (DEBUG log; scripts/bench_privacy.py reads it)."""
    t0 = time.monotonic()
    try:
        yield
    finally:
        log.debug("erase step %s: %.3fs", name, time.monotonic() - t0)


_REFRESH_CUSTOMERS = """
UPDATE customers c
SET order_count = o.n, total_spent = o.spent, first_order_at = o.first_at, last_order_at = o.last_at,
    session_count = s.n, conversion_rate = s.rate, updated_at = now()
FROM unnest(%s::bigint[]) AS ids(id)
CROSS JOIN LATERAL (SELECT count(*) AS n, coalesce(sum(total_amount), 0) AS spent, min(order_date) AS first_at,
                           max(order_date) AS last_at FROM orders WHERE customer_id = ids.id) o
CROSS JOIN LATERAL (SELECT count(*) AS n, round(avg(converted::int), 4) AS rate
                    FROM user_sessions WHERE customer_id = ids.id) s
WHERE c.customer_id = ids.id
"""


def _text_columns(conn: psycopg.Connection[Any], schema: str) -> dict[str, list[tuple[str, str]]]:
    rows = conn.execute(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE'"
        " AND c.data_type IN ('text', 'character varying', 'character', 'jsonb', 'json')"
        " ORDER BY c.table_name, c.ordinal_position",
        (schema,),
    ).fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in rows:
        out.setdefault(table, []).append((column, dtype))
    return out


def erase_in_warehouse(conn: psycopg.Connection[Any], schema: str, address: str, tok: str) -> dict[str, int]:
    """Erase `address` from every warehouse table in the caller's transaction (takes the load lock); return counts."""
    addr = normalise(address)
    tok_addr = token_address(tok)
    counts: dict[str, int] = {"customers": 0, "orders": 0, "user_sessions": 0, "rejected_records": 0}
    with conn.cursor() as cur:
        with _step("load lock"):
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOAD_LOCK_KEY,))
        with _step("customers: find by e-mail"):
            row = cur.execute("SELECT customer_id FROM customers WHERE email = %s", (addr,)).fetchone()
        if row is not None:
            cid = int(row[0])
            with _step("user_sessions: delete by customer_id"):
                cur.execute("DELETE FROM user_sessions WHERE customer_id = %s", (cid,))
                counts["user_sessions"] = cur.rowcount
            existing = cur.execute("SELECT customer_id FROM customers WHERE email = %s", (tok_addr,)).fetchone()
            if existing is not None:
                # The address came back (e.g. a reprocessed file) after an earlier erasure: one token customer only.
                target = int(existing[0])
                with _step("orders: relink to the token customer"):
                    cur.execute("UPDATE orders SET customer_id = %s WHERE customer_id = %s", (target, cid))
                    counts["orders"] = cur.rowcount
                cur.execute("DELETE FROM customers WHERE customer_id = %s", (cid,))
            else:
                target = cid
                with _step("customers: pseudonymise"):
                    cur.execute(
                        "UPDATE customers SET email = %s, first_name = NULL, last_name = NULL, country = NULL,"
                        " signup_date = NULL, updated_at = now() WHERE customer_id = %s",
                        (tok_addr, cid),
                    )
            counts["customers"] = 1
            with _step("customers: refresh aggregates"):
                cur.execute(_REFRESH_CUSTOMERS, ([target],))
        # Any other place the address may sit: quarantined raw rows (deleted), free-text columns (rewritten).
        # One pass per table finds whether any row's text holds the address at all (the normal case after the
        # steps above: none); only then is each text column rewritten - a column-by-column scan of every table
        # would read a 1M-row table once per text column (docs/benchmarks.md "Privacy erasure").
        pattern = re.escape(addr)
        for table, columns in _text_columns(conn, schema).items():
            tbl = sql.Identifier(schema, table)
            hit = sql.SQL(" OR ").join(
                sql.SQL("strpos(lower({}::text), %(addr)s) > 0").format(sql.Identifier(c)) for c, _ in columns
            )
            with _step(f"{table}: any text holding the address?"):
                found = cur.execute(
                    sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(tbl, hit), {"addr": addr}
                ).fetchone()
            if not (found and found[0]):
                continue
            if table == "rejected_records":
                with _step(f"{table}: delete rows holding the address"):
                    cur.execute(sql.SQL("DELETE FROM {} WHERE {}").format(tbl, hit), {"addr": addr})
                    counts[table] = counts.get(table, 0) + cur.rowcount
                continue
            for column, dtype in columns:
                col = sql.Identifier(column)
                expr = sql.SQL("regexp_replace({}::text, %(pat)s, %(tok)s, 'gi')").format(col)
                if dtype in ("jsonb", "json"):
                    expr = sql.SQL("({})::{}").format(expr, sql.SQL(dtype))
                with _step(f"{table}.{column}: rewrite text holding the address"):
                    cur.execute(
                        sql.SQL("UPDATE {} SET {} = {} WHERE strpos(lower({}::text), %(addr)s) > 0").format(
                            tbl, col, expr, col
                        ),
                        {"addr": addr, "pat": pattern, "tok": tok_addr},
                    )
                if cur.rowcount:
                    counts[table] = counts.get(table, 0) + cur.rowcount
    return counts


# ---- files --------------------------------------------------------------------------------------
def _parquet_holds(path: Path, needle: str) -> bool:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    for column in table.columns:
        if column.type in (pa.string(), pa.large_string()):
            hits = pc.any(pc.match_substring(pc.utf8_lower(column), needle)).as_py()
            if hits:
                return True
    return False


def scrub_file(path: Path, address: str, replacement: str, *, rewrite: bool = True) -> str | None:
    """Rewrite (text, when `rewrite`) or delete `path` if it holds `address`; return 'rewritten', 'deleted' or None."""
    needle = normalise(address)
    if rewrite and path.suffix.lower() in _TEXT_SUFFIXES:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        if needle not in text.lower():
            return None
        new = re.sub(re.escape(needle), replacement, text, flags=re.IGNORECASE)
        mode = path.stat().st_mode & 0o777
        write_private(path, new.encode("utf-8", errors="surrogateescape"))
        path.chmod(mode)
        return "rewritten"
    holds = needle.encode() in path.read_bytes().lower()
    if not holds and path.suffix.lower() in _TEXT_SUFFIXES:
        holds = needle in path.read_text(encoding="utf-8", errors="replace").lower()
    if not holds and path.suffix.lower() == ".parquet":
        holds = _parquet_holds(path, needle)
    if holds:
        path.unlink()
        return "deleted"
    return None


def scrub_files(dirs: Dirs, address: str, replacement: str) -> dict[str, int]:
    """Scrub the staging, reports and exports folders; counts per folder kind ('staging_files', ...).

    Staging files and access-request exports holding the address are deleted (a staged row or an export
    also carries names: rewriting the address alone would leave them); report files are rewritten with the
    token address, keeping everyone else's figures.
    """
    counts: dict[str, int] = {}
    for kind, root, rewrite in (
        ("staging_files", dirs.staging, False),
        ("report_files", dirs.reports, True),
        ("export_files", dirs.exports, False),
    ):
        n = 0
        if root.exists():
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                if scrub_file(path, address, replacement, rewrite=rewrite):
                    n += 1
        counts[kind] = n
    return counts


# ---- access requests ----------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # money stays exact
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _rows(cur: psycopg.Cursor[Any], query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    cur.execute(query, params)
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def export_subject(conn: psycopg.Connection[Any], address: str, folder: Path, request_id: str) -> Path:
    """Write everything held about `address` as one JSON document (0600) in `folder`; return its path."""
    addr = normalise(address)
    with conn.cursor() as cur:
        customers = _rows(cur, "SELECT * FROM customers WHERE email = %s", (addr,))
        ids = [c["customer_id"] for c in customers]
        orders = _rows(cur, "SELECT * FROM orders WHERE customer_id = ANY(%s) ORDER BY order_date, order_id", (ids,))
        sessions = _rows(
            cur, "SELECT * FROM user_sessions WHERE customer_id = ANY(%s) ORDER BY session_start, session_id", (ids,)
        )
        quarantined = _rows(
            cur,
            "SELECT * FROM rejected_records WHERE strpos(lower(raw_record::text), %s) > 0 ORDER BY rejected_id",
            (addr,),
        )
    conn.rollback()
    doc = {
        "request_id": request_id,
        "generated_at": datetime.now(UTC).isoformat(),
        "subject": addr,
        "customer": customers,
        "orders": orders,
        "sessions": sessions,
        "quarantined_records": quarantined,
    }
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = folder / f"access-{request_id}.json"
    write_private(path, json.dumps(doc, indent=1, default=_json_default, ensure_ascii=False).encode())
    return path


# ---- re-applying erasures (after a restore, or as a safety net after loads) ----------------------
def reapply_erasures(
    conninfo: str, schema: str, key: bytes, backup_dir: Path, *, run_id: str, actor: str
) -> dict[str, int]:
    """Erase again every suppressed address present in the warehouse; return counts per table.

    The suppression file of `backup_dir` is merged into the table first, so a database rebuilt from
    scratch still knows every erasure.
    """
    totals: dict[str, int] = {}
    with connect(conninfo, schema=schema) as conn:
        with conn.transaction():
            for tok, at in read_suppressions_file(backup_dir):
                conn.execute(
                    "INSERT INTO privacy.privacy_suppressions (token, erased_at) VALUES (%s, %s)"
                    " ON CONFLICT (token) DO NOTHING",
                    (tok, at),
                )
        wanted = suppressed_tokens(conn)
        if not wanted:
            conn.rollback()
            return totals
        candidates: set[str] = set()
        with conn.cursor(name="privacy_scan") as cur:
            cur.execute("SELECT email FROM customers WHERE email NOT LIKE %s", ("%@" + ERASED_DOMAIN,))
            candidates.update(r[0] for r in cur)
        with conn.cursor(name="privacy_scan_rejects") as cur:
            cur.execute("SELECT raw_record::text || ' ' || coalesce(detail, '') FROM rejected_records")
            for (text,) in cur:
                candidates.update(m.group(0) for m in _EMAIL_LIKE.finditer(text))
        conn.rollback()
        found = {normalise(a) for a in candidates if token(a, key) in wanted}
        for addr in sorted(found):
            tok = token(addr, key)
            with conn.transaction():
                counts = erase_in_warehouse(conn, schema, addr, tok)
                _audit(conn, None, tok, "reapply", counts, run_id=run_id, actor=actor)
            for name, n in counts.items():
                totals[name] = totals.get(name, 0) + n
        # Sessions that came back under a token (a reprocessed file mapped by suppress()) are deleted again.
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOAD_LOCK_KEY,))
            cur.execute(
                "WITH d AS (DELETE FROM user_sessions s USING customers c WHERE s.customer_id = c.customer_id"
                " AND c.email LIKE %s RETURNING s.customer_id) SELECT count(*), array_agg(DISTINCT customer_id) FROM d",
                ("%@" + ERASED_DOMAIN,),
            )
            n, ids = cur.fetchone() or (0, None)
            if n:
                cur.execute(_REFRESH_CUSTOMERS, (ids,))
                _audit(conn, None, None, "reapply", {"user_sessions": int(n)}, run_id=run_id, actor=actor)
                totals["user_sessions"] = totals.get("user_sessions", 0) + int(n)
        write_suppressions_file(conn, backup_dir)
        if found or totals.get("user_sessions"):
            _vacuum(conn, schema, [t for t, n in totals.items() if n])
    log.info("re-applied %d erasure(s): %s", len(found), totals)
    return {"erasures": len(found), **totals}


# ---- retention ----------------------------------------------------------------------------------
def _old_files(root: Path | None, days: int | None, now: float) -> list[Path]:
    if root is None or days is None or not root.exists():
        return []
    cutoff = now - days * 86400
    return [p for p in root.rglob("*") if p.is_file() and p.stat().st_mtime < cutoff]


def _old_run_dirs(root: Path, days: int | None, now: float) -> list[Path]:
    """Run folders (``<staging>/<dag_id>/<run>``) whose newest file is older than the limit."""
    if days is None or not root.exists():
        return []
    cutoff = now - days * 86400
    out = []
    for dag_dir in (d for d in root.iterdir() if d.is_dir()):
        for run in (d for d in dag_dir.iterdir() if d.is_dir()):
            newest = max((p.stat().st_mtime for p in run.rglob("*")), default=run.stat().st_mtime)
            if max(newest, run.stat().st_mtime) < cutoff:
                out.append(run)
    return out


def enforce_retention(
    conninfo: str,
    schema: str,
    cfg: PrivacyConfig,
    dirs: Dirs,
    *,
    staging_days: int | None,
    run_id: str,
    actor: str,
    now: datetime | None = None,
    metrics_conninfo: str | None = None,
) -> dict[str, int]:
    """Delete what is older than the ``privacy:`` limits; audit and record a metric per kind; return counts.

    Staging run folders expire after `staging_days` (``paths.staging_retention_days``, the one key the ETL's own
    pruning reads too; None keeps them). Metrics go to `metrics_conninfo` when given (the reporting role
    owns monitoring_metrics in a least-privilege deployment), else through `conninfo`.
    """
    now = now or datetime.now(UTC)
    ts = now.timestamp()
    counts: dict[str, int] = {}
    with connect(conninfo, schema=schema) as conn:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOAD_LOCK_KEY,))
            if cfg.sessions_months is not None:
                cur.execute(
                    "WITH d AS (DELETE FROM user_sessions WHERE session_start < %s::timestamptz - make_interval(months => %s)"
                    " RETURNING customer_id) SELECT count(*), array_agg(DISTINCT customer_id) FROM d",
                    (now, cfg.sessions_months),
                )
                n, ids = cur.fetchone() or (0, None)
                counts["user_sessions"] = int(n)
                if ids:
                    cur.execute(_REFRESH_CUSTOMERS, (ids,))
            if cfg.rejected_days is not None:
                cur.execute(
                    "DELETE FROM rejected_records WHERE rejected_at < %s::timestamptz - make_interval(days => %s)",
                    (now, cfg.rejected_days),
                )
                counts["rejected_records"] = cur.rowcount
        runs = _old_run_dirs(dirs.staging, staging_days, ts)
        for d in runs:
            shutil.rmtree(d)
        counts["staging_runs"] = len(runs)
        for kind, root, days in (
            ("report_files", dirs.reports, cfg.reports_days),
            ("archive_files", cfg.archive_dir, cfg.archive_days),
            ("export_files", dirs.exports, cfg.exports_days),
        ):
            old = _old_files(root, days, ts)
            for p in old:
                p.unlink()
            counts[kind] = len(old)
        metrics = [
            ("retention.deleted", kind, float(n), "files" if kind.endswith(("files", "runs")) else "rows", "ok", None)
            for kind, n in counts.items()
        ]
        with conn.transaction():
            _audit(conn, None, None, "retention", counts, run_id=run_id, actor=actor)
            if metrics_conninfo is None:
                record_metrics(conn, run_id, "retention", metrics)
    if metrics_conninfo is not None:  # the reporting role owns monitoring_metrics in a least-privilege deployment
        with psycopg.connect(metrics_conninfo) as mconn:
            record_metrics(mconn, run_id, "retention", metrics)
    log.info("retention: %s", counts)
    return counts


def record_metrics(
    conn: psycopg.Connection[Any],
    run_id: str,
    category: str,
    metrics: Iterable[tuple[str, str | None, float | None, str | None, str, str | None]],
) -> None:
    """Append (name, subject, value, unit, status, message) rows to monitoring_metrics."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO monitoring_metrics (run_id, category, metric_name, subject, value, unit, status, message)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(run_id, category, *m) for m in metrics],
        )
