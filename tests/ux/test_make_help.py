"""`make help` lists every target of the Makefile and mk/*.mk (names with digits too: e2e)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_help_lists_every_target() -> None:
    files = [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]
    targets = {
        m.group(1)
        for f in files
        for m in re.finditer(r"^([a-zA-Z0-9][a-zA-Z0-9_.-]*):(?!=)", f.read_text(), re.M)
        if m.group(1) != ".PHONY"
    }
    assert {"e2e", "run", "psql", "db-url", "reset-warehouse"} <= targets
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    listed = {line.split()[1] for line in out.splitlines() if line.strip().startswith("make ")}
    assert sorted(targets - listed) == []
