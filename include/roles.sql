-- Warehouse roles (least privilege), idempotent. Run as a superuser (or a role with CREATEROLE that
-- owns the database) connected to the warehouse database, after setting, in the same transaction:
--   ecom.owner_role, ecom.loader_role, ecom.reporting_role, ecom.schema       (names)
--   ecom.owner_password, ecom.loader_password, ecom.reporting_password      ('' keeps the current one)
-- Used by include/roles.py (make run, tests) and scripts/container_init_warehouse.sh (psql).
--   owner     owns the schema and every table; runs the migrations; no one else has DDL rights.
--   loader    DML on data, registry, quarantine, ledger and alert-incident tables; SELECT elsewhere; no DDL;
--             MAINTAIN (17+) for the erasure's VACUUM. It also owns the restore-check scratch database
--             (<db>_restore_check), created by include/roles.py / scripts/container_init_warehouse.sh.
--   reporting SELECT on everything; INSERT/UPDATE/DELETE on its own history tables (data_quality_results,
--             monitoring_metrics) and the alert tables; pg_monitor (pg_stat_activity of every role).
DO $roles$
DECLARE
    owner_r  text := current_setting('ecom.owner_role');
    loader_r text := current_setting('ecom.loader_role');
    report_r text := current_setting('ecom.reporting_role');
    sch      text := current_setting('ecom.schema');
    pw       text;
    r        text;
    obj      record;
BEGIN
    FOREACH r IN ARRAY ARRAY[owner_r, loader_r, report_r] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', r);
        END IF;
        pw := current_setting('ecom.' || CASE r WHEN owner_r THEN 'owner' WHEN loader_r THEN 'loader'
                                               ELSE 'reporting' END || '_password', true);
        IF coalesce(pw, '') <> '' THEN
            EXECUTE format('ALTER ROLE %I LOGIN PASSWORD %L', r, pw);
        END IF;
    END LOOP;

    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I, %I, %I', current_database(), owner_r, loader_r, report_r);
    EXECUTE format('GRANT CREATE ON DATABASE %I TO %I', current_database(), owner_r);
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', sch, owner_r);
    EXECUTE format('ALTER SCHEMA %I OWNER TO %I', sch, owner_r);
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', sch);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I, %I', sch, loader_r, report_r);

    -- A warehouse built before the roles existed (tables owned by a superuser) is handed to the owner.
    FOR obj IN
        SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = sch AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND pg_get_userbyid(c.relowner) <> owner_r
    LOOP
        EXECUTE format('ALTER %s %I.%I OWNER TO %I',
                       CASE obj.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                        WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                       sch, obj.relname, owner_r);
    END LOOP;

    -- Tables a later migration creates (as the owner) get the same grants as the ones below.
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I', owner_r, sch, loader_r);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON TABLES TO %I', owner_r, sch, report_r);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO %I, %I', owner_r, sch, loader_r, report_r);

    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', sch, loader_r);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', sch, report_r);
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I, %I', sch, loader_r, report_r);
    -- Exceptions by table (applied when the table exists; re-run after migrating).
    FOREACH r IN ARRAY ARRAY['data_quality_results', 'monitoring_metrics'] LOOP
        IF to_regclass(format('%I.%I', sch, r)) IS NOT NULL THEN
            EXECUTE format('REVOKE INSERT, UPDATE, DELETE ON %I.%I FROM %I', sch, r, loader_r);
            EXECUTE format('GRANT INSERT, UPDATE, DELETE ON %I.%I TO %I', sch, r, report_r);
        END IF;
    END LOOP;
    FOREACH r IN ARRAY ARRAY['alert_state', 'alert_task_failures'] LOOP
        IF to_regclass(format('%I.%I', sch, r)) IS NOT NULL THEN
            EXECUTE format('GRANT INSERT, UPDATE, DELETE ON %I.%I TO %I', sch, r, report_r);
        END IF;
    END LOOP;
    IF to_regclass(format('%I.%I', sch, 'schema_migrations')) IS NOT NULL THEN
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE ON %I.schema_migrations FROM %I', sch, loader_r);
    END IF;
    EXECUTE format('GRANT pg_monitor TO %I', report_r);
    -- An erasure (privacy DAGs, run as the loader) VACUUMs the tables it changed, so no dead row version keeps
    -- the address: MAINTAIN (VACUUM, ANALYZE; PostgreSQL 17+). On older servers VACUUM by a non-owner is
    -- skipped with a warning and autovacuum removes those row versions later.
    IF current_setting('server_version_num')::int >= 170000 THEN
        EXECUTE format('GRANT MAINTAIN ON ALL TABLES IN SCHEMA %I TO %I', sch, loader_r);
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT MAINTAIN ON TABLES TO %I', owner_r, sch, loader_r);
    END IF;
    -- Privacy (migration 0004, schema `privacy`): the transform reads the suppression list; requests and audit
    -- rows are written by the privacy DAGs. Nothing here for the reporting role.
    IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'privacy') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA privacy TO %I', loader_r);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA privacy TO %I', loader_r);
        EXECUTE format('GRANT INSERT, UPDATE ON ALL TABLES IN SCHEMA privacy TO %I', loader_r);
        EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA privacy TO %I', loader_r);
    END IF;
END
$roles$;
