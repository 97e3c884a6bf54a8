"""``not_null`` and ``null_rate``: how many NULLs a column may hold."""

from __future__ import annotations

from typing import Any, Literal

from psycopg import sql
from pydantic import Field

from include.quality.base import CheckSpec, ColumnCheck, Ctx, Outcome
from include.settings.base import Severity


def _nulls(c: Ctx, s: CheckSpec) -> tuple[Any, ...]:
    col = sql.Identifier(s.column or "")
    return c.one(sql.SQL("SELECT count(*), count(*) FILTER (WHERE {} IS NULL) FROM {}").format(col, c.table(s.table)))


class NotNull(ColumnCheck):
    """No NULL in `column`."""

    category = "completeness"
    check: Literal["not_null"]

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        total, nulls = _nulls(c, s)
        return Outcome(nulls == 0, nulls, "0 nulls", f"{nulls} of {total} rows have a NULL {s.column}")


class NullRate(ColumnCheck):
    """At most `max_rate` (0..1) of the rows have a NULL `column`."""

    category = "completeness"
    check: Literal["null_rate"]
    severity: Severity = "warn"
    max_rate: float = Field(ge=0, le=1)

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        total, nulls = _nulls(c, s)
        exact = nulls / total if total else 0.0
        rate = round(exact, 4)  # shown rounded, judged exact: 1/3 is above a max_rate of 0.3333
        mx = self.max_rate
        msg = f"{nulls} of {total} rows have a NULL {s.column} (rate {rate:.2%})"
        return Outcome(exact <= mx, rate, f"<= {mx:g}", msg)
