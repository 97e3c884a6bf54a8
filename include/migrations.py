"""Versioned schema migrations: numbered SQL files applied in order, each once, recorded with a checksum.

``include/migrations/NNNN_<name>.sql`` are applied by :func:`migrate` under an advisory lock, in ONE
transaction (an upgrade lands whole or not at all), and recorded in ``schema_migrations``. An applied
file whose content changed is an error that names it: a release fixes a schema with a new migration,
never by editing an old one. Migrations run as the warehouse owner role at start-up (``make run``,
``make airflow``, the warehouse-init container); the loader and reporting roles never run DDL.

Run by hand: ``python -m include.migrations [--url URL] [--schema S]`` (default: the configured connection).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from include.errors import NonRetryable

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "schema_migrations"
# Table/column COMMENTs, generated from the entity registry (include/entities.py): a repeatable step run
# after the numbered migrations whenever the live comments differ from the registry.
COMMENTS_FILE = "comments.sql"
# Serialises concurrent migrators of one warehouse (any constant; the same for every release).
MIGRATION_LOCK_KEY = 7_300_421_156
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError, NonRetryable):
    """The migrations on disk and the ones recorded in the database disagree, or one failed."""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    path: Path

    @property
    def file_name(self) -> str:
        return self.path.name

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        """sha256 of the file's bytes (the container init computes the same with sha256sum)."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in `directory`, in version order.

    Raises:
        MigrationError: a .sql file is misnamed or two files share a version.
    """
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        if path.name == COMMENTS_FILE:  # the repeatable step, not a numbered migration
            continue
        m = _FILE_NAME.match(path.name)
        if not m:
            raise MigrationError(f"migration file {path.name} is not named NNNN_<lower_case_name>.sql")
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"migrations {found[version].file_name} and {path.name} share version {version}")
        found[version] = Migration(version, m.group(2), path)
    return [found[v] for v in sorted(found)]


def _applied(conn: psycopg.Connection[Any], schema: str) -> dict[int, tuple[str, str]] | None:
    """{version: (name, checksum)} recorded in the database, or None when no migration was ever recorded."""
    row = conn.execute("SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))", (schema, VERSION_TABLE)).fetchone()
    if not row or row[0] is None:
        return None
    rows = conn.execute(
        sql.SQL("SELECT version, name, checksum FROM {}").format(sql.Identifier(schema, VERSION_TABLE))
    ).fetchall()
    return {int(v): (str(n), str(c)) for v, n, c in rows}


def _check(applied: dict[int, tuple[str, str]], migrations: list[Migration], schema: str) -> list[Migration]:
    """The pending migrations; raise if an applied one changed or is unknown to this release."""
    known = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(applied.items()):
        m = known.get(version)
        if m is None:
            raise MigrationError(
                f"schema {schema} is at migration {version:04d}_{name}, which this release does not have: "
                "deploy the release that added it (or a newer one)"
            )
        if m.checksum != checksum:
            raise MigrationError(
                f"migration {m.file_name} was changed after it was applied to schema {schema} "
                f"(recorded checksum {checksum[:12]}…, file now {m.checksum[:12]}…): restore the file and put "
                "the change in a new migration"
            )
    return [m for m in migrations if m.version not in applied]


def pending(conn: psycopg.Connection[Any], schema: str = "public", directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations not yet applied to `schema` (read-only; no lock, no DDL).

    Raises:
        MigrationError: an applied migration changed or is unknown to this release.
    """
    migrations = discover(directory)
    applied = _applied(conn, schema)
    return migrations if applied is None else _check(applied, migrations, schema)


def stale_comments(conn: psycopg.Connection[Any], schema: str = "public") -> list[str]:
    """The tables/columns whose live COMMENT differs from the entity registry (read-only)."""
    from include.entities import column_comments, table_comments

    tables, columns = table_comments(), column_comments()
    live_t = dict(
        conn.execute(
            "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = ANY(%s)",
            (schema, list(tables)),
        ).fetchall()
    )
    live_c = {
        (t, c): d
        for t, c, d in conn.execute(
            "SELECT c.relname, a.attname, col_description(c.oid, a.attnum) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid"
            " WHERE n.nspname = %s AND c.relname = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped",
            (schema, list(tables)),
        ).fetchall()
    }
    stale = [t for t, text in tables.items() if live_t.get(t) != text]
    stale += [f"{t}.{c}" for (t, c), text in columns.items() if live_c.get((t, c)) != text]
    return stale


def migrate(conn: psycopg.Connection[Any], schema: str = "public", directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations to `schema`; return the file names applied (empty when up to date).

    An up-to-date schema costs one read and takes no lock, so any role may call this. Otherwise the
    pending files run in one transaction behind an advisory lock (a concurrent migrator waits, then
    finds nothing left to do); on an autocommit connection that transaction is its own, otherwise it
    is committed or rolled back with the caller's.

    Raises:
        MigrationError: an applied migration changed, is unknown, or a migration failed (rolled back).
    """
    comments = directory / COMMENTS_FILE
    if not pending(conn, schema, directory) and not (comments.exists() and stale_comments(conn, schema)):
        return []
    applied_now: list[str] = []
    current = ""
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            path = sql.SQL("{}, public").format(sql.Identifier(schema)).as_string(conn)
            cur.execute("SELECT set_config('search_path', %s, true)", (path,))
            cur.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY, name text NOT NULL,"
                    " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(sql.Identifier(schema, VERSION_TABLE))
            )
            todo = pending(conn, schema, directory)  # again, under the lock: another migrator may have run
            for m in todo:
                current = m.file_name
                cur.execute(m.text.encode())  # several statements, no parameters
                cur.execute(
                    sql.SQL("INSERT INTO {} (version, name, checksum) VALUES (%s, %s, %s)").format(
                        sql.Identifier(schema, VERSION_TABLE)
                    ),
                    (m.version, m.name, m.checksum),
                )
                applied_now.append(m.file_name)
            if comments.exists() and stale_comments(conn, schema):
                current = COMMENTS_FILE
                cur.execute(comments.read_bytes())
                applied_now.append(COMMENTS_FILE)
    except psycopg.Error as err:
        where = f"migration {current}" if current else "preparing the migrations"
        raise MigrationError(
            f"{where} failed on schema {schema}: {type(err).__name__} [{err.sqlstate or '-'}]: "
            f"{(err.diag.message_primary or str(err)).splitlines()[0]}; rolled back, the schema is unchanged"
        ) from err
    if applied_now:
        log.info("schema %s migrated: %s", schema, ", ".join(applied_now))
    return applied_now


def main(argv: list[str] | None = None) -> int:
    """Migrate the configured warehouse (or --url) and print what was applied."""
    parser = argparse.ArgumentParser(description="Apply the warehouse schema migrations (run as the owner role).")
    parser.add_argument("--url", help="libpq URL/conninfo (default: the Airflow connection of database.conn_id)")
    parser.add_argument("--schema", help="schema (default: database.schema of config.yaml)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from include.config_loader import load_config
    from include.database import conninfo_from_connection, describe

    settings = load_config()
    conninfo = args.url or conninfo_from_connection(settings.conn_id)
    schema = args.schema or settings.schema
    with psycopg.connect(conninfo, autocommit=True) as conn:
        done = migrate(conn, schema)
    log.info("%s schema %s: %s", describe(conninfo), schema, ", ".join(done) if done else "already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
