"""The encoding scan's positions and the encoding choice's sentences, exactly (include/parsing.py).

Written to kill mutants of scan_encoding / choose_encoding: every position is (1-based line, 0-based byte offset,
byte), counted across block boundaries, and every refusal is the sentence the run summary shows.
"""

from __future__ import annotations

import pytest

from include.parsing import BytePosition, EncodingProblem, EncodingScan, choose_encoding, scan_encoding

# line 3 holds a valid "é" (C3 A9) at byte 4; line 4 a cp1252 "é" (E9), not UTF-8, at byte 8
MIXED = b"a\nb\n\xc3\xa9x\n\xe9y"
UTF8_AT = BytePosition(3, 4, 0xC3)
INVALID_AT = BytePosition(4, 8, 0xE9)


@pytest.mark.parametrize(
    "blocks",
    [
        [MIXED],
        [b"a\n", b"b\n\xc3", b"\xa9x\n", b"\xe9y"],  # ASCII blocks first, a character split across two blocks
        [b"a\nb\n", b"\xc3\xa9x\n\xe9y"],
    ],
)
def test_positions_are_counted_across_blocks(blocks: list[bytes]) -> None:
    assert scan_encoding(blocks) == EncodingScan(False, UTF8_AT, INVALID_AT, True)


def test_a_plain_ascii_file() -> None:
    scan = scan_encoding([b"id,name\n1,a\n"])
    assert scan == EncodingScan(False, None, None, True)
    assert scan.bom is False


def test_a_bom_only_at_the_start_counts() -> None:
    assert scan_encoding([b"\xef\xbb\xbfid\n1\n"]) == EncodingScan(True, BytePosition(1, 0, 0xEF), None, True)
    # U+FEFF later in the file is a character like any other, not a byte-order mark
    assert scan_encoding([b"id\n\xef\xbb\xbf\n"]) == EncodingScan(False, BytePosition(2, 3, 0xEF), None, True)


def test_an_undefined_cp1252_byte_is_remembered_across_blocks() -> None:
    scan = scan_encoding([b"a\x81\n", b"b\xe9\n"])
    assert scan.cp1252_decodable is False
    assert scan.first_invalid == BytePosition(1, 1, 0x81)


def test_a_sequence_cut_off_at_the_end_of_the_file_is_invalid_where_it_starts() -> None:
    assert scan_encoding([b"a\nb\n", b"\xc3"]) == EncodingScan(False, None, BytePosition(3, 4, 0xC3), True)


def test_an_unknown_declared_encoding_names_the_valid_ones() -> None:
    with pytest.raises(
        ValueError, match=r"^unknown encoding 'utf-16'; one of \('auto', 'utf-8', 'cp1252', 'latin-1'\)$"
    ):
        choose_encoding(scan_encoding([b"a"]), "utf-16")


@pytest.mark.parametrize("declared", ["cp1252", "latin-1"])
def test_utf8_declared_single_byte_is_refused_naming_the_first_character(declared: str) -> None:
    with pytest.raises(EncodingProblem) as err:
        choose_encoding(scan_encoding([b"a\nb\n\xc3\xa9x\n"]), declared)
    assert str(err.value) == (
        f"declared encoding {declared} but the file is valid UTF-8 with multi-byte characters "
        f"(first at line 3, byte offset 4 (0xC3)); reading it as {declared} would corrupt every accent"
    )
    assert err.value.position == UTF8_AT


def test_a_bom_without_a_recorded_character_is_named_as_such() -> None:
    scan = EncodingScan(bom=True, first_multibyte=None, first_invalid=None, cp1252_decodable=True)
    with pytest.raises(EncodingProblem) as err:
        choose_encoding(scan, "latin-1")
    assert "(first at a UTF-8 byte-order mark)" in str(err.value)
    assert err.value.position is None
    mixed = EncodingScan(bom=True, first_multibyte=None, first_invalid=INVALID_AT, cp1252_decodable=True)
    with pytest.raises(EncodingProblem, match=r"multi-byte characters \(first at a UTF-8 byte-order mark\)"):
        choose_encoding(mixed, "auto")


def test_cp1252_declared_with_a_byte_it_leaves_undefined() -> None:
    scan = scan_encoding([b"a\x81b"])
    with pytest.raises(EncodingProblem) as err:
        choose_encoding(scan, "cp1252")
    assert str(err.value) == "declared encoding cp1252 but the file has a byte cp1252 leaves undefined"
    assert choose_encoding(scan, "latin-1") == "latin-1"  # latin-1 defines every byte


def test_utf8_declared_with_a_byte_that_is_not_utf8() -> None:
    with pytest.raises(EncodingProblem) as err:
        choose_encoding(scan_encoding([MIXED]), "utf-8")
    assert str(err.value) == "declared encoding utf-8 but byte 0xE9 at line 4, byte offset 8 (0xE9) is not UTF-8"
    assert err.value.position == INVALID_AT
    assert (err.value.line, err.value.offset) == (4, 8)


def test_auto_refuses_a_mixed_file_naming_both_positions() -> None:
    with pytest.raises(EncodingProblem) as err:
        choose_encoding(scan_encoding([MIXED]), "auto")
    assert str(err.value) == (
        "mixed encoding: valid UTF-8 multi-byte characters (first at line 3, byte offset 4 (0xC3)) and a byte "
        "that is not UTF-8 at line 4, byte offset 8 (0xE9); refusing to guess (fix the file, declare the "
        "source's encoding, or for a CSV file set transform.on_mixed_encoding: quarantine)"
    )
    assert err.value.position == INVALID_AT


@pytest.mark.parametrize(
    ("data", "declared", "expected"),
    [
        (b"plain", "auto", "utf-8"),
        (b"\xef\xbb\xbfplain", "auto", "utf-8-sig"),
        (b"caf\xc3\xa9", "utf-8", "utf-8"),
        (b"caf\xe9", "auto", "cp1252"),
        (b"caf\xe9\x81", "auto", "latin-1"),  # 0x81 is undefined in cp1252
        (b"caf\xe9", "cp1252", "cp1252"),
        (b"plain", "latin-1", "latin-1"),
    ],
)
def test_the_chosen_codec(data: bytes, declared: str, expected: str) -> None:
    assert choose_encoding(scan_encoding([data]), declared) == expected


def test_a_character_after_an_earlier_invalid_byte_is_still_found() -> None:
    """The scan looks for each kind until it has found that kind: an invalid byte first does not end the search."""
    scan = scan_encoding([b"a\xe9\n", b"bc\xc3\xa9\n"])
    assert scan == EncodingScan(False, BytePosition(2, 5, 0xC3), BytePosition(1, 1, 0xE9), True)


@pytest.mark.parametrize(
    ("later", "decodable"),
    [
        ([b"plain\n", b"caf\xe9 \x80\n"], True),  # é and € are defined in cp1252
        ([b"plain\n", b"x\x81\n", b"\xe9\n", b"\x8d\n"], False),  # undefined 0x81, and blocks after it
        ([b"\x9d\n"], False),
    ],
)
def test_a_mixed_file_is_still_read_to_the_end_for_bytes_cp1252_leaves_undefined(
    later: list[bytes], decodable: bool
) -> None:
    # The scan stops decoding at the first block with both kinds of byte; a declared cp1252 needs the rest checked.
    assert scan_encoding([MIXED, *later]) == EncodingScan(False, UTF8_AT, INVALID_AT, decodable)
