"""Exact behaviour of include/parsing.py's byte-level helpers and JSON type names, written to kill mutants."""

from __future__ import annotations

import codecs

import pandas as pd
import pytest

from include.parsing import (
    BadLine,
    BytePosition,
    EncodingProblem,
    json_type_name,
    parse_dates,
    parse_decimal,
    parse_integer,
    type_violation,
    units_to_text,
    utf8_lines_replacing_invalid,
)


def _copy(blocks: list[bytes]) -> tuple[bytes, list[BadLine]]:
    out: list[bytes] = []
    bad = utf8_lines_replacing_invalid(blocks, out.append)
    return b"".join(out), bad


def test_bom_is_copied_once_and_offsets_count_it() -> None:
    data = codecs.BOM_UTF8 + b"id\r\n1\xe9\n"
    copied, bad = _copy([data])
    assert copied == codecs.BOM_UTF8 + b"id\r\n1\xef\xbf\xbd\n"
    # the BOM (3 bytes) and "id\r\n" (4 bytes) come first: the bad byte sits at offset 8
    assert bad == [BadLine(2, BytePosition(2, 8, 0xE9))]


def test_bom_only_at_the_start_of_the_file() -> None:
    # a BOM split over two blocks is still the file's BOM; one at the start of a later block is data
    copied, bad = _copy([codecs.BOM_UTF8[:2], codecs.BOM_UTF8[2:] + b"a\n", codecs.BOM_UTF8 + b"\xff\n"])
    assert copied == codecs.BOM_UTF8 + b"a\n" + codecs.BOM_UTF8 + b"\xef\xbf\xbd\n"
    assert bad == [BadLine(2, BytePosition(2, 8, 0xFF))]


def test_lines_split_across_blocks_and_line_ends_kept() -> None:
    copied, bad = _copy([b"ok\r", b"\nb\xe9d\r", b"\n\n\xff"])
    assert copied == b"ok\r\nb\xef\xbf\xbdd\r\n\n\xef\xbf\xbd"
    # blank lines are not records; the last line has no line end
    assert bad == [BadLine(2, BytePosition(2, 5, 0xE9)), BadLine(3, BytePosition(4, 10, 0xFF))]


def test_line_end_bytes_are_not_trimmed_from_the_front() -> None:
    copied, bad = _copy([b"\xe9a\n"])
    assert copied == b"\xef\xbf\xbda\n"
    assert bad == [BadLine(1, BytePosition(1, 0, 0xE9))]
    copied, bad = _copy([b"a\xe9X\nX\n"])
    assert copied == b"a\xef\xbf\xbdX\nX\n"
    assert bad == [BadLine(1, BytePosition(1, 1, 0xE9))]


def test_clean_input_is_copied_unchanged() -> None:
    assert _copy([b"a\nb\n"]) == (b"a\nb\n", [])
    assert _copy([]) == (b"", [])


def test_encoding_problem_keeps_problem_and_position() -> None:
    where = BytePosition(3, 17, 0x81)
    err = EncodingProblem("not UTF-8", where)
    assert str(err) == "not UTF-8"
    assert (err.problem, err.position, err.line, err.offset) == ("not UTF-8", where, 3, 17)
    bare = EncodingProblem("empty")
    assert (bare.problem, bare.position, bare.line, bare.offset) == ("empty", None, None, None)
    assert where.describe() == "line 3, byte offset 17 (0x81)"


@pytest.mark.parametrize(
    ("value", "name"),
    [(None, "null"), ({}, "object"), ([], "array"), ("", "string"), (True, "boolean"), (1, "number"), (1.5, "number")],
)
def test_json_type_names(value: object, name: str) -> None:
    assert json_type_name(value) == name


def test_decimal_is_a_number() -> None:
    from decimal import Decimal

    assert json_type_name(Decimal("1.10")) == "number"


@pytest.mark.parametrize(
    ("field", "word"),
    [("price", "number"), ("conversion", "boolean"), ("title", "string")],
)
def test_scalar_violation_names_the_expected_scalar(field: str, word: str) -> None:
    assert type_violation({field: [1]}, {field: "scalar"}) == (field, f"{field} must be a {word}, got array")
    assert type_violation({field: {}}, {field: "scalar"}) == (field, f"{field} must be a {word}, got object")


def test_container_violations_and_nulls() -> None:
    assert type_violation({"items": None, "meta": "x"}, {"items": "array", "meta": "object"}) == (
        "meta",
        "meta must be an object, got string",
    )
    assert type_violation({"items": 1}, {"items": "array"}) == ("items", "items must be an array, got number")
    assert (
        type_violation({"items": [], "meta": {}, "a": None}, {"items": "array", "meta": "object", "a": "scalar"})
        is None
    )


def test_date_detail_shows_at_most_60_characters_of_the_value() -> None:
    from include.parsing import date_detail

    assert date_detail("d", "1" * 61, ("iso8601",), False) == (
        f"d='{'1' * 60}' is not a valid date in the accepted formats (iso8601; years 1900-2199)"
    )
    assert date_detail("d", "1" * 60, ("iso8601", "dd/mm/yyyy"), True) == (
        f"d='{'1' * 60}' is ambiguous between the accepted formats (iso8601, dd/mm/yyyy); not guessed"
    )


def test_empty_blocks_add_nothing() -> None:
    assert _copy([b"", b"a\n", b"", b"b\n"]) == (b"a\nb\n", [])


def test_lines_of_spaces_or_letters_are_records() -> None:
    # only the line end is cut off before counting: a line of spaces is a record (Arrow reads it as one)
    copied, bad = _copy([b"h\n  \nX\n\xe9\n"])
    assert copied == b"h\n  \nX\n\xef\xbf\xbd\n"
    assert bad == [BadLine(4, BytePosition(4, 7, 0xE9))]


# ---- parse_decimal / parse_integer: index, scale 0, empty and all-null input ---------------------------
# The transform aligns these results with the frame it parses by index, and a frame read in chunks does
# not start at 0: the results must keep the caller's index (not a fresh 0..n-1 one).


def test_parse_decimal_keeps_the_callers_index_on_every_result() -> None:
    s = pd.Series(["1.5", "x", "-2"], index=[10, 20, 30])
    got = parse_decimal(s, scale=2, precision=10)
    assert list(got.ok.index) == [10, 20, 30]
    assert list(got.units.index) == [10, 20, 30]
    assert got.ok.tolist() == [True, False, True]
    assert got.units.tolist() == [150, 0, -200]
    assert got.reason.tolist() == [None, "invalid", None]


def test_parse_decimal_with_scale_zero_reads_whole_units_and_their_sign() -> None:
    got = parse_decimal(pd.Series(["7", "-3", "+0", "1.0", "1.5"]), scale=0, precision=3)
    assert got.units.tolist() == [7, -3, 0, 1, 0]
    assert got.reason.tolist() == [None, None, None, None, "too_many_decimals"]


def test_parse_decimal_empty_text_and_a_bare_sign_are_invalid_not_too_many_decimals() -> None:
    # an empty value has no digit at all: 'invalid', whatever the scale
    for scale in (0, 2, 6):
        got = parse_decimal(pd.Series(["", "+", "-", "."]), scale=scale, precision=12)
        assert got.ok.tolist() == [False] * 4
        assert got.reason.tolist() == ["invalid"] * 4


def test_parse_decimal_of_a_column_that_is_entirely_missing() -> None:
    # a column of nulls (pandas infers no string type for it) is invalid everywhere, not an error
    got = parse_decimal(pd.Series([None, None], index=[4, 5], dtype=object), scale=2, precision=10)
    assert got.ok.tolist() == [False, False]
    assert got.reason.tolist() == ["invalid", "invalid"]
    assert list(got.reason.index) == [4, 5]


def test_parse_integer_range_is_inclusive_at_both_ends_and_keeps_the_index() -> None:
    s = pd.Series(["0", "1", "10", "11", "+10", "007", "-1"], index=range(100, 107))
    got = parse_integer(s, minimum=1, maximum=10)
    assert list(got.ok.index) == list(range(100, 107))
    assert got.ok.tolist() == [False, True, True, False, True, True, False]
    assert got.units.tolist() == [0, 1, 10, 0, 10, 7, 0]  # 0 where not ok, as documented
    assert got.reason.tolist() == ["out_of_range", None, None, "out_of_range", None, None, "out_of_range"]
    assert list(got.reason.index) == list(range(100, 107))
    assert list(got.units.index) == list(range(100, 107))


def test_parse_integer_invalid_text_is_invalid_and_a_negative_value_keeps_its_sign() -> None:
    got = parse_integer(pd.Series(["2.0", "1e1", "", " 7", "+-3", "-5", None], dtype=object), -10, 10)
    assert got.ok.tolist() == [False, False, False, False, False, True, False]
    assert got.units.tolist() == [0, 0, 0, 0, 0, -5, 0]
    assert got.reason.tolist() == ["invalid"] * 5 + [None, "invalid"]


def test_parse_integer_eighteen_digits_fit_nineteen_are_out_of_range_not_an_overflow() -> None:
    # up to 18 significant digits are read exactly (int64-safe); more are out of range, and leading
    # zeros do not count as digits
    top = 10**18 - 1
    got = parse_integer(pd.Series([str(top), "-" + str(top), str(10**18), "000000000000000000000042"]), -top, top)
    assert got.ok.tolist() == [True, True, False, True]
    assert got.units.tolist() == [top, -top, 0, 42]
    assert got.reason.tolist() == [None, None, "out_of_range", None]
    # 19 digits beyond int64 are out of range, not a cast overflow
    huge = parse_integer(pd.Series(["9999999999999999999"]), 0, 10)
    assert huge.reason.tolist() == ["out_of_range"]


def test_parse_integer_of_a_column_that_is_entirely_missing() -> None:
    got = parse_integer(pd.Series([None, None], index=[7, 8], dtype=object), 0, 5)
    assert got.ok.tolist() == [False, False]
    assert got.reason.tolist() == ["invalid", "invalid"]


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_parse_dates_reads_only_the_configured_formats_and_keeps_the_index() -> None:
    s = pd.Series(["2024-03-05", "05/03/2024", "2024-03-05T10:20:30+02:00"], index=[3, 1, 2])
    iso_only = parse_dates(s, ["iso8601"])
    assert list(iso_only.values.index) == [3, 1, 2]
    assert iso_only.values.tolist()[0] == _utc("2024-03-05")
    assert pd.isna(iso_only.values.tolist()[1])  # a slash date is not read when only ISO is configured
    assert iso_only.values.tolist()[2] == _utc("2024-03-05T08:20:30")
    day_first = parse_dates(s, ["dd/mm/yyyy"])
    assert pd.isna(day_first.values.tolist()[0])  # ISO is not read when it is not configured
    assert day_first.values.tolist()[1] == _utc("2024-03-05")
    month_first = parse_dates(s, ["mm/dd/yyyy"])
    assert month_first.values.tolist()[1] == _utc("2024-05-03")
    assert iso_only.ambiguous.tolist() == [False, False, False]


def test_parse_dates_two_slash_formats_agreeing_read_the_date_disagreeing_are_ambiguous() -> None:
    s = pd.Series(["05/05/2024 10:20", "13/05/2024", "05/13/2024", "05/03/2024", "x"], index=[9, 8, 7, 6, 5])
    got = parse_dates(s, ["iso8601", "dd/mm/yyyy", "mm/dd/yyyy"])
    values = got.values.tolist()
    assert values[0] == _utc("2024-05-05T10:20")
    assert values[1] == _utc("2024-05-13")  # only day-first reads it
    assert values[2] == _utc("2024-05-13")  # only month-first reads it
    assert pd.isna(values[3]) and pd.isna(values[4])
    assert got.ambiguous.tolist() == [False, False, False, True, False]
    assert list(got.ambiguous.index) == [9, 8, 7, 6, 5]


def test_parse_dates_years_1900_to_2199_inclusive_and_missing_values() -> None:
    s = pd.Series(["1900-01-01", "1899-12-31T23:59:59", "2199-12-31T23:59:59", "2200-01-01", None, ""])
    got = parse_dates(s, ["iso8601"])
    values = got.values.tolist()
    assert values[0] == _utc("1900-01-01")
    assert pd.isna(values[1])
    assert values[2] == _utc("2199-12-31T23:59:59")
    assert all(pd.isna(v) for v in values[3:])
    assert str(got.values.dtype) == "datetime64[us, UTC]"
    assert got.ambiguous.tolist() == [False] * 6


def test_parse_dates_rejects_an_empty_or_unknown_format_list() -> None:
    with pytest.raises(ValueError, match=r"^at least one date format is needed$"):
        parse_dates(pd.Series(["2024-01-01"]), [])
    with pytest.raises(
        ValueError, match=r"unknown date format 'yyyy/mm/dd'; one of \['iso8601', 'dd/mm/yyyy', 'mm/dd/yyyy'\]"
    ):
        parse_dates(pd.Series(["2024-01-01"]), ["iso8601", "yyyy/mm/dd"])


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        (0, ["-1050", "0", "7", "1050"]),
        (1, ["-105.0", "0.0", "0.7", "105.0"]),
        (2, ["-10.50", "0.00", "0.07", "10.50"]),
    ],
)
def test_units_to_text_is_exact_at_each_scale(scale: int, expected: list[str]) -> None:
    assert units_to_text(pd.Series([-1050, 0, 7, 1050]), scale).tolist() == expected
