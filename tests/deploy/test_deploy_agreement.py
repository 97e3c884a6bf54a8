"""Compose, Astro and the DAGs agree on environment variables, connection ids, pools, paths and names.

Reads all three sides: docker-compose.prod.yml (+ the Astro override and airflow_settings.yaml, the
Dockerfile) and what the pipeline uses (config.yaml through include.config_loader, and the DAG and
library sources for `*conn_id` / `pool=` / `Variable.get`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from include import config_loader
from tests.deploy.helpers import PROD_COMPOSE, ROOT, load_yaml

AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
OPTIONAL_CONNECTIONS = {"smtp_default", "slack_webhook_default"}  # alert channels, off unless configured


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [kv for k, v in node.items() for kv in _walk(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [kv for i, v in enumerate(node) for kv in _walk(v, f"{path}[{i}]")]
    return [(path, node)]


def used_connection_ids(config: dict[str, Any], sources: list[Path]) -> set[str]:
    """Connection ids the pipeline uses: config keys `*conn_id` plus string literals given to `*conn_id` in code."""
    ids = {str(v) for k, v in _walk(config) if k.rsplit(".", 1)[-1].endswith("conn_id") and v}
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg and node.arg.endswith("conn_id"):
                if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    ids.add(node.value.value)
    return ids


def used_pools(config: dict[str, Any], sources: list[Path]) -> set[str]:
    pools = {str(v) for k, v in _walk(config) if k.rsplit(".", 1)[-1].endswith("pool") and v}
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "pool" and isinstance(node.value, ast.Constant):
                pools.add(str(node.value.value))
    return pools - {"default_pool"}


def used_variables(sources: list[Path]) -> set[str]:
    names = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "Variable"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(str(node.args[0].value))
    return names


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return load_yaml(ROOT / "config.yaml")


@pytest.fixture(scope="module")
def sources() -> list[Path]:
    return sorted((ROOT / "dags").glob("*.py")) + sorted((ROOT / "include").glob("*.py"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(PROD_COMPOSE)


@pytest.fixture(scope="module")
def astro() -> dict[str, Any]:
    return load_yaml(ROOT / "airflow_settings.yaml")["airflow"]


def _env(compose: dict[str, Any], service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (compose["services"][service].get("environment") or {}).items()}


def test_usage_scanners_find_what_they_should(tmp_path: Path) -> None:
    src = tmp_path / "x.py"
    src.write_text('hook(postgres_conn_id="wh")\n@task(pool="p1")\ndef f(): Variable.get("v1")\n', encoding="utf-8")
    cfg = {"a": {"conn_id": "c1", "b": [{"api_conn_id": "c2"}]}, "etl": {"load_pool": "p2"}}
    assert used_connection_ids(cfg, [src]) == {"c1", "c2", "wh"}
    assert used_pools(cfg, [src]) == {"p1", "p2"}
    assert used_variables([src]) == {"v1"}


def test_every_connection_the_pipeline_uses_is_defined_in_compose_and_astro(
    config: dict[str, Any], sources: list[Path], compose: dict[str, Any], astro: dict[str, Any]
) -> None:
    used = used_connection_ids(config, sources)
    assert {"postgres_default", "airflow_api"} <= used, used
    worker = _env(compose, "airflow-worker")
    in_compose = {k.removeprefix("AIRFLOW_CONN_").lower() for k in worker if k.startswith("AIRFLOW_CONN_")}
    assert used <= in_compose, f"connections missing on the workers: {sorted(used - in_compose)}"
    in_astro = {c["conn_id"] for c in astro["connections"]}
    assert used - OPTIONAL_CONNECTIONS <= in_astro, (
        f"missing in airflow_settings.yaml: {sorted(used - OPTIONAL_CONNECTIONS - in_astro)}"
    )
    for conn in OPTIONAL_CONNECTIONS & used:
        assert worker[f"AIRFLOW_CONN_{conn.upper()}"] == f"${{AIRFLOW_CONN_{conn.upper()}:-}}"


def test_pools_and_variables_the_dags_use_exist_in_astro_and_prod(
    config: dict[str, Any], sources: list[Path], astro: dict[str, Any]
) -> None:
    pools = used_pools(config, sources)
    assert "warehouse_load" in pools
    astro_pools = {p["pool_name"] for p in astro["pools"]}
    assert pools <= astro_pools
    init_script = (ROOT / "scripts" / "container_init_airflow.sh").read_text(encoding="utf-8")
    for pool in pools:
        assert re.search(rf"airflow pools set {pool} \d+", init_script), f"prod init does not create pool {pool}"
    assert used_variables(sources) <= {v["variable_name"] for v in astro["variables"] or []}


def test_connections_point_at_the_services_of_each_stack(compose: dict[str, Any], astro: dict[str, Any]) -> None:
    import json

    worker = _env(compose, "airflow-worker")
    pg = json.loads(worker["AIRFLOW_CONN_POSTGRES_DEFAULT"])
    assert (
        pg["host"] in compose["services"]
        and pg["schema"] == compose["services"][pg["host"]]["environment"]["POSTGRES_DB"]
    )
    assert pg["schema"] == "ecommerce_db"
    api = json.loads(worker["AIRFLOW_CONN_AIRFLOW_API"])
    host = re.match(r"http://([\w-]+):(\d+)$", api["host"])
    assert host and host.group(1) in compose["services"] and host.group(2) == "8080"
    assert compose["services"][host.group(1)]["command"] == ["airflow", "api-server"]
    exec_url = _env(compose, "airflow-worker")["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    assert exec_url == f"{api['host']}/execution/"
    astro_conns = {c["conn_id"]: c for c in astro["connections"]}
    assert astro_conns["postgres_default"]["conn_schema"] == pg["schema"]


def test_ecom_environment_names_are_the_ones_the_config_loader_reads(compose: dict[str, Any]) -> None:
    known = {v for k, v in vars(config_loader).items() if k.startswith("ENV_") and isinstance(v, str)}
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    names = set(re.findall(r"\b(ECOM_[A-Z_]+)=", dockerfile))
    for service in AIRFLOW_SERVICES:
        names |= {k for k in _env(compose, service) if k.startswith("ECOM_")}
    assert names, "no ECOM_* setting found"
    assert names <= known, f"unknown ECOM_* names (not read by include/config_loader.py): {sorted(names - known)}"


def test_paths_agree_between_dockerfile_compose_and_config(compose: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    image_env = dict(re.findall(r"\b(ECOM_[A-Z_]+)=(\S+)", dockerfile))
    worker = _env(compose, "airflow-worker")
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in compose["services"]["airflow-worker"]["volumes"]}
    for key in ("ECOM_RAW_DATA_DIR", "ECOM_STAGING_DIR", "ECOM_REPORTS_DIR"):
        assert worker[key] == image_env[key], key
        assert worker[key] in mounts, f"{key}={worker[key]} is not a volume of the workers"
        assert mounts[worker[key]] in compose["volumes"], f"{key} must be a named volume"
        assert worker[key] in dockerfile.split("RUN", 1)[1] or key == "ECOM_RAW_DATA_DIR", (
            f"{key} is not created in the image"
        )
    # The loader applies them: same settings as a container would see.
    settings = config_loader.parse_config(
        config_loader.read_config_file(config_loader.DEFAULT_CONFIG), config_loader.DEFAULT_CONFIG, dict(image_env)
    )
    assert str(settings.staging_dir) == image_env["ECOM_STAGING_DIR"]
    assert str(settings.reports_dir) == image_env["ECOM_REPORTS_DIR"]
    assert str(settings.raw_data_dir) == image_env["ECOM_RAW_DATA_DIR"]


def test_warehouse_database_name_agrees_everywhere(compose: dict[str, Any], astro: dict[str, Any]) -> None:
    names = {
        compose["services"]["warehouse-db"]["environment"]["POSTGRES_DB"],
        compose["services"]["warehouse-init"]["environment"]["WAREHOUSE_DB"],
        load_yaml(ROOT / "docker-compose.override.yml")["services"]["warehouse-init"]["environment"]["WAREHOUSE_DB"],
        next(c["conn_schema"] for c in astro["connections"] if c["conn_id"] == "postgres_default"),
    }
    assert names == {"ecommerce_db"}
    contracts = (ROOT / "docs" / "CONTRACTS.md").read_text(encoding="utf-8")
    assert "`ecommerce_db`" in contracts
