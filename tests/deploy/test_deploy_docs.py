"""docs/deployment.md has the README sections for each way of running, with the exact commands."""

from __future__ import annotations

import re

from tests.deploy.helpers import ROOT

DOC = ROOT / "docs" / "deployment.md"


def _section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"section '## {title}' missing from {DOC.name}"
    return m.group(1)


def test_each_way_of_running_has_a_section_with_its_commands() -> None:
    text = DOC.read_text(encoding="utf-8")
    astro = _section(text, "Run it with the Astro CLI (laptop)")
    assert "astro dev start" in astro and "astro dev parse" in astro
    prod = _section(text, "Run it in production (Docker Compose, CeleryExecutor)")
    for cmd in (
        "cp .env.example .env",
        "scripts/deploy.sh",
        "docker compose -f docker-compose.prod.yml up -d",
        "--scale airflow-worker=3",
        "--profile pgadmin",
    ):
        assert cmd in prod, cmd
    ci = _section(text, "CI")
    assert "make test" in ci and "make e2e" in ci and ".ci/run" in ci
    assert "multi-host" in text.lower() or "other hosts" in text.lower()


def test_files_named_in_the_commands_exist() -> None:
    text = DOC.read_text(encoding="utf-8")
    for path in set(
        re.findall(
            r"`((?:scripts|\.astro|\.github/workflows)/[\w./-]+|docker-compose[\w.-]*\.yml|\.env\.example)`", text
        )
    ):
        assert (ROOT / path).exists(), path
