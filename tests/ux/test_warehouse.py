"""`make psql`, `make db-url`, `make reset-warehouse` on a real database (AIRFLOW_CONN_POSTGRES_DEFAULT, not the user's .local)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]


def _make(target: str, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIRFLOW_CONN_POSTGRES_DEFAULT": db_url}
    return subprocess.run(
        ["make", "-s", "--no-print-directory", target, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_make_psql_runs_a_command_with_the_servers_psql(fresh_db: str) -> None:
    proc = _make("psql", fresh_db, "ARGS=-tAc 'select 40 + 2'")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "42"
    proc = _make("psql", fresh_db, "ARGS=--version")
    assert proc.stdout.startswith("psql (PostgreSQL) 18."), proc.stdout


def test_make_db_url_answers(fresh_db: str) -> None:
    proc = _make("db-url", fresh_db)
    assert proc.returncode == 0, proc.stderr
    url = proc.stdout.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (
            psycopg.conninfo.conninfo_to_dict(fresh_db)["dbname"],
        )


def test_reset_warehouse_empties_data_and_keeps_privacy_tables(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "INSERT INTO customers (email, etl_run_id) VALUES ('a@b.co', 'r1');"
            "INSERT INTO rejected_records (etl_run_id, source, source_file, reason, raw_record)"
            " VALUES ('r1', 'orders', 'orders.csv', 'invalid_quantity', '{}');"
            "INSERT INTO etl_runs (etl_run_id, source, rows_read, rows_loaded, rows_rejected, rows_duplicate, started_at)"
            " VALUES ('r1', 'orders', 1, 0, 1, 0, now());"
            "INSERT INTO ingested_files (source, rel_path, sha256, etl_run_id, status)"
            " VALUES ('orders', 'orders.csv', 'x', 'r1', 'loaded');"
            "INSERT INTO privacy.privacy_suppressions (token) VALUES ('h');"
        )
        migrations = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    proc = _make("reset-warehouse", fresh_db)
    assert proc.returncode == 0, proc.stderr
    assert "make run" in proc.stdout and "kept: schema_migrations" in proc.stdout
    with psycopg.connect(fresh_db) as conn:
        count = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in (
                "customers",
                "rejected_records",
                "etl_runs",
                "ingested_files",
                "privacy.privacy_suppressions",
                "schema_migrations",
            )
        }
        emptied = [
            r[0]
            for r in conn.execute(
                "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE nspname = 'public' AND relkind = 'r' ORDER BY 1"
            )
        ]
    # the privacy schema (suppression list, audit) and the migration ledger are never emptied
    assert count == {
        "customers": 0,
        "rejected_records": 0,
        "etl_runs": 0,
        "ingested_files": 0,
        "privacy.privacy_suppressions": 1,
        "schema_migrations": migrations,
    }
    assert migrations >= 4
    listed = proc.stdout.splitlines()[0].split(": ", 1)[1].split(", ")
    assert sorted(listed) == sorted(t for t in emptied if t != "schema_migrations")
