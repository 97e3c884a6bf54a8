"""The CSV extract's outcomes, exactly, on real files (no database): manifests, staged values and lines, parts,
every structural error message (file, line, field, value cut at 80 characters) and the log lines users read.

Written for mutation testing of include/extract.py (DataExtractor.extract_csv and its helpers).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include.config_loader import Settings
from include.extract import (
    CUSTOMER_COLUMNS,
    LINE_COLUMN,
    ORDER_COLUMNS,
    DataExtractor,
    ExtractManifest,
    InputFileError,
    MissingInputError,
    _average_line_bytes,
    detect_delimiter,
    detect_encoding,
)
from tests.mutation.inputs import extract_settings

HEADER = ",".join(ORDER_COLUMNS)  # order_reference,customer_email,…,payment_method
ROW = "ORD-1,ann,1,2,9.99,2026-10-01,shipped,paypal"
ROW2 = "ORD-2,bob,2,1,5.00,2026-10-02,pending,card"
MiB = 1 << 20


def _settings(tmp_path: Path, *, orders: dict[str, Any] | None = None, **changes: Any) -> Settings:
    return extract_settings(tmp_path, sources={"orders": orders or {}}, **changes)


def _write(tmp_path: Path, data: bytes, name: str = "orders.csv") -> Path:
    (tmp_path / "raw").mkdir(exist_ok=True)
    path = tmp_path / "raw" / name
    path.write_bytes(data)
    return path


def _extract(tmp_path: Path, data: bytes, source: str = "orders", **changes: Any) -> ExtractManifest:
    _write(tmp_path, data, f"{source}.csv")
    return DataExtractor(_settings(tmp_path, **changes), tmp_path / "run").extract_csv(source)


def _failure(tmp_path: Path, data: bytes, **changes: Any) -> InputFileError:
    with pytest.raises(InputFileError) as err:
        _extract(tmp_path, data, **changes)
    return err.value


def _rows(m: ExtractManifest) -> list[dict[str, Any]]:
    return [row for part in m.parts for row in pq.read_table(part).to_pylist()]


def _lines(*lines: str) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


# ---- InputFileError and the manifest ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "field", "value", "message"),
    [
        (None, None, None, "f.csv: broken"),
        (0, "", None, "f.csv, line 0: broken"),  # line 0 is still a line; an empty field name is not shown
        (3, "status", "", "f.csv, line 3, field 'status': broken (value: '')"),
        (3, "status", "x" * 80, f"f.csv, line 3, field 'status': broken (value: '{'x' * 80}')"),
        (3, None, "x" * 81, f"f.csv, line 3: broken (value: '{'x' * 80}'…)"),
        (None, "status", "y" * 79 + "ab", f"f.csv, field 'status': broken (value: '{'y' * 79}a'…)"),
        (2, None, "it's", 'f.csv, line 2: broken (value: "it\'s")'),
    ],
)
def test_an_input_error_names_file_line_field_and_at_most_80_characters_of_the_value(
    line: int | None, field: str | None, value: str | None, message: str
) -> None:
    err = InputFileError("f.csv", "broken", line=line, field=field, value=value)
    assert str(err) == message
    assert (err.file, err.problem, err.line, err.field, err.value) == ("f.csv", "broken", line, field, value)


def test_an_input_error_redacts_email_addresses_in_problem_and_value() -> None:
    err = InputFileError("f.csv", "bad ann@example.com", line=2, value="ann@example.com,1")
    assert str(err) == "f.csv, line 2: bad <email> (value: '<email>,1')"


def test_a_manifest_as_a_dict_holds_every_field_with_plain_list_and_dict() -> None:
    m = ExtractManifest("orders", "orders.csv", "/s/orders", ("/s/orders/part-00000.parquet",), 2, "ab12", {"k": 1})
    d = m.to_dict()
    assert d == {
        "source": "orders",
        "file": "orders.csv",
        "staged_dir": "/s/orders",
        "parts": ["/s/orders/part-00000.parquet"],
        "rows_read": 2,
        "sha256": "ab12",
        "detail": {"k": 1},
    }
    assert type(d["parts"]) is list and type(d["detail"]) is dict


# ---- a clean file ------------------------------------------------------------------------------------------------
def test_a_clean_file_is_staged_as_text_with_lines_hash_snappy_parts_and_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Empty fields and null-looking words stay text: the transform decides what is missing.
    data = _lines(HEADER, ROW, 'ORD-2,,2,1,NA,2026-10-02,NULL,""')
    with caplog.at_level(logging.INFO, logger="include.extract"):
        m = _extract(tmp_path, data)
    out = tmp_path / "run" / "extract" / "orders"
    assert m.to_dict() == {
        "source": "orders",
        "file": "orders.csv",
        "staged_dir": str(out),
        "parts": [str(out / "part-00000.parquet")],
        "rows_read": 2,
        "sha256": hashlib.sha256(data).hexdigest(),
        "detail": {"encoding": "utf-8", "delimiter": ","},
    }
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet"]
    assert _rows(m) == [
        dict(zip([*ORDER_COLUMNS, "_line"], [*ROW.split(","), 2], strict=True)),
        dict(zip([*ORDER_COLUMNS, "_line"], ["ORD-2", "", "2", "1", "NA", "2026-10-02", "NULL", "", 3], strict=True)),
    ]
    meta = pq.ParquetFile(m.parts[0]).metadata
    assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {"SNAPPY"}
    assert pq.read_schema(m.parts[0]).types == [pa.string()] * len(ORDER_COLUMNS) + [pa.int64()]
    assert caplog.messages == [
        "extracted orders: 2 rows from orders.csv (encoding utf-8, delimiter ',') into 1 part(s)"
    ]


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [
        # quoted names, spaces around and inside, any case: normalised to the expected names
        ('"Order Reference", Customer Email ,PRODUCT_ID,"quantity",Unit Price,order_date,Status,payment_method', ","),
        # a trailing empty column (every line ends with the delimiter) is a column of its own
        ("\t".join(ORDER_COLUMNS) + "\t", "\t"),
    ],
)
def test_header_names_are_normalised_and_an_empty_last_column_kept(tmp_path: Path, header: str, delimiter: str) -> None:
    row = delimiter.join(ROW.split(",")) + ("\t" if delimiter == "\t" else "")
    m = _extract(tmp_path, _lines(header, row))
    assert (m.rows_read, m.detail["delimiter"]) == (1, delimiter)
    assert _rows(m) == [dict(zip([*ORDER_COLUMNS, "_line"], [*ROW.split(","), 2], strict=True))]


def test_a_header_behind_a_doubled_byte_order_mark_is_found(tmp_path: Path) -> None:
    # The codec drops one BOM; a second one (a re-saved export) is stripped from the header too.
    m = _extract(tmp_path, b"\xef\xbb\xbf" + "\ufeff".encode() + _lines(HEADER, ROW))
    assert (m.rows_read, m.detail) == (1, {"encoding": "utf-8-sig", "delimiter": ","})
    assert _rows(m)[0]["order_reference"] == "ORD-1"


def test_an_optional_column_absent_from_the_header_is_staged_empty(tmp_path: Path) -> None:
    header = ",".join(ORDER_COLUMNS[:-1])
    m = _extract(tmp_path, _lines(header, ROW.rsplit(",", 1)[0], ROW2.rsplit(",", 1)[0]))
    assert [(r["payment_method"], r["_line"]) for r in _rows(m)] == [("", 2), ("", 3)]
    assert pq.read_schema(m.parts[0]).field("payment_method").type == pa.string()


# ---- the header's failures -------------------------------------------------------------------------------------
@pytest.mark.parametrize("first", ["", "   ", " \t "])
def test_a_blank_first_line_is_no_header(tmp_path: Path, first: str) -> None:
    err = _failure(tmp_path, _lines(first, HEADER, ROW))
    assert str(err) == "orders.csv, line 1: file has no header (first line is blank)"
    assert (err.file, err.line, err.field, err.value) == ("orders.csv", 1, None, None)


def test_names_that_collide_after_normalising_are_refused_sorted(tmp_path: Path) -> None:
    # "X"/"x", "Status"/"status", "tax"/"TAX": the same column twice once case is folded
    header = f"X,{HEADER},Status,tax,x,TAX"
    err = _failure(tmp_path, _lines(header, ROW))
    assert str(err) == "orders.csv, line 1: duplicate column(s) ['status', 'tax', 'x'] in header"
    assert (err.file, err.line) == ("orders.csv", 1)


def test_a_header_is_read_only_up_to_64_kib(tmp_path: Path) -> None:
    # 65,520 + 1 + 15 characters = 64 KiB: the cut falls right after "order_reference".
    head = "x:" * 32_760
    err = _failure(tmp_path, _lines(f"{head},{HEADER}", ROW), max_field_chars=100_000)
    missing = list(ORDER_COLUMNS[1:-1])  # payment_method is optional
    assert str(err) == (
        f"orders.csv, line 1: missing required column(s) {missing}; header has {[head, 'order_reference']}"
    )


# ---- the rows' failures ----------------------------------------------------------------------------------------
LONG = "x" * 101
CUT = "x" * 80


@pytest.mark.parametrize(
    ("second_row", "message"),
    [
        (
            ROW2.replace("pending", LONG),
            "orders.csv, line 3, field 'status': field longer than extract.max_field_chars (101 > 100 characters)"
            f" (value: '{CUT}'…)",
        ),
        (
            ROW2.replace("pending", "pen\x00ding"),
            "orders.csv, line 3, field 'status': NUL byte in field (PostgreSQL text cannot hold it)"
            " (value: 'pen\\\\0ding')",
        ),
        (
            ROW2.replace("pending", '"pen\nding"'),
            "orders.csv, line 3, field 'status': line break inside a field: an unbalanced quote joined several lines"
            " into one record (value: 'pen\\nding')",
        ),
        (
            ROW2.replace("pending", '"pen\r\nding"'),
            "orders.csv, line 3, field 'status': line break inside a field: an unbalanced quote joined several lines"
            " into one record (value: 'pen\\r\\nding')",
        ),
        (ROW2 + ",extra", f"orders.csv, line 3: expected 8 fields, found 9 (value: '{ROW2},extra')"),
        (
            '"ORD-3,bob,1,1,1,2026-10-01,x,y\n' + ROW,
            "orders.csv: unterminated quoted field (a quote opens and the file ends before it closes)"
            f" (value: '\"ORD-3,bob,1,1,1,2026-10-01,x,y\\n{ROW}')",
        ),
    ],
)
def test_a_damaged_row_fails_the_file_naming_line_field_and_value(
    tmp_path: Path, second_row: str, message: str
) -> None:
    err = _failure(tmp_path, _lines(HEADER, ROW, second_row), max_field_chars=100)
    assert str(err) == message
    assert not list((tmp_path / "run" / "extract" / "orders").glob("part-*"))  # never half-read


def test_a_field_exactly_at_max_field_chars_is_staged(tmp_path: Path) -> None:
    m = _extract(tmp_path, _lines(HEADER, ROW, ROW2.replace("pending", "x" * 100)), max_field_chars=100)
    assert [r["status"] for r in _rows(m)] == ["shipped", "x" * 100]


@pytest.mark.parametrize(("limit", "fails"), [(134, False), (133, True)])
def test_a_file_over_max_file_bytes_is_refused_before_reading(tmp_path: Path, limit: int, fails: bool) -> None:
    data = _lines(HEADER, "ORD-1,ann,1,2,9.99,2026-10-01,ship,pay")
    assert len(data) == 134
    if fails:
        err = _failure(tmp_path, data, max_file_bytes=limit)
        assert str(err) == "orders.csv: file is 134 bytes, larger than extract.max_file_mb (133 bytes)"
    else:
        assert _extract(tmp_path, data, max_file_bytes=limit).rows_read == 1


# ---- inputs without records ------------------------------------------------------------------------------------
def _no_customers(out: Path, sha256: str | None, detail: dict[str, Any]) -> dict[str, Any]:
    """The manifest of customers without records: no parts, 0 rows, staged under `out`."""
    return {
        "source": "customers",
        "file": "customers.csv",
        "staged_dir": str(out),
        "parts": [],
        "rows_read": 0,
        "sha256": sha256,
        "detail": detail,
    }


def test_a_missing_optional_input_is_an_empty_manifest_and_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    with caplog.at_level(logging.INFO, logger="include.extract"):
        m = DataExtractor(settings, tmp_path / "run").extract_csv("customers")
    out = tmp_path / "run" / "extract" / "customers"
    assert m.to_dict() == _no_customers(out, None, {})
    assert out.is_dir() and not list(out.iterdir())
    path = tmp_path / "raw" / "customers.csv"
    assert caplog.messages == [f"optional input for 'customers' not present ({path}); nothing to extract"]


def test_a_missing_required_input_names_source_and_path(tmp_path: Path) -> None:
    with pytest.raises(MissingInputError) as err:
        DataExtractor(_settings(tmp_path), tmp_path / "run").extract_csv("orders")
    assert str(err.value) == f"required input for 'orders' not found: {tmp_path / 'raw' / 'orders.csv'}"


def test_an_empty_required_file_fails_even_when_header_only_is_allowed(tmp_path: Path) -> None:
    err = _failure(tmp_path, b"", orders={"allow_header_only": True})
    assert str(err) == "orders.csv: required input has no records (0 bytes)"


def test_a_header_only_optional_input_is_reported_with_its_dialect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _lines("email;country")
    with caplog.at_level(logging.INFO, logger="include.extract"):
        m = _extract(tmp_path, data, source="customers")
    out = tmp_path / "run" / "extract" / "customers"
    detail = {"encoding": "utf-8", "delimiter": ";", "empty": "header only"}
    assert m.to_dict() == _no_customers(out, hashlib.sha256(data).hexdigest(), detail)
    assert caplog.messages == [
        "input for 'customers' (customers.csv) has no records (header only): nothing to load for this source"
    ]
    assert not list(out.iterdir())


# ---- one landing file, a tag -----------------------------------------------------------------------------------
def test_an_extractor_of_one_landing_file_reads_it_and_stages_under_its_tag(tmp_path: Path) -> None:
    data = _lines(HEADER, ROW)
    landed = _write(tmp_path, data, "orders_2026-10-01.csv")  # the configured orders.csv does not exist
    m = DataExtractor(_settings(tmp_path), tmp_path / "run", file=landed, tag="t1").extract_csv("orders")
    out = tmp_path / "run" / "extract" / "orders" / "t1"
    assert (m.file, m.staged_dir, m.parts, m.rows_read) == (
        "orders_2026-10-01.csv",
        str(out),
        (str(out / "part-00000.parquet"),),
        1,
    )
    assert m.sha256 == hashlib.sha256(data).hexdigest()


# ---- mixed encodings -------------------------------------------------------------------------------------------
def test_a_quarantined_mixed_file_marks_only_its_bad_lines_and_logs_the_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _lines(HEADER, ROW.replace("shipped", "café")) + ROW2.replace("pending", "caf\xe9").encode("cp1252") + b"\n"
    data += _lines(ROW.replace("ORD-1", "ORD-4"))
    with caplog.at_level(logging.INFO, logger="include.extract"):
        m = _extract(tmp_path, data, on_mixed_encoding="quarantine")
    marks = [(r["_line"], r["status"], r["_reject_reason"], r["_reject_field"]) for r in _rows(m)]
    assert marks == [
        (2, "café", None, None),
        (3, "caf\ufffd", "invalid_encoding", "_line"),
        (4, "shipped", None, None),
    ]
    assert [r["_reject_detail"] for r in _rows(m)][::2] == [None, None]
    assert caplog.messages == [
        "orders.csv mixes encodings: quarantining 1 line(s) with bytes that are not UTF-8",
        "extracted orders: 3 rows from orders.csv (encoding utf-8, delimiter ',') into 1 part(s)",
    ]
    assert (m.file, m.sha256) == ("orders.csv", hashlib.sha256(data).hexdigest())
    assert sorted(p.name for p in Path(m.staged_dir).iterdir()) == ["part-00000.parquet"]  # the UTF-8 copy is gone


def test_parts_of_a_mixed_file_share_one_schema_even_without_bad_lines(tmp_path: Path) -> None:
    # ~1.2 MiB: Arrow reads 1 MiB blocks at least, and a block larger than chunk_size rows is a part by itself.
    good = "ORD-{:06d},ann,1,2,9.99,2026-10-01,café,paypal-paypal-paypal-pa\n"
    n = 20_000
    data = (HEADER + "\n").encode() + "".join(good.format(i) for i in range(n)).encode()
    data += b"ORD-X,ann,1,2,9.99,2026-10-01,caf\xe9,card\n"
    m = _extract(tmp_path, data, on_mixed_encoding="quarantine", chunk_size=1000)
    assert len(m.parts) == 2 and m.rows_read == n + 1
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in m.parts]
    assert sizes[0] > 1000 and sum(sizes) == n + 1
    schemas = {pq.read_schema(p).remove_metadata() for p in m.parts}
    assert len(schemas) == 1
    assert [f.type for f in next(iter(schemas))][-3:] == [pa.string()] * 3
    last = pq.read_table(m.parts[-1]).to_pylist()[-1]
    assert (last["_line"], last["_reject_reason"]) == (n + 2, "invalid_encoding")


def test_blank_lines_filling_whole_read_blocks_make_no_empty_part(tmp_path: Path) -> None:
    # Arrow reads 1 MiB blocks (chunk_size 1000 asks for less); a block of nothing but blank lines comes back as a
    # batch of 0 rows, which is skipped. payment_method is absent from the header: it is added as empty text in every part.
    header = ",".join(ORDER_COLUMNS[:-1])
    row = "ORD-{:06d},ann,1,2,9.99,2026-10-01,shipped-shipped-shipped-ship\n"  # 64 bytes
    n = 20_000
    first = "".join(row.format(i) for i in range(n))
    second = "".join(row.format(i) for i in range(n, 2 * n))
    data = (header + "\n" + first + "\n" * (3 * MiB) + second).encode()
    m = _extract(tmp_path, data, chunk_size=1000)
    schemas = {pq.read_schema(p).remove_metadata() for p in m.parts}
    assert schemas == {pa.schema([*((c, pa.string()) for c in ORDER_COLUMNS), (LINE_COLUMN, pa.int64())])}
    assert 0 not in [pq.ParquetFile(p).metadata.num_rows for p in m.parts]  # the blank blocks make no empty part
    rows = _rows(m)
    assert m.rows_read == len(rows) == 2 * n
    assert [r["_line"] for r in rows] == list(range(2, 2 * n + 2))  # blank lines are not counted
    assert {r["payment_method"] for r in rows} == {""}


# ---- read blocks -----------------------------------------------------------------------------------------------
SHORT = "ORD-{:06d},ann,1,2,9.99,2026-10-01,shipped,paypal-paypal-paypal\n"  # 64 bytes


def _long_record_file(before: int, length: int) -> bytes:
    """`before` bytes of 64-byte rows (the mean line the block size is computed from), one long record, one row."""
    rows = "".join(SHORT.format(i) for i in range(before // 64))
    return (HEADER + "\n" + rows + f"ORD-L,ann,1,2,9.99,2026-10-01,{'s' * length},p\n" + SHORT.format(0)).encode()


BEFORE = MiB + MiB // 10
LONG_RECORD = int(2.8 * MiB)  # from 1.1 to 3.9 MiB: covers the block 2–3 MiB, not the block 2–4 MiB


def test_read_blocks_grow_with_chunk_size_so_a_long_record_fits(tmp_path: Path) -> None:
    # 262,144 rows × 64 bytes / 8 = 2 MiB blocks; Arrow fails only on a record that covers a whole block.
    m = _extract(tmp_path, _long_record_file(BEFORE, LONG_RECORD), chunk_size=262_144, max_field_chars=4 * MiB)
    rows = _rows(m)
    assert m.rows_read == len(rows) == BEFORE // 64 + 2
    assert (rows[-2]["order_reference"], len(rows[-2]["status"]), rows[-2]["_line"]) == ("ORD-L", LONG_RECORD, 18_024)


@pytest.mark.parametrize(
    ("before", "length", "chunk_size"),
    [
        # chunk_size 1000: blocks are 1 MiB (never smaller); the record covers the block 2–3 MiB
        (BEFORE, LONG_RECORD, 1000),
        # chunk_size 2.5M would ask for 20 MiB blocks: capped at 8 MiB, the record (7.9 to 16.1 MiB) covers 8–16 MiB
        (int(7.9 * MiB), int(8.2 * MiB), 2_500_000),
    ],
)
def test_a_record_covering_a_whole_read_block_cannot_be_parsed(
    tmp_path: Path, before: int, length: int, chunk_size: int
) -> None:
    data = _long_record_file(before, length)
    err = _failure(tmp_path, data, chunk_size=chunk_size, max_field_chars=9 * MiB)
    assert str(err) == (
        "orders.csv: CSV cannot be parsed: straddling object straddles two block boundaries (try to increase block size?)"
    )
    assert (err.file, err.line, err.field, err.value) == ("orders.csv", None, None, None)


def test_a_record_covering_the_whole_first_read_block_is_named_not_raised_raw(tmp_path: Path) -> None:
    # Arrow parses the first block when the reader opens: its damage must be an InputFileError as later blocks' is.
    data = (HEADER + "\n" + f"ORD-L,ann,1,2,9.99,2026-10-01,{'s' * LONG_RECORD},p\n" + SHORT.format(0)).encode()
    err = _failure(tmp_path, data, chunk_size=1, max_field_chars=4 * MiB)
    assert str(err) == (
        "orders.csv: CSV cannot be parsed: straddling object straddles two block boundaries (try to increase block size?)"
    )


def test_an_oversize_field_of_a_mib_without_separators_is_named_promptly(tmp_path: Path) -> None:
    # The value is redacted before it is cut to 80 characters: redaction must stay linear in the value's length
    # (it once tried every offset of a run of address characters: minutes for this field).
    err = _failure(tmp_path, _lines(HEADER, f"ORD-1,ann,1,2,9.99,2026-10-01,{'s' * MiB},p"), max_field_chars=MiB - 1)
    assert str(err) == (
        f"orders.csv, line 2, field 'status': field longer than extract.max_field_chars ({MiB} > {MiB - 1}"
        f" characters) (value: '{'s' * 80}'…)"
    )


def test_small_chunks_still_read_1_mib_blocks(tmp_path: Path) -> None:
    lines = [SHORT.format(i).rstrip("\n") for i in range(50)]
    m = _extract(tmp_path, _lines(HEADER, *lines), chunk_size=1000)
    assert m.parts == (str(tmp_path / "run" / "extract" / "orders" / "part-00000.parquet"),)
    assert [r["_line"] for r in _rows(m)] == list(range(2, 52))


def _batches(*sizes: int) -> list[pa.RecordBatch]:
    return [pa.record_batch({"a": list(range(n))}) for n in sizes]


@pytest.mark.parametrize(
    ("sizes", "parts"),
    [
        ((2, 2, 1, 3), [[2, 2], [1, 3]]),  # exactly chunk_size rows fill a part
        ((3, 1, 1, 4, 4), [[3, 1], [1], [4], [4]]),
        ((5, 1), [[5], [1]]),  # one batch over chunk_size is a part by itself
        ((1, 1, 1), [[1, 1, 1]]),
        ((), []),
    ],
)
def test_batches_are_grouped_into_parts_of_at_most_chunk_size_rows(
    tmp_path: Path, sizes: tuple[int, ...], parts: list[list[int]]
) -> None:
    ex = DataExtractor(_settings(tmp_path, chunk_size=4), tmp_path / "run")
    got = [[b.num_rows for b in part] for part in ex._chunks(iter(_batches(*sizes)))]
    assert got == parts


@pytest.mark.parametrize(
    ("data", "mean"),
    [
        (b"", 16),  # no lines: the floor
        (b"abc\n" * 10, 16),  # short lines: the floor
        (b"a" * 16 + b"\n", 17),
        (b"a" * 99 + b"\n", 100),
        (b"a" * 99 + b"\n" + b"b" * 50, 150),  # one newline: all bytes over one line
        (b"a" * 500, 500),  # no newline at all
        (b"a" * 31 + b"\n", 32),
    ],
)
def test_the_mean_line_length_sizes_read_blocks(tmp_path: Path, data: bytes, mean: int) -> None:
    assert _average_line_bytes(_write(tmp_path, data, "f.csv")) == mean


def test_the_mean_line_length_is_taken_over_the_first_mib_only(tmp_path: Path) -> None:
    data = (b"a" * 31 + b"\n") * (MiB // 32) + (b"b" * 127 + b"\n") * (MiB // 64)
    assert _average_line_bytes(_write(tmp_path, data, "f.csv")) == 32


# ---- delimiter and encoding detection --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "delimiter"),
    [
        ("email", ","),  # a tie keeps the first delimiter
        ("nothing,we;know", ","),
        ("email;x", ";"),  # one hit is enough to beat none
        ("email|country;first_name|x", "|"),
        ("email\tcountry\tfirst,name", "\t"),
    ],
)
def test_the_delimiter_splits_out_the_most_expected_names(header: str, delimiter: str) -> None:
    assert detect_delimiter(header, CUSTOMER_COLUMNS) == delimiter


def test_detect_encoding_defaults_to_auto_and_honours_a_declared_codec(tmp_path: Path) -> None:
    assert detect_encoding(_write(tmp_path, b"caf\xe9\n", "a.json")) == "cp1252"
    assert detect_encoding(_write(tmp_path, b"plain\n", "b.json"), "latin-1") == "latin-1"


def test_detect_encoding_names_file_and_line_of_a_mixed_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "caf\u00e9\n".encode() + b"x\ncaf\xe9\n", "s.json")
    with pytest.raises(InputFileError) as err:
        detect_encoding(path)
    assert (err.value.file, err.value.line) == ("s.json", 3)
    assert str(err.value) == (
        "s.json, line 3: mixed encoding: valid UTF-8 multi-byte characters (first at line 1, byte offset 3 (0xC3))"
        " and a byte that is not UTF-8 at line 3, byte offset 11 (0xE9); refusing to guess (fix the file, declare"
        " the source's encoding, or for a CSV file set transform.on_mixed_encoding: quarantine)"
    )


def test_a_declared_cp1252_file_with_an_undefined_byte_after_the_first_mib_is_refused(tmp_path: Path) -> None:
    # UTF-8 "é" and cp1252 "é" in the first MiB (the scan's first block), 0x81 (undefined in cp1252) at 1.5 MiB.
    head = "café\n".encode() + b"caf\xe9\n"
    data = head + b"x" * (MiB + MiB // 2 - len(head)) + b"\x81\n"
    with pytest.raises(InputFileError) as err:
        detect_encoding(_write(tmp_path, data, "f.csv"), "cp1252")
    assert str(err.value) == "f.csv: declared encoding cp1252 but the file has a byte cp1252 leaves undefined"
