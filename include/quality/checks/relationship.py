"""``relationship``: every non-NULL value of the column exists in `references` (``<table>.<column>``)."""

from __future__ import annotations

import re
from typing import Any, Literal

from psycopg import sql
from pydantic import field_validator

from include.quality.base import CheckSpec, ColumnCheck, ColumnRef, Ctx, Outcome

_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}\.[A-Za-z_][A-Za-z0-9_]{0,62}$")


class Relationship(ColumnCheck):
    """A foreign key the ETL guarantees: no orphan values."""

    category = "consistency"
    check: Literal["relationship"]
    references: str

    @field_validator("references")
    @classmethod
    def _table_dot_column(cls, value: str) -> str:
        if not _REF.match(value):
            raise ValueError("must be '<table>.<column>' (plain SQL identifiers)")
        return value

    @property
    def to_table(self) -> str:
        return self.references.split(".")[0]

    @property
    def to_column(self) -> str:
        return self.references.split(".")[1]

    def params(self) -> dict[str, Any]:
        return {"to_table": self.to_table, "to_column": self.to_column}

    def extra_columns(self, spec: CheckSpec) -> list[ColumnRef]:
        return [ColumnRef(self.to_table, self.to_column, f"{spec.key}.references")]

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        col = sql.Identifier(s.column or "")
        rt, rc = self.to_table, self.to_column
        q = sql.SQL(
            "SELECT count(*), count(DISTINCT c.{col}) FROM {t} AS c "
            "WHERE c.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {rt} AS p WHERE p.{rc} = c.{col})"
        ).format(col=col, t=c.table(s.table), rt=c.table(rt), rc=sql.Identifier(rc))
        orphans, keys = c.one(q)
        msg = f"{orphans} row(s) reference {keys} missing {rt}.{rc} value(s)"
        return Outcome(orphans == 0, orphans, f"0 orphans (-> {rt}.{rc})", msg)
