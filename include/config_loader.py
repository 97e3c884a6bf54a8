"""Typed, validated settings from ``config.yaml`` plus ``ECOM_*`` environment overrides.

`load_config()` reads the file once per process (cached), validates it with the pydantic models of
`include.settings` (types, ranges, required and unknown keys) and returns the frozen `Settings`. Any
problem is a `ConfigError` of one line naming the file, the dotted key, the bad value and, for an
unknown key, the nearest valid one: ``config.yaml: unknown key 'transform.max_reject_rat' — did you
mean 'max_reject_rate'?``. `main()` (``make check-config``) prints that line or ``config OK``.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from include.settings.base import SOURCES, ConfigError

if TYPE_CHECKING:
    from include.quality.config import QualityConfig
    from include.settings.alerting import AlertingSection
    from include.settings.models import LandingSection
    from include.settings.monitoring import MonitoringSection


PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.yaml"

ENV_CONFIG = "ECOM_CONFIG"
ENV_RAW_DATA_DIR = "ECOM_RAW_DATA_DIR"
ENV_STAGING_DIR = "ECOM_STAGING_DIR"
ENV_REPORTS_DIR = "ECOM_REPORTS_DIR"
ENV_PRODUCTS_API_URL = "ECOM_PRODUCTS_API_URL"
ENV_POSTGRES_CONN_ID = "ECOM_POSTGRES_CONN_ID"
ENV_REPORTING_CONN_ID = "ECOM_REPORTING_CONN_ID"
ENV_EXPORTS_DIR = "ECOM_EXPORTS_DIR"
ENV_BACKUP_DIR = "ECOM_BACKUP_DIR"
ENV_PG_BIN_DIR = "ECOM_PG_BIN_DIR"

# Environment variable -> the key of config.yaml it replaces.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    ENV_RAW_DATA_DIR: ("paths", "raw_data_dir"),
    ENV_STAGING_DIR: ("paths", "staging_dir"),
    ENV_REPORTS_DIR: ("paths", "reports_dir"),
    ENV_PRODUCTS_API_URL: ("sources", "products", "api_url"),
    ENV_POSTGRES_CONN_ID: ("database", "conn_id"),
    ENV_REPORTING_CONN_ID: ("database", "reporting_conn_id"),
    ENV_EXPORTS_DIR: ("privacy", "exports_dir"),
    ENV_BACKUP_DIR: ("privacy", "backup_dir"),
    ENV_PG_BIN_DIR: ("privacy", "pg_bin_dir"),
}

__all__ = ["SOURCES", "ConfigError", "Settings", "load_config", "parse_config"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceConfig:
    name: str
    file: str
    required: bool
    encoding: str
    date_formats: tuple[str, ...]
    allow_header_only: bool
    pattern: str | None  # a glob under raw_data_dir; None: the single `file`


@dataclass(frozen=True)
class ProductsApiConfig:
    url: str | None
    timeout_seconds: float
    max_retries: int
    backoff_seconds: float
    max_backoff_seconds: float


@dataclass(frozen=True)
class PriceTier:
    name: str
    max_price: float | None


@dataclass(frozen=True)
class IpPolicy:
    mode: str
    ipv4_prefix: int
    ipv6_prefix: int


@dataclass(frozen=True)
class Settings:
    """Validated settings; build with `load_config()`."""

    config_path: Path
    raw_data_dir: Path
    staging_dir: Path
    reports_dir: Path
    staging_retention_days: int | None
    conn_id: str
    reporting_conn_id: str  # = conn_id unless database.reporting_conn_id is set
    schema: str
    lock_timeout_seconds: int
    statement_timeout_seconds: int
    idle_in_transaction_timeout_seconds: int
    tcp_user_timeout_seconds: int
    keepalives_idle_seconds: int
    sources: Mapping[str, SourceConfig]
    products_api: ProductsApiConfig
    chunk_size: int
    max_file_bytes: int
    max_field_chars: int
    max_reject_rate: float
    on_mixed_encoding: str
    ip_policy: IpPolicy
    price_tiers: tuple[PriceTier, ...]
    dag_id: str
    schedule: str | None
    start_date: str
    retries: int
    retry_delay_seconds: int
    max_retry_delay_seconds: int
    execution_timeout_minutes: int
    notify_on_success: bool
    load_pool: str
    quality: QualityConfig | None  # None: the file has no quality section
    monitoring: MonitoringSection
    alerting: AlertingSection
    landing: LandingSection = field(default_factory=lambda: _default_landing())  # noqa: PLW0108 - defined below

    def source_path(self, source: str) -> Path:
        return self.raw_data_dir / self.sources[source].file

    def source_pattern(self, source: str) -> str:
        """The glob of `source` under raw_data_dir (a plain `file` name is a pattern without wildcards)."""
        cfg = self.sources[source]
        return cfg.pattern or cfg.file

    @property
    def archive_dir(self) -> Path:
        return _path(self.landing.archive_dir, self.raw_data_dir)

    @property
    def failed_dir(self) -> Path:
        return _path(self.landing.failed_dir, self.raw_data_dir)


def _default_landing() -> LandingSection:
    from include.settings.models import LandingSection

    return LandingSection()


def _path(value: str, base: Path) -> Path:
    p = Path(os.path.expandvars(os.path.expanduser(value)))
    return p if p.is_absolute() else (base / p).resolve()


def _with_env(raw: Mapping[str, Any], env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """`raw` with the ``ECOM_*`` overrides of `env` applied; also {dotted key: variable} of those applied."""
    out = copy.deepcopy(dict(raw))
    applied: dict[str, str] = {}
    for var, path in ENV_OVERRIDES.items():
        value = env.get(var)
        if not value:
            continue
        node: Any = out
        for part in path[:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(part), dict):
                node = None
                break
            node = node[part]
        if node is not None:
            node[path[-1]] = value
            applied[".".join(path)] = var
    return out, applied


def parse_config(raw: Mapping[str, Any], config_path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Validate the mapping `raw` (from `config_path`) with `env` overrides into `Settings`.

    Raises:
        ConfigError: one line: a key is missing, unknown, of the wrong type or out of range.
    """
    # Imported here: the models import the quality package, whose modules import this one.
    from include.quality.config import CHECK_TAGS
    from include.settings.base import format_error
    from include.settings.models import AppConfig, source_required

    env = os.environ if env is None else env
    name = config_path.name
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: top level must be a mapping, got {type(raw).__name__}")
    data, applied = _with_env(raw, env)
    try:
        cfg = AppConfig.model_validate(data)
    except ValidationError as err:
        line = format_error(err, tags=CHECK_TAGS)
        for key, var in applied.items():
            if f"'{key}'" in line:
                line += f" (set by {var})"
        raise ConfigError(f"{name}: {line}") from None
    try:
        quality = None if cfg.quality is None else cfg.quality.bind(cfg.transform.max_reject_rate)
    except ConfigError as err:
        raise ConfigError(f"{name}: {err}") from None
    base = config_path.parent
    db, tr, etl = cfg.database, cfg.transform, cfg.etl
    src: Any = cfg.sources  # a model built from the source registry: attributes unknown to mypy
    p = src.products
    sources = {
        n: SourceConfig(
            name=n,
            file=s.file,
            required=source_required(n, s.required),
            encoding=s.encoding,
            date_formats=tuple(s.date_formats),
            allow_header_only=s.allow_header_only,
            pattern=s.pattern,
        )
        for n in SOURCES
        for s in (getattr(src, n),)
    }
    return Settings(
        config_path=config_path,
        raw_data_dir=_path(cfg.paths.raw_data_dir, base),
        staging_dir=_path(cfg.paths.staging_dir, base),
        reports_dir=_path(cfg.paths.reports_dir, base),
        staging_retention_days=cfg.paths.staging_retention_days,
        conn_id=db.conn_id,
        reporting_conn_id=db.reporting_conn_id or db.conn_id,
        schema=db.schema_,
        lock_timeout_seconds=db.lock_timeout_seconds,
        statement_timeout_seconds=db.statement_timeout_seconds,
        idle_in_transaction_timeout_seconds=db.idle_in_transaction_timeout_seconds,
        tcp_user_timeout_seconds=db.tcp_user_timeout_seconds,
        keepalives_idle_seconds=db.keepalives_idle_seconds,
        sources=sources,
        products_api=ProductsApiConfig(
            url=p.api_url,
            timeout_seconds=p.timeout_seconds,
            max_retries=p.max_retries,
            backoff_seconds=p.backoff_seconds,
            max_backoff_seconds=p.max_backoff_seconds,
        ),
        chunk_size=cfg.extract.chunk_size,
        max_file_bytes=cfg.extract.max_file_mb * 1024 * 1024,
        max_field_chars=cfg.extract.max_field_chars,
        max_reject_rate=tr.max_reject_rate,
        on_mixed_encoding=tr.on_mixed_encoding,
        ip_policy=IpPolicy(tr.ip_address.mode, tr.ip_address.ipv4_prefix, tr.ip_address.ipv6_prefix),
        price_tiers=tuple(PriceTier(t.name, t.max_price) for t in tr.price_tiers),
        dag_id=etl.dag_id,
        schedule=etl.schedule,
        start_date=etl.start_date,
        retries=etl.retries,
        retry_delay_seconds=etl.retry_delay_seconds,
        max_retry_delay_seconds=etl.max_retry_delay_seconds,
        execution_timeout_minutes=etl.execution_timeout_minutes,
        notify_on_success=etl.notify_on_success,
        load_pool=etl.load_pool,
        quality=quality,
        monitoring=cfg.monitoring,
        alerting=cfg.alerting,
        landing=cfg.landing,
    )


def read_config_file(path: Path) -> Mapping[str, Any]:
    """Parse the YAML file at `path`.

    Raises:
        ConfigError: the file is missing or is not valid YAML.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(f"config file not found: {path} (set {ENV_CONFIG} or create it)") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path.name}: invalid YAML{where}: {getattr(err, 'problem', None) or first}") from err
    return data if data is not None else {}


def config_path_from_env() -> Path:
    value = os.environ.get(ENV_CONFIG)
    return Path(value).resolve() if value else DEFAULT_CONFIG


@functools.lru_cache(maxsize=8)
def _load_cached(path: Path, env_key: tuple[tuple[str, str], ...]) -> Settings:
    return parse_config(read_config_file(path), path, dict(env_key))


def load_config(path: Path | str | None = None) -> Settings:
    """Load and validate the settings once per process (per file and ECOM_* environment)."""
    p = Path(path).resolve() if path else config_path_from_env()
    env_key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("ECOM_")))
    return _load_cached(p, env_key)


def main(argv: list[str] | None = None) -> int:
    """``make check-config``: print ``config OK`` or the one-line error (no traceback); exit 1 on an error."""
    logging.basicConfig(format="%(message)s", level=logging.INFO, stream=sys.stdout)
    args = sys.argv[1:] if argv is None else argv
    try:
        load_config(args[0] if args else None)
    except ConfigError as err:
        log.error("%s", err)  # the command's whole output: one line, no traceback
        return 1
    log.info("config OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
