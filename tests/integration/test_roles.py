"""Least-privilege roles on a real server: the loader loads but has no DDL, reporting reads and sees all sessions."""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from include import local_postgres, pipeline
from include.config_loader import Settings
from include.database import DatabaseAccessDenied, classify_db_error, connect
from include.errors import NonRetryable
from include.migrations import COMMENTS_FILE, MIGRATIONS_DIR, discover, migrate
from include.roles import RoleNames, role_conninfo, setup_warehouse
from tests.conftest import new_database
from tests.integration.test_load import sample_settings

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"owner": "own-pw-1", "loader": "load-pw-1", "reporting": "rep-pw-1"}


@dataclasses.dataclass(frozen=True)
class Warehouse:
    superuser: str
    db: str
    names: RoleNames

    def as_role(self, which: str) -> str:
        return role_conninfo(self.superuser, self.db, getattr(self.names, which), PASSWORDS[which])


# Every numbered migration, then the registry's comments (include/migrations.py).
ALL_MIGRATIONS = [*(m.file_name for m in discover()), COMMENTS_FILE]


@pytest.fixture(scope="module")
def wh(pg_server: local_postgres.LocalServer) -> Warehouse:
    db_url = new_database(pg_server, "roles")
    db = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    tag = uuid.uuid4().hex[:6]
    names = RoleNames(f"own_{tag}", f"load_{tag}", f"rep_{tag}")
    applied = setup_warehouse(pg_server.url(), str(db), "public", PASSWORDS, names)
    assert applied == ALL_MIGRATIONS
    return Warehouse(pg_server.url(), str(db), names)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return sample_settings(tmp_path)


def test_the_owner_owns_every_table(wh: Warehouse) -> None:
    with psycopg.connect(wh.as_role("owner")) as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " AND relkind IN ('r', 'v')"
        ).fetchall()
    assert owners == [(wh.names.owner,)]


def test_the_loader_loads_but_cannot_create_or_drop_tables(wh: Warehouse, settings: Settings) -> None:
    loader = wh.as_role("loader")
    out = pipeline.run_all(settings, "run-roles", loader)
    assert out["sources"]["orders"]["rows_loaded"] == 4
    with psycopg.connect(loader, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (4,)
        for ddl in ("CREATE TABLE sneaky (id int)", "DROP TABLE orders", "ALTER TABLE orders ADD COLUMN x int"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
                conn.execute(ddl)
            assert err.value.sqlstate == "42501"
            denied = classify_db_error(err.value, "warehouse")
            assert isinstance(denied, NonRetryable)
            assert "permission denied at warehouse (SQLSTATE 42501)" in str(denied) and "not retried" in str(denied)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the reporting role's history
            conn.execute(
                "INSERT INTO monitoring_metrics (run_id, category, metric_name, status) VALUES ('r', 'c', 'm', 'ok')"
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM schema_migrations")


def test_the_reporting_role_reads_and_writes_only_its_history(wh: Warehouse) -> None:
    with psycopg.connect(wh.as_role("reporting"), autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM orders, etl_runs_effective").fetchone()
        conn.execute(
            "INSERT INTO data_quality_results (run_id, check_name, check_type, table_name, severity, status)"
            " VALUES ('q', 'c', 'row_count', 'orders', 'warn', 'passed')"
        )
        conn.execute(
            "INSERT INTO monitoring_metrics (run_id, category, metric_name, status) VALUES ('m', 'c', 'n', 'ok')"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE orders SET status = 'x'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO etl_runs (etl_run_id, source, rows_read, rows_loaded, rows_rejected, rows_duplicate, started_at) VALUES ('x', 'orders', 0, 0, 0, 0, now())"
            )


def test_reporting_sees_another_roles_idle_in_transaction_session(wh: Warehouse) -> None:
    with psycopg.connect(wh.as_role("loader"), application_name="stuck_loader") as stuck:
        stuck.execute("SELECT 1 FROM orders LIMIT 1")  # opens a transaction and leaves it idle
        with psycopg.connect(wh.as_role("reporting"), autocommit=True) as rep:
            rows = rep.execute(
                "SELECT usename, state, query FROM pg_stat_activity WHERE application_name = 'stuck_loader'"
            ).fetchall()
        stuck.rollback()
    # without pg_monitor, state and query of another role's session read NULL / '<insufficient privilege>'
    assert rows == [(wh.names.loader, "idle in transaction", "SELECT 1 FROM orders LIMIT 1")]


def test_a_table_added_by_a_later_migration_gets_the_same_grants(wh: Warehouse, tmp_path: Path) -> None:
    mig = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, mig)
    (mig / "9100_registry.sql").write_text("CREATE TABLE later_registry (id int PRIMARY KEY);\n")
    with psycopg.connect(wh.superuser, dbname=wh.db, autocommit=True) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(wh.names.owner)))
        assert migrate(conn, directory=mig) == ["9100_registry.sql"]
    with psycopg.connect(wh.as_role("loader"), autocommit=True) as conn:
        conn.execute("INSERT INTO later_registry VALUES (1)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE later_registry")
    with psycopg.connect(wh.as_role("reporting"), autocommit=True) as conn:
        assert conn.execute("SELECT id FROM later_registry").fetchall() == [(1,)]


def test_a_round1_warehouse_is_handed_to_the_owner_and_migrated(pg_server: local_postgres.LocalServer) -> None:
    url = new_database(pg_server, "roles_up")
    db = str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((ROOT / "tests" / "fixtures" / "init_db_round1.sql").read_bytes())
    names = RoleNames()
    assert setup_warehouse(pg_server.url(), db, "public", PASSWORDS, names) == ALL_MIGRATIONS
    with psycopg.connect(url) as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " AND relkind IN ('r', 'v')"
        ).fetchall()
    assert owners == [(names.owner,)]


def test_a_wrong_password_is_non_retryable_and_says_so(wh: Warehouse) -> None:
    bad = role_conninfo(wh.superuser, wh.db, wh.names.loader, "not-the-password")
    with pytest.raises(DatabaseAccessDenied) as err:
        connect(bad)
    assert isinstance(err.value, NonRetryable)
    message = str(err.value)
    assert message.startswith("authentication failed at 127.0.0.1:") and "not retried" in message
    assert "not-the-password" not in message


def test_the_container_init_creates_roles_and_migrates_like_python(pg_server: local_postgres.LocalServer) -> None:
    """scripts/container_init_warehouse.sh (psql only): same roles, same checksums, idempotent."""
    import os
    import subprocess

    db = f"cinit_{uuid.uuid4().hex[:6]}"
    tag = uuid.uuid4().hex[:6]
    env = {
        "PATH": os.environ["PATH"],
        "PGHOST": "127.0.0.1",
        "PGPORT": str(pg_server.port),
        "PGUSER": "postgres",
        "PGPASSWORD": pg_server.password,
        "WAREHOUSE_DB": db,
        "MIGRATIONS_DIR": str(MIGRATIONS_DIR),
        "ROLES_SQL": str(ROOT / "include" / "roles.sql"),
        "WAREHOUSE_OWNER_ROLE": f"cown_{tag}",
        "WAREHOUSE_LOADER_ROLE": f"cload_{tag}",
        "WAREHOUSE_REPORTING_ROLE": f"crep_{tag}",
        "WAREHOUSE_OWNER_PASSWORD": "o-pw",
        "WAREHOUSE_LOADER_PASSWORD": "l-pw",
        "WAREHOUSE_REPORTING_PASSWORD": "r-pw",
        "WAIT_SECONDS": "10",
    }
    script = str(ROOT / "scripts" / "container_init_warehouse.sh")
    outputs = []
    for _ in (1, 2):
        res = subprocess.run(["sh", script], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        outputs.append(res.stdout)
    assert "applied 0002_ledger.sql" in outputs[0] and "(0 migration(s) applied)" in outputs[1]
    with psycopg.connect(pg_server.url(db), autocommit=True) as conn:
        assert migrate(conn) == []  # Python agrees on every checksum
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " AND relkind IN ('r', 'v')"
        ).fetchall()
        assert owners == [(f"cown_{tag}",)]
        # The restore-check's scratch database, owned by the loader (the privacy DAGs' role, NOCREATEDB).
        assert conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (f"{db}_restore_check",)
        ).fetchall() == [(f"cload_{tag}",)]
    loader = pg_server.url_as(f"cload_{tag}", "l-pw", db)
    with psycopg.connect(loader, autocommit=True) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("CREATE TABLE nope (id int)")
    # an edited, applied migration stops the init and names the file
    with psycopg.connect(pg_server.url(db), autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 2")
    res = subprocess.run(["sh", script], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 1 and "migration 0002_ledger.sql was changed after it was applied" in res.stderr
