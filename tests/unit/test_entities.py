"""The entity registry is what every stage reads: extract headers, transform output, load lists, assets, DAG, generator."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from include import entities, extract, load, transform
from include.config_loader import DEFAULT_CONFIG, load_config
from include.extract import LINE_COLUMN

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "raw"


def test_sources_in_load_order() -> None:
    assert entities.SOURCE_NAMES == ("products", "customers", "orders", "user_sessions")
    assert [e.source for e in load.ENTITIES] == list(entities.SOURCE_NAMES)


def test_load_entities_are_derived_from_the_registry() -> None:
    orders = next(e for e in load.ENTITIES if e.source == "orders")
    assert orders.key == "order_reference" and orders.joins_customer
    assert list(orders.staging_types) == transform.CLEAN_COLUMNS["orders"]
    assert orders.staging_types["customer_email"] == "text"
    assert orders.staging_types["order_date"] == "timestamp with time zone"
    assert orders.select["customer_id"] == "c.customer_id" and orders.select["quantity"] == "s.quantity"
    products = next(e for e in load.ENTITIES if e.source == "products")
    assert not products.joins_customer and products.input_key == "id"
    assert entities.source("orders").update_columns[0] == "customer_id"


def test_config_sources_are_the_registry_sources() -> None:
    assert set(load_config(DEFAULT_CONFIG).sources) == set(entities.SOURCE_NAMES)


def test_sample_csv_headers_are_the_registry_input_fields() -> None:
    for name in ("orders", "customers"):
        with (SAMPLE / f"{name}.csv").open(newline="") as f:
            assert tuple(next(csv.reader(f))) == entities.source(name).input_fields
    assert extract.CSV_COLUMNS == {
        "orders": entities.source("orders").input_fields,
        "customers": entities.source("customers").input_fields,
    }


@pytest.mark.parametrize("src", entities.SOURCES, ids=lambda s: s.name)
def test_transform_writes_exactly_the_registry_clean_columns(src: entities.Source) -> None:
    """Each rule function outputs the clean columns the loader will COPY (plus the line number)."""
    raw = pd.DataFrame({f: pd.Series(["x"], dtype="object") for f in src.input_fields})
    raw[LINE_COLUMN] = 2
    settings = load_config(DEFAULT_CONFIG)
    ctx = transform.TransformContext("f", settings.price_tiers, settings.ip_policy)
    valid, rejected = transform.RULES[src.name](raw, ctx)
    assert list(valid.columns) == [*src.clean_columns, LINE_COLUMN]
    assert list(rejected.columns) == transform.REJECT_COLUMNS


def test_every_reject_reason_has_a_sentence() -> None:
    """Every reason the rules can give has its template (a new rule without one would read `… fails reason`)."""
    source_text = (ROOT / "include" / "transform.py").read_text()
    import re

    reasons = set(re.findall(r'r\.check\([^"]*"([a-z_]+)"', source_text, flags=re.S))
    assert reasons and reasons <= set(transform.REJECT_DETAILS)
    assert transform._describe("invalid_quantity", "quantity", "abc") == "quantity must be an integer ≥ 1, got 'abc'"
    assert "secret@x.org" not in transform._describe("invalid_email", "customer_email", "secret@x.org")


def test_limits_follow_the_column_types() -> None:
    assert transform._PRICE_MAX == 10**10 and transform.TOTAL_CENTS_LIMIT == 10**14  # numeric(12,2), (14,2) in cents
    assert transform.INT4_MAX == 2**31 - 1


def test_generator_headers_come_from_the_registry() -> None:
    from scripts import generate_data

    assert generate_data.ORDER_COLUMNS == entities.source("orders").input_fields
    assert generate_data.SESSION_FIELDS == entities.source("user_sessions").input_fields
