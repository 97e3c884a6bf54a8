"""The backup client in the image matches the warehouse server (statically: no Docker engine here).

pg_dump refuses a server of a newer major version, so the image's pg_dump/pg_restore (Dockerfile ``ARG PG_MAJOR``,
``postgresql-client-${PG_MAJOR}`` from the PGDG repository), the ``privacy.pg_bin_dir`` the workers use
(``ECOM_PG_BIN_DIR``: the image's ENV, any compose override, config.yaml) and the major of the warehouse-db image
in docker-compose.prod.yml must agree. Each disagreement is proven to fail on a bad variant.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.helpers import PROD_COMPOSE, ROOT, interpolate, load_yaml

DOCKERFILE = ROOT / "Dockerfile"
CONFIG = ROOT / "config.yaml"
WAREHOUSE_SERVICES = ("warehouse-db", "warehouse-init")
_ARG = re.compile(r"^\s*ARG\s+PG_MAJOR=(\S+)\s*$", re.M)
_BIN_DIR = re.compile(r"/usr/lib/postgresql/(\$\{PG_MAJOR\}|\$PG_MAJOR|\d+)/bin/?$")
_IMAGE = re.compile(r"^(?:docker\.io/(?:library/)?)?postgres:(\d+)(?:\.\d+)*(?:-[a-z0-9]+)?(?:@sha256:[0-9a-f]{64})?$")


def _dockerfile_env(text: str) -> dict[str, str]:
    """ENV assignments of a Dockerfile (``ENV A=b C=d``, continuation lines joined)."""
    joined = re.sub(r"\\\n", " ", text)
    out: dict[str, str] = {}
    for line in joined.splitlines():
        if line.strip().upper().startswith("ENV "):
            for name, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|\S+)", line.strip()[4:]):
                out[name] = value.strip('"')
    return out


def _major_of_bin_dir(path: str, arg_major: str | None) -> str | None:
    """The major of a Debian client folder ``/usr/lib/postgresql/<major>/bin`` (None: another layout)."""
    found = _BIN_DIR.search(path.rstrip("/"))
    if not found:
        return None
    return arg_major if found.group(1).lstrip("$").strip("{}") == "PG_MAJOR" else found.group(1)


def pg_client_problems(dockerfile: str, compose: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Every disagreement between the server major, the image's client major and the configured pg_bin_dir."""
    problems: list[str] = []
    args = _ARG.findall(dockerfile)
    if len(args) != 1 or not args[0].isdigit():
        return [f"the Dockerfile must define the client major once as ARG PG_MAJOR=<number>, found {args}"]
    client = args[0]
    if not re.search(r'postgresql-client-(\$\{PG_MAJOR\}|\$PG_MAJOR)"?(\s|$)', dockerfile):
        problems.append("the Dockerfile does not install postgresql-client-${PG_MAJOR}")
    if "apt.postgresql.org" not in dockerfile or "Signed-By:" not in dockerfile:
        problems.append("the client must come from apt.postgresql.org with a Signed-By key")

    servers: dict[str, str] = {}
    services = compose.get("services") or {}
    for name in WAREHOUSE_SERVICES:
        image = interpolate(str((services.get(name) or {}).get("image", "")))
        found = _IMAGE.match(image)
        if not found:
            problems.append(f"service {name}: image {image!r} is not a pinned postgres:<major>... image")
            continue
        servers[name] = found.group(1)
    for name, major in servers.items():
        if major != client:
            problems.append(
                f"service {name} runs PostgreSQL {major} but the image's pg_dump is {client} (Dockerfile ARG PG_MAJOR)"
            )
    for name, service in services.items():
        build = service.get("build") if isinstance(service, dict) else None
        build_args = build.get("args") if isinstance(build, dict) else None
        if isinstance(build_args, dict) and "PG_MAJOR" in build_args:
            value = interpolate(str(build_args["PG_MAJOR"]))
            if value != client or any(value != m for m in servers.values()):
                problems.append(f"service {name} builds with PG_MAJOR={value}, the warehouse server is {servers}")

    env = _dockerfile_env(dockerfile)
    image_bin = env.get("ECOM_PG_BIN_DIR")
    if image_bin is None:
        problems.append("the Dockerfile does not set ECOM_PG_BIN_DIR (privacy.pg_bin_dir of the workers)")
    elif _major_of_bin_dir(image_bin, client) != client:
        problems.append(f"the image's ECOM_PG_BIN_DIR={image_bin} is not the PostgreSQL {client} client")
    for name, service in services.items():
        environment = (service or {}).get("environment") if isinstance(service, dict) else None
        if isinstance(environment, dict) and environment.get("ECOM_PG_BIN_DIR"):
            value = interpolate(str(environment["ECOM_PG_BIN_DIR"]))
            if _major_of_bin_dir(value, client) != client:
                problems.append(f"service {name}: ECOM_PG_BIN_DIR={value} is not the PostgreSQL {client} client")
    configured = ((config.get("privacy") or {}) if isinstance(config, dict) else {}).get("pg_bin_dir")
    if configured is not None and _major_of_bin_dir(str(configured), client) not in (client, None):
        problems.append(f"config.yaml privacy.pg_bin_dir={configured} is not the PostgreSQL {client} client")
    return problems


def _files() -> tuple[str, dict[str, Any], dict[str, Any]]:
    return DOCKERFILE.read_text(encoding="utf-8"), load_yaml(PROD_COMPOSE), load_yaml(CONFIG)


def test_server_major_image_client_and_pg_bin_dir_agree() -> None:
    dockerfile, compose, config = _files()
    assert pg_client_problems(dockerfile, compose, config) == []
    # And they agree on a concrete number: the server and the client are both PostgreSQL 17 today.
    assert compose["services"]["warehouse-db"]["image"].startswith("postgres:17.")
    assert "ARG PG_MAJOR=17" in dockerfile


def test_a_newer_warehouse_server_than_the_client_fails() -> None:
    dockerfile, _, config = _files()
    text = PROD_COMPOSE.read_text(encoding="utf-8").replace(
        "&warehouse-postgres-image postgres:17.6-bookworm", "&warehouse-postgres-image postgres:18.1-bookworm"
    )
    problems = pg_client_problems(dockerfile, yaml.safe_load(text), config)
    assert any("warehouse-db runs PostgreSQL 18 but the image's pg_dump is 17" in p for p in problems), problems
    assert any("warehouse-init runs PostgreSQL 18" in p for p in problems), problems


def test_a_changed_client_major_fails() -> None:
    dockerfile, compose, config = _files()
    problems = pg_client_problems(dockerfile.replace("ARG PG_MAJOR=17", "ARG PG_MAJOR=16"), compose, config)
    assert any("runs PostgreSQL 17 but the image's pg_dump is 16" in p for p in problems), problems


def test_a_pg_bin_dir_of_another_major_fails() -> None:
    dockerfile, compose, config = _files()
    bad_image = dockerfile.replace(
        "ECOM_PG_BIN_DIR=/usr/lib/postgresql/${PG_MAJOR}/bin", "ECOM_PG_BIN_DIR=/usr/lib/postgresql/15/bin"
    )
    assert bad_image != dockerfile
    assert any(
        "ECOM_PG_BIN_DIR=/usr/lib/postgresql/15/bin" in p for p in pg_client_problems(bad_image, compose, config)
    )
    compose["services"]["airflow-worker"]["environment"]["ECOM_PG_BIN_DIR"] = "/usr/lib/postgresql/16/bin"
    assert any("service airflow-worker: ECOM_PG_BIN_DIR" in p for p in pg_client_problems(dockerfile, compose, config))
    compose["services"]["airflow-worker"]["environment"].pop("ECOM_PG_BIN_DIR")
    config["privacy"]["pg_bin_dir"] = "/usr/lib/postgresql/15/bin"
    assert any("privacy.pg_bin_dir" in p for p in pg_client_problems(dockerfile, compose, config))


def test_a_client_not_from_pgdg_or_not_pinned_to_the_major_fails() -> None:
    dockerfile, compose, config = _files()
    unpinned = dockerfile.replace('"postgresql-client-${PG_MAJOR}"', "postgresql-client")
    assert unpinned != dockerfile
    assert any("postgresql-client-${PG_MAJOR}" in p for p in pg_client_problems(unpinned, compose, config))
    unsigned = dockerfile.replace("Signed-By:", "Trusted: yes #")
    assert any("Signed-By" in p for p in pg_client_problems(unsigned, compose, config))
    no_arg = dockerfile.replace("ARG PG_MAJOR=17", "ARG PG_MAJOR")
    assert pg_client_problems(no_arg, compose, config)[0].startswith("the Dockerfile must define the client major")


def test_build_args_cannot_override_the_major_to_another_server() -> None:
    dockerfile, compose, config = _files()
    compose["services"]["airflow-worker"]["build"] = {"context": ".", "args": {"PG_MAJOR": "16"}}
    assert any("builds with PG_MAJOR=16" in p for p in pg_client_problems(dockerfile, compose, config))


def test_the_image_env_reaches_privacy_pg_bin_dir(tmp_path: Path, monkeypatch: Any) -> None:
    """ECOM_PG_BIN_DIR (set by the image) is the override the backup code reads as privacy.pg_bin_dir."""
    from include.config_loader import load_config
    from include.privacy import privacy_config

    monkeypatch.setenv("ECOM_PG_BIN_DIR", "/usr/lib/postgresql/17/bin")
    assert privacy_config(load_config()).pg_bin_dir == Path("/usr/lib/postgresql/17/bin")
    monkeypatch.delenv("ECOM_PG_BIN_DIR")
    assert privacy_config(load_config()).pg_bin_dir is None  # config.yaml: null (embedded wheel's, else PATH)
