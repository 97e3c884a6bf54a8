"""``unique``, ``accepted_values`` and ``range``: the values one column may take."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from psycopg import sql
from pydantic import Field, field_validator, model_validator

from include.quality.base import NUMERIC, CheckSpec, ColumnCheck, Ctx, Outcome, fmt, samples
from include.settings.base import key_error


class Unique(ColumnCheck):
    """No value of `column` appears twice (NULLs ignored)."""

    category = "consistency"
    check: Literal["unique"]

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        col = sql.Identifier(s.column or "")
        q = sql.SQL(
            "WITH d AS (SELECT {col}::text AS v, count(*) AS n FROM {t} WHERE {col} IS NOT NULL "
            "GROUP BY 1 HAVING count(*) > 1) "
            "SELECT coalesce(sum(n - 1), 0), count(*), "
            "(SELECT array_agg(v) FROM (SELECT v FROM d ORDER BY n DESC, v LIMIT 5) AS top) FROM d"
        ).format(col=col, t=c.table(s.table))
        extra, values, sample = c.one(q)
        extra = int(extra)
        msg = f"{extra} duplicate row(s) over {values} value(s)" + (f", e.g. {samples(sample)}" if sample else "")
        return Outcome(extra == 0, extra, "0 duplicates", msg)


class AcceptedValues(ColumnCheck):
    """Every non-NULL value of `column` is one of `values` (compared as text)."""

    category = "consistency"
    check: Literal["accepted_values"]
    values: list[str | int] = Field(min_length=1)

    @field_validator("values", mode="after")
    @classmethod
    def _as_text(cls, values: list[str | int]) -> list[str | int]:
        return [str(v) for v in values]

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        col = sql.Identifier(s.column or "")
        allowed = [str(v) for v in self.values]
        q = sql.SQL(
            "SELECT {col}::text, count(*) FROM {t} WHERE {col} IS NOT NULL AND NOT ({col}::text = ANY(%s)) "
            "GROUP BY 1 ORDER BY 2 DESC, 1"
        ).format(col=col, t=c.table(s.table))
        rows = c.conn.execute(q, (allowed,)).fetchall()
        bad = sum(int(n) for _, n in rows)
        sample = samples([f"{v!r} ({n})" for v, n in rows[:5]])
        msg = f"{bad} row(s) outside the accepted values" + (f": {sample}" if sample else "")
        return Outcome(bad == 0, bad, f"in [{', '.join(allowed)}]", msg)


class Range(ColumnCheck):
    """Every non-NULL value of numeric `column` is >= `min` and/or <= `max`."""

    category = "consistency"
    column_family = NUMERIC
    check: Literal["range"]
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Range:
        if self.min is None and self.max is None:
            raise key_error("", "needs 'min' and/or 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise key_error("min", f"({self.min:g}) must not exceed max ({self.max:g})")
        return self

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        col = sql.Identifier(s.column or "")
        lo, hi = self.min, self.max
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
            f"between {fmt(lo)} and {fmt(hi)}"
            if lo is not None and hi is not None
            else (f">= {fmt(lo)}" if lo is not None else f"<= {fmt(hi)}")
        )
        return Outcome(bad == 0, bad, threshold, f"{bad} row(s) out of range; actual min {vmin}, max {vmax}")
