"""Helpers of the deployment checks: project paths, YAML loading, Compose interpolation, tool runners."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROD_COMPOSE = ROOT / "docker-compose.prod.yml"
ASTRO_OVERRIDE = ROOT / "docker-compose.override.yml"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}  ($$ is a literal $)
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def interpolate(value: str, env: dict[str, str] | None = None, required_placeholder: str = "REQUIRED") -> str:
    """Resolve Compose interpolation the way `docker compose config` would with `env` (default: empty)."""
    env = env or {}

    def repl(m: re.Match[str]) -> str:
        name, op, arg = m.group("name"), m.group("op"), m.group("arg") or ""
        val = env.get(name)
        if op in (":-", ":?"):
            missing = not val
        else:
            missing = val is None
        if not missing:
            return val or ""
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            return required_placeholder
        return ""

    return INTERPOLATION.sub(repl, value.replace("$$", "\0")).replace("\0", "$")


def run(cmd: list[str], *, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def tool(name: str) -> str:
    """A dev tool of the venv (check-jsonschema, hadolint, zizmor), else from PATH; fail if absent."""
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run `make venv` (requirements-dev.txt)")
    return found
