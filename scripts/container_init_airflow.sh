#!/usr/bin/env bash
# One-shot Airflow setup of docker-compose.prod.yml (service airflow-init), idempotent:
#   1. migrate the metadata database;
#   2. write the simple auth manager's passwords file from the secrets in the environment
#      (admin user and the read-only `monitor` user of the airflow_api connection), mode 0600;
#   3. create the pools the DAGs use.
# Environment: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE,
#   AIRFLOW_ADMIN_USER, AIRFLOW_ADMIN_PASSWORD, AIRFLOW_MONITOR_PASSWORD.
set -euo pipefail

: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?}"
: "${AIRFLOW_ADMIN_USER:?}"
: "${AIRFLOW_ADMIN_PASSWORD:?}"
: "${AIRFLOW_MONITOR_PASSWORD:?}"

echo "airflow-init: migrating the metadata database"
airflow db migrate

echo "airflow-init: writing the passwords of ${AIRFLOW_ADMIN_USER} and monitor"
python - <<'PY'
import json
import os
from pathlib import Path

path = Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
users = {os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"], "monitor": os.environ["AIRFLOW_MONITOR_PASSWORD"]}
tmp = path.with_suffix(".tmp")
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as fh:
    json.dump(users, fh)
os.replace(tmp, path)
PY

echo "airflow-init: pools"
airflow pools set warehouse_load 1 "Serialises loads into the warehouse (one load at a time)"

echo "airflow-init: done"
