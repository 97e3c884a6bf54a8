"""The embedded server runs with the bulk-load settings (include/local_postgres.BULK_LOAD_SETTINGS)."""

from __future__ import annotations

import os

import psycopg
import pytest

from include import local_postgres


@pytest.mark.skipif(bool(os.environ.get("ECOM_TEST_POSTGRES_URL")), reason="an external server has its own settings")
def test_embedded_server_uses_bulk_load_settings(pg_server: local_postgres.LocalServer) -> None:
    with psycopg.connect(pg_server.url()) as conn:
        shown = {
            name: conn.execute("SELECT setting, unit FROM pg_settings WHERE name = %s", (name,)).fetchone()
            for name in ("shared_buffers", "max_wal_size", "maintenance_work_mem", "checkpoint_timeout")
        }
    # a quarter of this machine's memory, 128 MB to 4 GB (24 GiB here: 4 GB)
    assert shown["shared_buffers"] == (str(local_postgres.shared_buffers_mb() * 128), "8kB")
    assert 128 <= local_postgres.shared_buffers_mb() <= 4096
    assert shown["max_wal_size"] == ("8192", "MB")
    assert shown["maintenance_work_mem"] == ("262144", "kB")
    assert shown["checkpoint_timeout"] == ("1800", "s")
