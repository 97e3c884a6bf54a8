"""Declarative data quality checks: parsed from config.yaml, run as SQL, appended to a history table.

The ``quality:`` section of config.yaml lists, per warehouse table, checks such as ``row_count``,
``not_null``, ``unique`` or ``relationship``. `parse_quality_config` turns it into typed `CheckSpec`
objects (raising `ConfigError` naming the key); `validate_against_schema` checks every table and
column against ``information_schema`` of the real database; `run_checks` runs them with bound
parameters and driver-quoted identifiers, one `CheckResult` per check (a check whose SQL errors is an
``error`` result, not a crash); `persist_results` appends them to ``data_quality_results``; and
`blocking_failures` picks the failed checks of severity ``fail`` that must turn the run red.

Statuses: ``passed``; ``failed`` (the check ran and the data broke it); ``error`` (the check could
not run); ``skipped`` (nothing to judge yet, e.g. not enough history). A ``warn`` check never fails
the run; a ``fail`` check fails it when its status is ``failed`` or ``error``.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pendulum
import psycopg
from psycopg import sql

from include.config_loader import (
    SOURCES,
    ConfigError,
    Settings,
    get_choice,
    get_float,
    get_identifier,
    get_int,
    get_str,
    section,
)
from include.extract import redact_emails

log = logging.getLogger(__name__)

SEVERITIES = ("warn", "fail")
CATEGORIES = ("completeness", "consistency", "freshness")
RESULTS_TABLE = "data_quality_results"
RUNS_TABLE = "etl_runs_effective"  # the first successful attempt of each run (migration 0002)
DEFAULT_EMAIL_PATTERN = r"^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$"

# Column type families accepted by the checks (information_schema.columns.data_type).
NUMERIC = frozenset({"smallint", "integer", "bigint", "numeric", "real", "double precision"})
TEMPORAL = frozenset({"date", "timestamp with time zone", "timestamp without time zone"})
TEXT = frozenset({"text", "character varying", "character"})
_FAMILY_NAMES = {NUMERIC: "numeric", TEMPORAL: "date/timestamp", TEXT: "text"}


class QualityCheckFailed(RuntimeError):
    """At least one check of severity ``fail`` failed; the message names each check and value."""


@dataclass(frozen=True)
class ColumnRef:
    """A column a check reads, with the config key that named it and the type family it needs."""

    table: str
    column: str
    key: str
    family: frozenset[str] | None = None


@dataclass(frozen=True)
class CheckSpec:
    """One declared check: what to check where, with its validated parameters."""

    name: str
    check_type: str
    table: str
    column: str | None
    severity: str
    params: Mapping[str, Any]
    key: str

    @property
    def category(self) -> str:
        return CHECK_TYPES[self.check_type].category

    @property
    def source(self) -> str:
        """The ETL source whose run ledger the run-based checks read (defaults to the table)."""
        return str(self.params.get("source") or self.table)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check in one quality run."""

    name: str
    check_type: str
    table: str
    column: str | None
    severity: str
    status: str
    observed: float | int | str | None
    threshold: str
    message: str
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def passed(self) -> bool | None:
        """True/False, or None when the check was skipped."""
        return None if self.status == "skipped" else self.status == "passed"

    @property
    def blocking(self) -> bool:
        """True when this result must fail the run (a ``fail`` check that failed or errored)."""
        return self.severity == "fail" and self.status in ("failed", "error")

    def describe(self) -> str:
        """One line naming the check, table, column, observed value and threshold."""
        where = f"{self.table}.{self.column}" if self.column else self.table
        return (
            f"{self.name} [{self.check_type}, {self.severity}] on {where}: {self.status}, "
            f"observed {self.observed!r}, threshold {self.threshold} - {self.message}"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "name": self.name,
            "check_type": self.check_type,
            "category": CHECK_TYPES[self.check_type].category if self.check_type in CHECK_TYPES else None,
            "table": self.table,
            "column": self.column,
            "severity": self.severity,
            "status": self.status,
            "passed": self.passed,
            "observed": self.observed,
            "threshold": self.threshold,
            "message": self.message,
            "checked_at": self.checked_at.isoformat(),
        }


@dataclass(frozen=True)
class QualityConfig:
    """The validated ``quality:`` section."""

    schedule: str | None
    timezone: str
    retries: int
    retry_delay_seconds: int
    history_runs: int
    checks: tuple[CheckSpec, ...]

    def for_category(self, category: str) -> tuple[CheckSpec, ...]:
        """The checks run by the task of `category`."""
        if category not in CATEGORIES:
            raise ValueError(f"unknown check category {category!r}; known: {CATEGORIES}")
        return tuple(c for c in self.checks if c.category == category)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------

ParamParser = Callable[[Mapping[str, Any], str, "ParseContext"], dict[str, Any]]


@dataclass(frozen=True)
class ParseContext:
    """Values from elsewhere in the settings that check defaults depend on."""

    max_reject_rate: float


@dataclass(frozen=True)
class CheckType:
    """How a check type is configured and which task runs it."""

    category: str
    needs_column: bool
    default_severity: str
    params: tuple[str, ...]
    parse: ParamParser
    column_family: frozenset[str] | None = None
    uses_runs: bool = False


def _opt_number(raw: Mapping[str, Any], key: str, where: str, *, minimum: float | None = None) -> float | None:
    return get_float(raw, key, where, None, minimum=minimum, optional=True)


def _p_none(raw: Mapping[str, Any], where: str, ctx: ParseContext) -> dict[str, Any]:
    return {}


def _p_row_count(raw: Mapping[str, Any], where: str, ctx: ParseContext) -> dict[str, Any]:
    lo = get_int(raw, "min", where, 1, minimum=0)
    hi = raw.get("max")
    if hi is not None:
        hi = get_int(raw, "max", where, minimum=lo)
    return {"min": lo, "max": hi}


def _p_null_rate(raw: Mapping[str, Any], where: str, ctx: ParseContext) -> dict[str, Any]:
    return {"max_rate": get_float(raw, "max_rate", where, minimum=0, maximum=1)}


def _p_accepted(raw: Mapping[str, Any], where: str, ctx: ParseContext) -> dict[str, Any]:
    values = raw.get("values")
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values)
    ):
        raise ConfigError(f"'{where}.values' must be a non-empty list of strings or integers, got {values!r}")
    return {"values": [str(v) for v in values]}


def _p_range(raw: Mapping[str, Any], where: str, ctx: ParseContext) -> dict[str, Any]:
    lo = _opt_number(raw, "min", where)
    hi = _opt_number(raw, "max", where)
    if lo is None and hi is None:
        raise ConfigError(f"'{where}' needs 'min' and/or 'max'")
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"'{where}.min' ({lo}) must not exceed '{where}.max' ({hi})")
    return {"min": lo, "max": hi}


def _p_email(raw: Mapping[str, Any], where: str, ctx: ParseContext) -> dict[str, Any]:
    pattern = get_str(raw, "pattern", where, DEFAULT_EMAIL_PATTERN)
    return {"pattern": pattern, "lowercase": bool(raw.get("lowercase", True))}


def _p_relationship(raw: Mapping[str, Any], where: str, ctx: ParseContext) -> dict[str, Any]:
    parts = str(get_str(raw, "references", where)).split(".")
    if len(parts) != 2:
        raise ConfigError(f"'{where}.references' must be '<table>.<column>', got {raw.get('references')!r}")
    target = {"t": parts[0], "c": parts[1]}
    return {
        "to_table": get_identifier(target, "t", f"{where}.references(table)"),
        "to_column": get_identifier(target, "c", f"{where}.references(column)"),
    }


def _p_product(raw: Mapping[str, Any], where: str, ctx: ParseContext) -> dict[str, Any]:
    factors = raw.get("factors")
    if not isinstance(factors, list) or len(factors) < 2:
        raise ConfigError(f"'{where}.factors' must be a list of at least two column names, got {factors!r}")
    names = [get_identifier({"f": f}, "f", f"{where}.factors[{i}]") for i, f in enumerate(factors)]
    return {"factors": names, "tolerance": get_float(raw, "tolerance", where, 0.005, minimum=0)}


def _p_duration(raw: Mapping[str, Any], where: str, ctx: ParseContext) -> dict[str, Any]:
    return {
        "start": get_identifier(raw, "start", where),
        "end": get_identifier(raw, "end", where),
        "tolerance_seconds": get_float(raw, "tolerance_seconds", where, 1, minimum=0),
    }


def _p_freshness(raw: Mapping[str, Any], where: str, ctx: ParseContext) -> dict[str, Any]:
    return {"max_age_hours": get_float(raw, "max_age_hours", where, minimum=0)}


def _p_source(raw: Mapping[str, Any], where: str) -> str | None:
    if raw.get("source") is None:
        return None
    return get_choice(raw, "source", where, SOURCES)


def _p_load_freshness(raw: Mapping[str, Any], where: str, ctx: ParseContext) -> dict[str, Any]:
    return {**_p_freshness(raw, where, ctx), "source": _p_source(raw, where)}


def _p_reconciliation(raw: Mapping[str, Any], where: str, ctx: ParseContext) -> dict[str, Any]:
    value = raw.get("compare_quarantine", True)
    if not isinstance(value, bool):
        raise ConfigError(f"'{where}.compare_quarantine' must be true or false, got {value!r}")
    return {"source": _p_source(raw, where), "compare_quarantine": value}


def _p_reject_rate(raw: Mapping[str, Any], where: str, ctx: ParseContext) -> dict[str, Any]:
    rate = get_float(raw, "max_rate", where, None, minimum=0, maximum=1, optional=True)
    return {"source": _p_source(raw, where), "max_rate": ctx.max_reject_rate if rate is None else rate}


def _p_volume(raw: Mapping[str, Any], where: str, ctx: ParseContext) -> dict[str, Any]:
    runs = get_int(raw, "history_runs", where, 7, minimum=1, maximum=1000)
    return {
        "source": _p_source(raw, where),
        "history_runs": runs,
        "min_history": get_int(raw, "min_history", where, 3, minimum=1, maximum=runs),
        "tolerance": get_float(raw, "tolerance", where, 0.5, minimum=0),
    }


CHECK_TYPES: dict[str, CheckType] = {
    "row_count": CheckType("completeness", False, "fail", ("min", "max"), _p_row_count),
    "not_null": CheckType("completeness", True, "fail", (), _p_none),
    "null_rate": CheckType("completeness", True, "warn", ("max_rate",), _p_null_rate),
    "reconciliation": CheckType(
        "completeness", False, "fail", ("source", "compare_quarantine"), _p_reconciliation, uses_runs=True
    ),
    "reject_rate": CheckType("completeness", False, "warn", ("source", "max_rate"), _p_reject_rate, uses_runs=True),
    "volume_anomaly": CheckType(
        "completeness", False, "warn", ("source", "history_runs", "min_history", "tolerance"), _p_volume, uses_runs=True
    ),
    "unique": CheckType("consistency", True, "fail", (), _p_none),
    "accepted_values": CheckType("consistency", True, "fail", ("values",), _p_accepted),
    "range": CheckType("consistency", True, "fail", ("min", "max"), _p_range, NUMERIC),
    "email": CheckType("consistency", True, "fail", ("pattern", "lowercase"), _p_email, TEXT),
    "relationship": CheckType("consistency", True, "fail", ("references",), _p_relationship),
    "derived_product": CheckType("consistency", True, "fail", ("factors", "tolerance"), _p_product, NUMERIC),
    "derived_duration": CheckType(
        "consistency", True, "fail", ("start", "end", "tolerance_seconds"), _p_duration, NUMERIC
    ),
    "freshness": CheckType("freshness", True, "warn", ("max_age_hours",), _p_freshness, TEMPORAL),
    "load_freshness": CheckType(
        "freshness", False, "fail", ("source", "max_age_hours"), _p_load_freshness, uses_runs=True
    ),
}
_COMMON_KEYS = ("check", "name", "column", "severity")


def _parse_check(raw: Any, table: str, where: str, ctx: ParseContext) -> CheckSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{where}' must be a mapping with at least 'check', got {raw!r}")
    check_type = get_choice(raw, "check", where, tuple(CHECK_TYPES))
    kind = CHECK_TYPES[check_type]
    unknown = sorted(set(raw) - set(_COMMON_KEYS) - set(kind.params))
    if unknown:
        allowed = ", ".join((*_COMMON_KEYS, *kind.params))
        raise ConfigError(f"'{where}' ({check_type}) has unknown key(s) {unknown}; allowed: {allowed}")
    column: str | None = None
    if kind.needs_column:
        column = get_identifier(raw, "column", where)
    elif raw.get("column") is not None:
        raise ConfigError(
            f"'{where}' ({check_type}) is a table-level check and takes no 'column', got {raw['column']!r}"
        )
    severity = get_choice(raw, "severity", where, SEVERITIES, kind.default_severity)
    default_name = f"{table}.{column}.{check_type}" if column else f"{table}.{check_type}"
    name = str(get_str(raw, "name", where, default_name))
    if len(name) > 200:
        raise ConfigError(f"'{where}.name' must be at most 200 characters, got {len(name)}")
    params = kind.parse(raw, where, ctx)
    return CheckSpec(name, check_type, table, column, severity, params, where)


def parse_quality_config(raw: Mapping[str, Any], *, max_reject_rate: float = 0.10) -> QualityConfig:
    """Validate the ``quality:`` mapping into a `QualityConfig`.

    Raises:
        ConfigError: a key is missing, unknown, of the wrong type or out of range (the message names it).
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'quality' must be a mapping, got {type(raw).__name__}")
    ctx = ParseContext(max_reject_rate=max_reject_rate)
    schedule = get_str(raw, "schedule", "quality", None, optional=True)
    timezone = str(get_str(raw, "timezone", "quality", "UTC"))
    tables = section(raw, "tables", "quality")
    if not tables:
        raise ConfigError("'quality.tables' must declare checks for at least one table")
    checks: list[CheckSpec] = []
    seen: dict[str, str] = {}
    for table, entries in tables.items():
        get_identifier({"t": table}, "t", f"quality.tables.{table}(name)")
        where_table = f"quality.tables.{table}"
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"'{where_table}' must be a non-empty list of checks, got {entries!r}")
        for i, entry in enumerate(entries):
            spec = _parse_check(entry, table, f"{where_table}[{i}]", ctx)
            if spec.name in seen:
                raise ConfigError(
                    f"'{spec.key}': duplicate check name {spec.name!r} (also at '{seen[spec.name]}'); give one a 'name'"
                )
            seen[spec.name] = spec.key
            checks.append(spec)
    return QualityConfig(
        schedule=schedule,
        timezone=timezone,
        retries=get_int(raw, "retries", "quality", 1, minimum=0, maximum=10),
        retry_delay_seconds=get_int(raw, "retry_delay_seconds", "quality", 60, minimum=0),
        history_runs=get_int(raw, "history_runs", "quality", 30, minimum=2, maximum=1000),
        checks=tuple(checks),
    )


def load_quality_config(settings: Settings) -> QualityConfig:
    """The `QualityConfig` of `settings` (reject-rate default = the ETL guard's ``transform.max_reject_rate``)."""
    return parse_quality_config(settings.quality, max_reject_rate=settings.max_reject_rate)


def build_schedule(cfg: QualityConfig, assets: Sequence[Any]) -> Any:
    """The DAG schedule: any of `assets` updated, or the daily cron of ``quality.schedule`` when set.

    Raises:
        ConfigError: the cron expression or time zone is invalid.
    """
    from airflow.sdk import AssetAny, AssetOrTimeSchedule, CronTriggerTimetable

    condition = AssetAny(*assets)
    if cfg.schedule is None:
        return condition
    from airflow.sdk.exceptions import AirflowTimetableInvalid

    try:
        pendulum.timezone(cfg.timezone)
        timetable = CronTriggerTimetable(cfg.schedule, timezone=cfg.timezone)
        timetable.validate()
    except (ValueError, AirflowTimetableInvalid) as err:  # pendulum's InvalidTimezone is a ValueError
        raise ConfigError(
            f"'quality.schedule' / 'quality.timezone' invalid ({cfg.schedule!r}, {cfg.timezone!r}): {err}"
        ) from err
    return AssetOrTimeSchedule(timetable=timetable, assets=condition)


# --------------------------------------------------------------------------------------------
# Schema validation
# --------------------------------------------------------------------------------------------


def column_refs(spec: CheckSpec) -> list[ColumnRef]:
    """Every (table, column) `spec` reads, with the config key that named it."""
    kind = CHECK_TYPES[spec.check_type]
    refs: list[ColumnRef] = []
    if spec.column:
        refs.append(ColumnRef(spec.table, spec.column, f"{spec.key}.column", kind.column_family))
    p = spec.params
    if spec.check_type == "relationship":
        refs.append(ColumnRef(p["to_table"], p["to_column"], f"{spec.key}.references"))
    elif spec.check_type == "derived_product":
        refs += [ColumnRef(spec.table, f, f"{spec.key}.factors[{i}]", NUMERIC) for i, f in enumerate(p["factors"])]
    elif spec.check_type == "derived_duration":
        refs += [ColumnRef(spec.table, p[k], f"{spec.key}.{k}", TEMPORAL) for k in ("start", "end")]
    if kind.uses_runs:
        refs += [
            ColumnRef(RUNS_TABLE, c, f"{spec.key} (ETL run ledger)") for c in ("source", "finished_at", "rows_loaded")
        ]
    return refs


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
                    f"but {spec.check_type} needs a {_FAMILY_NAMES[ref.family]} column"
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


def _num(value: Any, digits: int = 4) -> float | int | None:
    """A JSON-friendly number from a DB value."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    f = float(value)
    if math.isfinite(f) and f.is_integer() and not isinstance(value, float):
        return int(f)
    return round(f, digits)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class _Outcome:
    passed: bool | None
    observed: float | int | str | None
    threshold: str
    message: str


class _Ctx:
    """What a check runner needs: the connection and the schema."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str) -> None:
        self.conn = conn
        self.schema = schema

    def table(self, name: str) -> sql.Composable:
        return sql.Identifier(self.schema, name)

    def one(self, query: sql.Composed | sql.SQL, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        row = self.conn.execute(query, params).fetchone()
        if row is None:  # an aggregate query always returns a row
            raise psycopg.DataError(f"query returned no row: {query!r}")
        return tuple(row)

    def last_runs(self, source: str, limit: int) -> list[tuple[Any, ...]]:
        """The newest `limit` ledger rows of `source`, newest first."""
        q = sql.SQL(
            "SELECT etl_run_id, rows_read, rows_loaded, rows_rejected, rows_duplicate, finished_at "
            "FROM {} WHERE source = %s ORDER BY finished_at DESC, etl_run_id DESC LIMIT %s"
        ).format(self.table(RUNS_TABLE))
        return [tuple(r) for r in self.conn.execute(q, (source, limit)).fetchall()]


def _row_count(c: _Ctx, s: CheckSpec) -> _Outcome:
    (n,) = c.one(sql.SQL("SELECT count(*) FROM {}").format(c.table(s.table)))
    lo, hi = s.params["min"], s.params["max"]
    threshold = f">= {lo}" if hi is None else f"between {lo} and {hi}"
    ok = n >= lo and (hi is None or n <= hi)
    return _Outcome(ok, n, threshold, f"{n} rows" + ("" if ok else f", expected {threshold}"))


def _not_null(c: _Ctx, s: CheckSpec) -> _Outcome:
    col = sql.Identifier(s.column or "")
    total, nulls = c.one(
        sql.SQL("SELECT count(*), count(*) FILTER (WHERE {} IS NULL) FROM {}").format(col, c.table(s.table))
    )
    return _Outcome(nulls == 0, nulls, "0 nulls", f"{nulls} of {total} rows have a NULL {s.column}")


def _null_rate(c: _Ctx, s: CheckSpec) -> _Outcome:
    col = sql.Identifier(s.column or "")
    total, nulls = c.one(
        sql.SQL("SELECT count(*), count(*) FILTER (WHERE {} IS NULL) FROM {}").format(col, c.table(s.table))
    )
    exact = nulls / total if total else 0.0
    rate = round(exact, 4)  # shown rounded, judged exact: 1/3 is above a max_rate of 0.3333
    mx = s.params["max_rate"]
    return _Outcome(
        exact <= mx, rate, f"<= {mx:g}", f"{nulls} of {total} rows have a NULL {s.column} (rate {rate:.2%})"
    )


def _unique(c: _Ctx, s: CheckSpec) -> _Outcome:
    col = sql.Identifier(s.column or "")
    q = sql.SQL(
        "WITH d AS (SELECT {col}::text AS v, count(*) AS n FROM {t} WHERE {col} IS NOT NULL "
        "GROUP BY 1 HAVING count(*) > 1) "
        "SELECT coalesce(sum(n - 1), 0), count(*), "
        "(SELECT array_agg(v) FROM (SELECT v FROM d ORDER BY n DESC, v LIMIT 5) AS top) FROM d"
    ).format(col=col, t=c.table(s.table))
    extra, values, sample = c.one(q)
    extra = int(extra)
    msg = f"{extra} duplicate row(s) over {values} value(s)" + (f", e.g. {_samples(sample)}" if sample else "")
    return _Outcome(extra == 0, extra, "0 duplicates", msg)


def _samples(values: list[Any]) -> str:
    """Sample values for a message, with anything shaped like an e-mail address masked (personal data)."""
    return redact_emails(", ".join(str(v) for v in values))


def _accepted_values(c: _Ctx, s: CheckSpec) -> _Outcome:
    col = sql.Identifier(s.column or "")
    allowed = s.params["values"]
    q = sql.SQL(
        "SELECT {col}::text, count(*) FROM {t} WHERE {col} IS NOT NULL AND NOT ({col}::text = ANY(%s)) "
        "GROUP BY 1 ORDER BY 2 DESC, 1"
    ).format(col=col, t=c.table(s.table))
    rows = c.conn.execute(q, (allowed,)).fetchall()
    bad = sum(int(n) for _, n in rows)
    sample = redact_emails(", ".join(f"{v!r} ({n})" for v, n in rows[:5]))
    msg = f"{bad} row(s) outside the accepted values" + (f": {sample}" if sample else "")
    return _Outcome(bad == 0, bad, f"in [{', '.join(allowed)}]", msg)


def _range(c: _Ctx, s: CheckSpec) -> _Outcome:
    col = sql.Identifier(s.column or "")
    lo, hi = s.params["min"], s.params["max"]
    conds: list[sql.Composable] = []
    params: list[Any] = []
    if lo is not None:
        conds.append(sql.SQL("{} < %s").format(col))
        params.append(Decimal(str(lo)))
    if hi is not None:
        conds.append(sql.SQL("{} > %s").format(col))
        params.append(Decimal(str(hi)))
    q = sql.SQL("SELECT count(*) FILTER (WHERE {}), min({}), max({}) FROM {}").format(
        sql.SQL(" OR ").join(conds), col, col, c.table(s.table)
    )
    bad, vmin, vmax = c.one(q, params)
    threshold = (
        f"between {_fmt(lo)} and {_fmt(hi)}"
        if lo is not None and hi is not None
        else (f">= {_fmt(lo)}" if lo is not None else f"<= {_fmt(hi)}")
    )
    return _Outcome(bad == 0, bad, threshold, f"{bad} row(s) out of range; actual min {vmin}, max {vmax}")


def _email(c: _Ctx, s: CheckSpec) -> _Outcome:
    col = sql.Identifier(s.column or "")
    lower = sql.SQL(" OR {col} <> lower(btrim({col}))").format(col=col) if s.params["lowercase"] else sql.SQL("")
    # No sample values: they are customers' addresses, and this message reaches logs, history and reports.
    q = sql.SQL("SELECT count(*) FROM {t} WHERE {col} IS NOT NULL AND ({col} !~ %s{lower})").format(
        col=col, t=c.table(s.table), lower=lower
    )
    (bad,) = c.one(q, (s.params["pattern"],))
    rule = "match the pattern" + (", lower-case and trimmed" if s.params["lowercase"] else "")
    msg = f"{bad} invalid e-mail address(es)"
    return _Outcome(bad == 0, bad, f"0 invalid ({rule})", msg)


def _relationship(c: _Ctx, s: CheckSpec) -> _Outcome:
    col = sql.Identifier(s.column or "")
    rt, rc = s.params["to_table"], s.params["to_column"]
    q = sql.SQL(
        "SELECT count(*), count(DISTINCT c.{col}) FROM {t} AS c "
        "WHERE c.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {rt} AS p WHERE p.{rc} = c.{col})"
    ).format(col=col, t=c.table(s.table), rt=c.table(rt), rc=sql.Identifier(rc))
    orphans, keys = c.one(q)
    msg = f"{orphans} row(s) reference {keys} missing {rt}.{rc} value(s)"
    return _Outcome(orphans == 0, orphans, f"0 orphans (-> {rt}.{rc})", msg)


def _derived_product(c: _Ctx, s: CheckSpec) -> _Outcome:
    target = sql.Identifier(s.column or "")
    factors = [sql.Identifier(f) for f in s.params["factors"]]
    product = sql.SQL(" * ").join(factors)
    present = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(f) for f in factors)
    tol = Decimal(str(s.params["tolerance"]))
    q = sql.SQL(
        "SELECT count(*) FILTER (WHERE {target} IS NULL OR abs({target} - ({product})) > %s), "
        "max(abs({target} - ({product}))) FROM {t} WHERE {present}"
    ).format(target=target, product=product, present=present, t=c.table(s.table))
    bad, worst = c.one(q, (tol,))
    expr = " × ".join(s.params["factors"])
    msg = f"{bad} row(s) where {s.column} differs from {expr} by more than {tol}; largest difference {worst}"
    return _Outcome(bad == 0, bad, f"0 rows with |{s.column} - {expr}| > {tol}", msg)


def _derived_duration(c: _Ctx, s: CheckSpec) -> _Outcome:
    target = sql.Identifier(s.column or "")
    start, end = sql.Identifier(s.params["start"]), sql.Identifier(s.params["end"])
    tol = s.params["tolerance_seconds"]
    diff = sql.SQL("abs({target} - extract(epoch FROM ({end} - {start})))").format(target=target, end=end, start=start)
    q = sql.SQL(
        "SELECT count(*) FILTER (WHERE ({end} IS NULL AND {target} IS NOT NULL) "
        "OR ({end} IS NOT NULL AND ({target} IS NULL OR {diff} > %s))), max({diff}) FROM {t} WHERE {start} IS NOT NULL"
    ).format(target=target, end=end, start=start, diff=diff, t=c.table(s.table))
    bad, worst = c.one(q, (tol,))
    what = f"{s.column} = {s.params['end']} - {s.params['start']}"
    msg = (
        f"{bad} row(s) break {what} (tolerance {tol:g} s; NULL when {s.params['end']} is NULL); "
        f"largest difference {worst} s"
    )
    return _Outcome(bad == 0, bad, f"0 rows off by > {tol:g} s", msg)


def _age_hours(c: _Ctx, query: sql.Composed, params: Sequence[Any]) -> tuple[float | None, Any]:
    newest, age = c.one(query, params)
    return (None if age is None else round(float(age) / 3600, 2)), newest


def _freshness(c: _Ctx, s: CheckSpec) -> _Outcome:
    col = sql.Identifier(s.column or "")
    q = sql.SQL("SELECT max({c})::timestamptz, extract(epoch FROM (now() - max({c})::timestamptz)) FROM {t}").format(
        c=col, t=c.table(s.table)
    )
    age, newest = _age_hours(c, q, ())
    mx = s.params["max_age_hours"]
    if age is None:
        return _Outcome(False, None, f"<= {mx:g} h", f"no {s.column} value in {s.table}: the table is empty")
    return _Outcome(age <= mx, age, f"<= {mx:g} h", f"newest {s.column} is {newest.isoformat()} ({age:g} h old)")


def _load_freshness(c: _Ctx, s: CheckSpec) -> _Outcome:
    q = sql.SQL(
        "SELECT max(finished_at), extract(epoch FROM (now() - max(finished_at))) FROM {} WHERE source = %s"
    ).format(c.table(RUNS_TABLE))
    age, newest = _age_hours(c, q, (s.source,))
    mx = s.params["max_age_hours"]
    if age is None:
        return _Outcome(False, None, f"<= {mx:g} h", f"no ETL load of source {s.source!r} recorded in {RUNS_TABLE}")
    return _Outcome(
        age <= mx, age, f"<= {mx:g} h", f"newest load of {s.source} finished {newest.isoformat()} ({age:g} h ago)"
    )


def _reconciliation(c: _Ctx, s: CheckSpec) -> _Outcome:
    runs = c.last_runs(s.source, 1)
    if not runs:
        return _Outcome(None, None, "0 unaccounted rows", f"no ETL run of source {s.source!r} recorded yet")
    run_id, read, loaded, rejected, dup, _ = runs[0]
    ledger_gap = read - (loaded + rejected + dup)
    parts = [f"run {run_id}: read {read} = loaded {loaded} + rejected {rejected} + duplicates {dup}"]
    if ledger_gap:
        parts.append(f"ledger off by {ledger_gap}")
    unaccounted = abs(ledger_gap)
    if s.params["compare_quarantine"]:
        q = sql.SQL("SELECT count(*) FROM {} WHERE etl_run_id = %s AND source = %s").format(c.table("rejected_records"))
        (quarantined,) = c.one(q, (run_id, s.source))
        parts.append(f"{quarantined} row(s) in rejected_records")
        if quarantined != rejected:
            parts.append(f"rejected_records differs from rows_rejected by {quarantined - rejected}")
        unaccounted += abs(quarantined - rejected)
    return _Outcome(unaccounted == 0, unaccounted, "0 unaccounted rows", "; ".join(parts))


def _reject_rate(c: _Ctx, s: CheckSpec) -> _Outcome:
    runs = c.last_runs(s.source, 1)
    mx = s.params["max_rate"]
    if not runs:
        return _Outcome(None, None, f"<= {mx:g}", f"no ETL run of source {s.source!r} recorded yet")
    run_id, read, _, rejected, _, _ = runs[0]
    exact = rejected / read if read else 0.0  # the ETL guard's definition (transform.check_reject_rates)
    rate = round(exact, 4)
    return _Outcome(exact <= mx, rate, f"<= {mx:g}", f"run {run_id}: {rejected} of {read} rows rejected ({rate:.2%})")


def _volume_anomaly(c: _Ctx, s: CheckSpec) -> _Outcome:
    n, need, tol = s.params["history_runs"], s.params["min_history"], s.params["tolerance"]
    runs = c.last_runs(s.source, n + 1)
    if not runs:
        return _Outcome(
            None, None, f"within ±{tol:.0%} of the median", f"no ETL run of source {s.source!r} recorded yet"
        )
    last_id, last = runs[0][0], int(runs[0][2])
    previous = [int(r[2]) for r in runs[1:]]
    if len(previous) < need:
        return _Outcome(
            None,
            last,
            f"within ±{tol:.0%} of the median of {n} previous runs",
            f"not enough history: {len(previous)} previous run(s) of {s.source}, need {need}",
        )
    median = statistics.median(previous)
    lo, hi = median * (1 - tol), median * (1 + tol)
    threshold = f"between {lo:g} and {hi:g} (±{tol:.0%} of median {median:g} of {len(previous)} runs)"
    ok = lo <= last <= hi
    return _Outcome(ok, last, threshold, f"run {last_id} loaded {last} {s.source} rows; previous median {median:g}")


_RUNNERS: dict[str, Callable[[_Ctx, CheckSpec], _Outcome]] = {
    "row_count": _row_count,
    "not_null": _not_null,
    "null_rate": _null_rate,
    "unique": _unique,
    "accepted_values": _accepted_values,
    "range": _range,
    "email": _email,
    "relationship": _relationship,
    "derived_product": _derived_product,
    "derived_duration": _derived_duration,
    "freshness": _freshness,
    "load_freshness": _load_freshness,
    "reconciliation": _reconciliation,
    "reject_rate": _reject_rate,
    "volume_anomaly": _volume_anomaly,
}
if set(_RUNNERS) != set(CHECK_TYPES):  # pragma: no cover - a programming error caught at import
    raise RuntimeError(f"check types without a runner: {set(CHECK_TYPES) ^ set(_RUNNERS)}")


def run_check(conn: psycopg.Connection[Any], spec: CheckSpec, schema: str = "public") -> CheckResult:
    """Run one check on an autocommit connection; an SQL error becomes an ``error`` result."""
    try:
        out = _RUNNERS[spec.check_type](_Ctx(conn, schema), spec)
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
    observed = _num(out.observed) if not isinstance(out.observed, str) else out.observed
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
