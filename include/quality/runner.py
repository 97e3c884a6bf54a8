"""Running checks: validate them against the live schema, run their SQL, persist and summarise the results."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from include.errors import NonRetryable
from include.extract import redact_emails
from include.quality.base import (
    FAMILY_NAMES,
    RESULTS_TABLE,
    CheckResult,
    CheckSpec,
    ColumnRef,
    Ctx,
    num,
)
from include.quality.config import QualityConfig, load_quality_config
from include.settings.base import ConfigError

if TYPE_CHECKING:
    from include.config_loader import Settings

log = logging.getLogger(__name__)


class QualityCheckFailed(RuntimeError, NonRetryable):
    """At least one check of severity ``fail`` failed; the message names each check and value."""


# --------------------------------------------------------------------------------------------
# Schema validation
# --------------------------------------------------------------------------------------------


def column_refs(spec: CheckSpec) -> list[ColumnRef]:
    """Every (table, column) `spec` reads, with the config key that named it."""
    kind = spec.check
    refs: list[ColumnRef] = []
    if spec.column:
        refs.append(ColumnRef(spec.table, spec.column, f"{spec.key}.column", kind.column_family))
    return refs + kind.extra_columns(spec)


def fetch_schema(conn: psycopg.Connection[Any], schema: str) -> dict[str, dict[str, str]]:
    """{table: {column: data_type}} of the tables and views in `schema`."""
    rows = conn.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = %s",
        (schema,),
    ).fetchall()
    out: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        out.setdefault(table, {})[column] = data_type
    return out


def validate_against_schema(specs: Iterable[CheckSpec], columns: Mapping[str, Mapping[str, str]], schema: str) -> None:
    """Check that every table and column the checks name exists with a suitable type.

    Raises:
        ConfigError: listing each missing table/column or wrong type with its config key.
    """
    errors: list[str] = []
    for spec in specs:
        tables_needed = {spec.table}
        for ref in column_refs(spec):
            tables_needed.add(ref.table)
            table_cols = columns.get(ref.table)
            if table_cols is None:
                continue  # reported once below
            dtype = table_cols.get(ref.column)
            if dtype is None:
                errors.append(
                    f"'{ref.key}': column {ref.column!r} does not exist in table {schema}.{ref.table} "
                    f"(columns: {', '.join(sorted(table_cols))})"
                )
            elif ref.family is not None and dtype not in ref.family:
                errors.append(
                    f"'{ref.key}': column {schema}.{ref.table}.{ref.column} is {dtype}, "
                    f"but {spec.check_type} needs a {FAMILY_NAMES[ref.family]} column"
                )
        for table in sorted(tables_needed):
            if table not in columns:
                errors.append(f"'{spec.key}': table {schema}.{table} does not exist")
    if errors:
        unique = list(dict.fromkeys(errors))
        raise ConfigError("invalid data quality check configuration:\n  " + "\n  ".join(unique))


# --------------------------------------------------------------------------------------------
# Running checks
# --------------------------------------------------------------------------------------------


def run_check(conn: psycopg.Connection[Any], spec: CheckSpec, schema: str = "public") -> CheckResult:
    """Run one check on an autocommit connection; an SQL error becomes an ``error`` result."""
    try:
        out = spec.check.run(Ctx(conn, schema), spec)
    except psycopg.errors.QueryCanceled as err:  # statement_timeout: this check is too slow, the others still run
        reason = f"{type(err).__name__}: {err.diag.message_primary or 'statement timeout'}"
        log.warning("check %s errored: %s", spec.name, reason)
        return CheckResult(
            spec.name, spec.check_type, spec.table, spec.column, spec.severity, "error", None, "-",
            f"check could not run: {reason}",
        )  # fmt: skip
    except psycopg.OperationalError:
        raise  # the database is unreachable: a task retry may help, a result would hide it
    except psycopg.Error as err:
        # Only the primary message: PostgreSQL's DETAIL can quote row values (customer data).
        reason = f"{type(err).__name__}: {redact_emails(err.diag.message_primary or str(err).strip())}"
        log.warning("check %s errored: %s", spec.name, reason)
        return CheckResult(
            spec.name, spec.check_type, spec.table, spec.column, spec.severity, "error", None, "-",
            f"check could not run: {reason}",
        )  # fmt: skip
    status = "skipped" if out.passed is None else ("passed" if out.passed else "failed")
    observed = num(out.observed) if not isinstance(out.observed, str) else out.observed
    return CheckResult(
        spec.name, spec.check_type, spec.table, spec.column, spec.severity, status, observed, out.threshold, out.message
    )


def run_checks(conn: psycopg.Connection[Any], specs: Iterable[CheckSpec], schema: str = "public") -> list[CheckResult]:
    """Run `specs` (validate them first with `validate_against_schema`); log each result."""
    results = []
    for spec in specs:
        result = run_check(conn, spec, schema)
        level = (
            logging.ERROR
            if result.blocking
            else (logging.WARNING if result.status in ("failed", "error") else logging.INFO)
        )
        log.log(level, "%s", result.describe())
        results.append(result)
    return results


def blocking_failures(results: Iterable[CheckResult]) -> list[CheckResult]:
    """The results that must fail the run: severity ``fail`` and status ``failed`` or ``error``."""
    return [r for r in results if r.blocking]


def failure_message(failures: Sequence[CheckResult]) -> str:
    """The error message of a run failed by `failures`: each check, table, observed value and threshold."""
    brief = "; ".join(
        f"{r.name} on {r.table}{'.' + r.column if r.column else ''}: {r.status}, "
        f"observed {r.observed!r}, threshold {r.threshold}"
        for r in failures
    )
    lines = [f"{len(failures)} data quality check(s) of severity 'fail' failed: {brief}"]
    lines += [f"  - {r.describe()}" for r in failures]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------


def persist_results(
    conn: psycopg.Connection[Any], run_id: str, results: Sequence[CheckResult], schema: str = "public"
) -> int:
    """Append `results` of quality run `run_id` to ``data_quality_results`` (committed); return the row count.

    A retry of the same run replaces that run's earlier rows of the same checks instead of adding them twice.
    """
    table = sql.Identifier(schema, RESULTS_TABLE)
    q = sql.SQL(
        "INSERT INTO {} (run_id, check_name, check_type, table_name, column_name, severity, passed, status, "
        "observed_value, threshold, message, checked_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    ).format(sql.Identifier(schema, RESULTS_TABLE))
    rows = [
        (
            run_id, r.name, r.check_type, r.table, r.column, r.severity, r.passed, r.status,
            None if r.observed is None else str(r.observed), r.threshold, r.message, r.checked_at,
        )
        for r in results
    ]  # fmt: skip
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE run_id = %s AND check_name = ANY(%s)").format(table),
            (run_id, [r.name for r in results]),
        )
        cur.executemany(q, rows)
    return len(rows)


def run_category(
    conn: psycopg.Connection[Any], cfg: QualityConfig, category: str, run_id: str, schema: str = "public"
) -> list[CheckResult]:
    """Validate, run and persist the checks of `category`; return the results (does not raise on failures).

    Raises:
        ConfigError: a check names a missing table or column, or a column of the wrong type.
    """
    specs = cfg.for_category(category)
    columns = fetch_schema(conn, schema)
    validate_against_schema(specs, columns, schema)
    if RESULTS_TABLE not in columns:
        raise ConfigError(f"table {schema}.{RESULTS_TABLE} does not exist: apply init_db.sql first")
    results = run_checks(conn, specs, schema)
    persist_results(conn, run_id, results, schema)
    return results


def summarize(results: Iterable[CheckResult]) -> dict[str, int]:
    """Counts by outcome: checks, passed, warned (failed warn checks), failed (blocking), skipped, errors."""
    rs = list(results)
    return {
        "checks": len(rs),
        "passed": sum(r.status == "passed" for r in rs),
        "warned": sum(r.severity == "warn" and r.status in ("failed", "error") for r in rs),
        "failed": sum(r.blocking for r in rs),
        "skipped": sum(r.status == "skipped" for r in rs),
        "errors": sum(r.status == "error" for r in rs),
    }


def execute_task(category: str, run_id: str, settings: Settings) -> dict[str, Any]:
    """What a check task does: connect to the warehouse, run and persist one category, fail on blocking results.

    Raises:
        ConfigError: bad check configuration (no retry helps).
        LookupError: the warehouse Airflow connection is not defined.
        QualityCheckFailed: a ``fail`` check failed (after its results were persisted).
    """
    from include.database import connect, conninfo_from_connection, describe, require_migrated

    cfg = load_quality_config(settings)
    conninfo = conninfo_from_connection(settings.reporting_conn_id)
    conn = connect(conninfo, schema=settings.schema, application_name=f"quality_{category}", autocommit=True)
    try:
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{settings.statement_timeout_seconds}s",))
        require_migrated(conn, settings.schema)  # created by the owner role's migrations, never here
        loaded = conn.execute("SELECT EXISTS (SELECT 1 FROM etl_runs_effective)").fetchone() == (True,)
        if not loaded:
            # The daily safety-net run can come before the very first load: nothing to judge yet, not a failure.
            log.warning("%s checks skipped: no ETL load has reached %s yet", category, describe(conninfo))
            return {"category": category, "run_id": run_id, **summarize([]), "note": "no ETL load yet"}
        results = run_category(conn, cfg, category, run_id, settings.schema)
    finally:
        conn.close()
    summary = {"category": category, "run_id": run_id, **summarize(results)}
    log.info("%s checks on %s: %s", category, describe(conninfo), summary)
    failures = blocking_failures(results)
    if failures:
        raise QualityCheckFailed(failure_message(failures))
    return summary
