#!/usr/bin/env bash
# Build and (re)start the production stack, wait until Airflow reports healthy, print the UI address.
#
#   scripts/deploy.sh                 # build + up -d
#   WORKERS=3 scripts/deploy.sh       # with 3 Celery workers
#   PGADMIN=1 scripts/deploy.sh       # also start pgAdmin (profile pgadmin)
#
# Environment: COMPOSE_FILE_PATH (default docker-compose.prod.yml), ENV_FILE (default .env),
# WORKERS (default 1), PGADMIN (0/1), HEALTH_TIMEOUT seconds (default 300), HEALTH_INTERVAL (default 5).
# It never removes volumes: no `down -v`, no prune. Data survives every deploy.
set -euo pipefail

cd "$(dirname "$0")/.."

COMPOSE_FILE_PATH="${COMPOSE_FILE_PATH:-docker-compose.prod.yml}"
ENV_FILE="${ENV_FILE:-.env}"
WORKERS="${WORKERS:-1}"
PGADMIN="${PGADMIN:-0}"
HEALTH_TIMEOUT="${HEALTH_TIMEOUT:-300}"
HEALTH_INTERVAL="${HEALTH_INTERVAL:-5}"

die() { echo "deploy: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker is not installed"
docker compose version >/dev/null 2>&1 || die "the docker compose plugin (v2) is required"
[ -f "$COMPOSE_FILE_PATH" ] || die "$COMPOSE_FILE_PATH not found"
[ -f "$ENV_FILE" ] || die "$ENV_FILE not found: cp .env.example $ENV_FILE and fill in every empty value"
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive integer, got '$WORKERS'"
[[ "$HEALTH_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "HEALTH_TIMEOUT must be a positive integer, got '$HEALTH_TIMEOUT'"

# Group/other must not read the secrets.
if [ -n "$(find "$ENV_FILE" -perm /077 2>/dev/null)" ]; then
  echo "deploy: warning: $ENV_FILE is readable by others; run: chmod 600 $ENV_FILE" >&2
fi

compose=(docker compose --env-file "$ENV_FILE" -f "$COMPOSE_FILE_PATH")
if [ "$PGADMIN" = "1" ]; then
  compose+=(--profile pgadmin)
fi

echo "deploy: checking the configuration (every required secret must be set)"
"${compose[@]}" config --quiet || die "invalid configuration or a required value is missing in $ENV_FILE"

echo "deploy: building the Airflow image"
"${compose[@]}" build --pull

echo "deploy: starting the stack with $WORKERS worker(s)"
"${compose[@]}" up -d --remove-orphans --scale "airflow-worker=$WORKERS"

# Where the UI listens, as compose resolved it (host:port of the api-server's port 8080).
published="$("${compose[@]}" port airflow-apiserver 8080 | head -n 1)"
[ -n "$published" ] || die "the api-server publishes no port"
host="${published%:*}"
port="${published##*:}"
case "$host" in
  0.0.0.0 | "" | "::" | "[::]") host=127.0.0.1 ;;
esac
health_url="http://${host}:${port}/api/v2/monitor/health"

echo "deploy: waiting for $health_url (up to ${HEALTH_TIMEOUT}s)"
deadline=$((SECONDS + HEALTH_TIMEOUT))
# Healthy = the endpoint answers, reports the metadata database and no component "unhealthy".
healthy() {
  body="$(curl -fsS --max-time 5 "$health_url" 2>/dev/null)" || return 1
  [[ "$body" == *'"metadatabase"'* && "$body" != *unhealthy* ]]
}
body=""
until healthy; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    "${compose[@]}" ps >&2 || echo "deploy: docker compose ps failed" >&2
    die "Airflow is not healthy after ${HEALTH_TIMEOUT}s (last answer: ${body:-none}); see: ${compose[*]} logs"
  fi
  sleep "$HEALTH_INTERVAL"
done

echo "deploy: healthy: $body"
echo "deploy: Airflow UI: http://${host}:${port}/  (user: the AIRFLOW_ADMIN_USER of $ENV_FILE)"
if [ "$PGADMIN" = "1" ]; then
  echo "deploy: pgAdmin: http://$("${compose[@]}" port pgadmin 80 | head -n 1)/"
fi
