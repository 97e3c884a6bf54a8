"""config_loader: defaults load, env overrides apply, and every kind of bad value is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from include.config_loader import DEFAULT_CONFIG, ConfigError, load_config, parse_config


def _raw() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def test_shipped_config_is_valid_and_typed() -> None:
    s = parse_config(_raw(), DEFAULT_CONFIG, env={})
    assert s.raw_data_dir == DEFAULT_CONFIG.parent / "data" / "raw"
    assert s.conn_id == "postgres_default"
    assert s.max_reject_rate == pytest.approx(0.10)
    assert [t.name for t in s.price_tiers] == ["budget", "standard", "premium"]
    assert s.price_tiers[-1].max_price is None
    assert s.products_api.url is None
    assert s.sources["customers"].required is False and s.sources["orders"].required is True
    assert s.ip_policy.ipv4_prefix == 24 and s.ip_policy.ipv6_prefix == 48


def test_env_overrides(tmp_path: Path) -> None:
    env = {
        "ECOM_RAW_DATA_DIR": str(tmp_path / "in"),
        "ECOM_PRODUCTS_API_URL": "http://127.0.0.1:9/products",
        "ECOM_STAGING_DIR": str(tmp_path / "stage"),
        "ECOM_POSTGRES_CONN_ID": "warehouse",
    }
    s = parse_config(_raw(), DEFAULT_CONFIG, env=env)
    assert s.raw_data_dir == tmp_path / "in"
    assert s.staging_dir == tmp_path / "stage"
    assert s.products_api.url == "http://127.0.0.1:9/products"
    assert s.conn_id == "warehouse"


def test_ecom_config_selects_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _raw()
    raw["transform"]["max_reject_rate"] = 0.25
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("ECOM_CONFIG", str(other))
    assert load_config().max_reject_rate == pytest.approx(0.25)
    assert load_config().config_path == other


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("paths"), "missing required key 'paths'"),
        (lambda r: r["extract"].update(chunk_size="big"), "'extract.chunk_size' must be an integer, got 'big'"),
        (lambda r: r["extract"].update(chunk_size=10), "'extract.chunk_size' must be >= 1000, got 10"),
        (lambda r: r["transform"].update(max_reject_rate=1.5), "'transform.max_reject_rate' must be <= 1, got 1.5"),
        (
            lambda r: r["transform"]["ip_address"].update(mode="hash"),
            "'transform.ip_address.mode' must be one of truncate, drop, keep",
        ),
        (
            lambda r: r["transform"]["price_tiers"][1].update(max_price=10),
            "'transform.price_tiers[1].max_price' must be greater",
        ),
        (lambda r: r["transform"]["price_tiers"][2].update(max_price=500), "must be null on the last tier"),
        (
            lambda r: r["sources"]["products"].update(api_url="ftp://x"),
            "must start with http:// or https://, got 'ftp://x'",
        ),
        (lambda r: r["sources"]["orders"].update(file="../etc/passwd"), "'sources.orders.file' must be a file name"),
        (lambda r: r["sources"].update(invoices={"file": "x.csv"}), "unknown source(s) ['invoices']"),
        (lambda r: r["database"].update(schema="public; drop"), "'database.schema' must be a plain SQL identifier"),
        (
            lambda r: r["etl"].update(start_date="yesterday"),
            "'etl.start_date' must be a date YYYY-MM-DD, got 'yesterday'",
        ),
        (lambda r: r["etl"].update(retries=True), "'etl.retries' must be an integer, got True"),
    ],
)
def test_invalid_values_are_named(mutate: Any, message: str) -> None:
    raw = _raw()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        parse_config(raw, DEFAULT_CONFIG, env={})
    assert message in str(err.value)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("paths: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
