"""Charts that say something: too little history -> values in words; constant -> a sentence; axes bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from include.reports import chart, fmt_value, x_range

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _pts(values: list[float | None]) -> list[tuple[datetime, float | None]]:
    return [(T0 + timedelta(hours=i), v) for i, v in enumerate(values)]


def test_values_carry_units() -> None:
    assert fmt_value(1250, "rows") == "1,250 rows"
    assert fmt_value(82.454, "%") == "82.45%"
    assert fmt_value(3.5, "h") == "3.50 h"
    assert fmt_value(None, "ms") == "n/a"


def test_a_single_run_shows_the_value_not_a_lone_dot() -> None:
    c = chart("Rows per table per run", {"orders": _pts([1000])}, "rows")
    assert c["uri"] == ""
    assert c["notes"] == ["not enough history yet: 1 run(s); a trend is drawn from 4"]
    assert c["values"] == [{"series": "orders", "at": "2026-11-01 00:00", "value": "1,000 rows"}]


def test_a_constant_series_is_stated_not_drawn() -> None:
    c = chart("Lock waits", {"lock_waits": _pts([0, 0, 0, 0, 0]), "idle": _pts([0, 1, 0, 2, 0])}, "sessions")
    assert c["notes"] == ["lock_waits: constant at 0 sessions over 5 runs (2026-11-01 00:00 – 2026-11-01 04:00)"]
    assert c["uri"].startswith("data:image/png;base64,")  # the varying series is still drawn
    only_constant = chart("Lock waits", {"lock_waits": _pts([0, 0, 0, 0])}, "sessions")
    assert only_constant["uri"] == "" and len(only_constant["notes"]) == 1


def test_time_axis_spans_the_data_only() -> None:
    series = {"a": _pts([1, 2, 3, 4])}
    lo, hi = x_range(series) or (None, None)
    assert lo is not None and hi is not None
    assert T0 - timedelta(minutes=10) < lo < T0 and T0 + timedelta(hours=3) < hi < T0 + timedelta(hours=3, minutes=10)
    assert chart("t", series, "s")["uri"].startswith("data:image/png;base64,")
