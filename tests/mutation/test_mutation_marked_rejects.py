"""Rows the extract already marked broken (JSON type, encoding) become rejects before any rule runs.

Written to kill mutants of include/transform.py's _split_marked: the split, and each reject column exactly.
"""

from __future__ import annotations

import json

import pandas as pd

from include.extract import LINE_COLUMN, REJECT_MARK_COLUMNS
from include.transform import REJECT_COLUMNS, TransformContext, _split_marked

CTX = TransformContext("p.json")
REASON, FIELD, DETAIL = REJECT_MARK_COLUMNS


def _raw(with_raw_text: bool) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "id": ["1", "x", "3"],
            "title": ["a", "Café", "c"],
            REASON: [None, "invalid_type", "encoding"],
            FIELD: [None, "price", "title"],
            DETAIL: [None, "price must be a number, got object", "not UTF-8 at byte 7"],
            LINE_COLUMN: [2, 3, 5],
        },
        index=[10, 11, 12],
    )
    if with_raw_text:
        df.insert(0, "_raw", ['{"id": 1}', '{"id": "x", "price": {}}', '{"id": 3}'])
    return df


def test_marked_rows_become_rejects_with_their_reason_field_and_detail() -> None:
    rest, rejects = _split_marked(_raw(with_raw_text=False), "products", CTX)
    assert list(rest.columns) == ["id", "title", LINE_COLUMN]
    assert rest.index.tolist() == [10]
    assert rest["id"].tolist() == ["1"]
    assert list(rejects.columns) == REJECT_COLUMNS
    assert rejects.index.tolist() == [0, 1]
    assert rejects.to_dict("records") == [
        {
            "source": "products",
            "source_file": "p.json",
            "line_number": 3,
            "reason": "invalid_type",
            "field": "price",
            "detail": "price must be a number, got object",
            # the record as read (non-ASCII kept as is), without the line number or the marks
            "raw_record": '{"id": "x", "title": "Café"}',
        },
        {
            "source": "products",
            "source_file": "p.json",
            "line_number": 5,
            "reason": "encoding",
            "field": "title",
            "detail": "not UTF-8 at byte 7",
            "raw_record": '{"id": "3", "title": "c"}',
        },
    ]
    assert str(rejects["line_number"].dtype) == "int64"
    assert json.loads(rejects.loc[0, "raw_record"]) == {"id": "x", "title": "Café"}


def test_raw_text_of_a_json_source_is_kept_as_the_raw_record() -> None:
    rest, rejects = _split_marked(_raw(with_raw_text=True), "products", CTX)
    assert list(rest.columns) == ["_raw", "id", "title", LINE_COLUMN]
    assert rejects["raw_record"].tolist() == ['{"id": "x", "price": {}}', '{"id": 3}']
    assert rejects["reason"].tolist() == ["invalid_type", "encoding"]


def test_nothing_marked() -> None:
    unmarked = _raw(with_raw_text=False).iloc[:1]
    rest, rejects = _split_marked(unmarked, "products", CTX)
    assert list(rest.columns) == ["id", "title", LINE_COLUMN]
    assert rest.index.tolist() == [10]
    assert rejects.empty and list(rejects.columns) == REJECT_COLUMNS
    # a source whose extract marks nothing has no mark columns at all: the frame passes through
    plain = unmarked.drop(columns=list(REJECT_MARK_COLUMNS))
    rest, rejects = _split_marked(plain, "products", CTX)
    assert rest is plain
    assert rejects.empty and list(rejects.columns) == REJECT_COLUMNS


def test_clean_file_timestamps_are_written_in_utc_with_a_z() -> None:
    from include.transform import _to_arrow

    df = pd.DataFrame(
        {
            "order_date": pd.to_datetime(["2026-01-02T10:12:13+01:00", None], utc=True),
            "status": ["shipped", None],
            LINE_COLUMN: [2, 3],
        }
    )
    table = _to_arrow(df, ["order_date", "status"])
    assert table.column_names == ["order_date", "status", LINE_COLUMN]
    assert table.column("order_date").to_pylist() == ["2026-01-02 09:12:13.000000Z", None]
    assert table.column("status").to_pylist() == ["shipped", None]
    assert table.column(LINE_COLUMN).to_pylist() == [2, 3]
