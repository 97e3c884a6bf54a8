"""Least-privilege warehouse roles: an owner that migrates, a loader without DDL, a reporting role.

The SQL lives in ``include/roles.sql`` so the warehouse-init container (psql only) applies exactly
the same grants. :func:`setup_warehouse` is the start-up step: roles, then the migrations run as the
owner (``SET ROLE``: the superuser needs no owner password), then the grants again so the tables a
migration just created get their per-table exceptions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

ROLES_SQL = Path(__file__).resolve().parent / "roles.sql"


@dataclass(frozen=True)
class RoleNames:
    """The three role names (cluster-wide in PostgreSQL: one set serves every warehouse database)."""

    owner: str = "ecom_owner"
    loader: str = "ecom_loader"
    reporting: str = "ecom_reporting"


def _conn(superuser_conninfo: str, db: str) -> psycopg.Connection[Any]:
    return psycopg.connect(superuser_conninfo, dbname=db, autocommit=True, connect_timeout=10)


def _apply(conn: psycopg.Connection[Any], schema: str, passwords: dict[str, str], names: RoleNames) -> None:
    settings = {
        "ecom.owner_role": names.owner,
        "ecom.loader_role": names.loader,
        "ecom.reporting_role": names.reporting,
        "ecom.schema": schema,
        "ecom.owner_password": passwords.get("owner", ""),
        "ecom.loader_password": passwords.get("loader", ""),
        "ecom.reporting_password": passwords.get("reporting", ""),
    }
    with conn.transaction():
        for key, value in settings.items():
            conn.execute("SELECT set_config(%s, %s, true)", (key, value))  # local: gone at commit
        conn.execute(ROLES_SQL.read_bytes())


def ensure_roles(
    superuser_conninfo: str,
    db: str,
    schema: str = "public",
    passwords: dict[str, str] | None = None,
    names: RoleNames | None = None,
) -> RoleNames:
    """Create/update the owner, loader and reporting roles and their grants on `db`.`schema` (idempotent).

    Args:
        passwords: {"owner"|"loader"|"reporting": password}; a missing one keeps the role's current password.
    """
    names = names or RoleNames()
    with _conn(superuser_conninfo, db) as conn:
        _apply(conn, schema, passwords or {}, names)
    log.info("warehouse roles ready on %s.%s: %s, %s, %s", db, schema, names.owner, names.loader, names.reporting)
    return names


def setup_warehouse(
    superuser_conninfo: str,
    db: str,
    schema: str = "public",
    passwords: dict[str, str] | None = None,
    names: RoleNames | None = None,
    *,
    scratch_database: str | None = None,
) -> list[str]:
    """Roles, migrations as the owner, grants: the start-up step of every deployment; returns migrations applied.

    Also the restore-check's scratch database (`scratch_database`, default ``<db>_restore_check``, the name
    include/backup.py uses), owned by the loader: the privacy DAGs run as the loader, which may not create
    databases (NOCREATEDB), and restore every backup into it to prove it.
    """
    from include.migrations import migrate

    names = names or RoleNames()
    with _conn(superuser_conninfo, db) as conn:
        _apply(conn, schema, passwords or {}, names)
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(names.owner)))
        applied = migrate(conn, schema)
        conn.execute("RESET ROLE")
        if applied:
            _apply(conn, schema, {}, names)  # per-table grants for the tables just created
        scratch = scratch_database or f"{db}_restore_check"[:63]
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (scratch,)).fetchone() is None:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(scratch), sql.Identifier(names.loader))
            )
    return applied


def role_conninfo(superuser_conninfo: str, db: str, role: str, password: str) -> str:
    """The superuser's conninfo with `role`'s credentials and database `db`."""
    params = psycopg.conninfo.conninfo_to_dict(superuser_conninfo)
    params.update(user=role, password=password, dbname=db)
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
