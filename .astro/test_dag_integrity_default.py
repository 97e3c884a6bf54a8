# ruff: noqa: S101, PLC0415  (a pytest file run by the Astro CLI: asserts and lazy Airflow imports are intended)
"""DAG integrity test run by `astro dev parse` / `astro dev pytest` (Astro's convention), adapted to Airflow 3.3.

Every file in the DAG folder must import without error and define at least one DAG, with no cycle.
The CLI's own scaffold passes ``include_examples`` to ``DagBag`` (removed in Airflow 3.3) and imports
the Airflow 2 paths; this version uses ``airflow.dag_processing.dagbag.DagBag``.

Environment:
  DAG_INTEGRITY_DAGS_FOLDER  the folder to check (default: Airflow's ``[core] dags_folder``)
  DAG_INTEGRITY_EXPECTED     comma-separated dag ids that must be present (default: none)
No connection, variable or database of the warehouse is needed: DAG files must not reach them at
parse time, so nothing is mocked here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest


def _dags_folder() -> Path:
    folder = os.environ.get("DAG_INTEGRITY_DAGS_FOLDER")
    if folder:
        return Path(folder)
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder"))


def _load_dagbag():
    from airflow.dag_processing.dagbag import DagBag

    logging.getLogger("airflow").setLevel(logging.ERROR)
    return DagBag(dag_folder=str(_dags_folder()))


@pytest.fixture(scope="module")
def dagbag():
    return _load_dagbag()


def _dag_files(folder: Path) -> list[Path]:
    ignored = {"__init__.py"}
    return sorted(p for p in folder.rglob("*.py") if p.name not in ignored and "__pycache__" not in p.parts)


def test_no_import_errors(dagbag) -> None:
    errors = {os.path.relpath(path, _dags_folder()): message.strip() for path, message in dagbag.import_errors.items()}
    assert not errors, "DAG files failed to import:\n" + "\n".join(f"{p}: {m}" for p, m in errors.items())


def test_every_dag_file_defines_a_dag(dagbag) -> None:
    folder = _dags_folder().resolve()
    with_dags = {Path(dag.fileloc).resolve() for dag in dagbag.dags.values()}
    # Helper modules (no `dag`/`DAG` in their text) are allowed in the folder.
    candidates = [p.resolve() for p in _dag_files(folder) if "dag" in p.read_text(encoding="utf-8").lower()]
    without = [
        os.path.relpath(p, folder) for p in candidates if p not in with_dags and str(p) not in dagbag.import_errors
    ]
    assert not without, f"files that look like DAG files but define no DAG: {without}"


def test_no_cycles(dagbag) -> None:
    for dag_id, dag in dagbag.dags.items():
        dag.check_cycle()  # raises AirflowDagCycleException on a cycle
        assert dag.tasks, f"{dag_id} has no tasks"


def test_expected_dags_present(dagbag) -> None:
    expected = {d.strip() for d in os.environ.get("DAG_INTEGRITY_EXPECTED", "").split(",") if d.strip()}
    missing = sorted(expected - set(dagbag.dag_ids))
    assert not missing, f"expected DAGs not found in {_dags_folder()}: {missing}"
