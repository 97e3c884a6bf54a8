"""The warehouse one command away: `make psql`, `make db-url`, `make reset-warehouse`, `make warehouse-stop`.

The warehouse is the embedded PostgreSQL of `make run` (database ``ecommerce_db`` under .local/),
started here when it is not running, unless ``AIRFLOW_CONN_POSTGRES_DEFAULT`` points elsewhere.
psql is the embedded wheel's own (PostgreSQL 18, the server's version), not the machine's.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

import psycopg
from psycopg import sql

from include import local_postgres

ROOT = Path(__file__).resolve().parent.parent
PG_DIR = ROOT / ".local" / "pgdata"
WAREHOUSE_DB = "ecommerce_db"
# Kept by reset: the migration ledger and the privacy (erasure audit / suppression) tables.
KEEP = ("schema_migrations",)
KEEP_PREFIX = "privacy_"

log = logging.getLogger("warehouse")


def warehouse_url() -> str:
    """URL of the warehouse (password included); starts the embedded server when needed."""
    external = os.environ.get("AIRFLOW_CONN_POSTGRES_DEFAULT")
    if external:
        return external
    server = local_postgres.start(PG_DIR)
    return local_postgres.create_database(server, WAREHOUSE_DB)


def _schema() -> str:
    from include.config_loader import load_config

    return load_config().schema


def tables_to_reset(conn: psycopg.Connection, schema: str) -> list[str]:
    """Every table of `schema` that reset empties: all but the migration ledger and ``privacy_*`` tables."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1",
        (schema,),
    ).fetchall()
    return [r[0] for r in rows if r[0] not in KEEP and not r[0].startswith(KEEP_PREFIX)]


def reset(url: str, schema: str) -> list[str]:
    """Empty the data, quarantine, ledger, quality/monitoring history and file-registry tables; return their names."""
    with psycopg.connect(url) as conn:
        names = tables_to_reset(conn, schema)
        if names:
            conn.execute(
                sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
                    sql.SQL(", ").join(sql.Identifier(schema, n) for n in names)
                )
            )
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("psql", "url", "reset", "stop"))
    parser.add_argument(
        "--args",
        default=os.environ.get("ARGS", ""),
        help="psql: extra arguments as one shell-quoted string (default: $ARGS, as `make psql ARGS=...` sets it)",
    )
    a = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    if a.action == "stop":
        local_postgres.stop(PG_DIR)
        sys.stdout.write("embedded PostgreSQL stopped\n")
        return 0
    url = warehouse_url()
    if a.action == "url":
        sys.stdout.write(url + "\n")
        return 0
    if a.action == "psql":
        psql = str(local_postgres._bin("psql"))
        info = psycopg.conninfo.conninfo_to_dict(url)
        env = dict(os.environ)
        if info.get("password"):
            env["PGPASSWORD"] = str(info.pop("password"))  # not on the command line, where `ps` shows it
        # exec: psql owns the terminal (readline, Ctrl-C, pager) as if started by hand.
        os.execve(psql, [psql, psycopg.conninfo.make_conninfo(**info), *shlex.split(a.args)], env)  # noqa: S606 - fixed binary
    schema = _schema()
    names = reset(url, schema)
    kept = ", ".join([*KEEP, "the privacy schema (erasure suppression list, audit)"])
    sys.stdout.write(
        f"emptied {len(names)} table(s) in schema {schema}: {', '.join(names)}\n"
        f"kept: {kept}, and the Airflow home (.local/airflow)\n"
        "to load the data again: put the input files back into the raw directory (paths.raw_data_dir in config.yaml,"
        " or ECOM_RAW_DATA_DIR) and run `make run` (or trigger etl_ecommerce_pipeline in `make airflow`)\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
