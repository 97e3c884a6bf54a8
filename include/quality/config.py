"""The ``quality:`` section of config.yaml: the DAG's schedule and retries, and the checks declared per table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import pendulum
from pydantic import Field, ValidationError, field_validator, model_validator

from include.quality.base import CATEGORIES, Check, CheckSpec
from include.quality.checks import CHECK_TYPES, CheckConfig
from include.settings.base import (
    ConfigError,
    Identifier,
    StrictModel,
    Text,
    check_identifier,
    format_error,
    key_error,
)

if TYPE_CHECKING:
    from include.config_loader import Settings

CHECK_TAGS = frozenset(CHECK_TYPES)


class QualitySection(StrictModel):
    """``quality:`` as written in config.yaml (see config.yaml for the meaning of each key)."""

    schedule: Text | None = None  # cron of the safety-net run; None: only after loads
    timezone: Text = "UTC"
    retries: int = Field(default=1, ge=0, le=10)
    retry_delay_seconds: int = Field(default=60, ge=0)
    history_runs: int = Field(default=30, ge=2, le=1000)
    tables: dict[Identifier, list[CheckConfig]]

    @field_validator("tables", mode="before")
    @classmethod
    def _table_names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for table, entries in value.items():
                try:
                    check_identifier(str(table))
                except ValueError as err:
                    raise key_error(str(table), f"(table name) {err}") from None
                if not isinstance(entries, list) or not entries:
                    raise key_error(str(table), f"must be a non-empty list of checks, got {entries!r}")
        return value

    @model_validator(mode="after")
    def _some_checks(self) -> QualitySection:
        if not self.tables:
            raise key_error("tables", "must declare checks for at least one table")
        return self

    def bind(self, max_reject_rate: float) -> QualityConfig:
        """The runnable `QualityConfig`: each check bound to its table, name and defaults resolved.

        Raises:
            ConfigError: two checks share a name.
        """
        checks: list[CheckSpec] = []
        seen: dict[str, str] = {}
        for table, entries in self.tables.items():
            for i, declared in enumerate(entries):
                key = f"quality.tables.{table}[{i}]"
                check = cast(Check, declared).bind(max_reject_rate)
                column = check.column_name
                name = check.name or (f"{table}.{column}.{check.check}" if column else f"{table}.{check.check}")
                if name in seen:
                    raise ConfigError(
                        f"'{key}': duplicate check name {name!r} (also at '{seen[name]}'); give one a 'name'"
                    )
                seen[name] = key
                checks.append(CheckSpec(name, check.check, table, column, check.severity, check.params(), key, check))
        return QualityConfig(
            schedule=self.schedule,
            timezone=self.timezone,
            retries=self.retries,
            retry_delay_seconds=self.retry_delay_seconds,
            history_runs=self.history_runs,
            checks=tuple(checks),
        )


@dataclass(frozen=True)
class QualityConfig:
    """The validated ``quality:`` section with every check bound (`QualitySection.bind`)."""

    schedule: str | None
    timezone: str
    retries: int
    retry_delay_seconds: int
    history_runs: int
    checks: tuple[CheckSpec, ...]

    def for_category(self, category: str) -> tuple[CheckSpec, ...]:
        """The checks run by the task of `category`."""
        if category not in CATEGORIES:
            raise ValueError(f"unknown check category {category!r}; known: {CATEGORIES}")
        return tuple(c for c in self.checks if c.category == category)


def parse_quality_config(raw: Mapping[str, Any], *, max_reject_rate: float = 0.10) -> QualityConfig:
    """Validate a ``quality:`` mapping on its own (tests, tools); `load_config` does it for config.yaml.

    Raises:
        ConfigError: one line naming the key, the bad value and, for an unknown key, the nearest valid one.
    """
    try:
        section = QualitySection.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_error(err, "quality", CHECK_TAGS)) from None
    return section.bind(max_reject_rate)


def load_quality_config(settings: Settings) -> QualityConfig:
    """The `QualityConfig` of `settings` (already validated and bound by `load_config`).

    Raises:
        ConfigError: config.yaml has no ``quality:`` section.
    """
    if settings.quality is None:
        raise ConfigError(f"{settings.config_path.name}: missing required key 'quality.tables'")
    return settings.quality


def build_schedule(cfg: QualityConfig, assets: Sequence[Any]) -> Any:
    """The DAG schedule: any of `assets` updated, or the daily cron of ``quality.schedule`` when set.

    Raises:
        ConfigError: the cron expression or time zone is invalid.
    """
    from airflow.sdk import AssetAny, AssetOrTimeSchedule, CronTriggerTimetable

    condition = AssetAny(*assets)
    if cfg.schedule is None:
        return condition
    from airflow.sdk.exceptions import AirflowTimetableInvalid

    try:
        pendulum.timezone(cfg.timezone)
        timetable = CronTriggerTimetable(cfg.schedule, timezone=cfg.timezone)
        timetable.validate()
    except (ValueError, AirflowTimetableInvalid) as err:  # pendulum's InvalidTimezone is a ValueError
        raise ConfigError(
            f"'quality.schedule' / 'quality.timezone' invalid ({cfg.schedule!r}, {cfg.timezone!r}): {err}"
        ) from err
    return AssetOrTimeSchedule(timetable=timetable, assets=condition)
