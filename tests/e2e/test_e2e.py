"""The end-to-end scenario of `scripts/e2e.py` on the real Airflow components (see docs/e2e.md).

It starts real processes (api-server, scheduler, dag-processor, triggerer, redis-server, Celery workers,
Chromium) and takes a few minutes, so `make test` skips it: it runs only when ``ECOM_RUN_E2E=1``, which
`make e2e` sets (CI runs `make test` then `make e2e`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("ECOM_RUN_E2E") != "1", reason="real-Airflow e2e: run with `make e2e` (ECOM_RUN_E2E=1)"
    ),
]


@pytest.mark.timeout(1800)
def test_scheduled_end_to_end_local_celery_and_ui() -> None:
    """LocalExecutor and CeleryExecutor runs through the REST API, asset-triggered quality run, UI screenshots."""
    missing = [tool for tool in ("redis-server", "chromium") if not shutil.which(tool)]
    assert not missing, f"missing {missing}: `make e2e-deps` installs them (apt-get)"
    from scripts.e2e import main

    assert main([]) == 0, "the e2e scenario failed: its output above names the failed step, task log and component logs"
