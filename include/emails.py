"""The one e-mail rule of the project: transform, quality check, alert scrubbing and the DB constraint use it.

An address is valid when, after ``btrim`` + ``lower()``, it matches `EMAIL_PATTERN` (valid in Python `re`
and PostgreSQL ``~`` alike): a local part and a domain of at least two dot-separated non-empty labels.
"""

from __future__ import annotations

import re
from typing import Any

EMAIL_PATTERN = r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$"
_EMAIL = re.compile(EMAIL_PATTERN)


def normalize_email(s: str) -> str:
    """The stored form of an address: trimmed and lower-cased."""
    return s.strip().lower()


def is_valid_email(s: str) -> bool:
    """True when `s`, normalised, follows the one e-mail rule."""
    return bool(_EMAIL.match(normalize_email(s)))


def email_series_valid(series: Any) -> Any:
    """Boolean pandas Series: which values of `series` are valid addresses (NULLs are False)."""
    return series.astype("string").str.strip().str.lower().str.match(EMAIL_PATTERN).fillna(False).astype(bool)
