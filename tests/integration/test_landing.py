"""The landing zone on a real PostgreSQL with real files: claiming, the registry, the version rule, archive, quarantine."""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from include import landing, pipeline
from include.config_loader import Settings
from include.errors import is_non_retryable
from include.extract import InputFileError
from include.load import LOAD_LOCK_KEY, LoadError
from tests.integration.test_load import ORDER_HEADER, TABLES, digest, query, sample_settings


def with_landing(settings: Settings, **kw: Any) -> Settings:
    return dataclasses.replace(settings, landing=settings.landing.model_copy(update=kw))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return sample_settings(tmp_path)


def write_orders(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(ORDER_HEADER)
        w.writerows(rows)


def order(ref: str, price: str = "9.99", status: str = "shipped", email: str = "ann@example.com") -> list[str]:
    return [ref, email, "1", "1", price, "2026-10-01T10:00:00", status, "paypal"]


def data_digest(url: str) -> dict[str, str]:
    d = digest(url)
    return {t: d[t] for t in TABLES}


def ledger(url: str, run_id: str) -> dict[str, tuple[Any, ...]]:
    rows = query(
        url,
        "SELECT source, status, files_claimed, files_loaded, files_skipped, rows_inserted, rows_updated, rows_stale,"
        " rows_unchanged FROM etl_runs WHERE etl_run_id = %s",
        run_id,
    )
    return {r[0]: r[1:] for r in rows}


def test_unfinished_files_are_never_claimed(settings: Settings, fresh_db: str) -> None:
    raw = settings.raw_data_dir
    for name in (".orders_2026-10-02.csv", "orders_2026-10-03.csv.part", "orders_2026-10-04.csv.tmp"):
        write_orders(raw / name, [order("X-1")])
    (raw / "_READY").write_text("")
    write_orders(raw / "orders_2026-10-05.csv", [order("X-5")])
    names = [p.name for p in landing.candidates(settings, "orders")]
    assert names == ["orders.csv", "orders_2026-10-05.csv"]  # name order; partial and hidden files left alone
    # A file younger than min_file_age_seconds may still be being written.
    old = time.time() - 120
    os.utime(raw / "orders.csv", (old, old))
    young = with_landing(settings, min_file_age_seconds=60)
    assert [p.name for p in landing.candidates(young, "orders")] == ["orders.csv"]


@pytest.mark.parametrize(("age", "claimable"), [(59, False), (60, True), (61, True)])
def test_min_file_age_at_its_limit(settings: Settings, age: int, claimable: bool) -> None:
    path = settings.raw_data_dir / "orders.csv"
    now = 1_800_000_000.0
    os.utime(path, (now - age, now - age))
    assert landing.is_claimable(path, with_landing(settings, min_file_age_seconds=60), now=now) is claimable


def test_identical_redrop_is_skipped_and_reported(settings: Settings, fresh_db: str) -> None:
    pipeline.run_all(settings, "run-1", fresh_db)
    before = data_digest(fresh_db)
    # The same export dropped again under another name: skipped, not loaded twice.
    (settings.raw_data_dir / "orders_2026-10-05.csv").write_bytes((settings.raw_data_dir / "orders.csv").read_bytes())
    out = pipeline.run_all(settings, "run-2", fresh_db)
    assert out["sources"] == {}
    reasons = {s["rel_path"]: s["reason"] for s in out["skipped"]}
    assert reasons["orders_2026-10-05.csv"] == "already loaded as orders.csv in run run-1"
    assert len(reasons) == 5  # the four sample files and the copy
    assert data_digest(fresh_db) == before
    assert ledger(fresh_db, "run-2")["orders"] == ("nothing_new", 0, 0, 2, 0, 0, 0, 0)
    assert query(fresh_db, "SELECT count(*) FROM ingested_files") == [(4,)]


def test_changed_file_under_a_known_name_is_reingested(settings: Settings, fresh_db: str) -> None:
    write_orders(settings.raw_data_dir / "orders.csv", [order("ORD-1"), order("ORD-2")])
    pipeline.run_all(settings, "run-1", fresh_db)
    write_orders(settings.raw_data_dir / "orders.csv", [order("ORD-1", status="delivered"), order("ORD-2")])
    out = pipeline.run_all(settings, "run-2", fresh_db)
    assert set(out["sources"]) == {"orders"}  # the other files are unchanged: skipped
    assert (out["sources"]["orders"]["updated"], out["sources"]["orders"]["unchanged"]) == (1, 1)
    rows = query(
        fresh_db,
        "SELECT o.status, o.src_file, o.src_line, f.etl_run_id FROM orders o JOIN ingested_files f ON f.file_id = o.src_file_id"
        " WHERE order_reference = 'ORD-1'",
    )
    assert rows == [("delivered", "orders.csv", 2, "run-2")]
    assert query(fresh_db, "SELECT count(*) FROM ingested_files WHERE rel_path = 'orders.csv'") == [(2,)]
    assert ledger(fresh_db, "run-2")["orders"][:6] == ("success", 1, 1, 0, 0, 1)


def test_the_later_file_wins_within_a_run_by_name_not_by_mtime(settings: Settings, fresh_db: str) -> None:
    raw = settings.raw_data_dir
    (raw / "orders.csv").unlink()
    write_orders(raw / "orders_2026-10-02.csv", [order("ORD-1", price="2.00", status="delivered")])
    write_orders(raw / "orders_2026-10-01.csv", [order("ORD-1", price="1.00"), order("ORD-2")])  # newer mtime
    out = pipeline.run_all(settings, "run-1", fresh_db)
    o = out["sources"]["orders"]
    assert (o["rows_read"], o["rows_loaded"], o["rows_duplicate"], o["inserted"]) == (3, 2, 1, 2)
    assert query(fresh_db, "SELECT unit_price::text, status, src_file FROM orders WHERE order_reference = 'ORD-1'") == [
        ("2.00", "delivered", "orders_2026-10-02.csv")
    ]
    per_file = query(
        fresh_db,
        "SELECT rel_path, rows_read, rows_loaded, rows_duplicate FROM ingested_files WHERE source = 'orders' ORDER BY 1",
    )
    assert per_file == [("orders_2026-10-01.csv", 2, 1, 1), ("orders_2026-10-02.csv", 1, 1, 0)]


def test_a_replayed_older_file_is_stale_never_an_update(settings: Settings, fresh_db: str) -> None:
    """Issue 12 finding 3: run A (old prices), run B (new prices), A's file again -> 0 updated, stale, same digest."""
    s = with_landing(settings, archive=True)
    raw = s.raw_data_dir
    (raw / "orders.csv").unlink()
    old = [order(f"ORD-{i}", price="1.00") for i in range(1, 21)]
    write_orders(raw / "orders_2026-10-01.csv", old)
    pipeline.run_all(s, "run-a", fresh_db)
    assert not (raw / "orders_2026-10-01.csv").exists()  # archived after the commit
    write_orders(raw / "orders_2026-10-02.csv", [order(f"ORD-{i}", price="2.00") for i in range(1, 21)])
    b = pipeline.run_all(s, "run-b", fresh_db)
    assert b["sources"]["orders"]["updated"] == 20
    after_b = data_digest(fresh_db)

    # A's file again: from the archive on request ...
    again = pipeline.run_all(s, "run-replay", fresh_db, reprocess=["orders_2026-10-01.csv"])
    o = again["sources"]["orders"]
    assert (o["inserted"], o["updated"], o["stale"]) == (0, 0, 20)
    assert data_digest(fresh_db) == after_b
    assert query(fresh_db, "SELECT DISTINCT unit_price::text FROM orders") == [("2.00",)]
    assert ledger(fresh_db, "run-replay")["orders"][:8] == ("success", 1, 1, 0, 0, 0, 20, 0)

    # ... or as a changed copy dropped under its old name (new content, but still the older name): stale too.
    write_orders(raw / "orders_2026-10-01.csv", [*old, order("ORD-99", price="1.00")])
    late = pipeline.run_all(s, "run-late", fresh_db)
    assert (late["sources"]["orders"]["inserted"], late["sources"]["orders"]["updated"]) == (1, 0)
    assert late["sources"]["orders"]["stale"] == 20
    assert query(fresh_db, "SELECT count(*) FROM orders WHERE unit_price = 1.00") == [(1,)]  # only the new ORD-99


def test_archive_happens_only_after_the_commit(settings: Settings, fresh_db: str) -> None:
    s = dataclasses.replace(with_landing(settings, archive=True), lock_timeout_seconds=1)
    with psycopg.connect(fresh_db, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOAD_LOCK_KEY,))  # another load holds the lock
        with pytest.raises(LoadError, match="rolled back"):
            pipeline.run_all(s, "run-1", fresh_db)
        holder.execute("SELECT pg_advisory_unlock(%s)", (LOAD_LOCK_KEY,))
    assert (s.raw_data_dir / "orders.csv").exists()  # not archived: nothing was committed
    assert query(fresh_db, "SELECT count(*) FROM ingested_files") == [(0,)]
    pipeline.run_all(s, "run-2", fresh_db)
    assert not (s.raw_data_dir / "orders.csv").exists()
    archived = query(fresh_db, "SELECT archived_to FROM ingested_files WHERE rel_path = 'orders.csv'")[0][0]
    assert archived.startswith("orders/") and (s.archive_dir / archived).exists()


def test_a_crash_between_commit_and_archive_converges(settings: Settings, fresh_db: str) -> None:
    s = with_landing(settings, archive=True)
    staging = pipeline.run_dir(s, "etl_ecommerce_pipeline", "run-1")
    claim = pipeline.claim(s, "run-1", fresh_db)
    extracted = [pipeline.extract_file(ref, s, staging) for ref in claim["claimed"]]
    products = pipeline.transform_products(extracted, s, staging, fresh_db)
    files = [pipeline.transform_file(f, products, s, staging, fresh_db) for f in extracted]
    pipeline.load_files(files, claim["skipped"], s, "run-1", conninfo=fresh_db)
    # ... the worker dies here: committed, not archived.
    committed = data_digest(fresh_db)
    assert (s.raw_data_dir / "orders.csv").exists()
    out = pipeline.run_all(s, "run-2", fresh_db)
    assert out["sources"] == {} and len(out["skipped"]) == 4
    assert data_digest(fresh_db) == committed
    assert sorted(p.name for p in s.raw_data_dir.iterdir() if p.is_file()) == []  # the claim archived them
    assert query(fresh_db, "SELECT count(*) FROM ingested_files WHERE archived_to IS NOT NULL") == [(4,)]


def test_a_broken_file_among_good_ones_loads_nothing(settings: Settings, fresh_db: str) -> None:
    raw = settings.raw_data_dir
    write_orders(raw / "orders_2026-10-01.csv", [order("ORD-10")])
    lines = (raw / "orders.csv").read_text().splitlines()
    (raw / "orders_2026-10-02.csv").write_text("\n".join([lines[0], lines[1] + ",surplus"]) + "\n")
    with pytest.raises(InputFileError, match=r"orders_2026-10-02\.csv"):
        pipeline.run_all(settings, "run-1", fresh_db)
    assert query(fresh_db, "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM ingested_files)") == [(0, 0)]

    # on_bad_file: quarantine -> the broken file is registered with its reason and moved; the others load.
    q = with_landing(settings, on_bad_file="quarantine")
    out = pipeline.run_all(q, "run-2", fresh_db)
    assert out["sources"]["orders"]["files"] == 2
    bad = query(fresh_db, "SELECT rel_path, status, reason FROM ingested_files WHERE status = 'quarantined'")
    assert len(bad) == 1 and bad[0][0] == "orders_2026-10-02.csv" and "expected 8 fields, found 9" in bad[0][2]
    assert (q.failed_dir / "orders" / "orders_2026-10-02.csv").exists()
    assert not (raw / "orders_2026-10-02.csv").exists()
    assert query(fresh_db, "SELECT count(*) FROM orders WHERE order_reference = 'ORD-10'") == [(1,)]


def test_a_dry_run_changes_nothing(settings: Settings, fresh_db: str) -> None:
    before = digest(fresh_db)
    staging = pipeline.run_dir(settings, "etl_ecommerce_pipeline", "dry")
    claim = pipeline.claim(settings, "dry", fresh_db, dry_run=True)
    extracted = [pipeline.extract_file(ref, settings, staging) for ref in claim["claimed"]]
    products = pipeline.transform_products(extracted, settings, staging, fresh_db)
    files = [pipeline.transform_file(f, products, settings, staging, fresh_db) for f in extracted]
    preview = pipeline.preview(files, claim["skipped"], settings, "dry")
    assert preview["dry_run"] and preview["sources"]["orders"]["rows_rejected"] == 1
    assert preview["sources"]["orders"]["top_reasons"] == {"unknown_product": 1}
    assert digest(fresh_db) == before
    assert query(fresh_db, "SELECT count(*) FROM ingested_files") == [(0,)]


# ------------------------------------------------------------------------------ reprocess by archive date
def _archive_two_days(s: Settings, fresh_db: str) -> None:
    """orders_2026-10-01.csv archived on 2026-10-03, orders_2026-10-02.csv on 2026-10-09 (after run-a loaded both)."""
    raw = s.raw_data_dir
    (raw / "orders.csv").unlink()
    write_orders(raw / "orders_2026-10-01.csv", [order(f"ORD-{i}") for i in range(1, 6)])
    write_orders(raw / "orders_2026-10-02.csv", [order(f"ORD-{i}") for i in range(6, 11)])
    pipeline.run_all(s, "run-a", fresh_db)
    with psycopg.connect(fresh_db) as conn:
        landing.archive_file(s, "orders", raw / "orders_2026-10-01.csv", conn, day="2026-10-03")
        landing.archive_file(s, "orders", raw / "orders_2026-10-02.csv", conn, day="2026-10-09")


def test_reprocess_a_date_range_reingests_the_files_archived_in_it(settings: Settings, fresh_db: str) -> None:
    _archive_two_days(settings, fresh_db)
    out = pipeline.run_all(settings, "run-replay", fresh_db, reprocess=["2026-10-01..2026-10-07"])
    o = out["sources"]["orders"]
    assert (o["files"], o["inserted"], o["updated"], o["stale"]) == (1, 0, 0, 0)  # same rows: unchanged
    assert ledger(fresh_db, "run-replay")["orders"][:3] == ("success", 1, 1)
    # the file archived on 2026-10-03 (in the range) was read again; the one archived on 2026-10-09 was not
    assert query(
        fresh_db, "SELECT source_file FROM etl_runs WHERE etl_run_id = 'run-replay' AND source = 'orders'"
    ) == [("orders_2026-10-01.csv",)]


@pytest.mark.parametrize(
    ("value", "selected"),
    [
        ("2026-10-03..2026-10-03", ["orders_2026-10-01.csv"]),  # one day, at the start/end of the range
        ("2026-10-01..2026-10-02", []),  # ends one day before the archive date
        ("2026-10-04..2026-10-08", []),  # strictly between the two archive dates
        ("2026-10-04..2026-10-09", ["orders_2026-10-02.csv"]),  # end inclusive
        ("2026-10-03..2026-10-09", ["orders_2026-10-01.csv", "orders_2026-10-02.csv"]),
        ("2026-10-10..2026-12-31", []),  # starts one day after
    ],
)
def test_archive_date_range_at_its_bounds(settings: Settings, fresh_db: str, value: str, selected: list[str]) -> None:
    _archive_two_days(settings, fresh_db)
    assert [p.name for p in landing.archived_matches(settings, "orders", [value])] == selected
    # the file names carry 2026-10-01/02: a range matches the archive folder, never the name
    assert landing.archived_matches(settings, "orders", ["2026-10-01..2026-10-02"]) == []


@pytest.mark.parametrize(
    "value",
    ["2026-10-07..2026-10-01", "2026-02-30..2026-03-01", "2026-10-01..", "..2026-10-01", "2026-10-1..2026-10-07"],
)
def test_an_invalid_date_range_fails_at_once_naming_the_value(settings: Settings, fresh_db: str, value: str) -> None:
    with pytest.raises(landing.InvalidParamError, match=rf"reprocess: invalid date range '{re.escape(value)}'"):
        pipeline.run_all(settings, "run-bad", fresh_db, reprocess=["orders_*.csv", value])
    assert query(fresh_db, "SELECT count(*) FROM ingested_files") == [(0,)]
    assert is_non_retryable(landing.InvalidParamError("x"))
