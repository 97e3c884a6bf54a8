"""scripts/validate_dags.py: zero exit on the project's DAGs, non-zero naming the file on a broken one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(folder: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "scripts.validate_dags", *([str(folder)] if folder else [])]
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, env=os.environ.copy(), timeout=120, check=False
    )


def test_project_dags_validate() -> None:
    proc = run()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for dag_id in ("etl_ecommerce_pipeline",):
        assert f"ok     {dag_id}" in out
    assert "0 import error(s)" in out


def test_broken_dag_is_reported(tmp_path: Path) -> None:
    (tmp_path / "broken_dag.py").write_text("from airflow.sdk import dag\nimport module_that_does_not_exist\n")
    proc = run(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "broken_dag.py" in out and "module_that_does_not_exist" in out
