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
    assert shown["shared_buffers"] == ("65536", "8kB")  # 512 MB
    assert shown["max_wal_size"] == ("8192", "MB")
    assert shown["maintenance_work_mem"] == ("262144", "kB")
    assert shown["checkpoint_timeout"] == ("1800", "s")
