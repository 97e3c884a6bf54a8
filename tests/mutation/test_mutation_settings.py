"""Pure helpers of the config models (include/settings/), pinned exactly for mutation testing."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.settings.privacy import PrivacyConfig


def test_privacy_paths_resolve_against_the_config_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOM_TEST_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = PrivacyConfig(
        exports_dir=Path("exp"),
        archive_dir=Path("$ECOM_TEST_DIR/arch"),
        backup_dir=Path("~/bk"),
        pg_bin_dir=Path("/opt/pg/bin"),
    ).resolved(tmp_path / "base")
    assert cfg.exports_dir == (tmp_path / "base" / "exp").resolve()
    assert cfg.archive_dir == tmp_path / "env" / "arch"
    assert cfg.backup_dir == tmp_path / "home" / "bk"
    assert cfg.pg_bin_dir == Path("/opt/pg/bin")


def test_privacy_unset_optional_paths_stay_unset(tmp_path: Path) -> None:
    cfg = PrivacyConfig().resolved(tmp_path)
    assert cfg.archive_dir is None
    assert cfg.pg_bin_dir is None
    assert cfg.exports_dir == (tmp_path / ".local" / "exports").resolve()
    assert cfg.backup_dir == (tmp_path / ".local" / "backups").resolve()
