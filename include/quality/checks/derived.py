"""``derived_product`` and ``derived_duration``: a column equals the value the ETL derived it from."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from psycopg import sql
from pydantic import Field

from include.quality.base import NUMERIC, TEMPORAL, CheckSpec, ColumnCheck, ColumnRef, Ctx, Outcome
from include.settings.base import Identifier


class DerivedProduct(ColumnCheck):
    """`column` = product of `factors` within `tolerance` (e.g. total_amount = quantity × unit_price)."""

    category = "consistency"
    column_family = NUMERIC
    check: Literal["derived_product"]
    factors: list[Identifier] = Field(min_length=2)
    tolerance: float = Field(default=0.005, ge=0)

    def extra_columns(self, spec: CheckSpec) -> list[ColumnRef]:
        return [ColumnRef(spec.table, f, f"{spec.key}.factors[{i}]", NUMERIC) for i, f in enumerate(self.factors)]

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        target = sql.Identifier(s.column or "")
        factors = [sql.Identifier(f) for f in self.factors]
        product = sql.SQL(" * ").join(factors)
        present = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(f) for f in factors)
        tol = Decimal(str(self.tolerance))
        q = sql.SQL(
            "SELECT count(*) FILTER (WHERE {target} IS NULL OR abs({target} - ({product})) > %s), "
            "max(abs({target} - ({product}))) FROM {t} WHERE {present}"
        ).format(target=target, product=product, present=present, t=c.table(s.table))
        bad, worst = c.one(q, (tol,))
        expr = " × ".join(self.factors)
        msg = f"{bad} row(s) where {s.column} differs from {expr} by more than {tol}; largest difference {worst}"
        return Outcome(bad == 0, bad, f"0 rows with |{s.column} - {expr}| > {tol}", msg)


class DerivedDuration(ColumnCheck):
    """`column` (seconds) = `end` - `start` within `tolerance_seconds`; NULL when `end` is NULL."""

    category = "consistency"
    column_family = NUMERIC
    check: Literal["derived_duration"]
    start: Identifier
    end: Identifier
    tolerance_seconds: float = Field(default=1, ge=0)

    def extra_columns(self, spec: CheckSpec) -> list[ColumnRef]:
        return [ColumnRef(spec.table, getattr(self, k), f"{spec.key}.{k}", TEMPORAL) for k in ("start", "end")]

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        target = sql.Identifier(s.column or "")
        start, end = sql.Identifier(self.start), sql.Identifier(self.end)
        tol = self.tolerance_seconds
        diff = sql.SQL("abs({target} - extract(epoch FROM ({end} - {start})))").format(
            target=target, end=end, start=start
        )
        q = sql.SQL(
            "SELECT count(*) FILTER (WHERE ({end} IS NULL AND {target} IS NOT NULL) "
            "OR ({end} IS NOT NULL AND ({target} IS NULL OR {diff} > %s))), max({diff}) FROM {t} "
            "WHERE {start} IS NOT NULL"
        ).format(target=target, end=end, start=start, diff=diff, t=c.table(s.table))
        bad, worst = c.one(q, (tol,))
        what = f"{s.column} = {self.end} - {self.start}"
        msg = (
            f"{bad} row(s) break {what} (tolerance {tol:g} s; NULL when {self.end} is NULL); "
            f"largest difference {worst} s"
        )
        return Outcome(bad == 0, bad, f"0 rows off by > {tol:g} s", msg)
