"""The ranges the quality and monitoring sections accept for their thresholds: at each bound and one step past it."""

from __future__ import annotations

from typing import Any

import pytest

from include.config_loader import ConfigError
from include.monitoring import parse_monitoring
from include.quality import parse_quality_config


def quality(check: dict[str, Any], table: str = "orders") -> Any:
    return parse_quality_config({"tables": {table: [check]}}, max_reject_rate=0.10).checks[0]


@pytest.mark.parametrize(
    ("check", "accepted"),
    [
        ({"check": "null_rate", "column": "c", "max_rate": 0}, True),
        ({"check": "null_rate", "column": "c", "max_rate": 1}, True),
        ({"check": "null_rate", "column": "c", "max_rate": 1.01}, False),
        ({"check": "null_rate", "column": "c", "max_rate": -0.01}, False),
        ({"check": "reject_rate", "max_rate": 0}, True),
        ({"check": "reject_rate", "max_rate": 1}, True),
        ({"check": "reject_rate", "max_rate": 1.01}, False),
        ({"check": "row_count", "min": 0}, True),
        ({"check": "row_count", "min": -1}, False),
        ({"check": "row_count", "min": 5, "max": 5}, True),  # max may equal min
        ({"check": "row_count", "min": 5, "max": 4}, False),
        ({"check": "range", "column": "c", "min": 2, "max": 2}, True),
        ({"check": "range", "column": "c", "min": 2.01, "max": 2}, False),
        ({"check": "volume_anomaly", "history_runs": 3, "min_history": 3}, True),  # min_history may equal history
        ({"check": "volume_anomaly", "history_runs": 3, "min_history": 4}, False),
        ({"check": "volume_anomaly", "history_runs": 1, "min_history": 1}, True),
        ({"check": "volume_anomaly", "history_runs": 0}, False),
        ({"check": "volume_anomaly", "tolerance": 0}, True),
        ({"check": "volume_anomaly", "tolerance": -0.01}, False),
        ({"check": "freshness", "column": "c", "max_age_hours": 0}, True),
        ({"check": "freshness", "column": "c", "max_age_hours": -0.01}, False),
        ({"check": "load_freshness", "max_age_hours": 0}, True),
        ({"check": "load_freshness", "max_age_hours": -1}, False),
        ({"check": "derived_product", "column": "c", "factors": ["a", "b"], "tolerance": 0}, True),
        ({"check": "derived_product", "column": "c", "factors": ["a", "b"], "tolerance": -0.001}, False),
        ({"check": "derived_duration", "column": "c", "start": "s", "end": "e", "tolerance_seconds": 0}, True),
        ({"check": "derived_duration", "column": "c", "start": "s", "end": "e", "tolerance_seconds": -1}, False),
    ],
)
def test_quality_threshold_ranges(check: dict[str, Any], accepted: bool) -> None:
    if accepted:
        spec = quality(check)
        for key, value in check.items():
            if key in spec.params and key != "check":
                assert spec.params[key] == value
        return
    with pytest.raises(ConfigError) as err:
        quality(check)
    assert "quality.tables.orders[0]" in str(err.value)


def test_reject_rate_check_defaults_to_the_etl_guard() -> None:
    spec = parse_quality_config({"tables": {"orders": [{"check": "reject_rate"}]}}, max_reject_rate=0.07).checks[0]
    assert spec.params["max_rate"] == 0.07


@pytest.mark.parametrize(
    ("metric", "limits", "accepted"),
    [
        ("db.connect_ms", {"warn": 100, "critical": 100}, True),  # "above": warn may equal critical
        ("db.connect_ms", {"warn": 101, "critical": 100}, False),  # ... not exceed it
        ("system.dir_free_mb", {"warn": 100, "critical": 100}, True),  # "below": warn may equal critical
        ("system.dir_free_mb", {"warn": 99, "critical": 100}, False),  # ... not be under it
        ("db.connect_ms", {"warn": None, "critical": 5}, True),  # null switches a level off
    ],
)
def test_monitoring_limit_order(metric: str, limits: dict[str, Any], accepted: bool) -> None:
    raw = {"thresholds": {metric: limits}}
    if accepted:
        lim = parse_monitoring(raw).thresholds.for_(metric)
        assert (lim.warn, lim.critical) == (limits["warn"], limits["critical"])
        return
    with pytest.raises(ConfigError, match=rf"monitoring\.thresholds\.{metric}"):
        parse_monitoring(raw)
