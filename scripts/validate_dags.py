"""Parse every DAG in dags/ the way the DAG processor does; report import errors; exit 1 on any.

Usage: python -m scripts.validate_dags [DAG_FOLDER]
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("validate-dags")


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else ROOT / "dags"
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow.dag_processing.dagbag import DagBag

    t = time.monotonic()
    bag = DagBag(dag_folder=str(folder))
    elapsed = time.monotonic() - t
    for dag_id, dag in sorted(bag.dags.items()):
        log.info("ok     %-26s %2d tasks  %s", dag_id, len(dag.tasks), Path(dag.fileloc).name)
    for path, error in sorted(bag.import_errors.items()):
        log.error("ERROR  %s\n%s", path, error)
    log.info("%d DAG(s), %d import error(s), parsed in %.2fs", len(bag.dags), len(bag.import_errors), elapsed)
    return 1 if bag.import_errors or not bag.dags else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
