"""The typed model of config.yaml: one pydantic model per section, each default written once, here.

`AppConfig` is the whole file. `include.config_loader.load_config()` validates it (after the ``ECOM_*``
environment overrides) and exposes it as the frozen `Settings` the pipeline reads.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import Field, create_model, field_validator, model_validator

from include.quality.config import QualitySection
from include.settings.alerting import AlertingSection
from include.settings.base import (
    OPTIONAL_SOURCES,
    SOURCES,
    ConnId,
    HttpUrl,
    Identifier,
    IsoDate,
    StrictModel,
    Text,
    key_error,
)
from include.settings.monitoring import MonitoringSection
from include.settings.privacy import PrivacyConfig

Encoding = Literal["auto", "utf-8", "cp1252", "latin-1"]
DateFormat = Literal["iso8601", "dd/mm/yyyy", "mm/dd/yyyy"]  # include/parsing.py DATE_FORMATS


class PathsSection(StrictModel):
    """Relative paths are resolved against the directory of the config file."""

    raw_data_dir: Text
    staging_dir: Text
    reports_dir: Text
    # Staging run folders older than this are deleted (after each ETL run and by the daily privacy_maintenance);
    # null keeps them forever. Replaces privacy.staging_days.
    staging_retention_days: int | None = Field(default=7, ge=0)


class DatabaseSection(StrictModel):
    conn_id: ConnId
    reporting_conn_id: ConnId | None = None  # None: the same connection as conn_id
    schema_: Identifier = Field(default="public", alias="schema")
    lock_timeout_seconds: int = Field(default=300, ge=1)
    statement_timeout_seconds: int = Field(default=3600, ge=1)
    idle_in_transaction_timeout_seconds: int = Field(default=120, ge=0)  # 0: no limit
    tcp_user_timeout_seconds: int = Field(default=60, ge=1)  # a vanished peer: unacknowledged data gives up after this
    keepalives_idle_seconds: int = Field(default=30, ge=1)


class SourceSection(StrictModel):
    """One input source: a file (or a glob `pattern`) under paths.raw_data_dir."""

    file: Text
    pattern: Text | None = None  # a glob relative to raw_data_dir; `file` stays the single name
    required: bool | None = None  # None: required unless the source is optional in the entity registry
    encoding: Encoding = "auto"
    date_formats: list[DateFormat] = Field(default=["iso8601"], min_length=1)
    allow_header_only: bool = False

    @field_validator("file")
    @classmethod
    def _file_name(cls, value: str) -> str:
        if "/" in value or value.startswith("."):
            raise ValueError("must be a file name inside the raw directory")
        return value

    @field_validator("pattern")
    @classmethod
    def _relative_glob(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith("/") or ".." in PurePosixPath(value).parts):
            raise ValueError("must be a glob relative to paths.raw_data_dir (no '/' at the start, no '..')")
        return value


class ProductsSourceSection(SourceSection):
    """The products source: a file, or the REST API when `api_url` (or ECOM_PRODUCTS_API_URL) is set."""

    api_url: HttpUrl | None = None
    timeout_seconds: float = Field(default=10, ge=0.1, le=600)
    max_retries: int = Field(default=4, ge=0, le=20)
    backoff_seconds: float = Field(default=0.5, ge=0, le=60)
    max_backoff_seconds: float = Field(default=30, ge=0, le=3600)


# One required key per source of the entity registry.
_source_fields: dict[str, Any] = {
    name: (ProductsSourceSection if name == "products" else SourceSection, ...) for name in SOURCES
}
SourcesSection = create_model("SourcesSection", __base__=StrictModel, **_source_fields)


def source_required(name: str, declared: bool | None) -> bool:
    """Whether source `name` must be present in a run (the registry's choice unless the file says)."""
    return name not in OPTIONAL_SOURCES if declared is None else declared


class ExtractSection(StrictModel):
    chunk_size: int = Field(ge=1000, le=5_000_000)
    max_file_mb: int = Field(default=2048, ge=1)
    max_field_chars: int = Field(default=10000, ge=64)


class IpAddressSection(StrictModel):
    mode: Literal["truncate", "drop", "keep"] = "truncate"
    ipv4_prefix: int = Field(default=24, ge=0, le=32)
    ipv6_prefix: int = Field(default=48, ge=0, le=128)


class PriceTierSection(StrictModel):
    name: Text
    max_price: float | None = Field(default=None, ge=0)


class TransformSection(StrictModel):
    max_reject_rate: float = Field(ge=0, le=1)
    on_mixed_encoding: Literal["fail", "quarantine"] = "fail"
    ip_address: IpAddressSection = IpAddressSection()
    price_tiers: list[PriceTierSection] = Field(min_length=1)

    @model_validator(mode="after")
    def _tiers_ascend(self) -> TransformSection:
        tiers = self.price_tiers
        for i, t in enumerate(tiers):
            where = f"price_tiers[{i}].max_price"
            last = i == len(tiers) - 1
            if t.max_price is None and not last:
                raise key_error(where, "may be null only on the last tier")
            if t.max_price is not None and last:
                raise key_error(
                    where, f"must be null on the last tier (it takes every higher price), got {t.max_price!r}"
                )
            prev = tiers[i - 1].max_price if i else None
            if t.max_price is not None and prev is not None and t.max_price <= prev:
                raise key_error(where, f"must be greater than the previous tier's, got {t.max_price!r}")
        return self


class EtlSection(StrictModel):
    dag_id: Identifier = "etl_ecommerce_pipeline"
    schedule: Text | None = None
    start_date: IsoDate = "2024-01-01"
    retries: int = Field(default=2, ge=0, le=10)
    retry_delay_seconds: int = Field(default=30, ge=0)
    max_retry_delay_seconds: int = Field(default=600, ge=0)
    execution_timeout_minutes: int = Field(default=120, ge=1)
    notify_on_success: bool = False
    load_pool: Text = "default_pool"


class LandingSection(StrictModel):
    """The landing zone: which files are claimed, where loaded and broken files go (README "Feeding it your data")."""

    # A file younger than this may still be being written: left for the next run. 0 keeps the sample instant;
    # a shop whose exporter writes in place (no .part/.tmp rename) wants a few seconds (e.g. 5).
    min_file_age_seconds: int = Field(default=0, ge=0)
    archive: bool = False  # move loaded files to archive_dir/<source>/<YYYY-MM-DD>/ after the commit
    archive_dir: Text = "archive"  # relative to paths.raw_data_dir unless absolute
    failed_dir: Text = "failed"  # quarantined broken files: failed_dir/<source>/
    on_bad_file: Literal["fail", "quarantine"] = "fail"
    max_parallel_files: int = Field(default=4, ge=1, le=256)  # mapped extract/transform instances at once
    marker: Text = "_READY"  # the exporter's "files are complete" marker; consumed by the ETL's watcher


class AppConfig(StrictModel):
    """The whole config.yaml."""

    paths: PathsSection
    database: DatabaseSection
    sources: SourcesSection  # type: ignore[valid-type]
    extract: ExtractSection
    transform: TransformSection
    etl: EtlSection
    landing: LandingSection = LandingSection()
    quality: QualitySection | None = None
    monitoring: MonitoringSection = MonitoringSection()
    alerting: AlertingSection = AlertingSection()
    privacy: PrivacyConfig = PrivacyConfig()

    @field_validator("landing", "monitoring", "alerting", "privacy", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        return {} if value is None else value
