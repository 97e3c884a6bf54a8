"""The one e-mail rule of the project, and the redaction of e-mail addresses in free text.

`EMAIL_PATTERN` is applied after btrim + lower() and reads the same in Python `re` and PostgreSQL `~`:
the transform, the quality `email` check, the alert recipients' validation and the `customers.email`
constraint (migration 0003) all use it. It asks for one `@`, no whitespace, and a domain of two or more
non-empty dot-separated labels, so `a@b.c.`, `a@.b.c` and `a@b..c` are refused while `a+tag@b.c` and
IDN domains (`a@bücher.de`) pass.
"""

from __future__ import annotations

import re

import pandas as pd

EMAIL_PATTERN = r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$"
_EMAIL = re.compile(EMAIL_PATTERN)
# Redaction looks for anything shaped like an address inside text (also a cut-off one such as "jane@"), so it
# is deliberately wider than the validation rule: a message must never leak a half-valid address either.
# A match may only start where a run of address characters starts: the same matches (a run without "@" fails at
# every offset), but linear time — trying every offset of a long run made a 1 MB field take minutes.
_EMAIL_ANYWHERE = re.compile(r"(?<![^\s@,;|\t\"'{}\[\]:])[^\s@,;|\t\"'{}\[\]:]+@[^\s@,;|\t\"'{}\[\]:]*")


def normalize_email(s: str) -> str:
    """The stored form of an address: surrounding whitespace removed, lower-cased."""
    return s.strip().lower()


def is_valid_email(s: str) -> bool:
    """Whether `s`, once normalised, is a valid address under EMAIL_PATTERN."""
    # fullmatch: with re.match, `$` would also accept a trailing newline.
    return isinstance(s, str) and _EMAIL.fullmatch(normalize_email(s)) is not None


def email_series_valid(series: pd.Series) -> pd.Series:
    """Boolean Series: which values, once normalised, are valid addresses (missing values are not)."""
    text = series.astype("string").str.strip().str.lower()
    return text.str.fullmatch(EMAIL_PATTERN).fillna(False).astype(bool)


def redact_emails(text: str) -> str:
    """Replace anything shaped like an e-mail address (also a cut-off one) by <email>."""
    return _EMAIL_ANYWHERE.sub("<email>", text)
