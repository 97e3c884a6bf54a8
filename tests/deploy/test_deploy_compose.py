"""docker-compose.prod.yml: valid against the Compose specification, hardened, Celery-ready.

The hardening rules live in compose_hardening.problems(); each rule is also shown to fail on a
deliberately bad variant of the real file, so a broken checker cannot pass silently.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.compose_hardening import problems
from tests.deploy.helpers import ASTRO_OVERRIDE, PROD_COMPOSE, ROOT, interpolate, run, tool

AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)


def _schema_check(path: Path) -> tuple[int, str]:
    res = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)], timeout=60)
    return res.returncode, res.stdout + res.stderr


@pytest.mark.parametrize("path", [PROD_COMPOSE, ASTRO_OVERRIDE], ids=lambda p: p.name)
def test_compose_files_validate_against_the_compose_spec(path: Path) -> None:
    rc, out = _schema_check(path)
    assert rc == 0, out


def test_schema_check_rejects_an_invalid_compose_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad-compose.yml"
    bad.write_text("services:\n  web:\n    image: nginx:1.27\n    ports: 8080\n    restrat: always\n", encoding="utf-8")
    rc, out = _schema_check(bad)
    assert rc != 0, out


def test_prod_compose_passes_the_hardening_rules(prod_compose: dict[str, Any]) -> None:
    assert problems(prod_compose) == []


def _service_env(compose: dict[str, Any], service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (compose["services"][service].get("environment") or {}).items()}


# Each bad variant: (description, mutation, text expected in one of the problems)
def _literal_password(c: dict[str, Any]) -> None:
    c["services"]["airflow-db"]["environment"]["POSTGRES_PASSWORD"] = "airflow"


def _literal_fernet(c: dict[str, Any]) -> None:
    c["services"]["airflow-scheduler"]["environment"]["AIRFLOW__CORE__FERNET_KEY"] = (
        "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5PQ=="
    )


def _literal_jwt(c: dict[str, Any]) -> None:
    c["services"]["airflow-apiserver"]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] = "not-so-secret"


def _password_in_url(c: dict[str, Any]) -> None:
    c["services"]["airflow-worker"]["environment"]["AIRFLOW__CELERY__BROKER_URL"] = "redis://:hunter2@redis:6379/0"


def _password_in_json(c: dict[str, Any]) -> None:
    c["services"]["airflow-worker"]["environment"]["AIRFLOW_CONN_POSTGRES_DEFAULT"] = (
        '{"conn_type": "postgres", "password": "pw123"}'
    )


def _secret_with_default(c: dict[str, Any]) -> None:
    c["services"]["redis"]["environment"]["REDIS_PASSWORD"] = "${REDIS_PASSWORD:-changeme}"


def _redis_literal_requirepass(c: dict[str, Any]) -> None:
    c["services"]["redis"]["command"] = ["redis-server", "--requirepass", "s3cret"]


def _db_port_all_interfaces(c: dict[str, Any]) -> None:
    c["services"]["warehouse-db"]["ports"] = ["5432:5432"]


def _redis_port_all_interfaces(c: dict[str, Any]) -> None:
    c["services"]["redis"]["ports"] = ["0.0.0.0:6379:6379"]


def _pgadmin_on_all_interfaces(c: dict[str, Any]) -> None:
    c["services"]["pgadmin"]["ports"] = ["${PGADMIN_PORT:-5050}:80"]


def _no_healthcheck(c: dict[str, Any]) -> None:
    del c["services"]["airflow-triggerer"]["healthcheck"]


def _disabled_healthcheck(c: dict[str, Any]) -> None:
    c["services"]["redis"]["healthcheck"] = {"disable": True}


def _unpinned_image(c: dict[str, Any]) -> None:
    c["services"]["redis"]["image"] = "redis:latest"


def _no_restart(c: dict[str, Any]) -> None:
    del c["services"]["airflow-scheduler"]["restart"]


def _depends_without_condition(c: dict[str, Any]) -> None:
    c["services"]["airflow-triggerer"]["depends_on"] = ["airflow-db"]


def _bind_mounted_data(c: dict[str, Any]) -> None:
    c["services"]["warehouse-db"]["volumes"] = ["./pgdata:/var/lib/postgresql/data"]


BAD_VARIANTS = [
    (_literal_password, "POSTGRES_PASSWORD has a literal value"),
    (_literal_fernet, "AIRFLOW__CORE__FERNET_KEY has a literal value"),
    (_literal_jwt, "AIRFLOW__API_AUTH__JWT_SECRET has a literal value"),
    (_password_in_url, "literal password 'hunter2'"),
    (_password_in_json, "literal password 'pw123'"),
    (_secret_with_default, "secret REDIS_PASSWORD has a default value"),
    (_redis_literal_requirepass, "literal password 's3cret'"),
    (
        _db_port_all_interfaces,
        "service warehouse-db: database/broker/admin tool port '5432:5432' is published on all interfaces",
    ),
    (_redis_port_all_interfaces, "service redis: database/broker/admin tool port"),
    (_pgadmin_on_all_interfaces, "service pgadmin: database/broker/admin tool port"),
    (_no_healthcheck, "service airflow-triggerer: no healthcheck"),
    (_disabled_healthcheck, "service redis: no healthcheck"),
    (_unpinned_image, "image 'redis:latest' is not pinned"),
    (_no_restart, "service airflow-scheduler: no restart policy"),
    (_depends_without_condition, "depends_on without conditions"),
    (_bind_mounted_data, "data directory /var/lib/postgresql/data is not a named volume"),
]


@pytest.mark.parametrize(("mutate", "expected"), BAD_VARIANTS, ids=[m.__name__.strip("_") for m, _ in BAD_VARIANTS])
def test_hardening_rules_catch_a_bad_variant(prod_compose: dict[str, Any], mutate: Any, expected: str) -> None:
    bad = copy.deepcopy(prod_compose)
    mutate(bad)
    found = problems(bad)
    assert any(expected in p for p in found), f"expected a problem containing {expected!r}, got {found}"


def test_hardening_rules_catch_a_bad_snippet_from_text() -> None:
    snippet = yaml.safe_load(
        """
services:
  db:
    image: postgres
    environment:
      POSTGRES_PASSWORD: postgres
    ports: ["5432:5432"]
  cache:
    image: redis:7.2.16-alpine
    restart: always
    healthcheck: {test: ["CMD", "redis-cli", "ping"]}
"""
    )
    found = problems(snippet)
    assert any("POSTGRES_PASSWORD has a literal value" in p for p in found)
    assert any("published on all interfaces" in p for p in found)
    assert any("service db: no healthcheck" in p for p in found)
    assert any("service db: no restart policy" in p for p in found)
    assert any("image 'postgres' is not pinned" in p for p in found)
    assert not any(p.startswith("service cache") for p in found), found


def test_airflow_secrets_are_required_wherever_they_appear(prod_compose: dict[str, Any]) -> None:
    """Which service gets which secret: tests/deploy/test_deploy_components.py (the e2e's policy)."""
    for service in (*AIRFLOW_SERVICES, "airflow-init"):
        env = _service_env(prod_compose, service)
        for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
            if key in env:
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", env[key]), (
                    f"{service}: {key} must be a required ${{VAR:?...}}"
                )
        if "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in env:
            assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql"), service
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", service
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", service


def test_all_airflow_processes_share_one_value_of_each_shared_setting(prod_compose: dict[str, Any]) -> None:
    shared = ("ECOM_STAGING_DIR", "AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL")
    for key in shared:
        values = {_service_env(prod_compose, s)[key] for s in AIRFLOW_SERVICES}
        assert len(values) == 1, f"{key} differs between Airflow services: {values}"
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        values = {_service_env(prod_compose, s).get(key) for s in AIRFLOW_SERVICES} - {None}
        assert len(values) == 1, f"{key} differs between the Airflow services that have it: {values}"


def test_redis_requires_a_password_and_the_broker_url_carries_it(prod_compose: dict[str, Any]) -> None:
    redis = prod_compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--requirepass" in command
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    for service in ("airflow-scheduler", "airflow-worker"):
        broker = _service_env(prod_compose, service)["AIRFLOW__CELERY__BROKER_URL"]
        assert broker.startswith("redis://:${REDIS_PASSWORD:?") and broker.endswith("@redis:6379/0"), broker
        results = _service_env(prod_compose, service)["AIRFLOW__CELERY__RESULT_BACKEND"]
        assert results.startswith("redis://:${REDIS_PASSWORD:?") and results.endswith("@redis:6379/1"), results


# Which service may see which secret (the least-privilege policy of the stack; for the Airflow
# components it is what `make e2e` ran them with: scripts/airflow_stack.py COMPONENT_SECRETS).
SECRET_POLICY = {
    "AIRFLOW_ADMIN_PASSWORD": {"airflow-init"},
    "AIRFLOW_MONITOR_PASSWORD": {"airflow-init", "airflow-worker"},
    # keys of the privacy DAGs: only where tasks run
    "PRIVACY_KEY": {"airflow-worker"},
    "BACKUP_KEY": {"airflow-worker"},
    "REDIS_PASSWORD": {"redis", "airflow-scheduler", "airflow-worker"},
    # the warehouse owner runs migrations and creates the roles: nothing else holds its password
    "WAREHOUSE_DB_PASSWORD": {"warehouse-db", "warehouse-init"},
    # the owner role owns the tables and runs the migrations (warehouse-init only)
    "WAREHOUSE_OWNER_PASSWORD": {"warehouse-init"},
    # the dag-processor runs DAG callbacks, which keep the alert incident state in the warehouse
    "WAREHOUSE_LOADER_PASSWORD": {"warehouse-init", "airflow-worker", "airflow-dag-processor"},
    "WAREHOUSE_REPORTING_PASSWORD": {"warehouse-init", "airflow-worker", "airflow-dag-processor"},
    # workers reach the metadata only through the Execution API
    "AIRFLOW_DB_PASSWORD": {
        "airflow-db",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-db-clean",  # trims Airflow's own metadata (retention), from the host's cron
    },
    "PGADMIN_PASSWORD": {"pgadmin"},
    # the dag-processor encrypts trigger/watcher arguments, the triggerer decrypts them
    "AIRFLOW_FERNET_KEY": {"airflow-apiserver", "airflow-dag-processor", "airflow-triggerer"},
    # the scheduler signs task tokens, the api-server validates them
    "AIRFLOW_JWT_SECRET": {"airflow-apiserver", "airflow-scheduler"},
    "AIRFLOW_API_SECRET_KEY": {"airflow-apiserver"},
}


def _services_using(compose: dict[str, Any], var: str) -> set[str]:
    pattern = re.compile(r"\$\{" + var + r"(?:[:?}-])")
    return {name for name, svc in compose["services"].items() if pattern.search(yaml.safe_dump(svc))}


@pytest.mark.parametrize("var", sorted(SECRET_POLICY))
def test_each_secret_reaches_only_the_services_that_need_it(prod_compose: dict[str, Any], var: str) -> None:
    assert _services_using(prod_compose, var) == SECRET_POLICY[var]


def test_secret_scoping_check_can_fail(prod_compose: dict[str, Any]) -> None:
    bad = copy.deepcopy(prod_compose)
    bad["services"]["airflow-triggerer"]["environment"]["EXTRA"] = "${AIRFLOW_ADMIN_PASSWORD:?x}"
    assert _services_using(bad, "AIRFLOW_ADMIN_PASSWORD") != SECRET_POLICY["AIRFLOW_ADMIN_PASSWORD"]


def _compose_text() -> str:
    """The compose file without comment lines and without escaped `$$` (container-side references)."""
    lines = [ln for ln in PROD_COMPOSE.read_text(encoding="utf-8").splitlines() if not ln.lstrip().startswith("#")]
    return "\n".join(lines).replace("$$", "")


def test_every_secret_in_compose_is_required_or_optional_empty() -> None:
    text = _compose_text()
    optional = {"AIRFLOW_CONN_SMTP_DEFAULT", "AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT"}
    for var in sorted(set(re.findall(r"\$\{([A-Z_]*(?:PASSWORD|SECRET|FERNET|KEY)[A-Z_]*)", text))):
        refs = re.findall(r"\$\{" + var + r"(:?[-?])?([^}]*)\}", text)
        for op, arg in refs:
            assert op == ":?" and arg, f"{var} must always be written ${{{var}:?message}}"
    for var in optional:
        assert re.findall(r"\$\{" + var + r"(:?[-?]?[^}]*)\}", text) == [":-"] * len(re.findall(r"\$\{" + var, text))


def test_env_example_has_placeholders_only() -> None:
    values: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    text = _compose_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert required <= set(values), f"missing from .env.example: {sorted(required - set(values))}"
    for key, value in values.items():
        if re.search(r"PASSWORD|SECRET|FERNET|KEY|EMAIL|CONN", key):
            assert value == "", f".env.example must leave {key} empty (a placeholder), got {value!r}"


def test_ports_are_published_on_loopback_only(prod_compose: dict[str, Any]) -> None:
    published = {name: svc.get("ports") for name, svc in prod_compose["services"].items() if svc.get("ports")}
    assert set(published) == {"airflow-apiserver", "pgadmin"}, "databases and Redis must not publish ports"
    assert interpolate(published["airflow-apiserver"][0]) == "127.0.0.1:8080:8080"
    assert interpolate(published["pgadmin"][0]).startswith("127.0.0.1:")


def test_celery_workers_scale_and_share_the_staging_volume(prod_compose: dict[str, Any]) -> None:
    worker = prod_compose["services"]["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker, "a scaled service cannot fix a name or a host port"
    assert worker["command"] == ["airflow", "celery", "worker"]
    staging = _service_env(prod_compose, "airflow-worker")["ECOM_STAGING_DIR"]
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in worker["volumes"]}
    assert staging in mounts, "the staging directory must be a volume"
    assert mounts[staging] in prod_compose["volumes"], "staging must be a named volume (shared by every replica)"
    reports = _service_env(prod_compose, "airflow-worker")["ECOM_REPORTS_DIR"]
    assert mounts.get(reports) in prod_compose["volumes"]


def test_stack_has_the_expected_services(prod_compose: dict[str, Any]) -> None:
    services = prod_compose["services"]
    expected = {
        "airflow-db",
        "warehouse-db",
        "redis",
        "warehouse-init",
        "airflow-init",
        "airflow-db-clean",
        "pgadmin",
        *AIRFLOW_SERVICES,
    }
    assert set(services) == expected
    assert services["airflow-db"]["environment"]["POSTGRES_DB"] == "airflow"
    assert services["warehouse-db"]["environment"]["POSTGRES_DB"] == "ecommerce_db"
    assert services["pgadmin"]["profiles"] == ["pgadmin"]
    for one_shot in ("airflow-init", "warehouse-init"):
        assert services[one_shot]["restart"] == "no"
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["airflow-db"]["condition"] == "service_healthy", name
    assert services["airflow-worker"]["depends_on"]["warehouse-init"]["condition"] == "service_completed_successfully"
    assert services["airflow-init"]["command"][-1].endswith("scripts/container_init_airflow.sh")
    assert (ROOT / "scripts" / "container_init_airflow.sh").exists()


def test_airflow_init_script_migrates_creates_fab_users_and_pools() -> None:
    """The script itself runs in `make e2e` (component "init"); here: its shape and syntax."""
    script = (ROOT / "scripts" / "container_init_airflow.sh").read_text(encoding="utf-8")
    assert "airflow db migrate" in script
    assert "FabAuthManager" in script and "get_application_builder" in script
    assert '"Admin", os.environ["AIRFLOW_ADMIN_PASSWORD"]' in script
    assert '("monitor", "Viewer", os.environ["AIRFLOW_MONITOR_PASSWORD"])' in script
    code = "\n".join(ln for ln in script.splitlines() if not ln.lstrip().startswith("#"))
    assert not re.search(r"users create .*(-p|--password)", code), "passwords must not be on a command line"
    assert "airflow pools set warehouse_load 1" in script
    res = run(["bash", "-n", str(ROOT / "scripts" / "container_init_airflow.sh")])
    assert res.returncode == 0, res.stderr


def test_dag_processor_reaches_the_warehouse_for_alert_state(prod_compose: dict[str, Any]) -> None:
    """DAG callbacks (incident state, recovered messages) run in the dag-processor: the workers' connections."""
    env = prod_compose["services"]["airflow-dag-processor"]["environment"]
    worker = prod_compose["services"]["airflow-worker"]["environment"]
    for key in ("AIRFLOW_CONN_POSTGRES_DEFAULT", "AIRFLOW_CONN_POSTGRES_REPORTING"):
        assert '"host": "warehouse-db"' in env[key] and '"schema": "ecommerce_db"' in env[key]
        assert env[key] == worker[key], key


def test_ci_compose_config_step_fills_every_required_secret() -> None:
    """The workflow's `docker compose config` step sets each required secret, else CI fails on a new one."""
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    step = workflow.split("docker compose config with throw-away secrets", 1)[1].split("- name:", 1)[0]
    filled = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\b", step.split("for var in", 1)[1].split("; do", 1)[0]))
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", _compose_text()))
    secrets = {v for v in required if re.search(r"PASSWORD|SECRET|FERNET|KEY", v)}
    assert secrets <= filled, f"set in the CI compose-config step: {sorted(secrets - filled)}"
