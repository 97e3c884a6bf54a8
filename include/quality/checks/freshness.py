"""``freshness`` (newest business timestamp) and ``load_freshness`` (newest ETL load of the source)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from psycopg import sql
from pydantic import Field

from include.quality.base import RUNS_TABLE, TEMPORAL, CheckSpec, ColumnCheck, Ctx, LedgerCheck, Outcome
from include.settings.base import Severity


def _age_hours(c: Ctx, query: sql.Composed, params: Sequence[Any]) -> tuple[float | None, Any]:
    newest, age = c.one(query, params)
    return (None if age is None else round(float(age) / 3600, 2)), newest


class Freshness(ColumnCheck):
    """The newest value of date/timestamp `column` is at most `max_age_hours` old."""

    category = "freshness"
    column_family = TEMPORAL
    check: Literal["freshness"]
    severity: Severity = "warn"
    max_age_hours: float = Field(ge=0)

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        col = sql.Identifier(s.column or "")
        q = sql.SQL(
            "SELECT max({c})::timestamptz, extract(epoch FROM (now() - max({c})::timestamptz)) FROM {t}"
        ).format(c=col, t=c.table(s.table))
        age, newest = _age_hours(c, q, ())
        mx = self.max_age_hours
        if age is None:
            return Outcome(False, None, f"<= {mx:g} h", f"no {s.column} value in {s.table}: the table is empty")
        return Outcome(age <= mx, age, f"<= {mx:g} h", f"newest {s.column} is {newest.isoformat()} ({age:g} h old)")


class LoadFreshness(LedgerCheck):
    """The newest ETL load of the source finished at most `max_age_hours` ago."""

    category = "freshness"
    check: Literal["load_freshness"]
    max_age_hours: float = Field(ge=0)

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        q = sql.SQL(
            "SELECT max(finished_at), extract(epoch FROM (now() - max(finished_at))) FROM {} WHERE source = %s"
        ).format(c.table(RUNS_TABLE))
        age, newest = _age_hours(c, q, (s.source,))
        mx = self.max_age_hours
        if age is None:
            return Outcome(False, None, f"<= {mx:g} h", f"no ETL load of source {s.source!r} recorded in {RUNS_TABLE}")
        msg = f"newest load of {s.source} finished {newest.isoformat()} ({age:g} h ago)"
        return Outcome(age <= mx, age, f"<= {mx:g} h", msg)
