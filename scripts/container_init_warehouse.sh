#!/bin/sh
# One-shot warehouse setup, run in a container of the official postgres image (psql, no Python):
# waits for the server, creates the warehouse database if missing, creates the least-privilege roles
# (include/roles.sql) when their passwords are given, then applies the numbered migrations
# (include/migrations/NNNN_*.sql) that are not yet recorded in schema_migrations, each in its own
# transaction under the same advisory lock and with the same sha256 checksums as include/migrations.py.
# A changed, already-applied migration stops the init with its name. Safe to run on every start.
#
# Used by docker-compose.override.yml (astro dev start) and docker-compose.prod.yml (warehouse-init).
# Environment (libpq): PGHOST, PGPORT (5432), PGUSER (a superuser), PGPASSWORD; and
#   WAREHOUSE_DB        database to create/fill (default ecommerce_db)
#   WAREHOUSE_SCHEMA    schema (default public)
#   MIGRATIONS_DIR      the migration files (default /init/migrations)
#   ROLES_SQL           include/roles.sql (default /init/roles.sql)
#   WAREHOUSE_OWNER_PASSWORD, WAREHOUSE_LOADER_PASSWORD, WAREHOUSE_REPORTING_PASSWORD
#                       when all three are set: roles ecom_owner/ecom_loader/ecom_reporting are created
#                       (names: WAREHOUSE_OWNER_ROLE, WAREHOUSE_LOADER_ROLE, WAREHOUSE_REPORTING_ROLE)
#                       and the migrations run as the owner; otherwise they run as PGUSER.
#   WAIT_SECONDS        how long to wait for the server (default 120)
set -eu

WAREHOUSE_DB="${WAREHOUSE_DB:-ecommerce_db}"
WAREHOUSE_SCHEMA="${WAREHOUSE_SCHEMA:-public}"
MIGRATIONS_DIR="${MIGRATIONS_DIR:-/init/migrations}"
ROLES_SQL="${ROLES_SQL:-/init/roles.sql}"
WAIT_SECONDS="${WAIT_SECONDS:-120}"
OWNER_ROLE="${WAREHOUSE_OWNER_ROLE:-ecom_owner}"
LOADER_ROLE="${WAREHOUSE_LOADER_ROLE:-ecom_loader}"
REPORTING_ROLE="${WAREHOUSE_REPORTING_ROLE:-ecom_reporting}"
LOCK_KEY=7300421156   # include/migrations.py MIGRATION_LOCK_KEY
: "${PGHOST:?PGHOST is required}"
: "${PGUSER:?PGUSER is required}"

die() { echo "container_init_warehouse: $*" >&2; exit "${2:-1}"; }
for name in "$WAREHOUSE_DB" "$WAREHOUSE_SCHEMA" "$OWNER_ROLE" "$LOADER_ROLE" "$REPORTING_ROLE"; do
  case "$name" in
    *[!A-Za-z0-9_]* | "" ) echo "container_init_warehouse: invalid database name '$name'" >&2; exit 2 ;;
  esac
done
[ -d "$MIGRATIONS_DIR" ] || die "migrations directory $MIGRATIONS_DIR not readable" 2

waited=0
until pg_isready -q -h "$PGHOST" -p "${PGPORT:-5432}" -U "$PGUSER"; do
  [ "$waited" -lt "$WAIT_SECONDS" ] || die "PostgreSQL at $PGHOST not ready after ${WAIT_SECONDS}s"
  sleep 2
  waited=$((waited + 2))
done

exists=$(psql -X -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$WAREHOUSE_DB'")
if [ "$exists" != "1" ]; then
  echo "container_init_warehouse: creating database $WAREHOUSE_DB"
  psql -X -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE \"$WAREHOUSE_DB\""
fi

roles() {
  # Passwords go in as psql variables (never on a command line other processes can read).
  psql -X -q -v ON_ERROR_STOP=1 -d "$WAREHOUSE_DB" -1 \
    -v owner="$OWNER_ROLE" -v loader="$LOADER_ROLE" -v reporting="$REPORTING_ROLE" -v schema="$WAREHOUSE_SCHEMA" \
    -v owner_pw="${WAREHOUSE_OWNER_PASSWORD:-}" -v loader_pw="${WAREHOUSE_LOADER_PASSWORD:-}" \
    -v reporting_pw="${WAREHOUSE_REPORTING_PASSWORD:-}" -f - <<SQL
SELECT set_config('ecom.owner_role', :'owner', true), set_config('ecom.loader_role', :'loader', true),
       set_config('ecom.reporting_role', :'reporting', true), set_config('ecom.schema', :'schema', true),
       set_config('ecom.owner_password', :'owner_pw', true), set_config('ecom.loader_password', :'loader_pw', true),
       set_config('ecom.reporting_password', :'reporting_pw', true) \\g /dev/null
\\i $ROLES_SQL
SQL
}

set_role=""
if [ -n "${WAREHOUSE_OWNER_PASSWORD:-}" ] && [ -n "${WAREHOUSE_LOADER_PASSWORD:-}" ] && [ -n "${WAREHOUSE_REPORTING_PASSWORD:-}" ]; then
  [ -r "$ROLES_SQL" ] || die "roles file $ROLES_SQL not readable" 2
  roles
  set_role="SET LOCAL ROLE \"$OWNER_ROLE\";"
  echo "container_init_warehouse: roles $OWNER_ROLE, $LOADER_ROLE, $REPORTING_ROLE ready"
  # The restore-check's scratch database (include/backup.py: <db>_restore_check), owned by the loader the
  # privacy DAGs run as (NOCREATEDB: it could not create one itself).
  scratch="${WAREHOUSE_DB}_restore_check"
  if [ "$(psql -X -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$scratch'")" != "1" ]; then
    psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE \"$scratch\" OWNER \"$LOADER_ROLE\""
    echo "container_init_warehouse: scratch database $scratch for the restore-check created"
  fi
fi

applied=0
for file in $(ls "$MIGRATIONS_DIR" | grep -E '^[0-9]{4}_[a-z0-9_]+\.sql$' | sort); do
  base=${file%.sql}
  version=$(echo "$base" | cut -c1-4 | sed 's/^0*//')
  name=${base#????_}
  sum=$(sha256sum "$MIGRATIONS_DIR/$file" | cut -d' ' -f1)
  recorded=$(psql -X -d "$WAREHOUSE_DB" -tA -v schema="$WAREHOUSE_SCHEMA" -v version="$version" -f - <<SQL
SELECT to_regclass(format('%I.schema_migrations', :'schema')) IS NOT NULL AS has_table \\gset
\\if :has_table
SELECT coalesce((SELECT checksum FROM :"schema".schema_migrations WHERE version = :version), 'none');
\\else
SELECT 'none';
\\endif
SQL
)
  if [ "$recorded" = "none" ]; then
    psql -X -q -v ON_ERROR_STOP=1 -d "$WAREHOUSE_DB" -1 -v schema="$WAREHOUSE_SCHEMA" -f - <<SQL
$set_role
SELECT pg_advisory_xact_lock($LOCK_KEY) \\g /dev/null
CREATE SCHEMA IF NOT EXISTS :"schema";
SELECT set_config('search_path', format('%I, public', :'schema'), true) \\g /dev/null
CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
    checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
SELECT count(*) = 0 AS todo FROM schema_migrations WHERE version = $version \\gset
\\if :todo
\\i $MIGRATIONS_DIR/$file
INSERT INTO schema_migrations (version, name, checksum) VALUES ($version, '$name', '$sum');
\\endif
SQL
    echo "container_init_warehouse: applied $file"
    applied=$((applied + 1))
  elif [ "$recorded" != "$sum" ]; then
    die "migration $file was changed after it was applied (recorded checksum $recorded): restore it and add a new migration"
  fi
done

# The registry's table/column comments (generated from include/entities.py; idempotent, cheap).
if [ -r "$MIGRATIONS_DIR/comments.sql" ]; then
  psql -X -q -v ON_ERROR_STOP=1 -d "$WAREHOUSE_DB" -1 -v schema="$WAREHOUSE_SCHEMA" -f - <<SQL
$set_role
SELECT set_config('search_path', format('%I, public', :'schema'), true) \\g /dev/null
\\i $MIGRATIONS_DIR/comments.sql
SQL
fi

[ -z "$set_role" ] || roles   # per-table grants for the tables the migrations just created
echo "container_init_warehouse: schema $WAREHOUSE_SCHEMA of $WAREHOUSE_DB is up to date ($applied migration(s) applied)"
