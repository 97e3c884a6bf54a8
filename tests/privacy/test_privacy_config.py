"""One key for the staging retention: paths.staging_retention_days; the old privacy.staging_days is refused."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from include import pipeline
from include.config_loader import ConfigError, load_config
from include.privacy import privacy_config


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str) -> Path:
    text = load_config().config_path.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "config.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    monkeypatch.setenv("ECOM_CONFIG", str(path))
    return path


def test_the_old_privacy_staging_days_key_names_its_replacement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, "  rejected_days: 90\n", "  rejected_days: 90\n  staging_days: 5\n")
    with pytest.raises(ConfigError) as caught:
        load_config()
    message = str(caught.value)
    assert message.startswith("config.yaml: 'privacy.staging_days' was replaced by 'paths.staging_retention_days'")
    assert "\n" not in message


def test_privacy_has_no_staging_key_of_its_own() -> None:
    cfg = privacy_config(load_config())
    assert not hasattr(cfg, "staging_days")
    assert load_config().staging_retention_days == 7


def _run_dir(base: Path, name: str, days: float) -> Path:
    run = base / name
    run.mkdir(parents=True)
    (run / "part.csv").write_text("x")
    t = time.time() - days * 86400
    os.utime(run / "part.csv", (t, t))
    os.utime(run, (t, t))
    return run


def test_null_staging_retention_keeps_run_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _config(tmp_path, monkeypatch, "  staging_retention_days: 7 ", "  staging_retention_days: null ")
    monkeypatch.setenv("ECOM_STAGING_DIR", str(tmp_path / "staging"))
    settings = load_config()
    assert settings.staging_retention_days is None
    old = _run_dir(settings.staging_dir / "etl", "old", 4000)
    assert pipeline.prune_staging(settings, "etl") == 0 and old.exists()


def test_staging_retention_days_drives_the_etl_pruning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _config(tmp_path, monkeypatch, "  staging_retention_days: 7 ", "  staging_retention_days: 3 ")
    monkeypatch.setenv("ECOM_STAGING_DIR", str(tmp_path / "staging"))
    settings = load_config()
    old, young = _run_dir(settings.staging_dir / "etl", "old", 4), _run_dir(settings.staging_dir / "etl", "young", 2)
    assert pipeline.prune_staging(settings, "etl") == 1
    assert not old.exists() and young.exists()
