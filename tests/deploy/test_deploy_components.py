"""docker-compose.prod.yml gives each Airflow component exactly the secrets the live e2e ran it with.

`make e2e` starts every component (init, api-server, scheduler, dag-processor, triggerer, Celery
workers) with only the secret-bearing settings of `scripts.airflow_stack.COMPONENT_SECRETS` and runs the
whole pipeline; these tests keep the production compose equal to that policy, so a secret added to a
service here must first be shown necessary there (docs/e2e.md, "Secrets per component").
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from scripts.airflow_stack import (
    AUTH_MANAGERS,
    COMPONENT_SECRETS,
    COMPOSE_SERVICES,
    CONN_LOADER,
    CONN_REPORTING,
    SECRET_SETTINGS,
)
from tests.deploy.compose_hardening import SECRET_NAME

ROOT = Path(__file__).resolve().parents[2]

# Settings that hold a credential but are not Airflow's own (optional alert channels, empty by default).
OPTIONAL_CONNECTIONS = {"AIRFLOW_CONN_SMTP_DEFAULT", "AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT"}


def _env(compose: dict[str, Any], service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (compose["services"][service].get("environment") or {}).items()}


def _carries_secret(key: str, value: str) -> bool:
    """A setting that holds a credential: a known secret setting, or a value made of a secret variable."""
    if key in SECRET_SETTINGS:
        return True
    return any(SECRET_NAME.search(name) for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", value))


def component_secrets_in_compose(compose: dict[str, Any]) -> dict[str, set[str]]:
    """Component -> the secret-bearing settings its compose service has (optional alert channels aside)."""
    out = {}
    for component, service in COMPOSE_SERVICES.items():
        env = _env(compose, service)
        out[component] = {k for k, v in env.items() if _carries_secret(k, v) and k not in OPTIONAL_CONNECTIONS}
    return out


def test_each_airflow_service_has_exactly_the_secrets_the_e2e_ran_it_with(prod_compose: dict[str, Any]) -> None:
    got = component_secrets_in_compose(prod_compose)
    for component, want in COMPONENT_SECRETS.items():
        assert got[component] == set(want), (
            f"{COMPOSE_SERVICES[component]}: compose has {sorted(got[component])}, "
            f"the e2e policy {sorted(want)} (extra {sorted(got[component] - want)}, "
            f"missing {sorted(set(want) - got[component])})"
        )


@pytest.mark.parametrize(
    ("service", "key", "value"),
    [
        (
            "airflow-worker",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "postgresql://airflow:${AIRFLOW_DB_PASSWORD:?x}@db/a",
        ),
        ("airflow-worker", "AIRFLOW__API_AUTH__JWT_SECRET", "${AIRFLOW_JWT_SECRET:?x}"),
        ("airflow-triggerer", "AIRFLOW__API_AUTH__JWT_SECRET", "${AIRFLOW_JWT_SECRET:?x}"),
        ("airflow-scheduler", "AIRFLOW__CORE__FERNET_KEY", "${AIRFLOW_FERNET_KEY:?x}"),
        ("airflow-init", "SOME_TOKEN", "${AIRFLOW_API_SECRET_KEY:?x}"),
    ],
)
def test_agreement_check_catches_an_extra_secret(
    prod_compose: dict[str, Any], service: str, key: str, value: str
) -> None:
    bad = copy.deepcopy(prod_compose)
    bad["services"][service]["environment"][key] = value
    component = next(c for c, s in COMPOSE_SERVICES.items() if s == service)
    assert component_secrets_in_compose(bad)[component] != set(COMPONENT_SECRETS[component])


def test_agreement_check_catches_a_missing_secret(prod_compose: dict[str, Any]) -> None:
    bad = copy.deepcopy(prod_compose)
    del bad["services"]["airflow-triggerer"]["environment"]["AIRFLOW__CORE__FERNET_KEY"]
    assert component_secrets_in_compose(bad)["triggerer"] != set(COMPONENT_SECRETS["triggerer"])


def test_workers_hold_no_metadata_credential_or_signing_secret(prod_compose: dict[str, Any]) -> None:
    """Airflow 3: workers reach the metadata only through the Execution API; results go to Redis."""
    worker = _env(prod_compose, "airflow-worker")
    for key in (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API__SECRET_KEY",
    ):
        assert key not in worker, key
    text = json.dumps(prod_compose["services"]["airflow-worker"])
    assert "AIRFLOW_DB_PASSWORD" not in text and "airflow-db:5432" not in text
    assert worker["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("redis://:${REDIS_PASSWORD:?")


def test_no_celery_result_backend_uses_the_metadata_database(prod_compose: dict[str, Any]) -> None:
    for name, svc in prod_compose["services"].items():
        backend = str((svc.get("environment") or {}).get("AIRFLOW__CELERY__RESULT_BACKEND", ""))
        assert not backend.startswith("db+"), f"{name}: result backend in a database: {backend}"


def test_the_fernet_key_and_jwt_secret_are_one_value_where_they_are_shared(prod_compose: dict[str, Any]) -> None:
    # the dag-processor encrypts trigger/watcher arguments that the triggerer decrypts; the scheduler signs
    # the task tokens the api-server validates
    for key, services in (
        ("AIRFLOW__CORE__FERNET_KEY", ("airflow-apiserver", "airflow-dag-processor", "airflow-triggerer")),
        ("AIRFLOW__API_AUTH__JWT_SECRET", ("airflow-apiserver", "airflow-scheduler")),
        ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ("airflow-init", "airflow-apiserver", "airflow-scheduler")),
    ):
        values = {_env(prod_compose, s)[key] for s in services}
        assert len(values) == 1 and re.search(r"\$\{[A-Z_]+:\?[^}]+\}", values.pop()), (key, services)


def test_every_airflow_service_uses_the_fab_auth_manager(prod_compose: dict[str, Any]) -> None:
    for service in COMPOSE_SERVICES.values():
        assert _env(prod_compose, service)["AIRFLOW__CORE__AUTH_MANAGER"] == AUTH_MANAGERS["fab"], service
    text = json.dumps(prod_compose)
    assert "SimpleAuthManager" not in text and "SIMPLE_AUTH_MANAGER" not in text


def test_warehouse_roles_owner_loader_reporting(prod_compose: dict[str, Any]) -> None:
    """init = owner; tasks and DAG callbacks = loader + reporting connections; role passwords required."""
    init = _env(prod_compose, "warehouse-init")
    assert init["PGUSER"] == prod_compose["services"]["warehouse-db"]["environment"]["POSTGRES_USER"]
    assert init["PGPASSWORD"].startswith("${WAREHOUSE_DB_PASSWORD:?")
    # scripts/container_init_warehouse.sh creates the roles (include/roles.sql) under these names
    for role in ("OWNER", "LOADER", "REPORTING"):
        assert init[f"WAREHOUSE_{role}_PASSWORD"].startswith(f"${{WAREHOUSE_{role}_PASSWORD:?")
        assert init[f"WAREHOUSE_{role}_ROLE"].startswith(f"${{WAREHOUSE_{role}_USER:-")
    script = (ROOT / "scripts" / "container_init_warehouse.sh").read_text()
    for role in ("OWNER", "LOADER", "REPORTING"):
        assert f"WAREHOUSE_{role}_ROLE" in script and f"WAREHOUSE_{role}_PASSWORD" in script
    assert {"./include/migrations:/init/migrations:ro", "./include/roles.sql:/init/roles.sql:ro"} <= set(
        prod_compose["services"]["warehouse-init"]["volumes"]
    )
    for service in ("airflow-worker", "airflow-dag-processor"):
        env = _env(prod_compose, service)
        for key, role in ((CONN_LOADER, "LOADER"), (CONN_REPORTING, "REPORTING")):
            conn = json.loads(env[key])
            assert conn["host"] == "warehouse-db" and conn["schema"] == "ecommerce_db", (service, key)
            assert conn["login"] == init[f"WAREHOUSE_{role}_ROLE"], (service, key, conn["login"])
            assert conn["password"] == init[f"WAREHOUSE_{role}_PASSWORD"], (service, key)
        assert "WAREHOUSE_DB_PASSWORD" not in json.dumps(prod_compose["services"][service]), service
