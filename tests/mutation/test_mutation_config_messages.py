"""The config errors a user sees, word for word, and the defaults the models fill in (include/settings/).

Written to kill mutants of the settings validators whose message or default no other fast test pins.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
import yaml

from include.config_loader import DEFAULT_CONFIG, ConfigError, Settings, parse_config
from include.emails import email_series_valid

RAW = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))


def _parse(change: Callable[[dict[str, Any]], Any]) -> Settings:
    raw = copy.deepcopy(RAW)
    change(raw)
    return parse_config(raw, DEFAULT_CONFIG, env={})


def _error(change: Callable[[dict[str, Any]], Any]) -> str:
    with pytest.raises(ConfigError) as err:
        _parse(change)
    return str(err.value)


def _threshold(name: str, warn: float, critical: float) -> Callable[[dict[str, Any]], Any]:
    return lambda raw: (
        raw["monitoring"].setdefault("thresholds", {}).__setitem__(name, {"warn": warn, "critical": critical})
    )


def test_a_bad_connection_id_is_named_with_the_allowed_characters() -> None:
    assert _error(lambda raw: raw["database"].__setitem__("conn_id", "bad id!")) == (
        "config.yaml: 'database.conn_id' must be an Airflow connection id (letters, digits, _ . -), got 'bad id!'"
    )


def test_a_blank_text_value_is_refused() -> None:
    assert _error(lambda raw: raw["monitoring"].__setitem__("report_subdir", "   ")) == (
        "config.yaml: 'monitoring.report_subdir' must be a non-empty string, got '   '"
    )


@pytest.mark.parametrize("value", ["a/b", ".hidden", "/abs"])
def test_report_subdir_must_be_a_plain_directory_name(value: str) -> None:
    assert _error(lambda raw: raw["monitoring"].__setitem__("report_subdir", value)) == (
        f"config.yaml: 'monitoring.report_subdir' must be a plain directory name, got '{value}'"
    )


def test_a_plain_directory_name_with_a_dot_inside_is_accepted() -> None:
    assert _parse(
        lambda raw: raw["monitoring"].__setitem__("report_subdir", "reports.v2")
    ).monitoring.report_subdir == ("reports.v2")


def test_warn_after_critical_is_refused_in_each_direction() -> None:
    assert _error(_threshold("system.memory_percent", 99, 98)) == (
        "config.yaml: 'monitoring.thresholds.system.memory_percent' warn must be <= critical for 'above' metric"
        " system.memory_percent, got Limits(warn=99.0, critical=98.0)"
    )
    assert _error(_threshold("system.dir_free_mb", 50, 100)) == (
        "config.yaml: 'monitoring.thresholds.system.dir_free_mb' warn must be >= critical for 'below' metric"
        " system.dir_free_mb, got Limits(warn=50.0, critical=100.0)"
    )


def test_one_recipient_as_text_or_none_at_all() -> None:
    assert _parse(lambda raw: raw["alerting"]["email"].__setitem__("to", "ops@example.com")).alerting.email.to == (
        "ops@example.com",
    )
    assert _parse(lambda raw: raw["alerting"]["email"].__setitem__("to", None)).alerting.email.to == ()


def test_sources_are_required_unless_optional_or_declared() -> None:
    def undeclared(raw: dict[str, Any]) -> None:
        for source in raw["sources"].values():
            source.pop("required", None)

    required = {name: s.required for name, s in _parse(undeclared).sources.items()}
    assert required == {"products": True, "customers": False, "orders": True, "user_sessions": True}
    declared = _parse(lambda raw: raw["sources"]["orders"].__setitem__("required", False)).sources["orders"]
    assert declared.required is False


def test_email_series_valid_is_a_boolean_series_that_ignores_case_and_blanks() -> None:
    got = email_series_valid(pd.Series([" Ann@X.ORG ", "ann@x.org", "x", None]))
    assert got.dtype == bool
    assert got.tolist() == [True, True, False, False]
