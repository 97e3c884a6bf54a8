"""The incremental bench scenario at a tiny size: what each path loads and claims (a behaviour test, no timing)."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from include import local_postgres
from scripts import bench_incremental as bi

pytestmark = pytest.mark.slow

DAYS, ORDERS, SESSIONS = 3, 200, 150


def test_daily_files_split_the_generated_history_exactly(tmp_path: Path) -> None:
    expected = bi.generate_days(tmp_path, DAYS, ORDERS, SESSIONS, seed=3)
    days = tmp_path / "days"
    stamps = bi.day_names(DAYS)
    assert stamps[0] == "2026-10-01" and stamps[-1] == "2026-10-04"
    for d in stamps:
        orders = (days / f"orders_{d}.csv").read_text().splitlines()
        assert orders[0].startswith("order_reference,")
        assert len(orders) == ORDERS + 1
        assert len((days / f"user_sessions_{d}.jsonl").read_text().splitlines()) == SESSIONS
    assert expected["orders_rows"] == (DAYS + 1) * ORDERS
    assert expected["sessions_rows"] == (DAYS + 1) * SESSIONS
    # Order references never repeat across days: each day's duplicates stay inside its own file.
    refs_by_day = [
        {line.split(",", 1)[0] for line in (days / f"orders_{d}.csv").read_text().splitlines()[1:]} - {""}
        for d in stamps
    ]
    assert all(a.isdisjoint(b) for i, a in enumerate(refs_by_day) for b in refs_by_day[i + 1 :])


@pytest.mark.parametrize("archive", [False, True], ids=["files-stay", "archive"])
def test_new_day_claims_only_its_files_and_loads_what_it_loads_alone(
    pg_server: local_postgres.LocalServer, tmp_path: Path, archive: bool
) -> None:
    r = bi.run_scenario(
        pg_server,
        tmp_path,
        days=DAYS,
        orders_per_day=ORDERS,
        sessions_per_day=SESSIONS,
        seed=3,
        archive=archive,
        db_prefix=f"inc_{uuid.uuid4().hex[:8]}",
    )
    expected = r["expected"]
    reload, new, alone = r["reload"], r["new_day"], r["alone"]

    # reload: every history file claimed in one run, nothing skipped
    assert reload["claimed"] == {"products": 1, "customers": 1, "orders": DAYS, "user_sessions": DAYS}
    assert reload["skipped"] == 0
    assert reload["sources"]["orders"]["rows_read"] == DAYS * ORDERS
    assert reload["sources"]["user_sessions"]["rows_read"] == DAYS * SESSIONS

    # new day: exactly its two files; the history (and products, customers) skipped by the registry, or
    # already moved to the archive (landing.archive: true)
    assert new["claimed"] == {"orders": 1, "user_sessions": 1}
    assert new["skipped"] == (0 if archive else 2 * DAYS + 2)
    assert new["sources"]["orders"]["rows_read"] == ORDERS
    assert new["sources"]["user_sessions"]["rows_read"] == SESSIONS
    assert new["tables"]["ingested_files"] == 2 * DAYS + 4
    if archive:  # after the commit, every loaded file of the history warehouse moved to archive/<source>/<date>/
        assert len(list((tmp_path / "landing-history" / "archive" / "orders").rglob("orders_*.csv"))) == DAYS + 1
        assert not list((tmp_path / "landing-history").glob("orders_*.csv"))

    # the same day alone into an empty warehouse (parents loaded first) loads the same rows, all inserted
    assert alone["claimed"] == {"orders": 1, "user_sessions": 1}
    assert alone["skipped"] == (0 if archive else 2)
    for source in ("orders", "user_sessions"):
        n, a = new["sources"][source], alone["sources"][source]
        assert n["inserted"] == a["inserted"] == a["rows_loaded"] > 0
        assert n["updated"] == a["updated"] == n["stale"] == 0
    assert alone["tables"]["orders"] == alone["sources"]["orders"]["inserted"]

    # history + new day = everything the generator says is valid
    assert reload["tables"]["orders"] + new["sources"]["orders"]["inserted"] == expected["orders"]
    assert new["tables"]["orders"] == expected["orders"]
    assert new["tables"]["user_sessions"] == expected["user_sessions"]

    # the customer aggregates the loader maintained from each run's rows equal a full recompute
    assert new["aggregate_mismatches"] == alone["aggregate_mismatches"] == 0

    for k in ("reload", "new_day", "alone"):
        assert r[k]["peak_mb"] > 0 and "load_avg_1m" in r[k]
    lines = bi.report(r, DAYS, ORDERS, SESSIONS)
    assert any(line.startswith("new_day / alone:") for line in lines)
    assert any(line.startswith("new_day / reload:") for line in lines)


def test_reuse_history_measures_the_new_day_on_a_copy_of_the_kept_history(
    pg_server: local_postgres.LocalServer, tmp_path: Path
) -> None:
    prefix = f"inc_{uuid.uuid4().hex[:8]}"
    sizes = {"days": DAYS, "orders_per_day": ORDERS, "sessions_per_day": SESSIONS, "seed": 3, "db_prefix": prefix}
    first = bi.run_scenario(pg_server, tmp_path, snapshot=True, **sizes)
    again = bi.run_scenario(pg_server, tmp_path, reuse={"reload": first["reload"], "reload_from": "then"}, **sizes)
    assert again["reload"] == first["reload"] and again["reload_from"] == "then"
    # the copy holds the history only: the new day claims and inserts what it did after the real reload
    assert again["new_day"]["claimed"] == {"orders": 1, "user_sessions": 1}
    assert again["new_day"]["skipped"] == 2 * DAYS + 2
    for source in ("orders", "user_sessions"):
        assert again["new_day"]["sources"][source] == first["new_day"]["sources"][source]
    assert again["new_day"]["tables"] == first["new_day"]["tables"]
    assert again["new_day"]["aggregate_mismatches"] == 0
    assert any(
        line.startswith("reload figures reused from the run finished then")
        for line in bi.report(again, DAYS, ORDERS, SESSIONS)
    )


@pytest.mark.parametrize("target", [2_500, 300], ids=["grow", "cut"])
def test_grow_history_resizes_the_kept_history_and_keeps_the_aggregates_exact(
    pg_server: local_postgres.LocalServer, tmp_path: Path, target: int
) -> None:
    prefix = f"inc_{uuid.uuid4().hex[:8]}"
    sizes = {"days": DAYS, "orders_per_day": ORDERS, "sessions_per_day": SESSIONS, "seed": 3, "db_prefix": prefix}
    first = bi.run_scenario(pg_server, tmp_path, snapshot=True, **sizes)
    loaded = first["reload"]["tables"]["orders"]
    assert loaded < 2_500  # 3 x 200 generated, minus rejects and duplicates: the grow case really grows
    again = bi.run_scenario(pg_server, tmp_path, reuse={"reload": first["reload"]}, history_orders=target, **sizes)
    h = again["history"]
    assert h["orders_before"] == loaded and h["orders"] == target
    # grown: every added order is a marked copy (several whole copies, then a partial one); cut: none are
    assert h["synthetic_orders"] == max(target - loaded, 0)
    assert h["copies"] == (-(-(target - loaded) // loaded) if target > loaded else 0)
    assert h["sessions"] == first["reload"]["tables"]["user_sessions"]  # sessions stay as loaded
    assert h["aggregate_mismatches"] == 0
    # the new day claims and inserts what it did on the real history, on top of the resized one
    new = again["new_day"]
    assert new["claimed"] == {"orders": 1, "user_sessions": 1} and new["skipped"] == 2 * DAYS + 2
    assert new["sources"]["orders"] == first["new_day"]["sources"]["orders"]
    assert new["tables"]["orders"] == target + new["sources"]["orders"]["inserted"]
    assert new["aggregate_mismatches"] == 0
    url = pg_server.url(f"{prefix}_history")
    with psycopg.connect(url) as conn:
        keys, distinct, orphans, lineage = conn.execute(
            "SELECT count(*), count(DISTINCT order_reference),"
            " count(*) FILTER (WHERE customer_id NOT IN (SELECT customer_id FROM customers)),"
            " count(*) FILTER (WHERE src_file = 'synthetic-history' AND etl_run_id <> 'bench-grow-history')"
            " FROM orders"
        ).fetchone()
    assert keys == distinct and orphans == lineage == 0
    assert any(line.startswith("history resized in SQL") for line in bi.report(again, DAYS, ORDERS, SESSIONS))
