"""``row_count``: the table has between `min` and `max` rows."""

from __future__ import annotations

from typing import Literal

from psycopg import sql
from pydantic import Field, model_validator

from include.quality.base import Check, CheckSpec, Ctx, Outcome
from include.settings.base import key_error


class RowCount(Check):
    """At least `min` (default 1) and at most `max` (default: no limit) rows."""

    category = "completeness"
    check: Literal["row_count"]
    min: int = Field(default=1, ge=0)
    max: int | None = None

    @model_validator(mode="after")
    def _max_not_below_min(self) -> RowCount:
        if self.max is not None and self.max < self.min:
            raise key_error("max", f"must be >= {self.min}, got {self.max}")
        return self

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        (n,) = c.one(sql.SQL("SELECT count(*) FROM {}").format(c.table(s.table)))
        lo, hi = self.min, self.max
        threshold = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        ok = n >= lo and (hi is None or n <= hi)
        return Outcome(ok, n, threshold, f"{n} rows" + ("" if ok else f", expected {threshold}"))
