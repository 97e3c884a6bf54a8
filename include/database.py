"""The target PostgreSQL: resolve it from an Airflow connection, connect, quote identifiers.

The pipeline never hard-codes where the warehouse is: it is the Airflow connection named by
``database.conn_id`` (``postgres_default``), so ``AIRFLOW_CONN_POSTGRES_DEFAULT`` (URI or JSON),
a secrets backend or ``airflow_settings.yaml`` all redirect every read and write.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from include.config_loader import PROJECT_ROOT

log = logging.getLogger(__name__)

SCHEMA_FILE = PROJECT_ROOT / "init_db.sql"
# Extras of an Airflow Postgres connection that are libpq parameters.
_LIBPQ_EXTRAS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
    "options",
    "target_session_attrs",
)


def conninfo_from_connection(conn_id: str) -> str:
    """libpq conninfo for the Airflow connection `conn_id`.

    Raises:
        LookupError: the connection is not defined anywhere Airflow looks.
    """
    from airflow.sdk import Connection  # Airflow only where it is needed
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException as err:
        raise LookupError(
            f"Airflow connection '{conn_id}' is not defined: set AIRFLOW_CONN_{conn_id.upper()} "
            "or add it in airflow_settings.yaml / the UI"
        ) from err
    params: dict[str, Any] = {
        "host": conn.host or None,
        "port": conn.port or None,
        "user": conn.login or None,
        "password": conn.password or None,
        "dbname": conn.schema or None,
    }
    extras = conn.extra_dejson or {}
    for key in _LIBPQ_EXTRAS:
        if key in extras:
            params[key] = extras[key]
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})


def describe(conninfo: str) -> str:
    """host:port/db of a conninfo, for logs and errors (never the password)."""
    p = psycopg.conninfo.conninfo_to_dict(conninfo)
    return f"{p.get('host', 'localhost')}:{p.get('port', 5432)}/{p.get('dbname', '')}"


def connect(
    conninfo: str, *, schema: str = "public", application_name: str = "ecommerce_etl", **kwargs: Any
) -> psycopg.Connection[Any]:
    """Open a connection with `schema` first on the search_path.

    Raises:
        psycopg.OperationalError: the server cannot be reached (message names host:port/db).
    """
    try:
        conn = psycopg.connect(conninfo, application_name=application_name, connect_timeout=10, **kwargs)
    except psycopg.OperationalError as err:
        raise psycopg.OperationalError(f"cannot connect to PostgreSQL at {describe(conninfo)}: {err}") from err
    with conn.cursor() as cur:
        # Quoted as an identifier inside the setting too, so a schema named with capitals is not folded to lower case.
        path = sql.SQL("{}, public").format(sql.Identifier(schema)).as_string(conn)
        cur.execute("SELECT set_config('search_path', %s, false)", (path,))
    if not conn.autocommit:
        conn.commit()
    return conn


@contextmanager
def connection(conninfo: str, *, schema: str = "public", **kwargs: Any) -> Iterator[psycopg.Connection[Any]]:
    """`connect()` as a context manager that always closes."""
    conn = connect(conninfo, schema=schema, **kwargs)
    try:
        yield conn
    finally:
        conn.close()


def ident(*parts: str) -> sql.Composable:
    """A (qualified) identifier quoted by the driver."""
    return sql.Identifier(*parts)


# Serialises concurrent schema applications (parallel tasks racing on CREATE ... IF NOT EXISTS collide in the catalog).
SCHEMA_LOCK_KEY = 7_300_421_156


def schema_tables() -> list[str]:
    """The tables init_db.sql creates."""
    return re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA_FILE.read_text(encoding="utf-8"))


def apply_schema(conn: psycopg.Connection[Any], schema: str = "public") -> None:
    """Create the schema and every table of init_db.sql if missing (idempotent, safe to run concurrently).

    When every table already exists nothing is executed: `CREATE INDEX IF NOT EXISTS` would otherwise
    wait for a running load's locks. Otherwise the DDL runs as one batch behind a transaction-scoped
    advisory lock: in the caller's transaction, or as one implicit transaction on an autocommit connection.
    """
    missing = conn.execute(
        "SELECT count(*) FROM unnest(%s::text[]) AS t(name) WHERE to_regclass(format('%%I.%%I', %s::text, name)) IS NULL",
        (schema_tables(), schema),
    ).fetchone()
    if missing and missing[0] == 0:
        _apply_0003_until_migrate_lands(conn, schema)
        return
    script = sql.SQL("SELECT pg_advisory_xact_lock({key}); CREATE SCHEMA IF NOT EXISTS {schema}; ").format(
        key=sql.Literal(SCHEMA_LOCK_KEY), schema=ident(schema)
    ).as_string(conn) + SCHEMA_FILE.read_text(encoding="utf-8")
    with conn.cursor() as cur:
        cur.execute(script.encode())
    _apply_0003_until_migrate_lands(conn, schema)


def _apply_0003_until_migrate_lands(conn: psycopg.Connection[Any], schema: str) -> None:
    # TEMPORARY (branch wt/entities): applies include/migrations/0003_entities.sql once, until the `schema`
    # helper's migrate() applies the numbered migrations; the lead drops this function when merging.
    row = conn.execute(
        "SELECT count(*) FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = 'rejected_records' AND column_name = 'reject_key'",
        (schema,),
    ).fetchone()
    if row and row[0]:
        return
    with conn.cursor() as cur:
        cur.execute((PROJECT_ROOT / "include" / "migrations" / "0003_entities.sql").read_bytes())


def table_exists(conn: psycopg.Connection[Any], table: str, schema: str = "public") -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{table}",)).fetchone()
    return bool(row and row[0])
