"""``email``: the column holds valid e-mail addresses by the project's one e-mail rule (include/emails.py)."""

from __future__ import annotations

from typing import Literal

from psycopg import sql

from include.emails import EMAIL_PATTERN
from include.quality.base import TEXT, CheckSpec, ColumnCheck, Ctx, Outcome
from include.settings.base import Text


class Email(ColumnCheck):
    """Every non-NULL value matches `pattern` and, with `lowercase`, is already trimmed and lower-cased."""

    category = "consistency"
    column_family = TEXT
    check: Literal["email"]
    pattern: Text = EMAIL_PATTERN
    lowercase: bool = True

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        col = sql.Identifier(s.column or "")
        lower = sql.SQL(" OR {col} <> lower(btrim({col}))").format(col=col) if self.lowercase else sql.SQL("")
        # No sample values: they are customers' addresses, and this message reaches logs, history and reports.
        q = sql.SQL("SELECT count(*) FROM {t} WHERE {col} IS NOT NULL AND ({col} !~ %s{lower})").format(
            col=col, t=c.table(s.table), lower=lower
        )
        (bad,) = c.one(q, (self.pattern,))
        rule = "match the pattern" + (", lower-case and trimmed" if self.lowercase else "")
        return Outcome(bad == 0, bad, f"0 invalid ({rule})", f"{bad} invalid e-mail address(es)")
