"""The privacy DAGs' work under the least-privilege roles of a real deployment (real PostgreSQL).

In docker-compose.prod.yml (and `make run`) the tasks connect as the LOADER role (privacy.conn_id null ->
database.conn_id): NOCREATEDB, no INSERT on monitoring_metrics (the reporting role's table), not the tables'
owner. Erasure, retention, backup and restore-check must still work there: the restore-check uses a scratch
database the set-up created for the loader, metrics go through the reporting connection, VACUUM works through
the MAINTAIN privilege (PostgreSQL 17+).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from include import local_postgres, pipeline, roles
from include.backup import BackupError, backup_and_check, restore_check
from include.config_loader import load_config
from include.privacy import Dirs, enforce_retention, privacy_config, process_requests, submit_request
from tests.conftest import new_database
from tests.privacy.conftest import BACKUP_KEY, KEY, SUBJECT, tables_holding, write_raw

NAMES = roles.RoleNames(owner="privtest_owner", loader="privtest_loader", reporting="privtest_reporting")
PASSWORDS = {"owner": "owner-pw-0123456789", "loader": "loader-pw-0123456789", "reporting": "report-pw-0123456789"}


@dataclass
class Deployed:
    superuser: str
    db: str
    loader: str
    reporting: str
    scratch: str


@pytest.fixture
def deployed(
    pg_server: local_postgres.LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployed]:
    url = new_database(pg_server, "privroles")
    db = str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])
    roles.setup_warehouse(url, db, passwords=PASSWORDS, names=NAMES)
    loader = roles.role_conninfo(url, db, NAMES.loader, PASSWORDS["loader"])
    reporting = roles.role_conninfo(url, db, NAMES.reporting, PASSWORDS["reporting"])
    raw = tmp_path / "raw"
    write_raw(raw)
    for var, value in {
        "ECOM_RAW_DATA_DIR": str(raw),
        "ECOM_STAGING_DIR": str(tmp_path / "staging"),
        "ECOM_REPORTS_DIR": str(tmp_path / "reports"),
        "ECOM_EXPORTS_DIR": str(tmp_path / "exports"),
        "ECOM_BACKUP_DIR": str(tmp_path / "backups"),
        "AIRFLOW_CONN_PRIVACY_KEY": json.dumps({"conn_type": "generic", "password": KEY.decode()}),
    }.items():
        monkeypatch.setenv(var, value)
    pipeline.run_all(load_config(), "run-1", loader)  # the ETL as the loader, as deployed
    yield Deployed(url, db, loader, reporting, f"{db}_restore_check"[:63])
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(f"{db}_restore_check"[:63]))
        )


def _metrics(d: Deployed, category: str) -> dict[str, str]:
    with psycopg.connect(d.superuser) as conn:
        return dict(
            conn.execute(
                "SELECT metric_name, status FROM monitoring_metrics WHERE category = %s", (category,)
            ).fetchall()
        )


def test_the_set_up_gives_the_loader_a_scratch_database_and_nothing_more(deployed: Deployed) -> None:
    with psycopg.connect(deployed.superuser) as conn:
        owner, createdb = conn.execute(
            "SELECT pg_get_userbyid(d.datdba), r.rolcreatedb FROM pg_database d, pg_roles r"
            " WHERE d.datname = %s AND r.rolname = %s",
            (deployed.scratch, NAMES.loader),
        ).fetchone()
    assert owner == NAMES.loader and createdb is False


def test_erasure_retention_backup_and_restore_check_as_the_loader(deployed: Deployed) -> None:
    settings = load_config()
    cfg = privacy_config(settings)
    dirs = Dirs.of(settings, cfg)
    submit_request(deployed.loader, "public", SUBJECT, "erase")
    [done] = process_requests(deployed.loader, "public", dirs, KEY, run_id="erase", actor="pytest")
    assert done["status"] == "done"
    with psycopg.connect(deployed.superuser) as conn:
        assert tables_holding(conn, SUBJECT) == {}
        # The erasure's VACUUM really ran as the loader (it is not the tables' owner): the dead row versions that
        # still held the address are gone, not left to autovacuum.
        vacuumed = conn.execute(
            "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'customers'"
        ).fetchone()
    assert vacuumed == (True,)

    counts = enforce_retention(
        deployed.loader,
        "public",
        cfg,
        dirs,
        staging_days=settings.staging_retention_days,
        run_id="ret",
        actor="pytest",
        metrics_conninfo=deployed.reporting,
    )
    assert "user_sessions" in counts
    assert set(_metrics(deployed, "retention").values()) == {"ok"}

    out = backup_and_check(deployed.loader, cfg, BACKUP_KEY, "maint", metrics_conninfo=deployed.reporting)
    assert out["tables"] > 5 and out["rows"] > 485
    assert _metrics(deployed, "backup")["backup.restore_check"] == "ok"
    # The scratch database is kept (the loader cannot create another) but emptied: no copy of the data stays.
    scratch = psycopg.conninfo.make_conninfo(deployed.superuser, dbname=deployed.scratch)
    with psycopg.connect(scratch) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
        ).fetchone() == (0,)


def test_without_the_scratch_database_restore_check_says_how_to_create_it(deployed: Deployed) -> None:
    settings = load_config()
    cfg = privacy_config(settings)
    with psycopg.connect(deployed.superuser, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(deployed.scratch)))
    with pytest.raises(BackupError) as caught:
        backup_and_check(deployed.loader, cfg, BACKUP_KEY, "maint", metrics_conninfo=deployed.reporting)
    message = str(caught.value)
    assert f"CREATE DATABASE {deployed.scratch} OWNER {NAMES.loader}" in message and "CREATEDB" in message
    # The failure itself is a metric (written through the reporting connection the loader lacks).
    assert _metrics(deployed, "backup") == {"backup.restore_check": "critical"}
    with pytest.raises(BackupError, match="does not exist"):
        restore_check(deployed.loader, cfg, BACKUP_KEY)
