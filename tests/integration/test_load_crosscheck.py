"""The load's cross-check: the rows that reach each table must be the rows the transform reported.

A staged clean file that changed between transform and load (or a transform that miscounted) must
fail the load with a message naming the source and both counts, and leave every table as it was.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from include import pipeline
from include.config_loader import DEFAULT_CONFIG, Settings, load_config
from include.load import LoadError

TABLES = ("customers", "products", "orders", "user_sessions", "etl_runs", "rejected_records")


def write_inputs(raw: Path, orders: list[str]) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "products.json").write_text(json.dumps([{"id": 1, "title": "Mug", "price": 5.5}]))
    with (raw / "orders.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["order_reference", "customer_email", "product_id", "quantity", "unit_price", "order_date", "status"]
        )
        w.writerows([[ref, "ann@example.com", "1", "2", "5.50", "2026-10-01T10:00:00", "shipped"] for ref in orders])
    session = {"session_id": "S1", "customer_email": "ann@example.com", "session_start": "2026-10-01T10:00:00"}
    (raw / "user_sessions.json").write_text(json.dumps([{**session, "pages_viewed": 1}]))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["paths"].update(raw_data_dir=str(tmp_path / "raw"), staging_dir=str(tmp_path / "stage"))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}


def transformed_run(settings: Settings, run_id: str, db: str) -> dict[str, Any]:
    staging = pipeline.run_dir(settings, "etl_ecommerce_pipeline", run_id)
    manifests = {s: pipeline.extract(s, settings, staging) for s in pipeline.EXTRACTORS}
    return pipeline.transform(manifests, settings, staging, db)


def test_more_rows_in_the_table_than_the_transform_reported(settings: Settings, fresh_db: str) -> None:
    write_inputs(settings.raw_data_dir, ["ORD-1", "ORD-2"])
    pipeline.run_all(settings, "run-1", fresh_db)
    before = snapshot(fresh_db)
    write_inputs(settings.raw_data_dir, ["ORD-1", "ORD-2", "ORD-3"])
    transformed = transformed_run(settings, "run-2", fresh_db)
    assert transformed["sources"]["orders"]["rows_loaded"] == 3
    # The staged clean file gains a row after the transform counted it (a second writer, a stale file ...).
    clean = Path(transformed["sources"]["orders"]["clean_path"])
    lines = clean.read_text().splitlines()
    extra = lines[-1].replace("ORD-3", "ORD-4")
    assert extra != lines[-1]
    clean.write_text("\n".join([*lines, extra]) + "\n")
    with pytest.raises(LoadError) as err:
        pipeline.load(transformed, settings, "run-2", fresh_db)
    msg = str(err.value)
    assert "failed at step 'copy orders into staging'" in msg
    assert "orders: 4 rows staged from orders.csv, transform reported 3" in msg
    assert "rolled back" in msg
    assert snapshot(fresh_db) == before  # not ORD-3, not ORD-4, no ledger row of run-2


def test_fewer_rows_in_the_table_than_the_transform_reported(settings: Settings, fresh_db: str) -> None:
    write_inputs(settings.raw_data_dir, ["ORD-1", "ORD-2"])
    transformed = transformed_run(settings, "run-1", fresh_db)
    transformed["sources"]["products"]["rows_loaded"] += 1  # a transform that over-counts
    before = snapshot(fresh_db)
    with pytest.raises(LoadError) as err:
        pipeline.load(transformed, settings, "run-1", fresh_db)
    assert "products: 1 rows staged from products.json, transform reported 2" in str(err.value)
    assert snapshot(fresh_db) == before
    # the same files with honest counts load
    transformed["sources"]["products"]["rows_loaded"] -= 1
    pipeline.load(transformed, settings, "run-1", fresh_db)
    assert len(snapshot(fresh_db)["orders"]) == 2
