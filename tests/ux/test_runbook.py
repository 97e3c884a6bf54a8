"""The runbook covers every error class the pipeline defines and every anchor the summary/alerts link."""

from __future__ import annotations

import re
from pathlib import Path

from include.monitoring import METRICS
from include.run_summary import RUNBOOK_ANCHORS, runbook_link

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = (ROOT / "docs" / "runbook.md").read_text()


def test_every_linked_anchor_exists() -> None:
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', RUNBOOK))
    assert set(RUNBOOK_ANCHORS.values()) <= anchors
    assert runbook_link("include.extract.InputFileError") == "docs/runbook.md#input-file-error"
    assert runbook_link("KeyError") is None


def test_every_exception_class_of_include_has_an_entry() -> None:
    defined = set()
    for path in (ROOT / "include").rglob("*.py"):
        defined |= set(re.findall(r"^class (\w+)\((?:\w+Error|\w*Exception|NonRetryable)\b", path.read_text(), re.M))
    assert defined, "no exception classes found: the pattern is wrong"
    missing = sorted(c for c in defined if c not in RUNBOOK_ANCHORS or f"### {c}" not in RUNBOOK)
    assert missing == []


def test_every_monitoring_metric_is_explained() -> None:
    assert [m for m in METRICS if f"**{m}**" not in RUNBOOK] == []
