"""config_loader: defaults load, env overrides apply, and every bad value is one line naming the key and the fix."""

from __future__ import annotations

import subprocess
import sys
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
        (lambda r: r.pop("paths"), "config.yaml: missing required key 'paths'"),
        (
            lambda r: r["transform"].pop("max_reject_rate"),
            "config.yaml: missing required key 'transform.max_reject_rate'",
        ),
        (lambda r: r["extract"].update(chunk_size="big"), "'extract.chunk_size' must be an integer, got 'big'"),
        (lambda r: r["extract"].update(chunk_size=10), "'extract.chunk_size' must be >= 1000, got 10"),
        (lambda r: r["transform"].update(max_reject_rate=1.5), "'transform.max_reject_rate' must be <= 1, got 1.5"),
        (
            lambda r: r["transform"]["ip_address"].update(mode="hash"),
            "'transform.ip_address.mode' must be one of 'truncate', 'drop' or 'keep', got 'hash'",
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
        (
            lambda r: r["sources"].update(invoices={"file": "x.csv"}),
            "unknown key 'sources.invoices' (valid: products, customers, orders, user_sessions)",
        ),
        (
            lambda r: r["sources"].update(order={"file": "x.csv"}),
            "unknown key 'sources.order' — did you mean 'orders'?",
        ),
        (
            lambda r: r["sources"]["orders"].update(encoding="utf8"),
            "'sources.orders.encoding' must be one of 'auto', 'utf-8', 'cp1252' or 'latin-1', got 'utf8'",
        ),
        (
            lambda r: r["sources"]["orders"].update(date_formats=["iso8601", "dd.mm.yyyy"]),
            "'sources.orders.date_formats[1]' must be one of 'iso8601', 'dd/mm/yyyy' or 'mm/dd/yyyy'",
        ),
        (lambda r: r["sources"]["orders"].update(pattern="../*.csv"), "'sources.orders.pattern' must be a glob"),
        (
            lambda r: r["transform"].update(on_mixed_encoding="skip"),
            "'transform.on_mixed_encoding' must be one of 'fail' or 'quarantine', got 'skip'",
        ),
        (
            lambda r: r["database"].update(tcp_user_timeout_seconds="30s"),
            "'database.tcp_user_timeout_seconds' must be an integer, got '30s'",
        ),
        (lambda r: r["monitoring"].update(recent_runs=0), "'monitoring.recent_runs' must be >= 2, got 0"),
        (
            lambda r: r["alerting"].update(channels=["email"]),
            "'alerting.email.to' must name at least one recipient when the email channel is on",
        ),
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
    assert str(err.value).startswith("config.yaml: ")
    assert "\n" not in str(err.value)


def _error(mutate: Any) -> str:
    raw = _raw()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        parse_config(raw, DEFAULT_CONFIG, env={})
    return str(err.value)


def test_unknown_key_names_the_dotted_key_and_the_nearest_valid_one() -> None:
    def typo(r: dict[str, Any]) -> None:
        r["transform"]["max_reject_rat"] = r["transform"].pop("max_reject_rate")

    assert _error(typo) == "config.yaml: unknown key 'transform.max_reject_rat' — did you mean 'max_reject_rate'?"
    assert _error(lambda r: r.update(qualty={})) == "config.yaml: unknown key 'qualty' — did you mean 'quality'?"
    assert (
        _error(lambda r: r["monitoring"]["thresholds"].update({"db.lock_wait": {"warn": 1}}))
        == "config.yaml: unknown metric 'monitoring.thresholds.db.lock_wait' — did you mean 'db.lock_waits'?"
    )


def test_wrong_type_names_the_dotted_key_and_the_value() -> None:
    assert (
        _error(lambda r: r["extract"].update(chunk_size="big"))
        == "config.yaml: 'extract.chunk_size' must be an integer, got 'big'"
    )
    assert (
        _error(lambda r: r["alerting"].update(notify_recovery="yes"))
        == "config.yaml: 'alerting.notify_recovery' must be true or false, got 'yes'"
    )


def test_quality_check_of_unknown_type_names_the_valid_types() -> None:
    msg = _error(lambda r: r["quality"]["tables"]["orders"].insert(0, {"check": "row_cnt"}))
    assert msg.startswith("config.yaml: 'quality.tables.orders[0].check' must be one of row_count, not_null, ")
    assert msg.endswith(", load_freshness, got 'row_cnt' — did you mean 'row_count'?")


def test_unknown_key_inside_a_check() -> None:
    msg = _error(lambda r: r["quality"]["tables"]["orders"].insert(0, {"check": "range", "column": "x", "mx": 1}))
    assert msg == "config.yaml: unknown key 'quality.tables.orders[0].mx' — did you mean 'max'?"


def test_new_keys_have_defaults_that_keep_todays_behaviour() -> None:
    s = parse_config(_raw(), DEFAULT_CONFIG, env={})
    for src in s.sources.values():
        assert (src.encoding, src.date_formats, src.allow_header_only) == ("auto", ("iso8601",), False)
        # The default config matches date-stamped exports and the bundled single file alike.
        assert src.pattern == f"{src.name}*.json*" if src.name == "user_sessions" else src.pattern.startswith(src.name)
    assert s.landing.archive is False and s.landing.min_file_age_seconds == 0 and s.landing.on_bad_file == "fail"
    assert s.on_mixed_encoding == "fail"
    assert s.reporting_conn_id == s.conn_id == "postgres_default"
    assert (s.idle_in_transaction_timeout_seconds, s.tcp_user_timeout_seconds, s.keepalives_idle_seconds) == (
        120,
        60,
        30,
    )
    raw = _raw()
    raw["database"]["reporting_conn_id"] = "warehouse_ro"
    raw["sources"]["orders"].update(pattern="orders_*.csv", encoding="cp1252", date_formats=["dd/mm/yyyy"])
    s = parse_config(raw, DEFAULT_CONFIG, env={})
    assert s.reporting_conn_id == "warehouse_ro"
    assert (s.sources["orders"].pattern, s.sources["orders"].encoding) == ("orders_*.csv", "cp1252")
    assert s.sources["orders"].date_formats == ("dd/mm/yyyy",)


def test_typed_sections_replace_mappings() -> None:
    s = parse_config(_raw(), DEFAULT_CONFIG, env={})
    assert s.quality is not None and len(s.quality.checks) > 0
    assert s.monitoring.thresholds.for_("dag.consecutive_failures").critical == 3
    assert s.monitoring.thresholds.for_("dag.consecutive_failures", "monitoring_dag").critical is None
    assert s.monitoring.thresholds.for_("db.connections").warn is None  # no default limit
    assert s.alerting.channels == () and s.alerting.email_conn_id == "smtp_default"


def test_env_override_with_a_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_raw(), DEFAULT_CONFIG, env={"ECOM_PRODUCTS_API_URL": "ftp://x"})
    assert str(err.value) == (
        "config.yaml: 'sources.products.api_url' must start with http:// or https://, got 'ftp://x' "
        "(set by ECOM_PRODUCTS_API_URL)"
    )


def test_every_shipped_config_validates(tmp_path: Path) -> None:
    """config.yaml is the only config file shipped; it validates alone and with every ECOM_* override set."""
    shipped = [p for p in DEFAULT_CONFIG.parent.glob("*.yaml") if "paths" in (yaml.safe_load(p.read_text()) or {})]
    assert shipped == [DEFAULT_CONFIG]
    env = {
        "ECOM_RAW_DATA_DIR": str(tmp_path),
        "ECOM_STAGING_DIR": str(tmp_path),
        "ECOM_REPORTS_DIR": str(tmp_path),
        "ECOM_PRODUCTS_API_URL": "https://api.example.org/products",
        "ECOM_POSTGRES_CONN_ID": "warehouse",
    }
    for e in ({}, env):
        s = parse_config(_raw(), DEFAULT_CONFIG, env=e)
        assert s.quality is not None and s.monitoring.dag_id == "monitoring_dag"


def test_make_check_config_prints_one_line(tmp_path: Path) -> None:
    raw = _raw()
    raw["transform"]["max_reject_rat"] = raw["transform"].pop("max_reject_rate")
    bad = tmp_path / "config.yaml"
    bad.write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("ECOM_")}
    root = DEFAULT_CONFIG.parent
    out = subprocess.run(
        ["make", "--no-print-directory", "check-config", f"PYTHON={sys.executable}"],
        cwd=root,
        env={**env, "ECOM_CONFIG": str(bad)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    expected = "config.yaml: unknown key 'transform.max_reject_rat' — did you mean 'max_reject_rate'?"
    assert expected in lines
    assert "Traceback" not in out.stdout + out.stderr
    ok = subprocess.run(
        ["make", "--no-print-directory", "check-config"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0 and ok.stdout.strip().splitlines()[-1] == "config OK"


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("paths: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)


def test_make_run_shows_the_config_error_and_every_dag_not_run(tmp_path: Path) -> None:
    raw = _raw()
    raw["transform"]["max_reject_rat"] = raw["transform"].pop("max_reject_rate")
    bad = tmp_path / "config.yaml"
    bad.write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("ECOM_")}
    out = subprocess.run(
        [sys.executable, "-m", "scripts.run_local"],
        cwd=DEFAULT_CONFIG.parent,
        env={**env, "ECOM_CONFIG": str(bad)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 1
    line = "config.yaml: unknown key 'transform.max_reject_rat' — did you mean 'max_reject_rate'?"
    assert out.stderr.strip() == line  # no traceback
    summary = out.stdout.splitlines()
    assert line in summary
    for dag_id in ("etl_ecommerce_pipeline", "data_quality_checks", "monitoring_dag"):
        assert f"{dag_id:<26}not run (config error)" in summary
    served = subprocess.run(  # make airflow: the same line, nothing started
        [sys.executable, "-m", "scripts.run_local", "--serve"],
        cwd=DEFAULT_CONFIG.parent,
        env={**env, "ECOM_CONFIG": str(bad)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (served.returncode, served.stderr.strip(), served.stdout) == (1, line, "")
