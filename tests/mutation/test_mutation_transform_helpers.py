"""The transform's shared helpers, exactly: text cleaning, date-reject details, the raw record of a reject, IPv4 networks.

Written to kill mutants of include/transform.py's _clean/_text, _date_details, _rejects and ip_networks.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from include.config_loader import IpPolicy
from include.transform import TransformContext, _text, ip_networks, transform_orders
from tests.mutation.frames import column, frame

ORDER = {
    "order_reference": "R",
    "customer_email": "a@x.org",
    "product_id": "1",
    "quantity": "1",
    "unit_price": "1",
    "order_date": "2024-01-01",
    "status": "s",
    "payment_method": "",
}


def test_text_trims_and_strips_one_pair_of_stray_quotes() -> None:
    values = [' "quoted" ', '"a""b"', '"', '""', 'x"', '"x', 'a""b', None, " plain "]
    df = pd.DataFrame({"a": values}, index=range(5, 14))
    assert _text(df, "a").tolist() == ["quoted", 'a"b', '"', "", 'x"', '"x', 'a""b', "", "plain"]


def test_a_missing_column_is_empty_text_on_the_frames_own_index() -> None:
    df = pd.DataFrame({"a": ["x", "y"]}, index=[7, 9])
    missing = _text(df, "nope")
    assert missing.tolist() == ["", ""]
    assert missing.index.tolist() == [7, 9]


def test_an_ambiguous_date_is_named_as_such_not_as_invalid() -> None:
    ctx = TransformContext("o.csv", known_product_ids=frozenset({1}), date_formats=("dd/mm/yyyy", "mm/dd/yyyy"))
    raw = frame([{**ORDER, "order_date": "01/02/2024"}, {**ORDER, "order_date": "13/13/2024"}])
    raw.index = pd.Index([40, 41])  # a later chunk
    valid, rejected = transform_orders(raw, ctx)
    assert valid.empty
    assert column(rejected, "detail") == [
        "order_date='01/02/2024' is ambiguous between the accepted formats (dd/mm/yyyy, mm/dd/yyyy); not guessed",
        "order_date='13/13/2024' is not a valid date in the accepted formats (dd/mm/yyyy, mm/dd/yyyy; years 1900-2199)",
    ]


def test_a_rejects_raw_record_is_the_extracts_raw_text_when_kept() -> None:
    ctx = TransformContext("o.csv", known_product_ids=frozenset({1}))
    kept = frame([{**ORDER, "quantity": "0"}])
    kept["_raw"] = '{"as read": "café"}'
    _, rejected = transform_orders(kept, ctx)
    assert column(rejected, "raw_record") == ['{"as read": "café"}']
    # without it, the row's own fields as JSON, non-ASCII kept as is (the quarantine shows what the file said)
    _, rejected = transform_orders(frame([{**ORDER, "quantity": "0", "note": "café"}]), ctx)
    assert column(rejected, "raw_record") == [
        json.dumps({**ORDER, "quantity": "0", "note": "café"}, ensure_ascii=False)
    ]
    assert "café" in rejected["raw_record"].iloc[0]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (24, ["255.255.255.0/24", None, "10.1.2.0/24", None, None, "1.2.3.0/24"]),
        (16, ["255.255.0.0/16", None, "10.1.0.0/16", None, None, "1.2.0.0/16"]),
        (32, ["255.255.255.255/32", None, "10.1.2.3/32", None, None, "1.2.3.4/32"]),
    ],
)
def test_ipv4_networks_at_each_prefix_and_octet_limit(prefix: int, expected: list[str | None]) -> None:
    ips = pd.Series(["255.255.255.255", "256.1.1.1", "10.1.2.3", None, "", "1.2.3.4"], index=range(3, 9))
    got = ip_networks(ips, IpPolicy("truncate", prefix, 48))
    assert column(pd.DataFrame({"x": got}), "x") == expected
    assert got.index.tolist() == list(range(3, 9))


def test_ip_networks_keep_and_drop() -> None:
    ips = pd.Series(["10.1.2.3", "2001:db8::1"])
    assert ip_networks(ips, IpPolicy("keep", 24, 48)).tolist() == ["10.1.2.3/32", "2001:db8::1/128"]
    assert column(pd.DataFrame({"x": ip_networks(ips, IpPolicy("drop", 24, 48))}), "x") == [None, None]
