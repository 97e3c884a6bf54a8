"""Value and encoding parsers that never guess: text in, exact values or a named reason out.

Pure functions (no file or database access: callers hand in bytes or series). The rules, stated
once here and in the README's "Data rules":

- Encoding: a file is UTF-8 when every byte decodes as UTF-8; single-byte (cp1252, or latin-1 when
  cp1252 leaves a byte undefined) when it holds bytes that are not UTF-8 and *no* valid UTF-8
  multi-byte sequence; MIXED when it holds both - never re-decoded as a single-byte codepage. A
  declared encoding (``sources.<name>.encoding``) replaces the detection, except that a file which
  is entirely valid UTF-8 with multi-byte characters is never read as a single-byte codepage.
- Decimals: plain decimal text only (``[+-]digits[.digits]``); exponent notation, thousands separators
  and anything else are rejected; more significant decimals than the column allows are rejected
  (``too_many_decimals``) - never rounded; trailing zeros beyond the scale are exact and accepted
  (``1.500`` -> ``1.50``). Values are exact integers of the smallest unit (cents), never floats.
- Integers (quantities, ids, counts): integer text only; ``2.0`` and ``1e1`` are rejected.
- Dates: only the configured formats (``iso8601``, ``dd/mm/yyyy``, ``mm/dd/yyyy``); a value two
  configured formats read differently is ambiguous and rejected; nothing is guessed.
"""

from __future__ import annotations

import codecs
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

ENCODINGS = ("auto", "utf-8", "cp1252", "latin-1")
MIXED_ENCODING_MODES = ("fail", "quarantine")
DATE_FORMATS = ("iso8601", "dd/mm/yyyy", "mm/dd/yyyy")

# ---- encoding ------------------------------------------------------------------------------------
_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, as surrogateescape shows them
_MULTIBYTE = re.compile("[^\x00-\x7f\udc80-\udcff]")  # a character that took a valid multi-byte sequence
_CP1252_UNDEFINED = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")


@dataclass(frozen=True)
class BytePosition:
    """Where a byte sits: 1-based physical line, 0-based byte offset in the file, the byte itself."""

    line: int
    offset: int
    byte: int

    def describe(self) -> str:
        return f"line {self.line}, byte offset {self.offset} (0x{self.byte:02X})"


@dataclass(frozen=True)
class EncodingScan:
    """What a whole-file scan saw: BOM, first valid multi-byte character, first byte that is not UTF-8."""

    bom: bool
    first_multibyte: BytePosition | None
    first_invalid: BytePosition | None
    cp1252_decodable: bool

    @property
    def mixed(self) -> bool:
        return self.first_invalid is not None and (self.first_multibyte is not None or self.bom)


class EncodingProblem(ValueError):
    """The bytes cannot be decoded under the rules; `line`/`offset` locate the first offending byte."""

    def __init__(self, problem: str, position: BytePosition | None = None):
        super().__init__(problem)
        self.problem = problem
        self.position = position
        self.line = position.line if position else None
        self.offset = position.offset if position else None


def _cp1252_undefined(block: bytes) -> bool:
    """Whether `block` holds a byte cp1252 leaves undefined (an ASCII block cannot)."""
    return not block.isascii() and any(b in block for b in _CP1252_UNDEFINED)


def scan_encoding(blocks: Iterable[bytes]) -> EncodingScan:
    """Scan every block of a file (streaming: memory bounded by the block size) for its UTF-8 status.

    Stops decoding once both a multi-byte character and an invalid byte are known (the file is mixed
    either way) but still reads on for bytes cp1252 leaves undefined; otherwise decodes to the end, so a
    stray byte in the last line is seen.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    fed = 0  # bytes handed to the decoder so far
    newlines = 0  # newlines in the text decoded so far (until both positions are known)
    bom = False
    cp1252_ok = True
    multibyte: BytePosition | None = None
    invalid: BytePosition | None = None
    it = iter(blocks)
    for block in it:
        if cp1252_ok and _cp1252_undefined(block):
            cp1252_ok = False
        start = fed - len(decoder.getstate()[0])  # file offset of the first byte this call decodes
        fed += len(block)
        text = decoder.decode(block)
        if text.isascii():
            newlines += text.count("\n")
            continue
        for pattern, which in ((_MULTIBYTE, "multibyte"), (_ESCAPED, "invalid")):
            if (multibyte if which == "multibyte" else invalid) is not None:
                continue
            m = pattern.search(text)
            if m is None:
                continue
            prefix = text[: m.start()]
            pos = BytePosition(
                newlines + prefix.count("\n") + 1,
                start + len(prefix.encode("utf-8", "surrogateescape")),
                m.group().encode("utf-8", "surrogateescape")[0],
            )
            if which == "multibyte":
                multibyte = pos
                bom = pos.offset == 0 and m.group() == "\ufeff"
            else:
                invalid = pos
        if multibyte is not None and invalid is not None:
            break
        newlines += text.count("\n")
    else:
        tail = decoder.decode(b"", final=True)
        m = _ESCAPED.search(tail)
        if invalid is None and m is not None:
            invalid = BytePosition(
                newlines + tail[: m.start()].count("\n") + 1, fed - len(tail), ord(m.group()) - 0xDC00
            )
    # Stopped early (mixed): whether a declared cp1252 can still read the file depends on the blocks not yet read.
    cp1252_ok = cp1252_ok and not any(map(_cp1252_undefined, it))
    return EncodingScan(bom, multibyte, invalid, cp1252_ok)


def choose_encoding(scan: EncodingScan, declared: str = "auto") -> str:
    """The codec to read a scanned file with: utf-8, utf-8-sig, cp1252 or latin-1.

    Raises:
        EncodingProblem: the file is mixed (auto, or declared utf-8 with an invalid byte); it is
            valid UTF-8 with multi-byte characters but declared single-byte; or declared cp1252
            with a byte cp1252 leaves undefined.
    """
    if declared not in ENCODINGS:
        raise ValueError(f"unknown encoding {declared!r}; one of {ENCODINGS}")
    utf8 = "utf-8-sig" if scan.bom else "utf-8"
    if declared in ("cp1252", "latin-1"):
        if scan.first_invalid is None and (scan.first_multibyte is not None or scan.bom):
            where = scan.first_multibyte.describe() if scan.first_multibyte else "a UTF-8 byte-order mark"
            raise EncodingProblem(
                f"declared encoding {declared} but the file is valid UTF-8 with multi-byte characters "
                f"(first at {where}); reading it as {declared} would corrupt every accent",
                scan.first_multibyte,
            )
        if declared == "cp1252" and not scan.cp1252_decodable:
            raise EncodingProblem("declared encoding cp1252 but the file has a byte cp1252 leaves undefined")
        return declared
    if scan.first_invalid is None:
        return utf8
    if declared == "utf-8":
        raise EncodingProblem(
            f"declared encoding utf-8 but byte 0x{scan.first_invalid.byte:02X} at {scan.first_invalid.describe()} "
            "is not UTF-8",
            scan.first_invalid,
        )
    if scan.mixed:
        where = scan.first_multibyte.describe() if scan.first_multibyte else "a UTF-8 byte-order mark"
        raise EncodingProblem(
            f"mixed encoding: valid UTF-8 multi-byte characters (first at {where}) and a byte that is not "
            f"UTF-8 at {scan.first_invalid.describe()}; refusing to guess (fix the file, declare the "
            "source's encoding, or for a CSV file set transform.on_mixed_encoding: quarantine)",
            scan.first_invalid,
        )
    return "cp1252" if scan.cp1252_decodable else "latin-1"


@dataclass(frozen=True)
class BadLine:
    """A record whose bytes are not UTF-8: record number (header = 1, blank lines not counted), where."""

    record: int
    position: BytePosition


def utf8_lines_replacing_invalid(blocks: Iterable[bytes], write: Callable[[bytes], object]) -> list[BadLine]:
    """Copy a mixed file to `write` as UTF-8, each invalid byte replaced by U+FFFD; return the lines that had one.

    Lines split like Arrow's CSV reader (LF, CRLF, CR); blank lines are not counted as records, so
    `record` matches the staged `_line` of a one-line record. Memory is bounded by the block size.
    """
    bad: list[BadLine] = []
    carry = b""
    offset = 0  # file offset of the next piece (original bytes)
    physical = 0
    record = 0
    first = True
    for block in itertools.chain(blocks, [None]):
        final = block is None
        data = carry + (block or b"")
        if first and data.startswith(codecs.BOM_UTF8):
            write(data[:3])
            data, offset = data[3:], 3
        first = False
        pieces = data.splitlines(keepends=True)
        # The last piece may be incomplete (or a CR whose LF is in the next block): keep it for later.
        carry = b"" if final or not pieces else pieces.pop()
        for piece in pieces:
            physical += 1
            body = piece.rstrip(b"\r\n")
            if body:
                record += 1
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as err:
                bad.append(BadLine(record, BytePosition(physical, offset + err.start, body[err.start])))
                write(body.decode("utf-8", "replace").encode("utf-8") + piece[len(body) :])
            else:
                write(piece)
            offset += len(piece)
        if final:
            break
    return bad


# ---- decimals and integers ---------------------------------------------------------------------
_DECIMAL_RE = r"^(?P<sign>[+-]?)(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?$"
_INTEGER_RE = r"^[+-]?[0-9]+$"


@dataclass(frozen=True)
class ParsedNumbers:
    """Vectorised parse result: `ok`, exact `units` (value x 10^scale; 0 where not ok), `reason` where not ok."""

    ok: pd.Series
    units: pd.Series
    reason: pd.Series  # 'invalid' | 'too_many_decimals' | 'out_of_range' | None

    def text(self, scale: int) -> pd.Series:
        """The exact value as plain decimal text with `scale` decimals ('' where not ok): what COPY reads."""
        return units_to_text(self.units, scale).where(self.ok, "")


def units_to_text(units: pd.Series, scale: int) -> pd.Series:
    """Exact decimal text of integer `units` / 10^scale (e.g. 1050, 2 -> '10.50')."""
    u = units.astype("int64")
    sign = pd.Series(np.where(u < 0, "-", ""), index=u.index)
    a = u.abs()
    if scale == 0:
        return sign + a.astype(str)
    f = 10**scale
    return sign + (a // f).astype(str) + "." + (a % f).astype(str).str.zfill(scale)


def parse_decimal(s: pd.Series, scale: int, precision: int) -> ParsedNumbers:
    """Parse plain decimal text exactly into numeric(precision, scale) units.

    '' or anything but ``[+-]digits[.digits]`` (at least one digit) is 'invalid' (so are ``1e1``,
    ``1,5``, ``NaN``, ``Infinity``); nonzero digits beyond `scale` are 'too_many_decimals'; more integer
    digits than precision - scale allows are 'out_of_range'.
    """
    arr = pa.array(s.astype(object).where(s.notna(), None), type=pa.string(), from_pandas=True)
    m = pc.extract_regex(arr, _DECIMAL_RE)
    matched = pc.is_valid(m)
    sign = pc.fill_null(pc.struct_field(m, "sign"), "")
    int_part = pc.utf8_ltrim(pc.fill_null(pc.struct_field(m, "int"), ""), "0")
    frac_raw = pc.fill_null(pc.struct_field(m, "frac"), "")
    has_digit = pc.or_(
        pc.greater(pc.utf8_length(pc.fill_null(pc.struct_field(m, "int"), "")), 0),
        pc.greater(pc.utf8_length(frac_raw), 0),
    )
    frac = pc.utf8_rtrim(frac_raw, "0")
    valid = pc.and_(pc.fill_null(matched, False), pc.fill_null(has_digit, False))
    too_many = pc.greater(pc.utf8_length(frac), scale)
    too_big = pc.greater(pc.utf8_length(int_part), precision - scale)
    good = pc.and_(valid, pc.and_(pc.invert(too_many), pc.invert(too_big)))
    int_num = pc.cast(pc.if_else(pc.and_(good, pc.greater(pc.utf8_length(int_part), 0)), int_part, "0"), pa.int64())
    if scale:
        frac_pad = pc.utf8_rpad(pc.if_else(good, frac, ""), width=scale, padding="0")
        frac_num = pc.cast(frac_pad, pa.int64())
        units = pc.add(pc.multiply(int_num, 10**scale), frac_num)
    else:
        units = int_num
    units = pc.if_else(pc.equal(sign, "-"), pc.negate(units), units)
    idx = s.index
    ok = pd.Series(good.to_numpy(zero_copy_only=False), index=idx, dtype=bool)
    reason = np.where(
        ~valid.to_numpy(zero_copy_only=False),
        "invalid",
        np.where(too_many.to_numpy(zero_copy_only=False), "too_many_decimals", "out_of_range"),
    )
    return ParsedNumbers(
        ok,
        pd.Series(units.to_numpy(zero_copy_only=False), index=idx, dtype="int64"),
        pd.Series(reason, index=idx, dtype=object).where(~ok, None),
    )


def parse_integer(s: pd.Series, minimum: int, maximum: int) -> ParsedNumbers:
    """Parse integer text only (``7``, ``+7``, ``007``): ``2.0``, ``1e1``, ``''`` are 'invalid'; outside the range 'out_of_range'."""
    arr = pa.array(s.astype(object).where(s.notna(), None), type=pa.string(), from_pandas=True)
    valid = pc.fill_null(pc.match_substring_regex(arr, _INTEGER_RE), False)
    digits = pc.utf8_ltrim(pc.utf8_ltrim(arr, "+-"), "0")
    fits = pc.and_(valid, pc.fill_null(pc.less_equal(pc.utf8_length(digits), 18), False))  # int64-safe
    values = pc.cast(pc.if_else(fits, pc.utf8_ltrim(arr, "+"), "0"), pa.int64())
    in_range = pc.and_(fits, pc.and_(pc.greater_equal(values, minimum), pc.less_equal(values, maximum)))
    idx = s.index
    ok = pd.Series(in_range.to_numpy(zero_copy_only=False), index=idx, dtype=bool)
    reason = pd.Series(
        np.where(valid.to_numpy(zero_copy_only=False), "out_of_range", "invalid"), index=idx, dtype=object
    )
    units = pd.Series(values.to_numpy(zero_copy_only=False), index=idx, dtype="int64")
    return ParsedNumbers(ok, units.where(ok, 0), reason.where(~ok, None))


# ---- dates -----------------------------------------------------------------------------------------
_ISO_RE = r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$"
_SLASH_RE = r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$"
MIN_TIMESTAMP = pd.Timestamp("1900-01-01", tz="UTC")
MAX_TIMESTAMP = pd.Timestamp("2200-01-01", tz="UTC")


@dataclass(frozen=True)
class ParsedDates:
    """Vectorised date parse: `values` (UTC, NaT where not ok) and `ambiguous` (two formats disagree)."""

    values: pd.Series
    ambiguous: pd.Series


def validate_date_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """The formats as a tuple; raises ValueError naming an unknown one."""
    out = tuple(formats)
    if not out:
        raise ValueError("at least one date format is needed")
    for f in out:
        if f not in DATE_FORMATS:
            raise ValueError(f"unknown date format {f!r}; one of {list(DATE_FORMATS)}")
    return out


def _slash(s: pd.Series, day_first: bool) -> pd.Series:
    parts = s.str.extract(_SLASH_RE)
    day, month = (parts[0], parts[1]) if day_first else (parts[1], parts[0])
    iso = (
        parts[2]
        + "-"
        + month.str.zfill(2)
        + "-"
        + day.str.zfill(2)
        + "T"
        + parts[3].fillna("00")
        + ":"
        + parts[4].fillna("00")
        + ":"
        + parts[5].fillna("00")
    )
    return pd.to_datetime(iso, format="%Y-%m-%dT%H:%M:%S", utc=True, errors="coerce")


def parse_dates(s: pd.Series, formats: Sequence[str]) -> ParsedDates:
    """Parse text under the configured formats only; naive values are UTC; years 1900-2199.

    A value that two configured formats both read, as different instants, is ambiguous (NaT).
    """
    formats = validate_date_formats(formats)
    text = s.astype(object).where(s.notna(), "").astype("str")
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us, UTC]")
    ambiguous = pd.Series(False, index=s.index)
    if "iso8601" in formats:
        iso = text.str.match(_ISO_RE).fillna(False).astype(bool)
        if iso.any():
            out[iso] = pd.to_datetime(text[iso], format="ISO8601", utc=True, errors="coerce").astype(out.dtype)
    slash = text.str.match(_SLASH_RE).fillna(False).astype(bool)
    if slash.any():
        readings = [
            _slash(text[slash], day_first=(f == "dd/mm/yyyy")).astype(out.dtype)
            for f in formats
            if f in ("dd/mm/yyyy", "mm/dd/yyyy")
        ]
        if readings:
            first = readings[0]
            if len(readings) == 2:
                second = readings[1]
                both = first.notna() & second.notna()
                amb = both & (first != second)
                ambiguous[amb[amb].index] = True
                first = first.where(~amb).fillna(second.where(~amb))
            out[slash] = first
    in_range = (out >= MIN_TIMESTAMP) & (out < MAX_TIMESTAMP)
    return ParsedDates(out.where(in_range), ambiguous)


def date_detail(field: str, value: str, formats: Sequence[str], ambiguous: bool) -> str:
    """One line for a rejected date, naming the accepted formats."""
    shown = value[:60]
    accepted = ", ".join(formats)
    if ambiguous:
        return f"{field}={shown!r} is ambiguous between the accepted formats ({accepted}); not guessed"
    return f"{field}={shown!r} is not a valid date in the accepted formats ({accepted}; years 1900-2199)"


# ---- JSON types ------------------------------------------------------------------------------------
JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}


def json_type_name(value: object) -> str:
    """The JSON name of a decoded value's type (object, array, string, number, boolean, null)."""
    if value is None:
        return "null"
    for t, name in JSON_TYPE_NAMES.items():
        if isinstance(value, t):
            return name
    return "number"  # Decimal from a parse that keeps number text


def type_violation(record: Mapping[str, object], contract: Mapping[str, str]) -> tuple[str, str] | None:
    """(field, detail) of the first field whose JSON type breaks `contract` (field -> 'scalar' | 'array' | 'object').

    'scalar' admits string, number, boolean and null (the transform judges the value); 'array' and
    'object' admit their type and null.
    """
    for name, expected in contract.items():
        value = record.get(name)
        if value is None or (expected == "scalar" and not isinstance(value, (dict, list))):
            continue  # the common case, kept cheap: this runs once per field of a million records
        got = json_type_name(value)
        if expected == "scalar" and got in ("object", "array"):
            return name, f"{name} must be a {_scalar_word(name)}, got {got}"
        if expected in ("array", "object") and got != expected:
            return name, f"{name} must be an {expected}, got {got}"
    return None


_NUMBER_FIELDS = frozenset({"id", "price", "rating_rate", "rating_count", "pages_viewed"})


def _scalar_word(name: str) -> str:
    return "number" if name in _NUMBER_FIELDS else "boolean" if name == "conversion" else "string"


def reject_json_constant(name: str) -> NoReturn:
    """json.loads parse_constant: NaN, Infinity and -Infinity are refused, naming the constant."""
    raise ValueError(f"{name} is not valid JSON (PostgreSQL jsonb refuses it)")
