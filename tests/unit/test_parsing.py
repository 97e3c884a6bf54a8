"""include/parsing.py: the exact decimal, integer, date, encoding and JSON-type rules (issue 12 #1, #2, #4, #5)."""

from __future__ import annotations

import pandas as pd
import pytest

from include.parsing import (
    EncodingProblem,
    choose_encoding,
    parse_dates,
    parse_decimal,
    parse_integer,
    scan_encoding,
    type_violation,
    utf8_lines_replacing_invalid,
)


def blocks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# ---- decimals: reject, never round (PostgreSQL would round 1.005 to 1.01; a float path gave 1.00) -----
@pytest.mark.parametrize(
    ("text", "ok", "units", "reason"),
    [
        ("1.005", False, 0, "too_many_decimals"),
        ("0.005", False, 0, "too_many_decimals"),
        ("1e1", False, 0, "invalid"),
        ("1E-2", False, 0, "invalid"),
        ("1,5", False, 0, "invalid"),
        ("NaN", False, 0, "invalid"),
        ("", False, 0, "invalid"),
        (".", False, 0, "invalid"),
        ("1.500", True, 150, None),  # trailing zeros are exact
        ("2.0", True, 200, None),
        (".5", True, 50, None),
        ("7.", True, 700, None),
        ("-3.2", True, -320, None),
        ("0000012.34", True, 1234, None),
        ("9999999999.99", True, 999_999_999_999, None),
        ("10000000000", False, 0, "out_of_range"),
    ],
)
def test_decimal_text_is_exact_or_rejected(text: str, ok: bool, units: int, reason: str | None) -> None:
    p = parse_decimal(pd.Series([text]), scale=2, precision=12)
    assert (bool(p.ok[0]), int(p.units[0]), p.reason[0]) == (ok, units, reason)


def test_decimal_text_output_is_plain_with_scale_digits() -> None:
    p = parse_decimal(pd.Series(["1.5", "0.07", "12", "-0.5", "x"]), scale=2, precision=12)
    assert p.text(2).tolist() == ["1.50", "0.07", "12.00", "-0.50", ""]


@pytest.mark.parametrize(
    ("text", "ok", "reason"),
    [
        ("2", True, None),
        ("+3", True, None),
        ("007", True, None),
        ("2.0", False, "invalid"),
        ("1e1", False, "invalid"),
        ("0", False, "out_of_range"),
        ("2147483648", False, "out_of_range"),
        ("9" * 30, False, "out_of_range"),
        ("", False, "invalid"),
        (" 2", False, "invalid"),
    ],
)
def test_integer_text_only(text: str, ok: bool, reason: str | None) -> None:
    p = parse_integer(pd.Series([text]), 1, 2_147_483_647)
    assert (bool(p.ok[0]), p.reason[0]) == (ok, reason)


# ---- dates: configured formats only --------------------------------------------------------------
def _dates(values: list[str], formats: tuple[str, ...]) -> list[str | None]:
    p = parse_dates(pd.Series(values), formats)
    return [None if pd.isna(v) else v.isoformat() for v in p.values]


def test_slash_dates_are_not_guessed_under_iso() -> None:
    assert _dates(["03/04/2026", "2026-04-03", "Oct 3, 2026", "2026-04-03 10:00"], ("iso8601",)) == [
        None,
        "2026-04-03T00:00:00+00:00",
        None,
        "2026-04-03T10:00:00+00:00",
    ]


def test_french_and_us_formats_read_as_configured() -> None:
    assert _dates(["03/04/2026", "03/04/2026 10:30"], ("dd/mm/yyyy",)) == [
        "2026-04-03T00:00:00+00:00",
        "2026-04-03T10:30:00+00:00",
    ]
    assert _dates(["03/04/2026"], ("mm/dd/yyyy",)) == ["2026-03-04T00:00:00+00:00"]
    assert _dates(["31/02/2026", "13/13/2026"], ("dd/mm/yyyy",)) == [None, None]


def test_two_slash_formats_make_a_differing_date_ambiguous() -> None:
    p = parse_dates(pd.Series(["03/04/2026", "13/04/2026", "04/04/2026"]), ("dd/mm/yyyy", "mm/dd/yyyy"))
    assert p.ambiguous.tolist() == [True, False, False]
    assert [None if pd.isna(v) else v.date().isoformat() for v in p.values] == [None, "2026-04-13", "2026-04-04"]


def test_years_outside_1900_2199_are_rejected() -> None:
    assert _dates(["1899-12-31", "2200-01-01", "0001-01-01"], ("iso8601",)) == [None, None, None]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown date format 'yyyy/mm/dd'"):
        parse_dates(pd.Series(["x"]), ("yyyy/mm/dd",))


# ---- encoding ------------------------------------------------------------------------------------
MIXED = "email,first_name\na@x.example,López\nb@x.example,Ren".encode() + b"\xe9\n" + "c@x.example,Zoë\n".encode()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 1 << 20])
def test_mixed_file_fails_naming_line_and_offset_at_any_block_size(size: int) -> None:
    scan = scan_encoding(blocks(MIXED, size))
    assert scan.mixed
    with pytest.raises(EncodingProblem, match=r"mixed encoding") as err:
        choose_encoding(scan)
    assert (err.value.line, err.value.offset) == (3, MIXED.index(b"\xe9"))
    assert "0xE9" in str(err.value)


def test_single_byte_files_keep_their_detection() -> None:
    assert choose_encoding(scan_encoding([("h\nLópez €\n").encode("cp1252")])) == "cp1252"
    assert choose_encoding(scan_encoding([b"h\nL\xf3pez \x81\n"])) == "latin-1"
    assert choose_encoding(scan_encoding(["h\nLópez\n".encode()])) == "utf-8"
    assert choose_encoding(scan_encoding([b"\xef\xbb\xbfh\nx\n"])) == "utf-8-sig"


def test_stray_byte_in_the_last_block_is_seen() -> None:
    data = "é".encode() + b"a" * (3 << 20) + b"\xe9"  # beyond the first MiB: the whole file is scanned
    scan = scan_encoding(blocks(data, 1 << 20))
    assert scan.first_invalid is not None and scan.first_invalid.offset == len(data) - 1


def test_declared_encoding_rules() -> None:
    utf8 = scan_encoding(["h\nLópez\n".encode()])
    with pytest.raises(EncodingProblem, match="declared encoding cp1252 but the file is valid UTF-8"):
        choose_encoding(utf8, "cp1252")  # never re-decode a UTF-8 file as a single-byte codepage
    assert choose_encoding(scan_encoding([MIXED]), "cp1252") == "cp1252"  # the operator's declaration decides
    with pytest.raises(EncodingProblem, match="declared encoding utf-8 but byte 0xF3 at line 2"):
        choose_encoding(scan_encoding([b"h\nL\xf3pez\n"]), "utf-8")


def test_quarantine_copy_replaces_only_bad_lines_and_numbers_records() -> None:
    out: list[bytes] = []
    bad = utf8_lines_replacing_invalid(blocks(b"h\r\n\r\nL\xc3\xb3pez\r\na\xe9b\rzz\xff\n", 3), out.append)
    assert [(b.record, b.position.line, b.position.offset, b.position.byte) for b in bad] == [
        (3, 4, 14, 0xE9),
        (4, 5, 19, 0xFF),
    ]
    assert b"".join(out) == "h\r\n\r\nLópez\r\na\ufffdb\rzz\ufffd\n".encode()


# ---- JSON types ----------------------------------------------------------------------------------
def test_json_type_contract() -> None:
    contract = {"title": "scalar", "price": "scalar", "rating": "object"}
    assert type_violation({"title": {"en": "Mug"}, "price": 1}, contract) == (
        "title",
        "title must be a string, got object",
    )
    assert type_violation({"title": "Mug", "price": [1]}, contract) == ("price", "price must be a number, got array")
    assert type_violation({"title": "Mug", "rating": 4}, contract) == ("rating", "rating must be an object, got number")
    assert type_violation({"title": "Mug", "price": "9.99", "rating": None}, contract) is None


# ---- config keys (sources.<name>.encoding / date_formats / allow_header_only, transform.on_mixed_encoding) ----
def _config(**changes: object) -> dict:
    import copy

    import yaml

    from include.config_loader import DEFAULT_CONFIG

    raw = copy.deepcopy(yaml.safe_load(DEFAULT_CONFIG.read_text()))
    for dotted, value in changes.items():
        *path, key = dotted.split("__")
        node = raw
        for p in path:
            node = node[p]
        node[key] = value
    return raw


def test_parsing_config_keys_and_defaults() -> None:
    from include.config_loader import DEFAULT_CONFIG, parse_config

    s = parse_config(_config(), DEFAULT_CONFIG, env={})
    assert (s.sources["orders"].encoding, s.sources["orders"].date_formats) == ("auto", ("iso8601",))
    assert s.sources["orders"].allow_header_only is False and s.on_mixed_encoding == "fail"
    s = parse_config(
        _config(
            sources__orders__encoding="cp1252",
            sources__orders__date_formats=["dd/mm/yyyy", "iso8601"],
            sources__orders__allow_header_only=True,
            transform__on_mixed_encoding="quarantine",
        ),
        DEFAULT_CONFIG,
        env={},
    )
    assert s.sources["orders"].encoding == "cp1252" and s.sources["orders"].date_formats == ("dd/mm/yyyy", "iso8601")
    assert s.sources["orders"].allow_header_only is True and s.on_mixed_encoding == "quarantine"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "sources__orders__encoding",
            "utf-16",
            "'sources.orders.encoding' must be one of 'auto', 'utf-8', 'cp1252' or 'latin-1', got 'utf-16'",
        ),
        (
            "sources__orders__date_formats",
            ["dd.mm.yyyy"],
            "'sources.orders.date_formats[0]' must be one of 'iso8601', 'dd/mm/yyyy' or 'mm/dd/yyyy', got 'dd.mm.yyyy'",
        ),
        ("sources__orders__date_formats", [], "'sources.orders.date_formats' must have at least 1 item(s), got []"),
        ("sources__orders__allow_header_only", "yes", "'sources.orders.allow_header_only' must be true or false"),
        (
            "transform__on_mixed_encoding",
            "guess",
            "'transform.on_mixed_encoding' must be one of 'fail' or 'quarantine', got 'guess'",
        ),
    ],
)
def test_parsing_config_keys_are_validated(key: str, value: object, message: str) -> None:
    from include.config_loader import DEFAULT_CONFIG, ConfigError, parse_config

    with pytest.raises(ConfigError) as err:
        parse_config(_config(**{key: value}), DEFAULT_CONFIG, env={})
    assert message in str(err.value)
