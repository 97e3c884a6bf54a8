"""In-memory frames for the rule functions' value-by-value tests (rows as extract stages them, line numbers from 2)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from include.extract import LINE_COLUMN


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as text or None (extract's staged form), with line numbers 2, 3, … as under a CSV header."""
    df = pd.DataFrame(rows).astype(object).where(lambda d: d.notna(), None)
    df[LINE_COLUMN] = range(2, 2 + len(df))
    return df


def column(df: pd.DataFrame, name: str) -> list[Any]:
    """A column's values with pandas' missing markers as None, so a list compares exactly."""
    return [None if pd.isna(v) else v for v in df[name].tolist()]
