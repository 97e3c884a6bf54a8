"""The monitoring DAG sees stale or missing backups and a failed restore-check (issue 13: a backup that is not
restorable, or not taken, must alert)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from include.config_loader import load_config
from include.monitoring import collect_backup_status, monitoring_config

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ECOM_BACKUP_DIR", str(tmp_path / "backups"))
    return load_config()


def _backup_aged(folder: Path, hours: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    f = folder / "warehouse-20261129T000000Z.dump.enc"
    f.write_bytes(b"x")
    t = (NOW - timedelta(hours=hours)).timestamp()
    os.utime(f, (t, t))


def _by_name(metrics):  # type: ignore[no-untyped-def]
    return {m.name: m for m in metrics}


def test_no_backup_is_a_warning_not_silence(settings, fresh_db: str) -> None:  # type: ignore[no-untyped-def]
    m = _by_name(collect_backup_status(monitoring_config(settings), settings, fresh_db, NOW))
    assert m["backup.age_hours"].status == "warn" and m["backup.age_hours"].value is None
    assert "no backup taken yet" in m["backup.age_hours"].message
    assert "backup.restore_check" not in m  # never checked: nothing to judge


@pytest.mark.parametrize(("hours", "status"), [(25.9, "ok"), (26.0, "warn"), (49.9, "warn"), (50.0, "critical")])
def test_backup_age_at_its_limits(settings, fresh_db: str, tmp_path: Path, hours: float, status: str) -> None:  # type: ignore[no-untyped-def]
    _backup_aged(tmp_path / "backups", hours)
    m = _by_name(collect_backup_status(monitoring_config(settings), settings, fresh_db, NOW))
    assert (m["backup.age_hours"].value, m["backup.age_hours"].status) == (hours, status)


def test_a_failed_restore_check_is_critical(settings, fresh_db: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _backup_aged(tmp_path / "backups", 1)
    with psycopg.connect(fresh_db) as conn:
        for value, at in ((1.0, NOW - timedelta(days=1)), (0.0, NOW)):
            conn.execute(
                "INSERT INTO monitoring_metrics (run_id, category, metric_name, subject, value, status, message,"
                " collected_at) VALUES ('b', 'backup', 'backup.restore_check', 'warehouse-x.dump.enc', %s,"
                " 'critical', 'digests differ for orders', %s)",
                (value, at),
            )
    m = _by_name(collect_backup_status(monitoring_config(settings), settings, fresh_db, NOW))
    assert m["backup.restore_check"].status == "critical"
    assert m["backup.restore_check"].message == "digests differ for orders"
