#!/usr/bin/env bash
# One-shot Airflow setup of docker-compose.prod.yml (service airflow-init), idempotent. The live e2e
# (scripts/airflow_stack.py) runs this same script as its "init" component, with the same environment.
#   1. migrate the metadata database. With AIRFLOW__CORE__AUTH_MANAGER = the FAB auth manager,
#      `airflow db migrate` also creates/upgrades FAB's own tables (ab_user, ab_role, ...): Airflow 3.3
#      runs the auth manager's DB manager (FABDBManager) after its own migrations;
#   2. create or update the FAB users from the secrets in the environment: the admin (role Admin) and
#      `monitor` (role Viewer: read-only; the airflow_api connection of the monitoring DAG uses it).
#      An existing user gets its role and password reset, so rotating a secret in .env and re-running
#      init takes effect. Passwords never appear on a command line (no `airflow users create -p`);
#   3. create the pools the DAGs use.
# Environment: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, AIRFLOW__CORE__AUTH_MANAGER (FAB),
#   AIRFLOW_ADMIN_USER, AIRFLOW_ADMIN_PASSWORD, AIRFLOW_MONITOR_PASSWORD.
# This step needs the metadata database and the two passwords only: no Fernet key, no JWT secret.
set -euo pipefail

: "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:?}"
: "${AIRFLOW_ADMIN_USER:?}"
: "${AIRFLOW_ADMIN_PASSWORD:?}"
: "${AIRFLOW_MONITOR_PASSWORD:?}"
case "${AIRFLOW__CORE__AUTH_MANAGER:-}" in
  *FabAuthManager) ;;
  *) echo "airflow-init: AIRFLOW__CORE__AUTH_MANAGER must be the FAB auth manager" >&2; exit 2 ;;
esac

echo "airflow-init: migrating the metadata database (Airflow and FAB tables)"
airflow db migrate

echo "airflow-init: FAB users ${AIRFLOW_ADMIN_USER} (Admin) and monitor (Viewer)"
python - <<'PY'
import logging
import os

from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

log = logging.getLogger("airflow.init")  # under "airflow": shown by Airflow's log setup
USERS = (
    (os.environ["AIRFLOW_ADMIN_USER"], "Admin", os.environ["AIRFLOW_ADMIN_PASSWORD"]),
    ("monitor", "Viewer", os.environ["AIRFLOW_MONITOR_PASSWORD"]),
)
with get_application_builder() as appbuilder:
    sm = appbuilder.sm
    for username, role_name, password in USERS:
        role = sm.find_role(role_name)
        if role is None:
            raise SystemExit(f"airflow-init: FAB role {role_name} does not exist")
        user = sm.find_user(username=username)
        if user is None:
            if not sm.add_user(username, username, role_name.lower(), f"{username}@airflow.invalid", role, password):
                raise SystemExit(f"airflow-init: could not create user {username}")
            log.info("airflow-init: created %s (%s)", username, role_name)
        else:
            user.roles = [role]
            sm.update_user(user)
            if not sm.reset_password(user.id, password):
                raise SystemExit(f"airflow-init: could not set the password of {username}")
            log.info("airflow-init: updated %s (%s)", username, role_name)
PY

echo "airflow-init: pools"
airflow pools set warehouse_load 1 "Serialises loads into the warehouse (one load at a time)"

echo "airflow-init: done"
