"""Typed, validated settings from ``config.yaml`` plus ``ECOM_*`` environment overrides.

`load_config()` reads the file once per process (cached), checks types, required keys and ranges,
and raises `ConfigError` naming the bad key and value. Sections owned by other features
(``quality``, ``monitoring``, ``alerting``) are kept as plain mappings here and validated by their
own modules with the same helpers (`section`, `get_int`, ...).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from include.parsing import DATE_FORMATS, ENCODINGS, MIXED_ENCODING_MODES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.yaml"

ENV_CONFIG = "ECOM_CONFIG"
ENV_RAW_DATA_DIR = "ECOM_RAW_DATA_DIR"
ENV_STAGING_DIR = "ECOM_STAGING_DIR"
ENV_REPORTS_DIR = "ECOM_REPORTS_DIR"
ENV_PRODUCTS_API_URL = "ECOM_PRODUCTS_API_URL"
ENV_POSTGRES_CONN_ID = "ECOM_POSTGRES_CONN_ID"

SOURCES = ("products", "customers", "orders", "user_sessions")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and the offending value."""


_MISSING = object()


def section(data: Mapping[str, Any], key: str, path: str = "") -> Mapping[str, Any]:
    """Return mapping `data[key]`, or raise naming `path.key` when it is missing or not a mapping."""
    where = f"{path}.{key}" if path else key
    value = data.get(key, _MISSING)
    if value is _MISSING:
        raise ConfigError(f"missing required key '{where}'")
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"'{where}' must be a mapping, got {type(value).__name__} {value!r}")
    return value


def _get(data: Mapping[str, Any], key: str, path: str, default: Any) -> Any:
    value = data.get(key, default)
    if value is _MISSING:
        raise ConfigError(f"missing required key '{path}.{key}'" if path else f"missing required key '{key}'")
    return value


def get_str(
    data: Mapping[str, Any], key: str, path: str, default: Any = _MISSING, *, optional: bool = False
) -> str | None:
    """A string value (None allowed only when `optional`)."""
    value = _get(data, key, path, default)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"'{path}.{key}' must be a non-empty string, got {value!r}")
    return value


def get_text(data: Mapping[str, Any], key: str, path: str, default: Any = _MISSING) -> str:
    """A required non-empty string."""
    return str(get_str(data, key, path, default))


def get_bool(data: Mapping[str, Any], key: str, path: str, default: Any = _MISSING) -> bool:
    value = _get(data, key, path, default)
    if not isinstance(value, bool):
        raise ConfigError(f"'{path}.{key}' must be true or false, got {value!r}")
    return value


def get_int(
    data: Mapping[str, Any],
    key: str,
    path: str,
    default: Any = _MISSING,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = _get(data, key, path, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"'{path}.{key}' must be an integer, got {value!r}")
    _check_range(value, path, key, minimum, maximum)
    return value


def get_float(
    data: Mapping[str, Any],
    key: str,
    path: str,
    default: Any = _MISSING,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    optional: bool = False,
) -> float | None:
    value = _get(data, key, path, default)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"'{path}.{key}' must be a number, got {value!r}")
    _check_range(float(value), path, key, minimum, maximum)
    return float(value)


def get_choice(data: Mapping[str, Any], key: str, path: str, choices: tuple[str, ...], default: Any = _MISSING) -> str:
    value = _get(data, key, path, default)
    if value not in choices:
        raise ConfigError(f"'{path}.{key}' must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def get_identifier(data: Mapping[str, Any], key: str, path: str, default: Any = _MISSING) -> str:
    """A SQL identifier: letters, digits, underscore; quoted by the driver wherever it is used."""
    value = get_text(data, key, path, default)
    if not _IDENT.match(value):
        raise ConfigError(f"'{path}.{key}' must be a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*), got {value!r}")
    return value


def _check_range(value: float, path: str, key: str, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise ConfigError(f"'{path}.{key}' must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"'{path}.{key}' must be <= {maximum}, got {value!r}")


@dataclass(frozen=True)
class SourceConfig:
    name: str
    file: str
    required: bool
    encoding: str = "auto"  # auto | utf-8 | cp1252 | latin-1 (include/parsing.py)
    date_formats: tuple[str, ...] = ("iso8601",)
    allow_header_only: bool = False  # a required file with a header and no rows is accepted (no-op)


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
    staging_retention_days: int
    conn_id: str
    schema: str
    lock_timeout_seconds: int
    statement_timeout_seconds: int
    sources: Mapping[str, SourceConfig]
    products_api: ProductsApiConfig
    chunk_size: int
    max_file_bytes: int
    max_field_chars: int
    max_reject_rate: float
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
    quality: Mapping[str, Any]
    monitoring: Mapping[str, Any]
    alerting: Mapping[str, Any]
    on_mixed_encoding: str = "fail"  # fail | quarantine (transform.on_mixed_encoding)

    def source_path(self, source: str) -> Path:
        return self.raw_data_dir / self.sources[source].file


def _path(value: str, base: Path) -> Path:
    p = Path(os.path.expandvars(os.path.expanduser(value)))
    return p if p.is_absolute() else (base / p).resolve()


def parse_config(raw: Mapping[str, Any], config_path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Validate the mapping `raw` (from `config_path`) with `env` overrides into `Settings`.

    Raises:
        ConfigError: a key is missing, has the wrong type or is out of range.
    """
    env = os.environ if env is None else env
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{config_path}: top level must be a mapping, got {type(raw).__name__}")
    base = config_path.parent

    paths = section(raw, "paths")
    raw_dir = env.get(ENV_RAW_DATA_DIR) or get_text(paths, "raw_data_dir", "paths")
    staging = env.get(ENV_STAGING_DIR) or get_text(paths, "staging_dir", "paths")
    reports = env.get(ENV_REPORTS_DIR) or get_text(paths, "reports_dir", "paths")

    db = section(raw, "database")
    conn_id = env.get(ENV_POSTGRES_CONN_ID) or get_text(db, "conn_id", "database")
    if not re.match(r"^[A-Za-z0-9_.-]+$", conn_id):
        raise ConfigError(f"'database.conn_id' must be an Airflow connection id, got {conn_id!r}")

    src = section(raw, "sources")
    sources: dict[str, SourceConfig] = {}
    for name in SOURCES:
        s = section(src, name, "sources")
        file = get_text(s, "file", f"sources.{name}")
        if "/" in file or file.startswith("."):
            raise ConfigError(f"'sources.{name}.file' must be a file name inside the raw directory, got {file!r}")
        formats = s.get("date_formats", ["iso8601"])
        if not isinstance(formats, list) or not formats or any(f not in DATE_FORMATS for f in formats):
            raise ConfigError(
                f"'sources.{name}.date_formats' must be a non-empty list of {list(DATE_FORMATS)}, got {formats!r}"
            )
        sources[name] = SourceConfig(
            name,
            file,
            get_bool(s, "required", f"sources.{name}", default=name != "customers"),
            encoding=get_choice(s, "encoding", f"sources.{name}", ENCODINGS, "auto"),
            date_formats=tuple(formats),
            allow_header_only=get_bool(s, "allow_header_only", f"sources.{name}", False),
        )
    unknown = set(src) - set(SOURCES)
    if unknown:
        raise ConfigError(f"'sources' has unknown source(s) {sorted(unknown)}; known: {list(SOURCES)}")

    p = section(src, "products", "sources")
    api_url = env.get(ENV_PRODUCTS_API_URL) or get_str(p, "api_url", "sources.products", default=None, optional=True)
    if api_url is not None and not re.match(r"^https?://", api_url):
        raise ConfigError(f"products API URL must start with http:// or https://, got {api_url!r}")
    products_api = ProductsApiConfig(
        url=api_url,
        timeout_seconds=get_float(p, "timeout_seconds", "sources.products", 10, minimum=0.1, maximum=600) or 10.0,
        max_retries=get_int(p, "max_retries", "sources.products", 4, minimum=0, maximum=20),
        backoff_seconds=get_float(p, "backoff_seconds", "sources.products", 0.5, minimum=0, maximum=60) or 0.0,
        max_backoff_seconds=get_float(p, "max_backoff_seconds", "sources.products", 30, minimum=0, maximum=3600) or 0.0,
    )

    ex = section(raw, "extract")
    tr = section(raw, "transform")
    ip = section(tr, "ip_address", "transform")
    tiers_raw = tr.get("price_tiers")
    if not isinstance(tiers_raw, list) or not tiers_raw:
        raise ConfigError(f"'transform.price_tiers' must be a non-empty list, got {tiers_raw!r}")
    tiers: list[PriceTier] = []
    for i, t in enumerate(tiers_raw):
        where = f"transform.price_tiers[{i}]"
        if not isinstance(t, Mapping):
            raise ConfigError(f"'{where}' must be a mapping with name and max_price, got {t!r}")
        name = get_text(t, "name", where)
        last = i == len(tiers_raw) - 1
        mx = get_float(t, "max_price", where, None, minimum=0, optional=True)
        if mx is None and not last:
            raise ConfigError(f"'{where}.max_price' may be null only on the last tier")
        if mx is not None and last:
            raise ConfigError(
                f"'{where}.max_price' must be null on the last tier (it takes every higher price), got {mx!r}"
            )
        if tiers and mx is not None and tiers[-1].max_price is not None and mx <= tiers[-1].max_price:
            raise ConfigError(f"'{where}.max_price' must be greater than the previous tier's, got {mx!r}")
        tiers.append(PriceTier(name, mx))

    etl = section(raw, "etl")
    schedule = get_str(etl, "schedule", "etl", default=None, optional=True)
    start_date = str(get_str(etl, "start_date", "etl", default="2024-01-01"))
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", start_date):
        raise ConfigError(f"'etl.start_date' must be a date YYYY-MM-DD, got {start_date!r}")

    return Settings(
        config_path=config_path,
        raw_data_dir=_path(raw_dir, base),
        staging_dir=_path(staging, base),
        reports_dir=_path(reports, base),
        staging_retention_days=get_int(paths, "staging_retention_days", "paths", 7, minimum=0),
        conn_id=conn_id,
        schema=get_identifier(db, "schema", "database", "public"),
        lock_timeout_seconds=get_int(db, "lock_timeout_seconds", "database", 300, minimum=1),
        statement_timeout_seconds=get_int(db, "statement_timeout_seconds", "database", 3600, minimum=1),
        sources=sources,
        products_api=products_api,
        chunk_size=get_int(ex, "chunk_size", "extract", minimum=1000, maximum=5_000_000),
        max_file_bytes=get_int(ex, "max_file_mb", "extract", 2048, minimum=1) * 1024 * 1024,
        max_field_chars=get_int(ex, "max_field_chars", "extract", 10000, minimum=64),
        max_reject_rate=get_float(tr, "max_reject_rate", "transform", minimum=0, maximum=1) or 0.0,
        ip_policy=IpPolicy(
            mode=get_choice(ip, "mode", "transform.ip_address", ("truncate", "drop", "keep"), "truncate"),
            ipv4_prefix=get_int(ip, "ipv4_prefix", "transform.ip_address", 24, minimum=0, maximum=32),
            ipv6_prefix=get_int(ip, "ipv6_prefix", "transform.ip_address", 48, minimum=0, maximum=128),
        ),
        price_tiers=tuple(tiers),
        dag_id=get_identifier(etl, "dag_id", "etl", "etl_ecommerce_pipeline"),
        schedule=schedule,
        start_date=start_date,
        retries=get_int(etl, "retries", "etl", 2, minimum=0, maximum=10),
        retry_delay_seconds=get_int(etl, "retry_delay_seconds", "etl", 30, minimum=0),
        max_retry_delay_seconds=get_int(etl, "max_retry_delay_seconds", "etl", 600, minimum=0),
        execution_timeout_minutes=get_int(etl, "execution_timeout_minutes", "etl", 120, minimum=1),
        notify_on_success=get_bool(etl, "notify_on_success", "etl", False),
        load_pool=str(get_str(etl, "load_pool", "etl", "default_pool")),
        quality=section(raw, "quality") if "quality" in raw else {},
        monitoring=section(raw, "monitoring") if "monitoring" in raw else {},
        alerting=section(raw, "alerting") if "alerting" in raw else {},
        on_mixed_encoding=get_choice(tr, "on_mixed_encoding", "transform", MIXED_ENCODING_MODES, "fail"),
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
        raise ConfigError(f"{path}: invalid YAML: {err}") from err
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
