"""What every check shares: the declaration base classes, the bound `CheckSpec`, the `CheckResult` and the SQL context."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, get_args

import psycopg
from psycopg import sql
from pydantic import Field
from pydantic_core import PydanticCustomError

from include.settings.base import SOURCES, Identifier, Severity, StrictModel, Text, key_error

CATEGORIES = ("completeness", "consistency", "freshness")
RESULTS_TABLE = "data_quality_results"
RUNS_TABLE = "etl_runs_effective"  # the first successful attempt of each run (migration 0002)

# Column type families accepted by the checks (information_schema.columns.data_type).
NUMERIC = frozenset({"smallint", "integer", "bigint", "numeric", "real", "double precision"})
TEMPORAL = frozenset({"date", "timestamp with time zone", "timestamp without time zone"})
TEXT = frozenset({"text", "character varying", "character"})
FAMILY_NAMES = {NUMERIC: "numeric", TEMPORAL: "date/timestamp", TEXT: "text"}


@dataclass(frozen=True)
class ColumnRef:
    """A column a check reads, with the config key that named it and the type family it needs."""

    table: str
    column: str
    key: str
    family: frozenset[str] | None = None


@dataclass(frozen=True)
class Outcome:
    """What a check's SQL found: passed (None = nothing to judge yet), observed value, threshold, message."""

    passed: bool | None
    observed: float | int | str | None
    threshold: str
    message: str


class Ctx:
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


class Check(StrictModel):
    """A check declaration (one entry of ``quality.tables.<table>``); subclasses add their parameters.

    A subclass sets `check` (its type name, the discriminator), `category` (the DAG task that runs it),
    a `severity` default, and implements `run` (and `extra_columns` when it reads more than `column`).
    """

    category: ClassVar[str]
    column_family: ClassVar[frozenset[str] | None] = None

    check: str
    name: Text | None = Field(default=None, max_length=200)
    severity: Severity = "fail"

    @property
    def column_name(self) -> str | None:
        return None

    @classmethod
    def type_name(cls) -> str:
        """The check type of this class: the value of its ``check: Literal[...]``."""
        return str(get_args(cls.model_fields["check"].annotation)[0])

    @classmethod
    def _unknown_key(cls, key: str, allowed: list[str]) -> PydanticCustomError:
        if key == "column":
            return key_error("column", f"is not allowed: {cls.type_name()} is a table-level check")
        return super()._unknown_key(key, allowed)

    def bind(self, max_reject_rate: float) -> Check:
        """This declaration with defaults that depend on other settings resolved (see `RejectRate`)."""
        return self

    def params(self) -> dict[str, Any]:
        """The check's own parameters (JSON-friendly), as shown in reports."""
        return self.model_dump(exclude={"check", "name", "severity", "column"})

    def extra_columns(self, spec: CheckSpec) -> list[ColumnRef]:
        """Columns read besides `column` (other tables, factors, the run ledger)."""
        return []

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        raise NotImplementedError


class ColumnCheck(Check):
    """A check of one column of the table."""

    column: Identifier

    @property
    def column_name(self) -> str | None:
        return self.column


class LedgerCheck(Check):
    """A table-level check that reads the ETL run ledger (``etl_runs``) of its source."""

    source: Literal[SOURCES] | None = None  # type: ignore[valid-type]  # None: the table's own source

    def extra_columns(self, spec: CheckSpec) -> list[ColumnRef]:
        return [
            ColumnRef(RUNS_TABLE, c, f"{spec.key} (ETL run ledger)") for c in ("source", "finished_at", "rows_loaded")
        ]


@dataclass(frozen=True)
class CheckSpec:
    """One declared check bound to its table: what to check where, with its validated parameters."""

    name: str
    check_type: str
    table: str
    column: str | None
    severity: str
    params: dict[str, Any]
    key: str
    check: Check

    @property
    def category(self) -> str:
        return self.check.category

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
        from include.quality.checks import CHECK_TYPES  # the registry imports this module

        kind = CHECK_TYPES.get(self.check_type)
        return {
            "name": self.name,
            "check_type": self.check_type,
            "category": kind.category if kind else None,
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


def num(value: Any, digits: int = 4) -> float | int | None:
    """A JSON-friendly number from a DB value."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    f = float(value)
    if math.isfinite(f) and f.is_integer() and not isinstance(value, float):
        return int(f)
    return round(f, digits)


def fmt(value: float | None) -> str:
    """A limit for a threshold text: ``5`` rather than ``5.0``; ``-`` for none."""
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def samples(values: list[Any]) -> str:
    """Sample values for a message, with anything shaped like an e-mail address masked (personal data)."""
    from include.extract import redact_emails  # extract imports the settings: not at module import

    return redact_emails(", ".join(str(v) for v in values))
