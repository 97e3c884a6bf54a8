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


MB = 2**20


@pytest.mark.parametrize(
    ("memory_mb", "expected"),
    [
        (511, 128),  # a quarter (127.75) is under the floor
        (512, 128),  # exactly at the lower clamp
        (516, 129),  # one MB over it
        (16383, 4095),  # one MB under the upper clamp
        (16384, 4096),  # exactly at it
        (16388, 4096),  # over it: clamped
        (24 * 1024, 4096),
    ],
)
def test_shared_buffers_is_a_quarter_of_memory_within_its_clamp(memory_mb: int, expected: int) -> None:
    assert local_postgres.shared_buffers_mb(memory_mb * MB) == expected


def test_shared_buffers_without_a_known_memory_size_is_the_documented_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_postgres, "physical_memory_bytes", lambda: None)
    assert local_postgres.shared_buffers_mb() == local_postgres.SHARED_BUFFERS_UNKNOWN_MB == 512
