"""The target PostgreSQL: resolve it from an Airflow connection, connect, quote identifiers.

The pipeline never hard-codes where the warehouse is: it is the Airflow connection named by
``database.conn_id`` (``postgres_default``), so ``AIRFLOW_CONN_POSTGRES_DEFAULT`` (URI or JSON),
a secrets backend or ``airflow_settings.yaml`` all redirect every read and write.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from include.config_loader import PROJECT_ROOT
from include.errors import NonRetryable

log = logging.getLogger(__name__)

# The readable snapshot of the migrated schema (tests keep it equal to include/migrations).
SCHEMA_FILE = PROJECT_ROOT / "init_db.sql"


def conninfo_from_connection(conn_id: str) -> str:
    """libpq conninfo for the Airflow connection `conn_id`, read through the provider's PostgresHook.

    The hook parses the connection the way ``PostgresHook.get_conn()`` does (host, login, password,
    schema as dbname, port, every extra that is not a provider option, IAM tokens when ``iam`` is set),
    so the UI, ``AIRFLOW_CONN_*`` URIs/JSON and secrets backends all work. We take its arguments as a
    conninfo instead of its connection because the loader opens its own psycopg 3 connections: COPY
    streams a file with ``cursor.copy()`` (psycopg 3), and every module uses one driver.

    Raises:
        ConnectionNotDefined: the connection is not defined anywhere Airflow looks (a LookupError).
    """
    from copy import deepcopy

    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    hook = PostgresHook(postgres_conn_id=conn_id)
    try:
        conn = deepcopy(hook.connection)
    except AirflowNotFoundException as err:
        raise ConnectionNotDefined(
            f"Airflow connection '{conn_id}' is not defined: set AIRFLOW_CONN_{conn_id.upper()} "
            "or add it in airflow_settings.yaml / the UI"
        ) from err
    extras = conn.extra_dejson or {}
    if extras.get("iam", False):
        conn.login, conn.password, conn.port = hook.get_iam_token(conn)
    params: dict[str, Any] = {
        "host": conn.host or None,
        "port": conn.port or None,
        "user": conn.login or None,
        "password": conn.password or None,
        "dbname": conn.schema or None,
    }
    for key, value in extras.items():
        if key not in PostgresHook.ignored_extra_options:
            params[key] = value
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})


def describe(conninfo: str) -> str:
    """host:port/db of a conninfo, for logs and errors (never the password)."""
    p = psycopg.conninfo.conninfo_to_dict(conninfo)
    return f"{p.get('host', 'localhost')}:{p.get('port', 5432)}/{p.get('dbname', '')}"


class DatabaseAccessDenied(NonRetryable, psycopg.OperationalError):
    """Authentication failed or a privilege is missing (SQLSTATE class 28, 42501): no retry can fix it.

    Also a psycopg.OperationalError, so code that already survives "cannot connect" (e.g. the alert
    callbacks, which still send their message without the incident store) keeps doing so.
    """


class ConnectionNotDefined(LookupError, NonRetryable):
    """The Airflow connection of the warehouse is not defined: no retry can define it."""


class SchemaNotMigrated(RuntimeError, NonRetryable):
    """The warehouse schema lacks a table or migration this release needs."""


# SQLSTATE classes/codes of a lost connection (class 08, admin shutdown, crash shutdown, cannot connect now).
_CONNECTION_LOST = ("08", "57P01", "57P02", "57P03")


def classify_db_error(err: BaseException, where: str = "") -> NonRetryable | None:
    """The non-retryable error `err` stands for (auth/permission), or None when a retry may help.

    Args:
        err: an exception from psycopg.
        where: host:port/db (or any context) named in the message.
    """
    if isinstance(err, DatabaseAccessDenied):
        return err
    if not isinstance(err, psycopg.Error):
        return None
    state = err.sqlstate or ""
    primary = _first_line(err)
    at = f" at {where}" if where else ""
    if state.startswith("28") or (not state and "password authentication failed" in primary):
        # libpq reports a failed login before any SQLSTATE reaches the client: match its fixed wording too.
        return DatabaseAccessDenied(
            f"authentication failed{at} (SQLSTATE {state or '28P01'}): {primary}; check the connection's user "
            "and password — not retried"
        )
    if state == "42501":
        return DatabaseAccessDenied(
            f"permission denied{at} (SQLSTATE 42501): {primary}; the database role lacks this privilege "
            "(see include/roles.py) — not retried"
        )
    return None


def connection_lost(err: BaseException) -> bool:
    """Whether `err` says the server went away (crash, restart, terminated backend, network)."""
    if isinstance(err, psycopg.OperationalError) and not isinstance(err, psycopg.errors.QueryCanceled):
        state = err.sqlstate or ""
        return not state or state.startswith(_CONNECTION_LOST)
    return False


def describe_db_error(err: BaseException) -> str:
    """One line for an error from psycopg: class, SQLSTATE, PostgreSQL's primary message (never DETAIL rows)."""
    if not isinstance(err, psycopg.Error):
        return f"{type(err).__name__}: {_first_line(err)}"
    state = err.sqlstate or "-"
    if connection_lost(err):
        return (
            f"the server closed the connection (crash or restart?) SQLSTATE {state}: "
            f"{type(err).__name__}: {_first_line(err)}"
        )
    return f"{type(err).__name__} [{state}]: {_first_line(err)}"


def _first_line(err: BaseException) -> str:
    diag = getattr(err, "diag", None)
    text = (diag.message_primary if diag is not None else None) or str(err) or type(err).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__


def connect(
    conninfo: str, *, schema: str = "public", application_name: str = "ecommerce_etl", **kwargs: Any
) -> psycopg.Connection[Any]:
    """Open a connection with `schema` first on the search_path.

    Raises:
        DatabaseAccessDenied: wrong credentials or no CONNECT right (non-retryable).
        psycopg.OperationalError: the server cannot be reached (message names host:port/db).
    """
    kwargs.setdefault("connect_timeout", 10)
    try:
        conn = psycopg.connect(conninfo, application_name=application_name, **kwargs)
    except psycopg.OperationalError as err:
        denied = classify_db_error(err, describe(conninfo))
        if denied is not None:
            raise denied from err
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


def apply_schema(conn: psycopg.Connection[Any], schema: str = "public") -> list[str]:
    """Bring `schema` up to date: an alias of `include.migrations.migrate` (run it as the owner role)."""
    from include.migrations import migrate

    return migrate(conn, schema)


def require_migrated(conn: psycopg.Connection[Any], schema: str = "public") -> None:
    """Fail clearly when the warehouse schema was never migrated or lags this release (no DDL here).

    Raises:
        SchemaNotMigrated: the message says what to run.
    """
    from include.migrations import pending

    todo = pending(conn, schema)
    if todo:
        raise SchemaNotMigrated(
            f"warehouse schema is not migrated ({schema} lacks {', '.join(m.file_name for m in todo)}): run "
            "`python -m include.migrations` as the warehouse owner role (make run, make airflow and the "
            "warehouse-init container do it at start-up)"
        )


def table_exists(conn: psycopg.Connection[Any], table: str, schema: str = "public") -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{table}",)).fetchone()
    return bool(row and row[0])
