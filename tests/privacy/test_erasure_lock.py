"""An erasure runs under the load's advisory lock: it waits for a load in progress (real PostgreSQL)."""

from __future__ import annotations

import threading
import time

import psycopg

from include.load import LOAD_LOCK_KEY
from include.privacy import process_requests, submit_request
from tests.privacy.conftest import KEY, SUBJECT, Warehouse, tables_holding


def test_erasure_waits_for_a_load_holding_the_lock(warehouse: Warehouse) -> None:
    submit_request(warehouse.url, "public", SUBJECT, "erase")
    result: list[object] = []
    with psycopg.connect(warehouse.url, autocommit=True) as load:
        load.execute("SELECT pg_advisory_lock(%s)", (LOAD_LOCK_KEY,))  # a load is running
        worker = threading.Thread(
            target=lambda: result.append(
                process_requests(warehouse.url, "public", warehouse.dirs, KEY, run_id="lock", actor="pytest")
            )
        )
        worker.start()
        time.sleep(3)
        assert worker.is_alive() and result == []  # blocked on the lock
        with warehouse.connect() as conn:
            assert tables_holding(conn, SUBJECT)  # nothing erased meanwhile: no half-done erasure beside a load
            waiting = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()[0]
        assert waiting >= 1
        load.execute("SELECT pg_advisory_unlock(%s)", (LOAD_LOCK_KEY,))  # the load commits
        worker.join(timeout=120)
    assert not worker.is_alive()
    assert result and result[0][0]["status"] == "done"  # type: ignore[index]
    with warehouse.connect() as conn:
        assert tables_holding(conn, SUBJECT) == {}
