"""The daily safety-net run can come before the first ETL load: it reports "nothing to check", not a failure."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from include import quality, quality_report
from include.config_loader import DEFAULT_CONFIG, load_config


def test_checks_and_report_on_an_empty_warehouse(
    empty_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", empty_db)
    monkeypatch.setenv("ECOM_REPORTS_DIR", str(tmp_path))
    settings = load_config(DEFAULT_CONFIG)
    for category in ("completeness", "consistency", "freshness"):
        summary = quality.execute_task(category, "early-run", settings)
        assert summary["note"] == "no ETL load yet" and summary["failed"] == 0 and summary["checks"] == 0
    paths = quality_report.execute_task("early-run", settings)
    assert Path(paths["html"]).exists()
    with psycopg.connect(empty_db) as conn:  # the schema now exists, with no results recorded
        assert conn.execute("SELECT count(*) FROM data_quality_results").fetchone() == (0,)
