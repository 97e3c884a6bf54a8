"""The sessions rules, value by value: each column, each reject's reason/field/detail, the limits, the item lists.

Written to kill mutants of include/transform.py's transform_sessions and _json_list that the rule tests let
through; only public behaviour of the rule function on an in-memory frame (plus the IP network helper).
"""

from __future__ import annotations

import pandas as pd
import pytest

from include.extract import LINE_COLUMN
from include.transform import TransformContext, _network, transform_sessions
from tests.mutation.frames import column, frame

CTX = TransformContext("s.jsonl", date_formats=("iso8601", "dd/mm/yyyy"))
DATE = "a date with a year from 1900 to 2199 (ISO 8601 preferred)"


def _session(**kw: str) -> dict[str, str]:
    base = {
        "session_id": "S",
        "customer_email": "a@x.org",
        "session_start": "2024-01-02T10:00:00Z",
        "session_end": "2024-01-02T10:05:00Z",
        "pages_viewed": "3",
        "items_viewed": "[1, 2]",
        "items_added_to_cart": "[]",
        "conversion": "false",
        "device_type": "Mobile",
        "browser": "Firefox",
        "ip_address": "10.1.2.3",
    }
    return {**base, **kw}


def test_sessions_columns_exactly() -> None:
    rows = [
        _session(
            session_id=" S1 ",
            customer_email=" Ann@X.ORG ",
            pages_viewed="0",  # the lower limit is 0, not 1
            items_viewed="[ 1 , 2.5,-3 ]",  # numbers only: checked and counted without json, kept as written
            items_added_to_cart='["a", {"b": 1}]',  # anything else: parsed with json, stored as json.dumps
            conversion="TRUE",
            device_type=" Desktop ",
            browser="",
            ip_address="2001:db8::1",
        ),
        # no end (an open session), "null" and "" item lists are empty lists, empty conversion is false
        _session(
            session_id="S2", session_end="", items_viewed="", items_added_to_cart="null", conversion="", device_type=""
        ),
        # end == start is a zero-length session, not "end before start"; dd/mm/yyyy because the source allows it
        _session(
            session_id="S3",
            session_start="31/01/2024",
            session_end="31/01/2024",
            items_viewed="[]",
            items_added_to_cart="[ ]",
            conversion="yes",
            ip_address="",
        ),
    ]
    valid, rejected = transform_sessions(frame(rows), CTX)
    assert rejected.empty
    assert column(valid, "session_id") == ["S1", "S2", "S3"]
    assert column(valid, "customer_email") == ["ann@x.org", "a@x.org", "a@x.org"]
    assert [str(v) for v in valid["session_start"]] == [
        "2024-01-02 10:00:00+00:00",
        "2024-01-02 10:00:00+00:00",
        "2024-01-31 00:00:00+00:00",
    ]
    assert [str(v) for v in valid["session_end"]] == ["2024-01-02 10:05:00+00:00", "NaT", "2024-01-31 00:00:00+00:00"]
    assert column(valid, "duration_seconds") == [300, None, 0]
    assert str(valid["duration_seconds"].dtype) == "Int64"  # whole seconds: "300", never "300.0", for the int column
    assert column(valid, "pages_viewed") == [0, 3, 3]
    assert column(valid, "items_viewed") == ["[ 1 , 2.5,-3 ]", "[]", "[]"]
    assert column(valid, "items_added_to_cart") == ['["a", {"b": 1}]', "[]", "[ ]"]
    assert column(valid, "items_viewed_count") == [3, 0, 0]
    assert column(valid, "items_added_to_cart_count") == [2, 0, 0]
    assert column(valid, "converted") == [True, False, True]
    assert column(valid, "device_type") == ["desktop", None, "mobile"]
    assert column(valid, "browser") == [None, "Firefox", "Firefox"]
    assert column(valid, "ip_network") == ["2001:db8::/48", "10.1.2.0/24", None]
    assert column(valid, LINE_COLUMN) == [2, 3, 4]


def test_sessions_rejects_name_reason_field_and_value() -> None:
    rows = [
        _session(session_id=" "),
        _session(customer_email="x"),
        _session(session_start="x"),
        _session(session_end="2024-13-01"),
        _session(session_end="2024-01-02T09:59:59Z"),
        _session(pages_viewed="-1"),
        _session(items_viewed="[1,"),
        _session(items_viewed="3"),
        _session(items_added_to_cart='{"a": 1}'),
        _session(conversion="maybe"),
        _session(session_start=""),
    ]
    valid, rejected = transform_sessions(frame(rows), CTX)
    assert valid.empty
    assert column(rejected, "line_number") == list(range(2, 13))
    assert column(rejected, "reason") == [
        "missing_session_id",
        "invalid_email",
        "invalid_session_start",
        "invalid_session_end",
        "session_end_before_start",
        "invalid_pages_viewed",
        "invalid_items_viewed",
        "invalid_items_viewed",
        "invalid_items_added_to_cart",
        "invalid_conversion",
        "invalid_session_start",
    ]
    assert column(rejected, "field") == [
        "session_id",
        "customer_email",
        "session_start",
        "session_end",
        "session_end",
        "pages_viewed",
        "items_viewed",
        "items_viewed",
        "items_added_to_cart",
        "conversion",
        "session_start",
    ]
    formats = "in the accepted formats (iso8601, dd/mm/yyyy; years 1900-2199)"
    assert column(rejected, "detail") == [
        "session_id must not be empty",
        "customer_email must be an e-mail address such as name@example.com (value not shown: personal data)",
        f"session_start='x' is not a valid date {formats}",
        f"session_end='2024-13-01' is not a valid date {formats}",
        "session_end must not be before session_start, got '2024-01-02T09:59:59Z'",
        "pages_viewed must be an integer from 0 to 2147483647, got '-1'",
        "items_viewed must be a JSON list (or empty), got '[1,'",
        "items_viewed must be a JSON list (or empty), got '3'",
        "items_added_to_cart must be a JSON list (or empty), got '{\"a\": 1}'",
        "conversion must be true or false (1/0, yes/no, t/f, y/n) or empty, got 'maybe'",
        f"session_start must be {DATE}, got ''",
    ]
    assert set(rejected["source"]) == {"user_sessions"}
    assert set(rejected["source_file"]) == {"s.jsonl"}


def test_session_length_limit_is_exact() -> None:
    """duration_seconds is an int4: exactly 2147483647 seconds passes, one second more is rejected."""
    start = "2000-01-01T00:00:00Z"
    rows = [
        _session(session_id="at_limit", session_start=start, session_end="2068-01-19T03:14:07Z"),
        _session(session_id="over", session_start=start, session_end="2068-01-19T03:14:08Z"),
    ]
    valid, rejected = transform_sessions(frame(rows), CTX)
    assert column(valid, "session_id") == ["at_limit"]
    assert column(valid, "duration_seconds") == [2147483647]
    assert column(rejected, "reason") == ["session_too_long"]
    assert column(rejected, "field") == ["session_end"]
    assert column(rejected, "detail") == [
        "session_end − session_start must be at most 2147483647 seconds, got session_end '2068-01-19T03:14:08Z'"
    ]


def test_sessions_without_item_columns_and_with_a_later_chunks_index() -> None:
    """A file without the item columns (both optional) gives empty lists; rows keep their own index labels."""
    raw = frame([_session(session_id="A"), _session(session_id="B")]).drop(
        columns=["items_viewed", "items_added_to_cart"]
    )
    raw.index = pd.Index([100, 101])  # a later chunk of the same file: labels do not start at 0
    valid, rejected = transform_sessions(raw, CTX)
    assert rejected.empty
    assert column(valid, "session_id") == ["A", "B"]
    assert column(valid, "items_viewed") == ["[]", "[]"]
    assert column(valid, "items_added_to_cart") == ["[]", "[]"]
    assert column(valid, "items_viewed_count") == [0, 0]
    assert column(valid, "items_added_to_cart_count") == [0, 0]
    assert list(valid.index) == [100, 101]


def test_item_lists_with_a_later_chunks_index() -> None:
    """Item lists of every kind in a chunk whose labels do not start at 0: each row keeps its own list and count."""
    rows = [
        _session(session_id="A", items_viewed="[5]", items_added_to_cart='["x", "y", "z"]'),
        _session(session_id="B", items_viewed='[{"id": 1}]', items_added_to_cart="[7, 8]"),
        _session(session_id="C", items_viewed="", items_added_to_cart="not json"),
    ]
    raw = frame(rows)
    raw.index = pd.Index([7, 8, 9])
    valid, rejected = transform_sessions(raw, CTX)
    assert column(valid, "session_id") == ["A", "B"]
    assert column(valid, "items_viewed") == ["[5]", '[{"id": 1}]']
    assert column(valid, "items_viewed_count") == [1, 1]
    assert column(valid, "items_added_to_cart") == ['["x", "y", "z"]', "[7, 8]"]
    assert column(valid, "items_added_to_cart_count") == [3, 2]
    assert column(rejected, "reason") == ["invalid_items_added_to_cart"]
    assert column(rejected, "line_number") == [4]


@pytest.mark.parametrize(
    ("address", "mode", "expected"),
    [
        ("10.1.2.3", "truncate", "10.1.2.0/24"),  # IPv4 takes the IPv4 prefix, not the IPv6 one
        ("2001:db8::1", "truncate", "2001:db8::/48"),
        ("10.1.2.3", "keep", "10.1.2.3/32"),
        ("2001:db8::1", "keep", "2001:db8::1/128"),
        ("not an address", "truncate", None),
    ],
)
def test_network_of_one_address(address: str, mode: str, expected: str | None) -> None:
    assert _network(address, mode, 24, 48) == expected
