"""scripts/generate_data.py: deterministic, formats exactly as specified, defect counts that the files confirm.

The files are re-validated here with an independent, deliberately simple reader (csv/json from the
standard library), not with the generator's own code.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import itertools
import json
import re
import subprocess
import sys
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scripts.generate_data import (
    CUSTOMER_COLUMNS,
    ORDER_COLUMNS,
    PRODUCT_FIELDS,
    SESSION_FIELDS,
    GenerationError,
    generate,
    main,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "raw"
DATA_FILES = ("orders.csv", "user_sessions.json", "customers.csv", "products.json")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
STATUSES = {"pending", "processing", "shipped", "delivered", "cancelled", "refunded"}
PAYMENTS = {"credit_card", "paypal", "debit_card", "bank_transfer", "apple_pay"}
WINDOW = (datetime(2026, 8, 3), datetime(2026, 11, 1))
SMALL = {"orders": 300, "sessions": 200, "customers": 40, "products": 30}


# ------------------------------------------------------------------------------ independent re-validation


def _email_ok(value: str) -> bool:
    return bool(EMAIL_RE.match(value.strip().lower()))


def _read_csv(path: Path, delimiter: str = ",", encoding: str = "utf-8") -> tuple[list[str], list[list[str]]]:
    with path.open(encoding=encoding, newline="") as f:
        rows = list(csv.reader(f, delimiter=delimiter, strict=True))
    return rows[0], rows[1:]


def _read_sessions(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines()]


def _tally(reasons_per_row: list[list[str]], keys: list[str]) -> tuple[Counter[str], int]:
    """Count the (single) reason of each rejected row, and the duplicates among the valid rows."""
    defects: Counter[str] = Counter()
    seen: set[str] = set()
    dups = 0
    for reasons, key in zip(reasons_per_row, keys, strict=True):
        assert len(reasons) <= 1, f"row with several defects: {reasons}"
        if reasons:
            defects[reasons[0]] += 1
        elif key in seen:
            dups += 1
        else:
            seen.add(key)
    return defects, dups


def recount_orders(out: Path, product_ids: set[int], delimiter: str = ",", encoding: str = "utf-8") -> dict[str, Any]:
    header, rows = _read_csv(out / "orders.csv", delimiter, encoding)
    assert header == list(ORDER_COLUMNS)
    reasons_per_row, keys, valid_emails, first_status = [], [], set(), {}
    for row in rows:
        assert len(row) == len(ORDER_COLUMNS)
        ref, email, pid, qty, price, when, status, payment = row
        reasons = []
        if not ref.strip():
            reasons.append("missing_order_reference")
        if not _email_ok(email):
            reasons.append("invalid_email")
        if not qty.strip().isdigit():
            reasons.append("quantity_not_numeric")
        elif int(qty) == 0:
            reasons.append("quantity_zero")
        if float(price) < 0:
            reasons.append("negative_unit_price")
        try:
            ts = datetime.fromisoformat(when.strip()).replace(tzinfo=None)
            assert WINDOW[0] <= ts < WINDOW[1], when
        except ValueError:
            reasons.append("unparseable_order_date")
        if int(pid) not in product_ids:
            reasons.append("unknown_product_id")
        assert status.strip().lower() in STATUSES, status
        assert payment.strip().lower() in PAYMENTS, payment
        reasons_per_row.append(reasons)
        keys.append(ref)
        if not reasons:
            valid_emails.add(email.strip().lower())
            if ref in first_status:  # a repeat: same reference, another status
                assert status.strip().lower() != first_status[ref]
            first_status.setdefault(ref, status.strip().lower())
    defects, dups = _tally(reasons_per_row, keys)
    return {"rows": len(rows), "defects": defects, "duplicates": dups, "emails": valid_emails}


def recount_sessions(out: Path, product_ids: set[int]) -> dict[str, Any]:
    sessions = _read_sessions(out / "user_sessions.json")
    reasons_per_row, keys, valid_emails = [], [], set()
    for s in sessions:
        assert list(s) == list(SESSION_FIELDS)
        reasons = []
        if not s["session_id"].strip():
            reasons.append("missing_session_id")
        if not _email_ok(s["customer_email"]):
            reasons.append("invalid_email")
        start, end = datetime.fromisoformat(s["session_start"]), datetime.fromisoformat(s["session_end"])
        assert WINDOW[0] <= start < WINDOW[1]
        if end < start:
            reasons.append("session_end_before_start")
        if s["pages_viewed"] < 0:
            reasons.append("negative_pages_viewed")
        assert s["conversion"] in (True, False, "true", "false", 1, 0)
        assert s["items_viewed"] is None or set(s["items_viewed"]) <= product_ids
        assert set(s["items_added_to_cart"]) <= product_ids
        if s["items_viewed"] is not None:
            assert s["items_added_to_cart"] == s["items_viewed"][: len(s["items_added_to_cart"])]
        assert s["device_type"] in ("desktop", "mobile", "tablet")
        ipaddress.ip_address(s["ip_address"])
        reasons_per_row.append(reasons)
        keys.append(s["session_id"])
        if not reasons:
            valid_emails.add(s["customer_email"].strip().lower())
    defects, dups = _tally(reasons_per_row, keys)
    return {"rows": len(sessions), "defects": defects, "duplicates": dups, "emails": valid_emails, "data": sessions}


def recount_customers(out: Path, delimiter: str = ",", encoding: str = "utf-8") -> dict[str, Any]:
    header, rows = _read_csv(out / "customers.csv", delimiter, encoding)
    assert header == list(CUSTOMER_COLUMNS)
    reasons_per_row, keys = [], []
    for email, _first, _last, country, signup in rows:
        assert re.fullmatch(r"[A-Z]{2}", country)
        assert date.fromisoformat(signup) < date(2026, 11, 1)
        reasons_per_row.append([] if _email_ok(email) else ["invalid_email"])
        keys.append(email.strip().lower())
    defects, dups = _tally(reasons_per_row, keys)
    emails = {k for k, r in zip(keys, reasons_per_row, strict=True) if not r}
    return {"rows": len(rows), "defects": defects, "duplicates": dups, "emails": emails}


def recount_products(out: Path) -> dict[str, Any]:
    products = json.loads((out / "products.json").read_text(encoding="utf-8"))
    reasons_per_row = []
    for p in products:
        assert list(p) == list(PRODUCT_FIELDS)
        assert list(p["rating"]) == ["rate", "count"]
        assert p["category"].strip().lower() in ("electronics", "jewelery", "men's clothing", "women's clothing")
        reasons = []
        if not p["title"].strip():
            reasons.append("missing_title")
        if p["price"] < 0:
            reasons.append("negative_price")
        reasons_per_row.append(reasons)
    defects, dups = _tally(reasons_per_row, [str(p["id"]) for p in products])
    valid_ids = {p["id"] for p, r in zip(products, reasons_per_row, strict=True) if not r}
    return {"rows": len(products), "defects": defects, "duplicates": dups, "valid_ids": valid_ids, "data": products}


def assert_counts_match(out: Path, result: dict[str, Any], delimiter: str = ",", encoding: str = "utf-8") -> None:
    products = recount_products(out)
    all_ids = {p["id"] for p in products["data"]}
    orders = recount_orders(out, all_ids, delimiter, encoding)
    sessions = recount_sessions(out, all_ids)
    customers = recount_customers(out, delimiter, encoding)
    for source, found in (
        ("orders", orders),
        ("user_sessions", sessions),
        ("customers", customers),
        ("products", products),
    ):
        reported = result[source]
        assert found["rows"] == reported["rows"], source
        assert found["duplicates"] == reported["duplicates"], source
        rejects = {k: v for k, v in reported["defects"].items() if not k.startswith("duplicate") and v}
        assert dict(found["defects"]) == rejects, source
        assert reported["rejected"] == sum(rejects.values())
        assert reported["valid"] == reported["rows"] - reported["rejected"] - reported["duplicates"]
    # Orders and sessions only reference valid products; the customers a correct load ends up with.
    assert not {int(r[2]) for r in _read_csv(out / "orders.csv", delimiter, encoding)[1]} & (
        all_ids - products["valid_ids"]
    )
    guests = (orders["emails"] | sessions["emails"]) - customers["emails"]
    assert result["expected"]["guest_customers"] == len(guests)
    assert result["expected"]["customers"] == len(customers["emails"]) + len(guests)


# ---------------------------------------------------------------------------------------------------- tests


def test_committed_sample_is_what_the_generator_produces(tmp_path: Path) -> None:
    result = generate(tmp_path)
    for name in (*DATA_FILES, "manifest.json"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), f"data/raw/{name} is stale"
    readme = (tmp_path / "README.md").read_text(encoding="utf-8").replace("--out DIR", "--out data/raw")
    assert readme == (SAMPLE / "README.md").read_text(encoding="utf-8")
    assert json.loads((SAMPLE / "manifest.json").read_text(encoding="utf-8")) == result


def test_sample_defects_match_files_and_stay_under_the_reject_guard() -> None:
    result = json.loads((SAMPLE / "manifest.json").read_text(encoding="utf-8"))
    assert_counts_match(SAMPLE, result)
    assert (result["orders"]["rows"], result["user_sessions"]["rows"]) == (500, 400)
    assert 2 <= result["orders"]["duplicates"] <= 3
    assert result["customers"]["defects"] == {"invalid_email": 1, "duplicate_email": 1}
    assert result["products"]["defects"]["missing_title"] == result["products"]["defects"]["negative_price"] == 1
    for source in ("orders", "user_sessions", "customers", "products"):
        assert 0.02 <= result[source]["reject_rate"] <= 0.05, source
    # Every kind the spec asks for is there at least once.
    assert all(result["orders"]["defects"].values())
    assert all(result["user_sessions"]["defects"].values())
    assert result["expected"]["guest_customers"] > 0


def test_sample_is_realistic() -> None:
    products = json.loads((SAMPLE / "products.json").read_text(encoding="utf-8"))
    prices = {p["id"]: p["price"] for p in products}
    assert min(v for v in prices.values() if v > 0) < 10 and max(prices.values()) > 500
    assert any(p["category"] != p["category"].strip().lower() for p in products)
    _, orders = _read_csv(SAMPLE / "orders.csv")
    assert re.fullmatch(r"ORD-\d{6}", orders[0][0])
    same_price = sum(1 for r in orders if r[2].isdigit() and float(r[4]) == prices.get(int(r[2])))
    assert same_price / len(orders) > 0.85
    assert any(r[6] != r[6].strip() for r in orders) and any(r[7] != r[7].strip().lower() for r in orders)
    assert sum(1 for r in orders if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", r[5])) / len(orders) > 0.9
    raw = (SAMPLE / "orders.csv").read_text(encoding="utf-8")
    assert '" Shipped "' in raw or '" Delivered "' in raw or '" Credit_Card "' in raw  # quoted where needed
    sessions = _read_sessions(SAMPLE / "user_sessions.json")
    assert {type(s["conversion"]) for s in sessions} == {bool, str, int}
    assert any(s["items_viewed"] is None for s in sessions)
    versions = Counter(ipaddress.ip_address(s["ip_address"]).version for s in sessions)
    assert versions[4] > versions[6] > 0
    _, customers = _read_csv(SAMPLE / "customers.csv")
    assert 30 <= len(customers) <= 60
    assert any(r[0] != r[0].strip() or r[0] != r[0].lower() for r in customers)


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", seed=7, **SMALL)
    b = generate(tmp_path / "b", seed=7, **SMALL)
    c = generate(tmp_path / "c", seed=8, **SMALL)
    assert a == b
    for name in (*DATA_FILES, "manifest.json", "README.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for name in DATA_FILES:
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes(), name
    assert c["orders"]["rows"] == a["orders"]["rows"]


def test_headers_and_fields_exactly_as_specified(tmp_path: Path) -> None:
    generate(tmp_path, **SMALL)
    assert (tmp_path / "orders.csv").read_text(encoding="utf-8").split("\n", 1)[0] == (
        "order_reference,customer_email,product_id,quantity,unit_price,order_date,status,payment_method"
    )
    assert (tmp_path / "customers.csv").read_text(encoding="utf-8").split("\n", 1)[0] == (
        "email,first_name,last_name,country,signup_date"
    )
    sessions = json.loads((tmp_path / "user_sessions.json").read_text(encoding="utf-8"))
    assert isinstance(sessions, list)
    assert all(
        list(s)
        == [
            "session_id",
            "customer_email",
            "session_start",
            "session_end",
            "pages_viewed",
            "items_viewed",
            "items_added_to_cart",
            "conversion",
            "device_type",
            "browser",
            "ip_address",
        ]
        for s in sessions
    )
    products = json.loads((tmp_path / "products.json").read_text(encoding="utf-8"))
    assert all(list(p) == ["id", "title", "price", "description", "category", "image", "rating"] for p in products)
    assert [p["id"] for p in products] == list(range(1, SMALL["products"] + 1))


def test_defect_counts_match_the_files(tmp_path: Path) -> None:
    result = generate(tmp_path, seed=3, **SMALL)
    assert_counts_match(tmp_path, result)
    assert result["orders"]["rejected"] > 0 and result["user_sessions"]["duplicates"] > 0


def test_no_defects(tmp_path: Path) -> None:
    result = generate(tmp_path, defects=False, **SMALL)
    assert_counts_match(tmp_path, result)
    for source in ("orders", "user_sessions", "customers", "products"):
        assert not any(result[source]["defects"].values()), source
        assert result[source]["valid"] == result[source]["rows"]


@pytest.mark.parametrize("delimiter", [";", "|", "\t"])
def test_delimiter(tmp_path: Path, delimiter: str) -> None:
    result = generate(tmp_path, delimiter=delimiter, **SMALL)
    for name, columns in (("orders.csv", ORDER_COLUMNS), ("customers.csv", CUSTOMER_COLUMNS)):
        assert (tmp_path / name).read_text(encoding="utf-8").split("\n", 1)[0] == delimiter.join(columns)
    assert_counts_match(tmp_path, result, delimiter=delimiter)


def test_encodings(tmp_path: Path) -> None:
    generate(tmp_path / "utf8", **SMALL)
    generate(tmp_path / "bom", encoding="utf-8-sig", **SMALL)
    latin = generate(tmp_path / "latin", encoding="latin-1", **SMALL)
    for name in ("orders.csv", "customers.csv"):
        utf8 = (tmp_path / "utf8" / name).read_bytes()
        bom = (tmp_path / "bom" / name).read_bytes()
        assert bom == b"\xef\xbb\xbf" + utf8 and bom.count(b"\xef\xbb\xbf") == 1
        assert (tmp_path / "latin" / name).read_bytes().decode("latin-1") == utf8.decode("utf-8")
    # Accented names are single latin-1 bytes, so the file is not valid UTF-8.
    customers = (tmp_path / "latin" / "customers.csv").read_bytes()
    assert any(b > 0x7F for b in customers)
    with pytest.raises(UnicodeDecodeError):
        customers.decode("utf-8")
    assert_counts_match(tmp_path / "latin", latin, encoding="latin-1")
    # JSON stays UTF-8 without a BOM whatever the CSV encoding.
    for name in ("user_sessions.json", "products.json"):
        assert (tmp_path / "latin" / name).read_bytes() == (tmp_path / "utf8" / name).read_bytes()


def test_crlf(tmp_path: Path) -> None:
    result = generate(tmp_path, crlf=True, **SMALL)
    for name in ("orders.csv", "customers.csv"):
        data = (tmp_path / name).read_bytes()
        assert data.endswith(b"\r\n") and data.count(b"\n") == data.count(b"\r\n") > 1
    assert b"\r" not in (tmp_path / "user_sessions.json").read_bytes()
    assert_counts_match(tmp_path, result)


def test_jsonl(tmp_path: Path) -> None:
    array = generate(tmp_path / "array", **SMALL)
    lines = generate(tmp_path / "lines", jsonl=True, **SMALL)
    text = (tmp_path / "lines" / "user_sessions.json").read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) == SMALL["sessions"] and all(isinstance(r, dict) for r in records)
    assert records == json.loads((tmp_path / "array" / "user_sessions.json").read_text(encoding="utf-8"))
    assert array["user_sessions"] == lines["user_sessions"]
    assert_counts_match(tmp_path / "lines", lines)


@pytest.mark.parametrize("jsonl", [False, True])
def test_chunked_writing_keeps_files_valid_and_counts_exact(tmp_path: Path, jsonl: bool) -> None:
    result = generate(tmp_path, orders=4_500, sessions=3_100, customers=300, products=60, chunk_rows=1_000, jsonl=jsonl)
    assert_counts_match(tmp_path, result)
    _, rows = _read_csv(tmp_path / "orders.csv")
    refs = [r[0] for r in rows if r[0]]
    assert len(set(refs)) == len(refs) - result["orders"]["duplicates"]
    # Dates ascend over the whole file (chunks cover consecutive slices of the window).
    dates = [r[5] for r in rows if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", r[5])]
    out_of_order = sum(1 for x, y in itertools.pairwise(dates) if y < x)
    assert out_of_order <= 2 * result["orders"]["duplicates"]
    assert datetime.fromisoformat(dates[-1]) - datetime.fromisoformat(dates[0]) > timedelta(days=80)


def test_large_mode_defaults(tmp_path: Path) -> None:
    result = generate(tmp_path, orders=2_000, sessions=1_000, large=True)
    assert result["options"]["jsonl"] is True
    assert (result["customers"]["rows"], result["products"]["rows"]) == (50_000, 1_000)
    first = (tmp_path / "user_sessions.json").read_text(encoding="utf-8").split("\n", 1)[0]
    assert json.loads(first)["session_id"]
    given = generate(
        tmp_path / "given", orders=2_000, sessions=1_000, customers=500, products=80, large=True, jsonl=False
    )
    assert (given["customers"]["rows"], given["products"]["rows"]) == (500, 80)
    assert (tmp_path / "given" / "user_sessions.json").read_text(encoding="utf-8").startswith("[")
    assert_counts_match(tmp_path / "given", given)


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="delimiter"):
        generate(tmp_path, delimiter='"', **SMALL)
    with pytest.raises(GenerationError, match="encoding"):
        generate(tmp_path, encoding="utf-16", **SMALL)
    with pytest.raises(GenerationError):
        generate(tmp_path, orders=-1)


def test_cli(tmp_path: Path) -> None:
    assert (
        main(
            [
                "--out",
                str(tmp_path / "a"),
                "--orders",
                "120",
                "--sessions",
                "90",
                "--customers",
                "20",
                "--products",
                "15",
                "--seed",
                "5",
                "--delimiter",
                "\\t",
                "--encoding",
                "utf-8-sig",
                "--crlf",
                "--jsonl",
                "--no-defects",
            ]
        )
        == 0
    )
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["options"] | {"chunk_rows": 0} == {
        "seed": 5,
        "reference_date": "2026-11-01",
        "window_days": 90,
        "defects": False,
        "large": False,
        "jsonl": True,
        "delimiter": "\t",
        "encoding": "utf-8-sig",
        "crlf": True,
        "chunk_rows": 0,
    }
    assert "--no-defects" in (tmp_path / "a" / "README.md").read_text(encoding="utf-8")
    # The module entry point, as documented.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.generate_data",
            "--out",
            str(tmp_path / "b"),
            "--orders",
            "60",
            "--sessions",
            "50",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "generated" in proc.stderr and proc.stdout == ""
    assert all((tmp_path / "b" / name).is_file() for name in DATA_FILES)
    bad = subprocess.run(
        [sys.executable, "-m", "scripts.generate_data", "--out", str(tmp_path / "c"), "--delimiter", "x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "delimiter" in bad.stderr


def test_csv_quoting_round_trips(tmp_path: Path) -> None:
    generate(tmp_path, customers=400, products=30, orders=300, sessions=50)
    raw = (tmp_path / "customers.csv").read_text(encoding="utf-8")
    _, rows = _read_csv(tmp_path / "customers.csv")
    assert any("," in r[2] for r in rows) and '"Smith, Jr."' in raw  # a delimiter inside a field is quoted
    assert all(len(r) == len(CUSTOMER_COLUMNS) for r in rows)
    assert io.StringIO(raw).readline().strip() == ",".join(CUSTOMER_COLUMNS)
