"""`[core] hostname_callable` for the end-to-end stack: tells which Celery worker ran a task.

All workers of the e2e stack run on one machine, so the default hostname (the machine's FQDN) is the
same for every task instance. `scripts.airflow_stack` sets ``AIRFLOW__CORE__HOSTNAME_CALLABLE`` to
``scripts.e2e_hostname.get_hostname`` for every process and ``ECOM_E2E_WORKER_NAME`` for each
Celery worker, so the task instance's ``hostname`` (as the REST API shows it) names the worker.
Processes without the variable (scheduler, LocalExecutor workers) report the usual FQDN.
"""

from __future__ import annotations

import os
import socket

ENV_WORKER_NAME = "ECOM_E2E_WORKER_NAME"


def get_hostname() -> str:
    """The worker name from ``ECOM_E2E_WORKER_NAME``, else the machine's FQDN."""
    return os.environ.get(ENV_WORKER_NAME) or socket.getfqdn()
