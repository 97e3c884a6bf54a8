"""Property-based tests: the decimal, date and encoding parsers agree with PostgreSQL's own casts.

The oracle is the real server (embedded, from tests/conftest.py): ``'…'::numeric(12,2)`` / ``::numeric``,
``::timestamp`` under ``DateStyle`` DMY / MDY, and ``convert_from(bytes, 'UTF8')``. Where the pipeline is
deliberately stricter than PostgreSQL (it rejects rounding, exponents, padding, years outside 1900-2199),
the property states that difference exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include import local_postgres
from include.parsing import choose_encoding, parse_dates, parse_decimal, scan_encoding

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def pg(pg_server: local_postgres.LocalServer) -> Iterator[psycopg.Connection]:
    """One autocommit connection to the test server (module scope: Hypothesis re-runs the test body)."""
    url = local_postgres.create_database(pg_server, "property_parsers")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        yield conn


# ---- decimals ------------------------------------------------------------------------------------
plain_decimals = st.builds(
    lambda sign, i, dot, f: f"{sign}{i}{'.' if dot else ''}{f}",
    st.sampled_from(["", "-", "+"]),
    st.text("0123456789", max_size=12),
    st.booleans(),
    st.text("0123456789", max_size=5),
)
any_text = st.text("0123456789.+-eE ,aN", max_size=10)


@PROPERTY
@given(st.lists(st.one_of(plain_decimals, any_text), min_size=1, max_size=40))
def test_decimal_parser_agrees_with_numeric_12_2(pg: psycopg.Connection, texts: list[str]) -> None:
    parsed = parse_decimal(pd.Series(texts), scale=2, precision=12)
    rows = pg.execute(
        """SELECT pg_input_is_valid(v, 'numeric(12,2)'),
                  CASE WHEN pg_input_is_valid(v, 'numeric(12,2)') THEN v::numeric(12,2) END,
                  CASE WHEN pg_input_is_valid(v, 'numeric') THEN v::numeric END
           FROM unnest(%s::text[]) WITH ORDINALITY AS u(v, n) ORDER BY n""",
        (texts,),
    ).fetchall()
    for i, (text, (pg_ok, pg_typed, pg_exact)) in enumerate(zip(texts, rows, strict=True)):
        ok, units, reason = bool(parsed.ok[i]), int(parsed.units[i]), parsed.reason[i]
        if ok:
            # Accepted: PostgreSQL accepts it too, stores the same value, and did not have to round.
            assert pg_ok and pg_typed == pg_exact == Decimal(units) / 100, text
        elif reason == "too_many_decimals":
            # PostgreSQL would silently round (or overflow after rounding): the pipeline refuses instead.
            assert pg_exact is not None and pg_exact != round(pg_exact, 2), text
        elif reason == "out_of_range":
            assert not pg_ok and pg_exact is not None, text
        else:
            # 'invalid': PostgreSQL refuses it too, or it uses a spelling the pipeline excludes on purpose.
            assert reason == "invalid"
            assert not pg_ok or re.search(r"[eE]|nan|NaN|inf|^\s|\s$", text), text


# ---- dates ---------------------------------------------------------------------------------------
@st.composite
def slash_dates(draw: st.DrawFn) -> str:
    a, b = draw(st.integers(0, 32)), draw(st.integers(0, 32))
    year = draw(st.integers(1890, 2210))
    time = draw(st.sampled_from(["", " 10:30", " 23:59:59", " 24:00"]))
    width = draw(st.sampled_from([1, 2]))
    return f"{a:0{width}d}/{b:0{width}d}/{year}{time}"


@st.composite
def iso_dates(draw: st.DrawFn) -> str:
    y, m, d = draw(st.integers(1890, 2210)), draw(st.integers(0, 13)), draw(st.integers(0, 32))
    time = draw(st.sampled_from(["", "T10:30", " 10:30:15", "T23:59:59Z", "T10:00:00+02:00", "T25:00"]))
    return f"{y:04d}-{m:02d}-{d:02d}{time}"


def _pg_timestamps(pg: psycopg.Connection, texts: list[str], datestyle: str) -> list[datetime | None]:
    pg.execute(sql_datestyle(datestyle))
    rows = pg.execute(
        """SELECT CASE WHEN pg_input_is_valid(v, 'timestamptz') THEN v::timestamptz END
           FROM unnest(%s::text[]) WITH ORDINALITY AS u(v, n) ORDER BY n""",
        (texts,),
    ).fetchall()
    return [r[0] for r in rows]


def sql_datestyle(style: str) -> str:
    assert style in ("ISO, DMY", "ISO, MDY", "ISO, YMD")  # a constant, never user input
    return f"SET DateStyle = '{style}'"


def _ours(texts: list[str], formats: tuple[str, ...]) -> list[datetime | None]:
    values = parse_dates(pd.Series(texts), formats).values
    return [None if pd.isna(v) else v.to_pydatetime() for v in values]


def _in_range(ts: datetime | None) -> bool:
    return ts is not None and datetime(1900, 1, 1, tzinfo=UTC) <= ts < datetime(2200, 1, 1, tzinfo=UTC)


@PROPERTY
@given(st.lists(slash_dates(), min_size=1, max_size=30))
def test_slash_dates_agree_with_datestyle(pg: psycopg.Connection, texts: list[str]) -> None:
    dmy, mdy = _pg_timestamps(pg, texts, "ISO, DMY"), _pg_timestamps(pg, texts, "ISO, MDY")
    fr, us, both = (
        _ours(texts, ("dd/mm/yyyy",)),
        _ours(texts, ("mm/dd/yyyy",)),
        _ours(texts, ("dd/mm/yyyy", "mm/dd/yyyy")),
    )
    for i, text in enumerate(texts):
        # "24:00" is PostgreSQL's end-of-day spelling; the pipeline accepts hours 00-23 only.
        fr_expected = dmy[i] if _in_range(dmy[i]) and "24:00" not in text else None
        us_expected = mdy[i] if _in_range(mdy[i]) and "24:00" not in text else None
        assert fr[i] == fr_expected, (text, "DMY")
        assert us[i] == us_expected, (text, "MDY")
        if fr_expected is not None and us_expected is not None and fr_expected != us_expected:
            assert both[i] is None, (text, "ambiguous must be rejected")
        else:
            assert both[i] == (fr_expected or us_expected), text
    assert _ours(texts, ("iso8601",)) == [None] * len(texts)  # never guessed under ISO only


@PROPERTY
@given(st.lists(iso_dates(), min_size=1, max_size=30))
def test_iso_dates_agree_with_timestamptz(pg: psycopg.Connection, texts: list[str]) -> None:
    ymd = _pg_timestamps(pg, texts, "ISO, YMD")
    ours = _ours(texts, ("iso8601",))
    for i, text in enumerate(texts):
        assert ours[i] == (ymd[i] if _in_range(ymd[i]) else None), text


# ---- encoding ------------------------------------------------------------------------------------
chunks = st.one_of(
    st.text(st.characters(min_codepoint=1, max_codepoint=0x10FFFF, exclude_categories=["Cs"]), max_size=6).map(
        lambda s: s.encode()
    ),
    st.binary(max_size=4).filter(lambda b: b"\x00" not in b),  # PostgreSQL text refuses NUL whatever the encoding
)


def _pg_utf8_ok(pg: psycopg.Connection, data: bytes) -> bool:
    try:
        pg.execute("SELECT convert_from(%s::bytea, 'UTF8')", (data,))
    except psycopg.errors.CharacterNotInRepertoire:
        return False
    return True


@PROPERTY
@given(st.lists(chunks, max_size=8).map(b"".join), st.integers(1, 7))
def test_encoding_scan_agrees_with_convert_from(pg: psycopg.Connection, data: bytes, block: int) -> None:
    scan = scan_encoding([data[i : i + block] for i in range(0, len(data), block)])
    valid = _pg_utf8_ok(pg, data)
    assert (scan.first_invalid is None) == valid, data
    if scan.first_invalid is not None:
        # Everything before the reported offset is valid UTF-8 for PostgreSQL too; the byte named is there.
        assert _pg_utf8_ok(pg, data[: scan.first_invalid.offset]), data
        assert data[scan.first_invalid.offset] == scan.first_invalid.byte
        assert scan.first_invalid.line == data[: scan.first_invalid.offset].count(b"\n") + 1
        if not data.isascii() and scan.first_multibyte is not None:
            with pytest.raises(ValueError, match="mixed encoding"):
                choose_encoding(scan)
    elif not data.isascii():
        assert scan.first_multibyte is not None and choose_encoding(scan).startswith("utf-8")
