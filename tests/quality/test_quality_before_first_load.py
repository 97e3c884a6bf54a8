"""The daily safety-net run can come before the first ETL load: it reports "nothing to check", not a failure."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from include import quality, quality_report
from include.config_loader import DEFAULT_CONFIG, load_config
from include.database import SchemaNotMigrated


def test_checks_and_report_on_an_empty_warehouse(
    fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", fresh_db)
    monkeypatch.setenv("ECOM_REPORTS_DIR", str(tmp_path))
    settings = load_config(DEFAULT_CONFIG)
    for category in ("completeness", "consistency", "freshness"):
        summary = quality.execute_task(category, "early-run", settings)
        assert summary["note"] == "no ETL load yet" and summary["failed"] == 0 and summary["checks"] == 0
    paths = quality_report.execute_task("early-run", settings)
    assert Path(paths["html"]).exists()
    with psycopg.connect(fresh_db) as conn:  # migrated, no results recorded
        assert conn.execute("SELECT count(*) FROM data_quality_results").fetchone() == (0,)


def test_checks_on_a_warehouse_never_migrated_say_what_to_run(empty_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", empty_db)
    with pytest.raises(
        SchemaNotMigrated, match=r"warehouse schema is not migrated .*run `python -m include.migrations`"
    ):
        quality.execute_task("completeness", "early-run", load_config(DEFAULT_CONFIG))
    with psycopg.connect(empty_db) as conn:  # quality creates nothing: the owner role's migrations do
        assert conn.execute("SELECT to_regclass('data_quality_results')").fetchone() == (None,)
