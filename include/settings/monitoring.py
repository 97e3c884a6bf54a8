"""The ``monitoring:`` section: the DAG's settings and the warn / critical limits per metric.

`METRICS` is the one list of known metrics with their direction and default limits; config.yaml's
``monitoring.thresholds`` overrides them per metric and per subject (one table, DAG, directory, component).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, RootModel, field_validator, model_validator

from include.settings.base import Identifier, IsoDate, StrictModel, Text, key_error, unknown_key_error


@dataclass(frozen=True)
class MetricSpec:
    """What a metric is and which way is bad: ``above`` breaches at value >= limit, ``below`` at value < limit."""

    name: str
    category: str
    unit: str
    direction: str
    warn: float | None = None
    critical: float | None = None


# Known metrics with their default limits (overridable per metric and per subject in config.yaml).
METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec("system.cpu_percent", "system", "%", "above", warn=95),
        MetricSpec("system.load_per_cpu", "system", "", "above"),
        MetricSpec("system.memory_percent", "system", "%", "above", warn=90, critical=98),
        MetricSpec("system.disk_used_percent", "system", "%", "above", warn=90, critical=98),
        MetricSpec("system.dir_free_mb", "system", "MB", "below", warn=1024, critical=100),
        MetricSpec("db.connect_ms", "database", "ms", "above", warn=1000, critical=10000),
        MetricSpec("db.connections_used_percent", "database", "%", "above", warn=80, critical=95),
        MetricSpec("db.connections", "database", "", "above"),
        MetricSpec("db.database_size_mb", "database", "MB", "above"),
        MetricSpec("db.table_size_mb", "database", "MB", "above"),
        MetricSpec("db.cache_hit_ratio", "database", "", "below", warn=0.8),
        MetricSpec("db.long_running_queries", "database", "", "above", warn=1),
        MetricSpec("db.idle_in_transaction", "database", "", "above", warn=1, critical=5),
        MetricSpec("db.lock_waits", "database", "", "above", warn=1, critical=10),
        MetricSpec("db.dead_tuple_ratio", "database", "", "above", warn=0.2),
        MetricSpec("freshness.age_hours", "freshness", "h", "above", warn=26, critical=50),
        # Oldest landing file not loaded yet, per source (include/monitoring.py collect_landing_backlog).
        MetricSpec("landing.oldest_unclaimed_age_hours", "landing", "h", "above", warn=26, critical=50),
        # Backups (include/backup.py): a stale backup and a failed restore-check alert like any metric.
        MetricSpec("backup.age_hours", "backup", "h", "above", warn=26, critical=50),
        MetricSpec("backup.restore_check", "backup", "", "below", critical=1),
        MetricSpec("airflow.api_reachable", "airflow", "", "below", critical=1),
        MetricSpec("airflow.health", "airflow", "", "below", critical=1),
        MetricSpec("dag.consecutive_failures", "dag", "", "above", warn=1, critical=3),
        MetricSpec("dag.failed_runs", "dag", "", "above"),
        MetricSpec("dag.last_duration_seconds", "dag", "s", "above"),
        MetricSpec("dag.duration_ratio", "dag", "", "above", warn=3),
        MetricSpec("dag.hours_since_success", "dag", "h", "above", warn=26, critical=50),
    )
}


@dataclass(frozen=True)
class Limits:
    warn: float | None
    critical: float | None


class LevelConfig(StrictModel):
    """``{warn: x, critical: y}``; a key left out keeps the level above it, ``null`` switches it off."""

    warn: float | None = None
    critical: float | None = None

    def over(self, base: Limits) -> Limits:
        """These limits on top of `base` (only the keys written in the file replace it)."""
        return Limits(
            self.warn if "warn" in self.model_fields_set else base.warn,
            self.critical if "critical" in self.model_fields_set else base.critical,
        )


class MetricThresholds(LevelConfig):
    """The limits of one metric, with per-subject overrides."""

    subjects: dict[str, LevelConfig] = Field(default_factory=dict)


def _check_order(name: str, lim: Limits, sub: str) -> None:
    if lim.warn is None or lim.critical is None:
        return
    direction = METRICS[name].direction
    if (direction == "above" and lim.warn > lim.critical) or (direction == "below" and lim.warn < lim.critical):
        word = "<=" if direction == "above" else ">="
        raise key_error(sub, f"warn must be {word} critical for '{direction}' metric {name}, got {lim}")


class Thresholds(RootModel[dict[str, MetricThresholds]]):
    """Limits per metric name (a key of `METRICS`), with optional per-subject overrides."""

    root: dict[str, MetricThresholds] = Field(default_factory=dict)

    @field_validator("root", mode="before")
    @classmethod
    def _known_metrics(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name in value:
                if name not in METRICS:
                    raise unknown_key_error(name, sorted(METRICS), "metric")
        return value

    @model_validator(mode="after")
    def _warn_before_critical(self) -> Thresholds:
        for name, t in self.root.items():
            lim = t.over(_default(name))
            _check_order(name, lim, name)
            for subject, level in t.subjects.items():
                _check_order(name, level.over(lim), f"{name}.subjects.{subject}")
        return self

    def for_(self, name: str, subject: str | None = None) -> Limits:
        """The limits of metric `name` for `subject` (its override, else the metric's, else the default)."""
        t = self.root.get(name)
        lim = _default(name) if t is None else t.over(_default(name))
        if t is not None and subject is not None and subject in t.subjects:
            return t.subjects[subject].over(lim)
        return lim


def _default(name: str) -> Limits:
    spec = METRICS[name]
    return Limits(spec.warn, spec.critical)


def _plain_dir(value: str) -> str:
    if "/" in value or value.startswith("."):
        raise ValueError("must be a plain directory name")
    return value


class MonitoringSection(StrictModel):
    """``monitoring:`` (see config.yaml for the meaning of each key)."""

    dag_id: Identifier = "monitoring_dag"
    schedule: Text | None = "@hourly"
    start_date: IsoDate = "2024-01-01"
    retries: int = Field(default=1, ge=0, le=10)
    retry_delay_seconds: int = Field(default=60, ge=0)
    api_conn_id: Text = "airflow_api"
    api_timeout_seconds: float = Field(default=10, ge=0.5, le=300)
    watched_dags: tuple[Text, ...] = Field(
        default=("etl_ecommerce_pipeline", "data_quality_checks", "monitoring_dag"), strict=False
    )
    recent_runs: int = Field(default=10, ge=2, le=100)
    long_query_seconds: int = Field(default=300, ge=0)
    idle_in_transaction_seconds: int = Field(default=60, ge=0)
    dead_tuple_min_rows: int = Field(default=1000, ge=0)
    report_history_days: int = Field(default=14, ge=1, le=3660)
    report_subdir: Text = "monitoring"
    thresholds: Thresholds = Thresholds({})

    @field_validator("report_subdir")
    @classmethod
    def _subdir(cls, value: str) -> str:
        return _plain_dir(value)

    @field_validator("watched_dags", mode="before")
    @classmethod
    def _dag_list(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError("must be a list of DAG ids")
        return value


MonitoringConfig = MonitoringSection
