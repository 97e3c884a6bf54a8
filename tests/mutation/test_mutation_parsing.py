"""Exact behaviour of include/parsing.py's byte-level helpers and JSON type names, written to kill mutants."""

from __future__ import annotations

import codecs

import pytest

from include.parsing import (
    BadLine,
    BytePosition,
    EncodingProblem,
    json_type_name,
    type_violation,
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
