"""The run ledger ``etl_runs``: append-only, one row per (run id, attempt, source).

Successes are written by the loader inside its load transaction (:func:`next_attempt` numbers them);
failed and aborted runs by :func:`record_failure` in a short transaction of their own that touches no
data table. Readers count the first successful attempt of each run id: view ``etl_runs_effective``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg import sql

from include.database import DatabaseAccessDenied, connect, describe

log = logging.getLogger(__name__)

RUN_WIDE_SOURCE = "*"  # the source of a failure row written before per-source counts exist
# Two-key advisory lock (this class, hashtext(run id)) serialising the ledger writers of one run id.
LEDGER_LOCK_CLASS = 73_004_211
_ERROR_CHARS = 500
# Errors that mean "the run was stopped on purpose", not "something broke" (by class name: no import cycle).
_ABORT_CLASSES = frozenset({"RejectRateExceeded"})
_COUNTS = ("rows_read", "rows_loaded", "rows_rejected", "rows_duplicate")


def next_attempt(cur: psycopg.Cursor[Any], run_id: str) -> int:
    """Lock the ledger rows of `run_id` for this transaction and return its next attempt number (1, 2, …)."""
    cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LEDGER_LOCK_CLASS, run_id))
    cur.execute("SELECT coalesce(max(attempt), 0) + 1 FROM etl_runs WHERE etl_run_id = %s", (run_id,))
    row = cur.fetchone()
    return int(row[0]) if row else 1


def error_line(error: BaseException | str) -> str:
    """The error as one scrubbed line (no secrets, e-mails or IPs), at most 500 characters."""
    from include.notifications import scrub  # the alerting scrubber: one definition of "safe to show"

    text = str(error) if isinstance(error, BaseException) else error
    return scrub(text or (type(error).__name__ if isinstance(error, BaseException) else "error"), _ERROR_CHARS) or "-"


def record_failure(  # noqa: PLR0917 - the positional signature is the contract (CONTRACTS.md)
    conninfo: str,
    schema: str,
    run_id: str,
    step: str,
    error: BaseException | str,
    sources: Mapping[str, Mapping[str, Any]] | Sequence[str] | None = None,
    *,
    status: Literal["failed", "aborted"] | None = None,
    started_at: datetime | None = None,
) -> int | None:
    """Append a failed (or aborted) attempt of `run_id` to the ledger; return its attempt number.

    Args:
        step: the task/step that failed (e.g. ``transform``, ``load: upsert orders``).
        error: the exception (its class becomes ``error_class``) or a message.
        sources: None → one run-wide row (source ``*``); source names → one row each with zero counts;
            {source: counts} → one row each with the transform's counts (rows_read = loaded + rejected +
            duplicate; nothing of it was committed).
        status: default ``aborted`` for the reject-rate guard, else ``failed``.
        started_at: the start of this execution of the run (Airflow's dag-run start_date); a second failure
            with the same start is not written again (several tasks of one execution failing).

    Never raises for a database error (it runs on a failure path and must not mask the original error):
    it logs a warning and returns None.
    """
    error_class = type(error).__name__ if isinstance(error, BaseException) else "Error"
    status = status or ("aborted" if error_class in _ABORT_CLASSES else "failed")
    message = error_line(error)
    if sources is None:
        rows: list[tuple[str, Mapping[str, Any]]] = [(RUN_WIDE_SOURCE, {})]
    elif isinstance(sources, Mapping):
        rows = list(sources.items())
    else:
        rows = [(name, {}) for name in sources]
    started = started_at or datetime.now(UTC)
    try:
        with connect(conninfo, schema=schema, application_name="ecommerce_ledger") as conn:
            with conn.transaction(), conn.cursor() as cur:
                # Short by design: a ledger write that waits behind a stuck load gives up instead of hanging the task.
                cur.execute("SET LOCAL lock_timeout = '10s'")
                cur.execute("SET LOCAL statement_timeout = '30s'")
                attempt = next_attempt(cur, run_id)
                if started_at is not None:
                    # One failure per execution of the run: parallel tasks failing in the same execution (same
                    # dag-run start) report once; the first failure is the one the operator needs.
                    cur.execute(
                        sql.SQL(
                            "SELECT attempt FROM {} WHERE etl_run_id = %s AND started_at = %s"
                            " AND status IN ('failed', 'aborted') LIMIT 1"
                        ).format(sql.Identifier(schema, "etl_runs")),
                        (run_id, started_at),
                    )
                    seen = cur.fetchone()
                    if seen:
                        log.info("ledger: run %s already recorded as failed (attempt %d)", run_id, seen[0])
                        return int(seen[0])
                cur.executemany(
                    sql.SQL(
                        "INSERT INTO {} (etl_run_id, attempt, source, source_file, rows_read, rows_loaded, rows_rejected,"
                        " rows_duplicate, started_at, finished_at, status, failed_step, error_class, error_message)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp(), %s, %s, %s, %s)"
                    ).format(sql.Identifier(schema, "etl_runs")),
                    [
                        (
                            run_id,
                            attempt,
                            name,
                            counts.get("source_file"),
                            *(int(counts.get(k, 0) or 0) for k in _COUNTS),
                            started,
                            status,
                            step[:200],
                            error_class,
                            message,
                        )
                        for name, counts in rows
                    ],
                )
    except (psycopg.Error, DatabaseAccessDenied) as err:
        log.warning(
            "could not record the %s attempt of run %s in %s.etl_runs at %s: %s",
            status,
            run_id,
            schema,
            describe(conninfo),
            error_line(err),
        )
        return None
    log.info("ledger: run %s attempt %d %s at step %r (%s)", run_id, attempt, status, step, error_class)
    return attempt
