"""landing.oldest_unclaimed_age_hours: real files, a real load into a real PostgreSQL, the claim's own rules."""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from include import landing, pipeline
from include.config_loader import Settings
from include.monitoring import collect_landing_backlog
from tests.integration.test_load import sample_settings

METRIC = "landing.oldest_unclaimed_age_hours"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return sample_settings(tmp_path)


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files the collector hashes (the real hash still runs)."""
    seen: list[str] = []
    real = landing.sha256_of

    def counting(path: Path) -> str:
        seen.append(path.name)
        return real(path)

    monkeypatch.setattr(landing, "sha256_of", counting)
    return seen


def per_source(settings: Settings, url: str, now: datetime | None = None) -> dict[str, Any]:
    return {m.subject: m for m in collect_landing_backlog(settings.monitoring, settings, url, now=now)}


def set_age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_loaded_files_do_not_wait_and_are_not_hashed(settings: Settings, fresh_db: str, hashed: list[str]) -> None:
    pipeline.run_all(settings, "run-1", fresh_db)
    hashed.clear()
    metrics = per_source(settings, fresh_db)
    assert {s: (m.value, m.status) for s, m in metrics.items()} == {
        s: (0, "ok") for s in ("customers", "products", "orders", "user_sessions")
    }
    assert hashed == []  # name, size and mtime match the registry: no file read


def test_new_changed_and_copied_files(settings: Settings, fresh_db: str, hashed: list[str]) -> None:
    raw = settings.raw_data_dir
    pipeline.run_all(settings, "run-1", fresh_db)
    # Same content under a new name: the claim would skip it, so it does not wait (hashed to know).
    (raw / "orders_2026-10-05.csv").write_bytes((raw / "orders.csv").read_bytes())
    set_age(raw / "orders_2026-10-05.csv", 10 * 3600)
    # Not claimable: a partial upload, a hidden file, the marker.
    for name in ("orders_2026-10-06.csv.part", ".orders_2026-10-07.csv", "_READY"):
        (raw / name).write_text("x")
        set_age(raw / name, 20 * 3600)
    hashed.clear()
    assert (per_source(settings, fresh_db)["orders"].value, hashed) == (0, ["orders_2026-10-05.csv"])
    # A new export, 3 hours old, and a changed customers.csv (modified after it was loaded): both wait.
    (raw / "orders_2026-10-08.csv").write_text((raw / "orders.csv").read_text().replace("ORD-", "NEW-"))
    set_age(raw / "orders_2026-10-08.csv", 3 * 3600)
    with (raw / "customers.csv").open("a") as f:
        f.write("\n")
    set_age(raw / "customers.csv", 0.5 * 3600)
    metrics = per_source(settings, fresh_db)
    assert metrics["orders"].value == pytest.approx(3, abs=0.01)
    assert metrics["orders"].message == "1 file(s) waiting, oldest orders_2026-10-08.csv"
    assert metrics["customers"].value == pytest.approx(0.5, abs=0.01)
    assert (metrics["products"].value, metrics["user_sessions"].value) == (0, 0)


def test_nothing_loaded_yet_every_file_waits(settings: Settings, fresh_db: str) -> None:
    for p in settings.raw_data_dir.iterdir():
        set_age(p, 2 * 3600)
    metrics = per_source(settings, fresh_db)
    assert {s: round(m.value, 1) for s, m in metrics.items()} == {
        "customers": 2.0,
        "products": 2.0,
        "orders": 2.0,
        "user_sessions": 2.0,
    }


def test_a_missing_landing_folder_is_a_warning(settings: Settings, fresh_db: str, tmp_path: Path) -> None:
    s = dataclasses.replace(settings, raw_data_dir=tmp_path / "not-mounted")
    m = per_source(s, fresh_db)["orders"]
    assert (m.value, m.status) == (None, "warn")
    assert "not found" in m.message


NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
# Ages are reported in hours rounded to 0.001 h (3.6 s) before they are judged: one step is 10 s.
STEP = timedelta(seconds=10)


@pytest.mark.parametrize(
    ("age", "status"),
    [
        (timedelta(0), "ok"),
        (timedelta(hours=26) - STEP, "ok"),
        (timedelta(hours=26), "warn"),  # exactly warn
        (timedelta(hours=26) + STEP, "warn"),
        (timedelta(hours=50) - STEP, "warn"),
        (timedelta(hours=50), "critical"),  # exactly critical
        (timedelta(hours=50) + STEP, "critical"),
    ],
)
def test_oldest_unclaimed_age_at_the_limits(settings: Settings, fresh_db: str, age: timedelta, status: str) -> None:
    path = settings.raw_data_dir / "orders.csv"
    t = (NOW - age).timestamp()
    os.utime(path, (t, t))
    m = per_source(settings, fresh_db, now=NOW)["orders"]
    assert (m.value, m.status) == (round(age.total_seconds() / 3600, 3), status)
    assert (m.warn, m.critical) == (26, 50)
