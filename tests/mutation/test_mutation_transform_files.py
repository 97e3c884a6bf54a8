"""Where the transform writes its files, and which product ids orders may name (run's + warehouse's).

Written to kill mutants of include/transform.py's DataTransformer.transform_source / transform_all.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include.config_loader import DEFAULT_CONFIG, load_config
from include.extract import LINE_COLUMN, REJECT_MARK_COLUMNS
from include.transform import CLEAN_COLUMNS, REJECT_COLUMNS, DataTransformer

SETTINGS = load_config(DEFAULT_CONFIG)


def _stage(tmp_path: Path, source: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    part = tmp_path / f"{source}.parquet"
    table = pa.Table.from_pylist([{**row, LINE_COLUMN: i} for i, row in enumerate(rows, start=2)])
    pq.write_table(table, part)
    return {"file": f"{source}.csv", "parts": [str(part)]}


def _order(ref: str, product_id: str) -> dict[str, str]:
    return {
        "order_reference": ref,
        "customer_email": "a@x.org",
        "product_id": product_id,
        "quantity": "1",
        "unit_price": "1",
        "order_date": "2024-01-02",
        "status": "shipped",
        "payment_method": "",
    }


def test_files_go_under_run_dir_transform_named_by_source_and_tag(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r1"  # not there yet: created with its parents
    t = DataTransformer(SETTINGS, run_dir)
    manifest = _stage(tmp_path, "orders", [_order("A", "1")])
    tagged = t.transform_source("orders", manifest, frozenset({1}), tag="part7")
    assert tagged.clean_path == str(run_dir / "transform" / "orders.part7.clean.csv")
    assert tagged.rejects_path == str(run_dir / "transform" / "orders.part7.rejects.csv")
    plain = t.transform_source("orders", manifest, frozenset({1}))
    assert plain.clean_path == str(run_dir / "transform" / "orders.clean.csv")
    assert pd.read_csv(plain.clean_path)["order_reference"].tolist() == ["A"]


def test_orders_may_name_products_of_the_run_or_of_the_warehouse(tmp_path: Path) -> None:
    t = DataTransformer(SETTINGS, tmp_path / "run")
    manifests = {
        "products": _stage(tmp_path, "products", [{"id": "1", "title": "Mug", "price": "5"}]),
        "customers": {"file": "customers.csv", "parts": []},
        # one order in 20 names an unknown product: under the 10 % reject-rate guard
        "orders": _stage(tmp_path, "orders", [_order("A", "1")] * 10 + [_order("B", "2")] * 9 + [_order("C", "3")]),
        "user_sessions": {"file": "user_sessions.csv", "parts": []},
    }
    results = t.transform_all(manifests, existing_product_ids=[2])
    orders = results["orders"]
    assert (orders.rows_read, orders.rows_valid, orders.rows_rejected) == (20, 19, 1)
    assert dict(orders.reasons) == {"unknown_product": 1}
    assert sorted(set(pd.read_csv(orders.clean_path)["product_id"])) == [1, 2]


def _part(tmp_path: Path, name: str, rows: list[dict[str, Any]], first_line: int) -> str:
    path = tmp_path / f"{name}.parquet"
    marks = dict.fromkeys(REJECT_MARK_COLUMNS)
    table = pa.Table.from_pylist([{**marks, **row, LINE_COLUMN: i} for i, row in enumerate(rows, start=first_line)])
    pq.write_table(table, path)
    return str(path)


def test_parts_append_to_one_clean_and_one_rejects_file(tmp_path: Path) -> None:
    marked = {
        **_order("M", "1"),
        "_reject_reason": "invalid_type",
        "_reject_field": "quantity",
        "_reject_detail": "quantity must be a string, number or boolean, got array",
    }
    parts = [
        _part(tmp_path, "p1", [_order("A", "1"), {**_order("B", "1"), "quantity": "0"}, marked], 2),
        _part(tmp_path, "p2", [{**_order("C", "1"), "quantity": "x"}, _order("D", "1")], 5),
    ]
    t = DataTransformer(SETTINGS, tmp_path / "run")
    r = t.transform_source("orders", {"file": "orders.csv", "parts": parts}, frozenset({1}))
    assert (r.source, r.source_file) == ("orders", "orders.csv")
    assert (r.rows_read, r.rows_valid, r.rows_rejected) == (5, 2, 3)
    assert dict(r.reasons) == {"invalid_quantity": 2, "invalid_type": 1}
    clean = pd.read_csv(r.clean_path, dtype=str, keep_default_na=False)
    assert list(clean.columns) == [*CLEAN_COLUMNS["orders"], LINE_COLUMN]
    assert clean["order_reference"].tolist() == ["A", "D"]
    rejects = pd.read_csv(r.rejects_path, dtype=str, keep_default_na=False)
    assert list(rejects.columns) == REJECT_COLUMNS
    # per part: the extract's marked rows first, then the rules' rejects
    assert rejects[["source", "source_file", "line_number", "reason", "field"]].values.tolist() == [
        ["orders", "orders.csv", "4", "invalid_type", "quantity"],
        ["orders", "orders.csv", "3", "invalid_quantity", "quantity"],
        ["orders", "orders.csv", "5", "invalid_quantity", "quantity"],
    ]
    assert rejects["detail"].tolist() == [
        "quantity must be a string, number or boolean, got array",
        "quantity must be an integer ≥ 1, got '0'",
        "quantity must be an integer ≥ 1, got 'x'",
    ]


def test_a_source_without_parts_writes_header_only_files(tmp_path: Path) -> None:
    r = DataTransformer(SETTINGS, tmp_path / "run").transform_source("customers", {"file": "c.csv", "parts": []})
    assert (r.rows_read, r.rows_valid, r.rows_rejected) == (0, 0, 0)
    assert Path(r.clean_path).read_text(encoding="utf-8").splitlines() == [
        ",".join([*CLEAN_COLUMNS["customers"], LINE_COLUMN])
    ]
    assert Path(r.rejects_path).read_text(encoding="utf-8").splitlines() == [",".join(REJECT_COLUMNS)]


KEY = b"k" * 32
ERASED = "gone@x.org"


def _erasing(tmp_path: Path) -> DataTransformer:
    from include import privacy

    return DataTransformer(SETTINGS, tmp_path / "run", suppression=(frozenset({privacy.token(ERASED, KEY)}), KEY))


def test_an_erased_address_leaves_the_output_and_the_staged_part(tmp_path: Path) -> None:
    from include import privacy

    erased = {**_order("A", "1"), "customer_email": ERASED, "_raw": f'{{"customer_email": "{ERASED}"}}'}
    kept = {**_order("B", "1"), "_raw": '{"customer_email": "a@x.org"}'}
    part = _part(tmp_path, "p1", [erased, kept], 2)
    schema = pq.read_schema(part)
    r = _erasing(tmp_path).transform_source("orders", {"file": "orders.csv", "parts": [part]}, frozenset({1}))
    assert pq.read_schema(part).remove_metadata() == schema.remove_metadata()  # same columns and types, no index
    token_address = privacy.token_address(privacy.token(ERASED, KEY))
    clean = pd.read_csv(r.clean_path, dtype=str, keep_default_na=False)
    assert clean[["order_reference", "customer_email"]].values.tolist() == [["A", token_address], ["B", "a@x.org"]]
    # the staged extract part no longer holds the address, in any column (a retry reads the token address)
    staged = pq.read_table(part).to_pandas()
    assert staged["customer_email"].tolist() == [token_address, "a@x.org"]
    assert ERASED not in staged["_raw"].iloc[0] and token_address in staged["_raw"].iloc[0]
    assert staged["order_reference"].tolist() == ["A", "B"]


def test_a_part_without_an_erased_address_is_not_rewritten(tmp_path: Path) -> None:
    part = _part(tmp_path, "p1", [_order("B", "1")], 2)
    before = Path(part).stat()
    r = _erasing(tmp_path).transform_source("orders", {"file": "orders.csv", "parts": [part]}, frozenset({1}))
    after = Path(part).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # a rewrite is a new file
    assert r.rows_valid == 1


def test_products_carry_no_address_and_are_transformed_under_suppression(tmp_path: Path) -> None:
    manifest = _stage(tmp_path, "products", [{"id": "1", "title": "Mug", "price": "5"}])
    r = _erasing(tmp_path).transform_source("products", manifest)
    assert (r.rows_read, r.rows_valid) == (1, 1)


def test_the_summary_log_line_names_the_source_file_counts_and_top_five_reasons(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = [
        {**_order("A", "1"), "quantity": "0"},
        {**_order("B", "1"), "quantity": "0"},
        {**_order("C", "1"), "unit_price": "x"},
        {**_order("D", "1"), "order_date": "x"},
        {**_order("E", "1"), "status": ""},
        {**_order("F", "9")},
        {**_order("G", "x")},
        _order("H", "1"),
    ]
    manifest = {"file": "orders_2026.csv", "parts": [_part(tmp_path, "p1", bad, 2)]}
    with caplog.at_level(logging.INFO, logger="include.transform"):
        DataTransformer(SETTINGS, tmp_path / "run").transform_source("orders", manifest, frozenset({1}))
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("transformed")] == [
        "transformed orders (orders_2026.csv): read=8 valid=1 rejected=7 reasons="
        "{'invalid_quantity': 2, 'invalid_unit_price': 1, 'invalid_order_date': 1, 'missing_status': 1,"
        " 'unknown_product': 1}"
    ]


def test_the_manifest_of_a_source_carries_every_count_and_the_top_five_reasons() -> None:
    from collections import Counter

    from include.transform import SourceResult

    reasons = Counter({"a": 6, "b": 5, "c": 4, "d": 3, "e": 2, "f": 1})
    r = SourceResult("orders", "o.csv", "/c.csv", "/r.csv", 30, 9, 21, 2, reasons)
    assert (r.rows_loaded, r.reject_rate) == (7, 0.7)
    assert SourceResult("orders", "o.csv", "/c", "/r").reject_rate == 0.0
    assert r.to_dict() == {
        "source": "orders",
        "source_file": "o.csv",
        "clean_path": "/c.csv",
        "rejects_path": "/r.csv",
        "rows_read": 30,
        "rows_valid": 9,
        "rows_loaded": 7,
        "rows_rejected": 21,
        "rows_duplicate": 2,
        "top_reasons": {"a": 6, "b": 5, "c": 4, "d": 3, "e": 2},
    }


def test_the_sources_declared_date_formats_apply(tmp_path: Path) -> None:
    import dataclasses

    orders = dataclasses.replace(SETTINGS.sources["orders"], date_formats=("dd/mm/yyyy",))
    settings = dataclasses.replace(SETTINGS, sources={**SETTINGS.sources, "orders": orders})
    manifest = _stage(tmp_path, "orders", [{**_order("A", "1"), "order_date": "31/01/2024"}])
    r = DataTransformer(settings, tmp_path / "run").transform_source("orders", manifest, frozenset({1}))
    assert (r.rows_valid, r.rows_rejected) == (1, 0)


def test_a_retried_transform_replaces_its_own_files(tmp_path: Path) -> None:
    t = DataTransformer(SETTINGS, tmp_path / "run")
    manifest = {"file": "orders.csv", "parts": [_part(tmp_path, "p1", [{**_order("A", "1"), "quantity": "0"}], 2)]}
    first = t.transform_source("orders", manifest, frozenset({1}))
    again = t.transform_source("orders", manifest, frozenset({1}))
    assert again.rejects_path == first.rejects_path
    rejects = pd.read_csv(again.rejects_path, dtype=str, keep_default_na=False)
    assert rejects["line_number"].tolist() == ["2"]  # not appended to the first attempt's file
