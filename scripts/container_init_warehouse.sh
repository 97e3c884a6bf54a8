#!/bin/sh
# One-shot warehouse setup, run in a container of the official postgres image (it has psql):
# waits for the server, creates the warehouse database if it is missing, then applies init_db.sql
# (idempotent: CREATE ... IF NOT EXISTS). Safe to run on every start.
#
# Used by docker-compose.override.yml (astro dev start) and docker-compose.prod.yml (warehouse-init).
# Environment (libpq): PGHOST, PGPORT (5432), PGUSER, PGPASSWORD; and
#   WAREHOUSE_DB   database to create/fill (default ecommerce_db)
#   SCHEMA_FILE    SQL to apply (default /init/init_db.sql)
#   WAIT_SECONDS   how long to wait for the server (default 120)
set -eu

WAREHOUSE_DB="${WAREHOUSE_DB:-ecommerce_db}"
SCHEMA_FILE="${SCHEMA_FILE:-/init/init_db.sql}"
WAIT_SECONDS="${WAIT_SECONDS:-120}"
: "${PGHOST:?PGHOST is required}"
: "${PGUSER:?PGUSER is required}"

case "$WAREHOUSE_DB" in
  *[!A-Za-z0-9_]* | "" ) echo "container_init_warehouse: invalid database name '$WAREHOUSE_DB'" >&2; exit 2 ;;
esac
[ -r "$SCHEMA_FILE" ] || { echo "container_init_warehouse: schema file $SCHEMA_FILE not readable" >&2; exit 2; }

waited=0
until pg_isready -q -h "$PGHOST" -p "${PGPORT:-5432}" -U "$PGUSER"; do
  if [ "$waited" -ge "$WAIT_SECONDS" ]; then
    echo "container_init_warehouse: PostgreSQL at $PGHOST not ready after ${WAIT_SECONDS}s" >&2
    exit 1
  fi
  sleep 2
  waited=$((waited + 2))
done

exists=$(psql -X -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$WAREHOUSE_DB'")
if [ "$exists" != "1" ]; then
  echo "container_init_warehouse: creating database $WAREHOUSE_DB"
  psql -X -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE \"$WAREHOUSE_DB\""
fi

psql -X -q -v ON_ERROR_STOP=1 -d "$WAREHOUSE_DB" -1 -f "$SCHEMA_FILE"
echo "container_init_warehouse: schema of $WAREHOUSE_DB is up to date"
