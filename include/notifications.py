"""Alerts for the three DAGs (email / Slack). Placeholder until the alerting feature lands.

Contract used by the DAG files:
- `dag_callbacks(dag_id)` -> kwargs for @dag (on_failure_callback / on_success_callback).
- `task_callbacks()` -> kwargs for default_args (task-level callbacks).
- `send_run_summary(summary)` -> deliver the ETL run summary (a small dict of counts) when configured.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def dag_callbacks(dag_id: str) -> dict[str, Any]:
    return {}


def task_callbacks() -> dict[str, Any]:
    return {}


def send_run_summary(summary: dict[str, Any]) -> None:
    log.info("ETL run summary: %s", summary)
