"""A loader stopped inside its transaction (SIGSTOP, a frozen VM) no longer blocks the next load forever."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from include import pipeline
from include.config_loader import Settings
from include.load import LOAD_LOCK_KEY, DataLoader
from tests.integration.test_load import query, sample_settings

IDLE_TIMEOUT = 3  # seconds; the default (database.idle_in_transaction_timeout_seconds) is 120


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return sample_settings(tmp_path)


def test_a_stopped_loader_is_cut_off_and_the_next_load_proceeds(
    settings: Settings, fresh_db: str, tmp_path: Path
) -> None:
    pipeline.run_all(settings, "run-1", fresh_db)
    staging = pipeline.run_dir(settings, "etl_ecommerce_pipeline", "run-2")
    manifests = {s: pipeline.extract(s, settings, staging) for s in pipeline.EXTRACTORS}
    manifest_file = tmp_path / "transformed.json"
    manifest_file.write_text(json.dumps(pipeline.transform(manifests, settings, staging, fresh_db)))
    script = (
        "import json, sys\nfrom include.load import DataLoader\n"
        f"DataLoader(sys.argv[1], idle_in_transaction_timeout_seconds={IDLE_TIMEOUT})"
        ".load('run-2', json.load(open(sys.argv[2]))['sources'])\n"
    )
    with psycopg.connect(fresh_db) as blocker:
        # Hold a row the load must update: it stops inside its transaction, holding the load lock.
        blocker.execute("SELECT 1 FROM orders WHERE order_reference = 'ORD-1' FOR UPDATE")
        proc = subprocess.Popen([sys.executable, "-c", script, fresh_db, str(manifest_file)], env=os.environ.copy())
        try:
            deadline = time.monotonic() + 60
            waiting: list[tuple[int]] = []
            while time.monotonic() < deadline and not waiting:
                waiting = query(
                    fresh_db,
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'ecommerce_etl' AND wait_event_type = 'Lock'",
                )
                time.sleep(0.1)
            assert waiting, "the load never reached the orders upsert"
            proc.send_signal(signal.SIGSTOP)  # frozen mid-transaction; its socket stays open
            blocker.rollback()  # its statement completes server-side; the backend then sits idle in transaction
            t0 = time.monotonic()
            out = DataLoader(fresh_db, lock_timeout_seconds=IDLE_TIMEOUT + 30).load(
                "run-3", json.loads(manifest_file.read_text())["sources"]
            )
            waited = time.monotonic() - t0
            assert out["counts"]["orders"]["loaded"] == 4
            assert waited < IDLE_TIMEOUT + 30, waited
            assert waited >= IDLE_TIMEOUT - 1, f"the next load did not wait for the stalled one ({waited:.1f}s)"
            assert query(fresh_db, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", waiting[0][0]) == [(0,)]
            assert query(fresh_db, "SELECT DISTINCT etl_run_id FROM etl_runs ORDER BY 1") == [("run-1",), ("run-3",)]
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    assert query(
        fresh_db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s", LOAD_LOCK_KEY % 2**32
    ) == [(0,)]


def test_the_loader_session_carries_its_timeouts(fresh_db: str) -> None:
    loader = DataLoader(
        fresh_db, lock_timeout_seconds=7, statement_timeout_seconds=11, idle_in_transaction_timeout_seconds=13
    )
    with loader._connect() as conn:
        got = conn.execute(
            "SELECT current_setting('lock_timeout'), current_setting('statement_timeout'),"
            " current_setting('idle_in_transaction_session_timeout')"
        ).fetchone()
        client = conn.info.get_parameters()  # libpq socket options live on the client side
    assert got == ("7s", "11s", "13s")
    assert (client["keepalives"], client["keepalives_idle"], client["tcp_user_timeout"]) == ("1", "30", "60000")
