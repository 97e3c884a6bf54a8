"""Hardening rules of docker-compose.prod.yml, as a function that lists every violation.

`problems(compose)` takes the loaded YAML (a dict) and returns human-readable violations; the tests
assert it is empty for the real file and non-empty for deliberately bad variants.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from tests.deploy.helpers import INTERPOLATION, interpolate

# Names of settings that hold a credential. *_FILE / *_CMD / *_PATH point at one instead.
SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|FERNET|JWT|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL|REDISCLI_AUTH)", re.I
)
NOT_A_SECRET_SUFFIX = ("_FILE", "_CMD", "_PATH", "_PASSWORDS_FILE")
# A value that is nothing but one reference to a variable, required or empty by default.
ONLY_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?\?[^}]*|:-)?\}$")
URL_PASSWORD = re.compile(r"://[^:/@\s'\"]*:(?P<pw>[^@\s'\"]*)@")
JSON_PASSWORD = re.compile(r"\"password\"\s*:\s*\"(?P<pw>[^\"]*)\"", re.I)
CLI_PASSWORD = re.compile(r"--(?:requirepass|password|pass)[= ](?P<pw>\"[^\"]*\"|'[^']*'|\S+)")
DATA_IMAGES = re.compile(r"(^|/)(postgres|redis|valkey|mysql|mariadb|mongo|pgadmin4?)(:|$)")
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) and not name.upper().endswith(NOT_A_SECRET_SUFFIX)


def _env_items(service: dict[str, Any]) -> list[tuple[str, str]]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        items = [(e.split("=", 1)[0], e.split("=", 1)[1] if "=" in e else "") for e in env]
    else:
        items = [(k, "" if v is None else str(v)) for k, v in env.items()]
    return items


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def _password_is_reference(pw: str) -> bool:
    pw = pw.strip("\"'")
    return bool(ONLY_REFERENCE.match(pw)) or bool(re.fullmatch(r"\$\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", pw))


def _published(port: Any) -> list[tuple[str | None, str]]:
    """(host_ip, spec) of each published port, interpolated with defaults."""
    if isinstance(port, dict):
        if port.get("published") in (None, ""):
            return []
        return [(interpolate(str(port["host_ip"])) if port.get("host_ip") else None, str(port))]
    spec = interpolate(str(port))
    spec = spec.split("/", 1)[0]
    if spec.startswith("["):  # [::1]:8080:80
        host, _, rest = spec[1:].partition("]:")
        return [(host, spec)] if rest.count(":") == 1 else [(None, spec)]
    parts = spec.split(":")
    if len(parts) == 1:  # "80": published on a random port of all interfaces
        return [(None, spec)]
    if len(parts) == 2:  # "8080:80"
        return [(None, spec)]
    return [(":".join(parts[:-2]), spec)]


def _on_all_interfaces(host: str | None) -> bool:
    if not host:
        return True
    if host in LOOPBACK:
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def problems(compose: dict[str, Any]) -> list[str]:
    out: list[str] = []
    services: dict[str, Any] = compose.get("services") or {}
    if not services:
        return ["no services"]
    named_volumes = set((compose.get("volumes") or {}).keys())

    for name, svc_or_none in services.items():
        svc = svc_or_none or {}
        where = f"service {name}"
        image = str(svc.get("image", ""))
        is_data = bool(DATA_IMAGES.search(image))

        # 1. credentials: no literal values anywhere
        for key, value in _env_items(svc):
            if _is_secret_name(key) and value and not ONLY_REFERENCE.match(value.strip()):
                out.append(f"{where}: {key} has a literal value (use ${{VAR:?...}})")
        texts = _strings({k: v for k, v in svc.items() if k not in ("healthcheck", "labels")})
        texts += [" ".join(map(str, svc[k])) for k in ("command", "entrypoint") if isinstance(svc.get(k), list)]
        for text in texts:
            for rx in (URL_PASSWORD, JSON_PASSWORD, CLI_PASSWORD):
                for m in rx.finditer(text):
                    if m.group("pw") and not _password_is_reference(m.group("pw")):
                        out.append(f"{where}: literal password {m.group('pw')!r} in {text[:60]!r}")
        for text in _strings(svc):
            for m in INTERPOLATION.finditer(text):
                if _is_secret_name(m.group("name")) and m.group("op") in (":-", "-") and m.group("arg"):
                    out.append(f"{where}: secret {m.group('name')} has a default value {m.group('arg')!r}")

        # 2. published ports: never on all interfaces for data services; loopback by default for the rest
        for port in svc.get("ports") or []:
            for host, spec in _published(port):
                if _on_all_interfaces(host):
                    kind = "database/broker/admin tool" if is_data else "service"
                    out.append(f"{where}: {kind} port {spec!r} is published on all interfaces")

        # 3. health, restart, startup order
        hc = svc.get("healthcheck")
        if not hc or hc.get("disable") or not hc.get("test") or hc.get("test") == ["NONE"]:
            out.append(f"{where}: no healthcheck")
        if "restart" not in svc and "deploy" not in svc:
            out.append(f"{where}: no restart policy")
        deps = svc.get("depends_on")
        if isinstance(deps, list):
            out.append(f"{where}: depends_on without conditions (use the long form with condition:)")
        elif isinstance(deps, dict):
            for dep, spec in deps.items():
                if not isinstance(spec, dict) or "condition" not in spec:
                    out.append(f"{where}: depends_on {dep} has no condition")
                elif dep not in services:
                    out.append(f"{where}: depends_on unknown service {dep}")

        # 4. pinned images
        if image:
            ref = interpolate(image)
            tag = ref.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
            if "@sha256:" not in ref and (not tag or tag == "latest" or not re.search(r"\d", tag)):
                if "build" not in svc:
                    out.append(f"{where}: image {image!r} is not pinned to a version tag")
        elif "build" not in svc:
            out.append(f"{where}: neither image nor build")

        # 5. data in named volumes
        if is_data:
            vols = svc.get("volumes") or []
            for v in vols:
                source = v.get("source") if isinstance(v, dict) else str(v).split(":", 1)[0]
                target = v.get("target") if isinstance(v, dict) else str(v).split(":")[1]
                if target in ("/var/lib/postgresql/data", "/data", "/var/lib/pgadmin") and source not in named_volumes:
                    out.append(f"{where}: data directory {target} is not a named volume")
    return out
