"""End-to-end: the real Airflow components, scheduled for real, driven through the REST API and the UI.

    .venv/bin/python -m scripts.e2e            # what `make e2e` runs (through tests/e2e)
    .venv/bin/python -m scripts.e2e --only local --no-browser

Input: deterministic files from ``scripts.generate_data`` (with a manifest of the expected counts) in the
run directory, given to every process as ``ECOM_RAW_DATA_DIR``.

Parts (each timed):

1. ``local``  — `AirflowStack` with LocalExecutor (api-server, scheduler, dag-processor, triggerer on an
   embedded PostgreSQL). Through the REST API v2 with a JWT from ``/auth/token``: the three DAGs are
   listed and there is no import error; the ``warehouse_load`` pool is created; the DAGs are unpaused;
   ``etl_ecommerce_pipeline`` is triggered and must succeed; ``data_quality_checks`` must then run
   *because of that run's asset events* (run_type ``asset_triggered``, its upstream asset events come
   from the ETL run; no manual run exists) and succeed; the ETL ledger (``etl_runs``), the rejects and
   the warehouse tables must match the input manifest; ``monitoring_dag`` is triggered and must succeed
   (it reads the REST API through the ``airflow_api`` connection). Runs the scheduler starts by itself
   on unpause (the latest cron slot) are reported, with their first error if they failed.
2. ``celery`` — the same on CeleryExecutor with a real ``redis-server`` broker and two Celery workers;
   the ETL run's task instances must have run on both workers (``hostname`` via
   ``scripts.e2e_hostname``).
3. ``browser`` — headless Debian Chromium (Playwright with ``executable_path``, no browser download) logs
   into the UI of the Celery stack: home page and DAG list without the import-error indicator, the three
   DAGs listed, the graph of the ETL run (all seven tasks), the graph of the asset-triggered quality run,
   the log of ``send_notification``; screenshots to ``docs/images/`` (dag_list, etl_graph, quality_dag,
   task_log).

Least privilege, in both parts: each component runs with only its secrets (`COMPONENT_SECRETS`,
reported per process); the stack's init is the production ``scripts/container_init_airflow.sh`` with
the FAB auth manager; the Viewer ``monitor`` (the monitoring DAG's ``airflow_api`` login) gets 403 when
it triggers or pauses a DAG; on Celery the workers run without the metadata URL and its SQLite
fallback stays empty.

Exit status 0 when everything passed, 1 otherwise, with the failed task's log and the component logs
printed. Each run keeps its component logs, task logs and reports under ``.local/e2e/run-<time>/``
(the databases are dropped after a passing run; the newest 5 runs are kept). Every process started is stopped by pid at the end, also on failure or Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from scripts.airflow_stack import ROOT, SECRET_SETTINGS, AirflowStack, StackError

IMAGES_DIR = ROOT / "docs" / "images"
DEFAULT_RUNS = ROOT / ".local" / "e2e"  # git-ignored
CHROMIUM = os.environ.get("ECOM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FINAL_STATES = {"success", "failed"}
TI_FAILED_STATES = {"failed", "upstream_failed"}


class E2EError(AssertionError):
    """A check of the scenario failed; the message says which and why."""


@dataclass(frozen=True)
class Scenario:
    """What the scenario drives; the defaults are the project's DAGs (docs/CONTRACTS.md)."""

    etl_dag: str = "etl_ecommerce_pipeline"
    quality_dag: str = "data_quality_checks"
    monitoring_dag: str | None = "monitoring_dag"
    # Mapped tasks (extract_file, transform_file) have one instance per landing file.
    etl_tasks: tuple[str, ...] = (
        "claim_files",
        "extract_file",
        "transform_products",
        "transform_file",
        "load_data",
        "publish_assets",
        "archive_files",
        "send_notification",
    )
    log_task: str = "send_notification"  # its log holds the run summary table
    pools: tuple[tuple[str, int], ...] = (("warehouse_load", 1),)
    dags_folder: Path = ROOT / "dags"
    run_timeout: float = 300  # one DAG run, trigger -> success (measured 25-40 s here)
    quality_timeout: float = 240  # ETL success -> asset-triggered quality run succeeded (measured 2-6 s)
    # checks the warehouse after the ETL run: (stack, etl run_id, raw data dir) -> counts; raises E2EError
    check_warehouse: Callable[[AirflowStack, str, Path], dict[str, Any]] | None = None
    # The landing-zone scenario (files + marker, no manual trigger): in which parts, and its waits.
    # LocalExecutor only by default: the scenario adds ~3-6 min per part on a loaded 2-core machine, and what it
    # proves (watcher in the triggerer, registry, ledger) does not depend on the executor.
    landing_parts: tuple[str, ...] = ("local",)
    landing_marker: str = "_READY"  # = config.yaml landing.marker
    marker_timeout: float = 120  # marker dropped -> consumed by the triggerer's watcher (it polls every 10 s)

    @property
    def all_dags(self) -> tuple[str, ...]:
        return (self.etl_dag, self.quality_dag, *([self.monitoring_dag] if self.monitoring_dag else []))


@dataclass
class Report:
    timings: dict[str, float] = field(default_factory=dict)
    facts: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.facts.append(text)
        say(text)


def say(text: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {text}", flush=True)


# ---------------------------------------------------------------------------------------------- REST API steps
def wait_for_dags(stack: AirflowStack, dag_ids: Iterable[str], timeout: float = 120) -> dict[str, dict[str, Any]]:
    """Wait until the DAGs are listed by ``GET /api/v2/dags``; fail on any import error."""
    wanted = set(dag_ids)
    deadline = time.monotonic() + timeout
    while True:
        dags = {d["dag_id"]: d for d in stack.api("GET", "/api/v2/dags", params={"limit": 100}).json()["dags"]}
        errors = stack.api("GET", "/api/v2/importErrors", params={"limit": 100}).json()
        if errors["total_entries"]:
            details = "\n".join(f"--- {e['filename']}\n{e['stack_trace']}" for e in errors["import_errors"])
            raise E2EError(f"{errors['total_entries']} DAG import error(s):\n{details}")
        if wanted <= dags.keys():
            return dags
        if time.monotonic() > deadline:
            raise E2EError(
                f"DAGs {sorted(wanted - dags.keys())} not listed after {timeout:.0f}s; listed: {sorted(dags)}"
            )
        time.sleep(2)


def ensure_pools(stack: AirflowStack, pools: Iterable[tuple[str, int]]) -> None:
    for name, slots in pools:
        if stack.api("GET", f"/api/v2/pools/{name}", check=False).status_code == 404:
            stack.api("POST", "/api/v2/pools", json={"name": name, "slots": slots, "description": "created by e2e"})


def unpause(stack: AirflowStack, dag_id: str) -> None:
    resp = stack.api("PATCH", f"/api/v2/dags/{dag_id}", params={"update_mask": "is_paused"}, json={"is_paused": False})
    if resp.json().get("is_paused") is not False:
        raise E2EError(f"{dag_id} still paused after PATCH: {resp.text[:300]}")


def trigger(stack: AirflowStack, dag_id: str) -> str:
    run = stack.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": {}}).json()
    return str(run["dag_run_id"])


def task_instances(stack: AirflowStack, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    data = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}).json()
    return list(data["task_instances"])


def failure_details(stack: AirflowStack, dag_id: str, run_id: str) -> str:
    """Task states of a run and the logs of its failed tasks (all tries)."""
    out = []
    tis = task_instances(stack, dag_id, run_id)
    out.append(f"task instances of {dag_id} / {run_id}:")
    out += [f"  {ti['task_id']:<28} {ti['state']!s:<16} try {ti['try_number']} host {ti.get('hostname')}" for ti in tis]
    for ti in tis:
        if ti["state"] in ("failed", "up_for_retry") or (
            ti["state"] not in ("success", "skipped", "upstream_failed", None)
        ):
            for try_number in range(1, max(1, ti["try_number"]) + 1):
                out.append(f"\n----- log of {ti['task_id']} try {try_number} ({ti['state']}) -----")
                out.append(stack.task_log(dag_id, run_id, ti["task_id"], try_number))
    return "\n".join(out)


def wait_for_run(stack: AirflowStack, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
    """Poll a DAG run until success; print task state changes; raise with the failed task's log otherwise."""
    deadline = time.monotonic() + timeout
    seen: dict[str, str | None] = {}
    while True:
        run = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
        for ti in task_instances(stack, dag_id, run_id):
            if seen.get(ti["task_id"], "-") != ti["state"]:
                seen[ti["task_id"]] = ti["state"]
                say(
                    f"  {dag_id}.{ti['task_id']}: {ti['state']}"
                    + (f" on {ti['hostname']}" if ti.get("hostname") else "")
                )
        if run["state"] == "success":
            return dict(run)
        if run["state"] == "failed" or time.monotonic() > deadline:
            why = "failed" if run["state"] == "failed" else f"still {run['state']} after {timeout:.0f}s"
            raise E2EError(f"DAG run {dag_id} / {run_id} {why}\n{failure_details(stack, dag_id, run_id)}")
        time.sleep(2)


def wait_for_asset_triggered_run(
    stack: AirflowStack, dag_id: str, source_dag: str, source_run_id: str, timeout: float
) -> dict[str, Any]:
    """The run of `dag_id` created by asset events of `source_run_id`; waits for it to succeed."""
    deadline = time.monotonic() + timeout
    while True:
        runs = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 50, "order_by": "-run_after"}).json()
        for run in runs["dag_runs"]:
            if run["run_type"] != "asset_triggered":
                continue
            events = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents").json()
            sources = {(e.get("source_dag_id"), e.get("source_run_id")) for e in events["asset_events"]}
            if (source_dag, source_run_id) in sources:
                say(
                    f"  {dag_id} run {run['dag_run_id']}: run_type={run['run_type']} "
                    f"triggered_by={run.get('triggered_by')} "
                    f"consumed {len(events['asset_events'])} asset event(s) from {sorted(sources)}"
                )
                if run.get("triggered_by", "asset") != "asset":
                    raise E2EError(
                        f"{dag_id} run {run['dag_run_id']} has triggered_by={run['triggered_by']}, not asset"
                    )
                return wait_for_run(stack, dag_id, run["dag_run_id"], max(10.0, deadline - time.monotonic()))
        if time.monotonic() > deadline:
            seen = [(r["dag_run_id"], r["run_type"], r["state"]) for r in runs["dag_runs"]]
            events = stack.api(
                "GET", "/api/v2/assets/events", params={"source_run_id": source_run_id, "limit": 50}
            ).json()
            raise E2EError(
                f"no asset-triggered run of {dag_id} from {source_dag} / {source_run_id} within {timeout:.0f}s; "
                f"runs of {dag_id}: {seen}; asset events of the source run: "
                f"{[(e.get('uri'), e.get('timestamp')) for e in events.get('asset_events', [])]}"
            )
        time.sleep(2)


def _first_error(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> str:
    """The first exception of a task's log, as 'Type: message' (its first two lines)."""
    lines = stack.task_log(dag_id, run_id, task_id).splitlines()
    for i, line in enumerate(lines):
        if line.startswith("  ") and ": " in line and not line.startswith("    ") and "Traceback" not in line:
            return " ".join(x.strip() for x in lines[i : i + 2])[:300]
    return "(see the task log)"


def wait_until_idle(
    stack: AirflowStack, dag_ids: Iterable[str], timeout: float, quiet_polls: int = 1, interval: float = 2
) -> list[dict[str, Any]]:
    """Wait until no run of `dag_ids` is queued or running in `quiet_polls` polls in a row; return all runs."""
    dag_ids = list(dag_ids)
    deadline = time.monotonic() + timeout
    quiet = 0
    while True:
        runs = []
        for dag_id in dag_ids:
            runs += stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100}).json()["dag_runs"]
        busy = [(r["dag_id"], r["dag_run_id"], r["state"]) for r in runs if r["state"] not in FINAL_STATES]
        quiet = 0 if busy else quiet + 1
        if quiet >= quiet_polls:
            return runs
        if time.monotonic() > deadline:
            raise E2EError(f"runs still active after {timeout:.0f}s: {busy}")
        time.sleep(interval)


def run_pipeline(stack: AirflowStack, sc: Scenario, report: Report, label: str, raw_dir: Path) -> dict[str, Any]:
    """Listed → unpaused → triggered → ETL success → asset-triggered quality success → warehouse rows."""
    t0 = time.monotonic()
    dags = wait_for_dags(stack, sc.all_dags)
    report.note(f"[{label}] DAGs listed, no import errors: {sorted(dags)}")
    ensure_pools(stack, sc.pools)
    for dag_id in sc.all_dags:
        unpause(stack, dag_id)
    say(f"[{label}] unpaused {list(sc.all_dags)}")

    # Unpausing a cron-scheduled DAG (catchup=False) makes the scheduler start a run for its latest slot at
    # once: here an ETL run (whose load emits the assets), a quality run and a monitoring run. Let them
    # finish first, so the run triggered below is the only producer of asset events. Otherwise its events
    # can arrive while data_quality_checks (max_active_runs=1) is busy, and Airflow 3.3 then leaves them
    # unconsumed until the next load (apache/airflow#56050).
    t_settle = time.monotonic()
    time.sleep(3)  # one scheduler loop: the runs of the latest slots get created
    side = wait_until_idle(stack, sc.all_dags, sc.run_timeout, quiet_polls=3, interval=2)
    report.timings[f"{label}: runs started by unpausing, settled"] = time.monotonic() - t_settle
    report.note(
        f"[{label}] runs the scheduler started on unpause: {sorted((r['dag_id'], r['run_type'], r['state']) for r in side)}"
    )

    t1 = time.monotonic()
    run_id = trigger(stack, sc.etl_dag)
    say(f"[{label}] triggered {sc.etl_dag}: {run_id}")
    etl_run = wait_for_run(stack, sc.etl_dag, run_id, sc.run_timeout)
    report.timings[f"{label}: ETL run (trigger -> success)"] = time.monotonic() - t1
    report.note(
        f"[{label}] {sc.etl_dag} run {run_id} (run_type={etl_run['run_type']}) "
        f"succeeded in {time.monotonic() - t1:.0f}s"
    )

    t2 = time.monotonic()
    q_run = wait_for_asset_triggered_run(stack, sc.quality_dag, sc.etl_dag, run_id, sc.quality_timeout)
    report.timings[f"{label}: quality run (ETL success -> success)"] = time.monotonic() - t2
    manual = [
        r["dag_run_id"]
        for r in stack.api("GET", f"/api/v2/dags/{sc.quality_dag}/dagRuns").json()["dag_runs"]
        if r["run_type"] == "manual"
    ]
    if manual:
        raise E2EError(f"{sc.quality_dag} has manual runs {manual}: the check must see only asset-triggered runs")
    report.note(
        f"[{label}] {sc.quality_dag} run {q_run['dag_run_id']} run_type={q_run['run_type']} "
        f"triggered_by={q_run.get('triggered_by')} consumed the asset events of {run_id}, succeeded"
    )

    if sc.check_warehouse:
        counts = sc.check_warehouse(stack, run_id, raw_dir)
        report.note(f"[{label}] warehouse: {counts}")

    tis = task_instances(stack, sc.etl_dag, run_id)
    hosts = {ti["task_id"]: ti.get("hostname") for ti in tis}
    missing = set(sc.etl_tasks) - hosts.keys()
    if missing:
        raise E2EError(f"ETL run has no task instances for {sorted(missing)}; it has {sorted(hosts)}")

    if sc.monitoring_dag:
        t3 = time.monotonic()
        m_run_id = trigger(stack, sc.monitoring_dag)
        wait_for_run(stack, sc.monitoring_dag, m_run_id, sc.run_timeout)
        report.timings[f"{label}: monitoring run"] = time.monotonic() - t3
        report.note(
            f"[{label}] {sc.monitoring_dag} run {m_run_id} (REST API through the airflow_api connection) succeeded"
        )

    runs = wait_until_idle(stack, sc.all_dags, sc.run_timeout)
    summary = sorted((r["dag_id"], r["run_type"], r["state"]) for r in runs)
    report.note(f"[{label}] all runs once idle (dag, type, state): {summary}")
    # Unpausing a DAG with a cron schedule (catchup=False) also starts a run for the latest past slot. Those
    # side runs race with the chain under test (e.g. a quality run before the first load), so they are
    # reported, not asserted; the chain above (manual ETL -> asset-triggered quality, monitoring) is.
    for r in runs:
        if r["state"] != "success" and r["run_type"] != "manual" and r["dag_run_id"] != q_run["dag_run_id"]:
            failed = [
                ti["task_id"] for ti in task_instances(stack, r["dag_id"], r["dag_run_id"]) if ti["state"] == "failed"
            ]
            first = _first_error(stack, r["dag_id"], r["dag_run_id"], failed[0]) if failed else ""
            report.note(
                f"[{label}] WARNING side run {r['dag_id']} / {r['dag_run_id']} ({r['run_type']}) ended "
                f"{r['state']}: failed tasks {failed}; first error: {first}"
            )
    report.timings[f"{label}: pipeline total"] = time.monotonic() - t0
    return {"run_id": run_id, "quality_run_id": q_run["dag_run_id"], "hosts": hosts}


# ---------------------------------------------------------------------------------------------- landing zone
def _etl_runs_by_id(stack: AirflowStack, dag_id: str) -> dict[str, dict[str, Any]]:
    data = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100}).json()
    return {r["dag_run_id"]: r for r in data["dag_runs"]}


def _landing_orders(stack: AirflowStack, label: str) -> list[bytes]:
    """Two small orders files of NEW orders (new references) for customers and products already loaded.

    Built from loaded rows so that every row is valid (no reject-rate guard trips on a 3-row file).
    """
    import psycopg

    with psycopg.connect(stack.warehouse_url) as conn:
        rows = conn.execute(
            "SELECT c.email, o.product_id, o.quantity, o.unit_price::text,"
            " to_char(o.order_date AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'), o.status, o.payment_method"
            " FROM orders o JOIN customers c USING (customer_id) ORDER BY o.order_id LIMIT 6"
        ).fetchall()
    if len(rows) < 6:
        raise E2EError(f"the warehouse has {len(rows)} orders after the manual run: cannot build landing files")
    header = "order_reference,customer_email,product_id,quantity,unit_price,order_date,status,payment_method\n"
    files = []
    for day in (0, 1):
        lines = [
            ",".join([f"E2E-{label.upper()}-LAND-{day * 3 + i + 1:03d}", *(str(v or "") for v in row)])
            for i, row in enumerate(rows[day * 3 : day * 3 + 3])
        ]
        files.append((header + "\n".join(lines) + "\n").encode())
    return files


def _drop(path: Path, content: bytes) -> None:
    """Write like an exporter: to a .part name (never claimed), then rename into place."""
    part = path.with_name(path.name + ".part")
    part.write_bytes(content)
    part.rename(path)


def _wait_marker_consumed(marker: Path, timeout: float, label: str) -> float:
    t0 = time.monotonic()
    while marker.exists():
        if time.monotonic() - t0 > timeout:
            raise E2EError(
                f"[{label}] the marker {marker} is still there after {timeout:.0f}s: the asset watcher did not "
                "consume it (is the ETL DAG unpaused and parsed? see the triggerer log)"
            )
        time.sleep(1)
    return time.monotonic() - t0


def _wait_new_asset_run(
    stack: AirflowStack, dag_id: str, before: set[str], timeout: float, label: str
) -> dict[str, Any]:
    """The one new run of `dag_id` (not in `before`), which must be asset-triggered."""
    deadline = time.monotonic() + timeout
    while True:
        runs = _etl_runs_by_id(stack, dag_id)
        new = [r for rid, r in runs.items() if rid not in before]
        if new:
            if len(new) > 1 or new[0]["run_type"] != "asset_triggered":
                raise E2EError(
                    f"[{label}] expected ONE asset-triggered run of {dag_id} after the marker, got "
                    f"{[(r['dag_run_id'], r['run_type'], r['state']) for r in new]}"
                )
            return new[0]
        if time.monotonic() > deadline:
            raise E2EError(
                f"[{label}] no new run of {dag_id} within {timeout:.0f}s of the marker being consumed; runs: "
                f"{sorted((r['dag_run_id'], r['run_type'], r['state']) for r in runs.values())}"
            )
        time.sleep(2)


def _drop_and_wait(
    stack: AirflowStack,
    sc: Scenario,
    label: str,
    files: dict[Path, bytes],
    marker: Path,
    *,
    again: bool,
) -> tuple[dict[str, Any], float, float]:
    """Drop `files` (replacing them when `again`) and the marker; wait for the watcher and the run it starts.

    Returns the run (API form), the seconds until the marker was consumed, and the seconds until the run succeeded.
    """
    before = set(_etl_runs_by_id(stack, sc.etl_dag))
    t0 = time.monotonic()
    for path, content in files.items():
        if again:
            path.unlink()
        _drop(path, content)
    marker.write_text("")
    what = "again (same content) and another" if again else "and"
    say(f"[{label}] dropped {[p.name for p in files]} {what} {marker.name} into {marker.parent}")
    waited = _wait_marker_consumed(marker, sc.marker_timeout, label)
    run = _wait_new_asset_run(stack, sc.etl_dag, before, sc.run_timeout, label)
    say(f"[{label}] marker consumed after {waited:.0f}s; run {run['dag_run_id']} run_type={run['run_type']}")
    wait_for_run(stack, sc.etl_dag, run["dag_run_id"], sc.run_timeout)
    return run, waited, time.monotonic() - t0


def _marker_events(stack: AirflowStack, dag_id: str, run_id: str) -> list[str]:
    events = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents").json()["asset_events"]
    return [str(e.get("uri") or e.get("name")) for e in events]


def _ledger(stack: AirflowStack, run_id: str) -> dict[str, dict[str, Any]]:
    import psycopg

    with psycopg.connect(stack.warehouse_url) as conn:
        return {
            row[0]: {"status": row[1], "claimed": row[2], "loaded": row[3], "skipped": row[4], "rows_loaded": row[5]}
            for row in conn.execute(
                "SELECT source, status, files_claimed, files_loaded, files_skipped, rows_loaded FROM etl_runs"
                " WHERE etl_run_id = %s AND attempt = 1",
                (run_id,),
            )
        }


def _registry(stack: AirflowStack, run_id: str) -> set[tuple[str, str, str]]:
    import psycopg

    with psycopg.connect(stack.warehouse_url) as conn:
        return {
            (r[0], r[1], r[2])
            for r in conn.execute(
                "SELECT source, rel_path, status FROM ingested_files WHERE etl_run_id = %s", (run_id,)
            )
        }


def landing_scenario(stack: AirflowStack, sc: Scenario, report: Report, label: str, raw_dir: Path) -> dict[str, Any]:
    """Files + marker start a run with no trigger and load exactly those files; the same files again are skipped.

    The ETL DAG is unpaused (its watcher is registered) and its cron is off in the e2e config, so the only
    runs are the ones the marker starts. The two files and the marker are removed at the end, so the next
    part's manual run sees the generated input only.
    """
    import psycopg

    marker = raw_dir / sc.landing_marker
    names = [f"orders_2026-10-0{d}_e2e_{label}.csv" for d in (1, 2)]
    paths = [raw_dir / n for n in names]
    files = dict(zip(paths, _landing_orders(stack, label), strict=True))
    out: dict[str, Any] = {}
    try:
        # ---- first drop: two new files, then the marker
        run1, waited, took = _drop_and_wait(stack, sc, label, files, marker, again=False)
        rid1 = run1["dag_run_id"]
        report.timings[f"{label}: landing drop 1 (files + marker -> run success)"] = took
        events = _marker_events(stack, sc.etl_dag, rid1)
        problems = []
        if not any(sc.landing_marker in e for e in events):
            problems.append(f"run {rid1} consumed no event of the marker asset: {events}")
        registry = _registry(stack, rid1)
        want = {("orders", n, "loaded") for n in names}
        if registry != want:
            problems.append(f"ingested_files of run {rid1}: {sorted(registry)}, expected exactly {sorted(want)}")
        ledger = _ledger(stack, rid1)
        orders = ledger.get("orders", {})
        if (orders.get("status"), orders.get("claimed"), orders.get("loaded"), orders.get("rows_loaded")) != (
            "success",
            2,
            2,
            6,
        ):
            problems.append(
                f"etl_runs of run {rid1} for orders: {orders}, expected success, 2 claimed, 2 loaded, 6 rows"
            )
        others = {s: v for s, v in ledger.items() if s != "orders" and (v["claimed"] or v["loaded"])}
        if others:
            problems.append(f"run {rid1} claimed files of other sources: {others}")
        with psycopg.connect(stack.warehouse_url) as conn:
            refs = conn.execute(
                "SELECT count(*) FROM orders WHERE order_reference LIKE %s AND etl_run_id = %s",
                (f"E2E-{label.upper()}-LAND-%", rid1),
            ).fetchone()[0]  # type: ignore[index]
        if refs != 6:
            problems.append(f"orders holds {refs} of the 6 new orders from run {rid1}")
        gone = [p.name for p in paths if not p.exists()]
        if gone:
            problems.append(f"data files {gone} disappeared: the watcher must delete the marker only")
        if problems:
            raise E2EError(f"[{label}] landing drop 1:\n  " + "\n  ".join(problems))
        report.note(
            f"[{label}] landing drop 1: {names} + {sc.landing_marker} -> marker consumed in {waited:.0f}s, "
            f"run {rid1} ({run1['run_type']}, events {events}) loaded exactly those files: ingested_files "
            f"{sorted(r[1] for r in registry)}, etl_runs orders {orders}"
        )
        # Its load emitted the table assets: let the asset-triggered quality run finish before the next drop.
        wait_until_idle(stack, sc.all_dags, sc.run_timeout, quiet_polls=2)

        # ---- second drop: the same two files (same content) again, and a second marker
        run2, waited, took = _drop_and_wait(stack, sc, label, files, marker, again=True)
        rid2 = run2["dag_run_id"]
        report.timings[f"{label}: landing drop 2 (same files + marker -> run success)"] = took
        problems = []
        registry = _registry(stack, rid2)
        if registry:
            problems.append(f"run {rid2} registered files {sorted(registry)}: the re-drop must load nothing")
        ledger = _ledger(stack, rid2)
        orders = ledger.get("orders", {})
        if (orders.get("status"), orders.get("claimed"), orders.get("loaded"), orders.get("rows_loaded")) != (
            "nothing_new",
            0,
            0,
            0,
        ) or (orders.get("skipped") or 0) < 2:
            problems.append(
                f"etl_runs of run {rid2} for orders: {orders}, expected nothing_new, 0 claimed, 0 loaded, >= 2 skipped"
            )
        loaded_any = {s: v for s, v in ledger.items() if v["status"] != "nothing_new" or v["loaded"]}
        if loaded_any:
            problems.append(f"run {rid2} loaded something: {loaded_any}")
        summary = stack.task_log(sc.etl_dag, rid2, sc.log_task)
        for name in names:
            if f"skipped {name}: already loaded as {name} in run {rid1}" not in summary:
                problems.append(f"the run summary of {rid2} does not report {name} skipped as loaded by {rid1}")
        if "nothing new" not in summary:
            problems.append(f"the run summary of {rid2} does not say 'nothing new'")
        publish = [ti["state"] for ti in task_instances(stack, sc.etl_dag, rid2) if ti["task_id"] == "publish_assets"]
        if publish != ["skipped"]:
            problems.append(f"publish_assets of {rid2} is {publish}, expected skipped (no asset event, no quality run)")
        if problems:
            raise E2EError(f"[{label}] landing drop 2:\n  " + "\n  ".join(problems))
        report.note(
            f"[{label}] landing drop 2: same files + second {sc.landing_marker} -> run {rid2} ({run2['run_type']}) "
            f"loaded nothing: etl_runs orders {orders}; summary reports both files skipped "
            f"(already loaded in {rid1}); publish_assets skipped"
        )
        out = {"landing_run_ids": [rid1, rid2]}
    finally:
        for path in [*paths, marker]:
            path.unlink(missing_ok=True)
    runs = wait_until_idle(stack, sc.all_dags, sc.run_timeout, quiet_polls=2)
    bad = [(r["dag_id"], r["dag_run_id"], r["run_type"], r["state"]) for r in runs if r["state"] != "success"]
    if bad:
        report.note(f"[{label}] WARNING runs not successful after the landing scenario: {bad}")
    return out


# ---------------------------------------------------------------------------------------------- least privilege
def check_roles(stack: AirflowStack, sc: Scenario, report: Report, label: str) -> None:
    """FAB: the Viewer logs in and reads, but cannot trigger or unpause a DAG (403); a wrong password is 401."""
    if stack.auth_manager != "fab":
        return
    bad = stack.login(stack.viewer_user, stack.viewer_password + "x")
    if bad.status_code != 401:
        raise E2EError(f"a wrong password answered {bad.status_code}, expected 401: {bad.text[:200]}")
    resp = stack.login(stack.viewer_user, stack.viewer_password)
    if resp.status_code != 201:
        raise E2EError(f"viewer login answered {resp.status_code}: {resp.text[:200]}")
    headers = {"Authorization": f"Bearer {resp.json()['access_token']}"}
    session = requests.Session()
    listed = session.get(f"{stack.base_url}/api/v2/dags", headers=headers, params={"limit": 100}, timeout=30)
    if listed.status_code != 200 or sc.etl_dag not in {d["dag_id"] for d in listed.json()["dags"]}:
        raise E2EError(f"the viewer cannot list the DAGs: {listed.status_code} {listed.text[:200]}")
    trig = session.post(
        f"{stack.base_url}/api/v2/dags/{sc.etl_dag}/dagRuns", headers=headers, json={"logical_date": None}, timeout=30
    )
    pause = session.patch(
        f"{stack.base_url}/api/v2/dags/{sc.etl_dag}",
        headers=headers,
        params={"update_mask": "is_paused"},
        json={"is_paused": True},
        timeout=30,
    )
    session.close()
    if trig.status_code != 403 or pause.status_code != 403:
        raise E2EError(
            f"the viewer must get 403: trigger -> {trig.status_code} {trig.text[:200]}; "
            f"pause -> {pause.status_code} {pause.text[:200]}"
        )
    report.note(
        f"[{label}] FAB: admin and viewer '{stack.viewer_user}' log in (POST /auth/token 201, wrong password 401); "
        f"viewer lists DAGs (200), trigger {sc.etl_dag} -> 403, pause -> 403"
    )


def check_component_envs(stack: AirflowStack, report: Report, label: str) -> None:
    """Every running Airflow process holds exactly the secret-bearing settings of its component's policy."""
    problems = []
    for name in stack.pids():
        component = "celery-worker" if name.startswith("celery-") else name
        if component == "redis":
            continue
        have = stack.process_env_keys(name) & SECRET_SETTINGS
        want = stack.secret_keys_for(component)
        if have != want:
            problems.append(f"{name}: has {sorted(have)}, policy {sorted(want)}")
        else:
            report.note(f"[{label}] {name} ran with secrets {sorted(have) or 'none'}")
    if problems:
        raise E2EError("process environments differ from the component policy:\n  " + "\n  ".join(problems))


def check_worker_never_used_metadata(stack: AirflowStack, report: Report, label: str) -> None:
    """Workers have no metadata URL: Airflow falls back to SQLite in AIRFLOW_HOME; it must hold no table."""
    import sqlite3

    fallback = stack.airflow_home / "airflow.db"
    if not fallback.exists():
        report.note(f"[{label}] no process created the SQLite fallback {fallback.name}")
        return
    with contextlib.closing(sqlite3.connect(fallback)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    if tables:
        raise E2EError(f"a process without the metadata URL used the SQLite fallback {fallback}: tables {tables}")
    report.note(
        f"[{label}] workers without AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: the SQLite fallback {fallback.name} "
        f"was opened at start but holds no table ({fallback.stat().st_size} bytes): no metadata access"
    )


# ---------------------------------------------------------------------------------------------- data and warehouse
WAREHOUSE_TABLES = ("customers", "products", "orders", "user_sessions")


def _e2e_config(base: Path, label: str) -> Path:
    """config.yaml without the ETL's cron: with the landing zone, the run the scheduler starts on unpause would
    load the files and the manual run would find nothing new (no asset event, no quality run to check)."""
    import yaml

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["etl"]["schedule"] = None  # the ETL still starts on its marker file (asset watcher) or a manual trigger
    for key in ("raw_data_dir", "staging_dir", "reports_dir"):
        cfg["paths"][key] = str((ROOT / cfg["paths"][key]).resolve())  # relative to config.yaml, as before
    for key in ("exports_dir", "backup_dir"):
        if cfg.get("privacy", {}).get(key):
            cfg["privacy"][key] = str((ROOT / cfg["privacy"][key]).resolve())
    path = base / f"{label}-config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def prepare_raw_data(base: Path) -> Path:
    """Deterministic input files with a manifest of the expected counts (scripts.generate_data), else data/raw."""
    if not (ROOT / "scripts" / "generate_data.py").exists():
        return ROOT / "data" / "raw"
    out = base / "raw"
    if not (out / "manifest.json").exists():
        subprocess.run(
            [sys.executable, "-m", "scripts.generate_data", "--out", str(out)], cwd=ROOT, check=True, timeout=300
        )
    return out


def default_warehouse_check(stack: AirflowStack, run_id: str, raw_dir: Path) -> dict[str, Any]:
    """The ETL ledger of `run_id` and the warehouse tables match the input's manifest."""
    import psycopg

    manifest_file = raw_dir / "manifest.json"
    manifest = json.loads(manifest_file.read_text()) if manifest_file.exists() else {}
    problems: list[str] = []
    counts: dict[str, Any] = {}
    with psycopg.connect(stack.warehouse_url) as conn:
        for table in WAREHOUSE_TABLES:
            counts[table] = conn.execute(f"SELECT count(*) FROM public.{table}").fetchone()[0]  # type: ignore[index]
        ledger = {
            row[0]: {"read": row[1], "loaded": row[2], "rejected": row[3], "duplicate": row[4]}
            for row in conn.execute(
                "SELECT source, rows_read, rows_loaded, rows_rejected, rows_duplicate"
                " FROM etl_runs WHERE etl_run_id = %s",
                (run_id,),
            )
        }
        rejected = conn.execute("SELECT count(*) FROM rejected_records WHERE etl_run_id = %s", (run_id,)).fetchone()[0]  # type: ignore[index]
    if set(ledger) != set(WAREHOUSE_TABLES):
        problems.append(f"etl_runs has sources {sorted(ledger)} for {run_id}, expected {sorted(WAREHOUSE_TABLES)}")
    for source, row in ledger.items():
        if row["read"] != row["loaded"] + row["rejected"] + row["duplicate"]:
            problems.append(f"{source}: read {row['read']} != loaded + rejected + duplicate {row}")
        expected = manifest.get(source)
        if expected:
            want = {
                "read": expected["rows"],
                "loaded": expected["valid"],
                "rejected": expected["rejected"],
                "duplicate": expected["duplicates"],
            }
            if row != want:
                problems.append(f"{source}: ledger {row} != manifest {want}")
    for table in WAREHOUSE_TABLES:
        loaded = ledger.get(table, {}).get("loaded")
        if not counts[table]:
            problems.append(f"table {table} is empty")
        elif loaded is not None and (counts[table] < loaded if table == "customers" else counts[table] != loaded):
            # customers also gets the guest customers derived from orders and sessions
            problems.append(f"table {table} has {counts[table]} rows, the run loaded {loaded}")
    if ledger and rejected != sum(r["rejected"] for r in ledger.values()):
        problems.append(
            f"rejected_records has {rejected} rows for {run_id}, "
            f"the ledger says {sum(r['rejected'] for r in ledger.values())}"
        )
    if problems:
        raise E2EError("warehouse check failed:\n  " + "\n  ".join(problems))
    counts["rejected_records"] = rejected
    return counts


# ---------------------------------------------------------------------------------------------- browser
def browser_part(stack: AirflowStack, sc: Scenario, result: dict[str, Any], out_dir: Path, report: Report) -> None:
    """Log into the UI with headless Chromium, check what a user sees, save the screenshots.

    `result` is what `run_pipeline` returned (the ETL run and its asset-triggered quality run).
    """
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        raise E2EError(f"{CHROMIUM} not found: `apt-get install -y chromium` (make e2e does it)")
    out_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(30_000)
            # expect() has its own 5 s default: too short for the first render on a busy 2-core machine
            expect.set_options(timeout=30_000)
            # FAB's login form (/auth/login/) or the simple auth manager's (/auth/login): same field names
            page.goto(
                f"{stack.base_url}/auth/login/" if stack.auth_manager == "fab" else f"{stack.base_url}/auth/login"
            )
            page.fill("input[name=username]", stack.admin_user)
            page.fill("input[name=password]", stack.admin_password)
            page.locator("button[type=submit], input[type=submit]").first.click()
            page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)

            page.goto(f"{stack.base_url}/")
            _assert_no_import_errors(page)
            page.goto(f"{stack.base_url}/dags")
            for dag_id in sc.all_dags:
                expect(page.get_by_text(dag_id, exact=True).first).to_be_visible()
            _assert_no_import_errors(page)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(out_dir / "dag_list.png"))
            say("[browser] DAG list shows all DAGs, no import-error banner")

            run_id, q_run_id = result["run_id"], result["quality_run_id"]
            _graph(page, f"{stack.base_url}/dags/{sc.etl_dag}/runs/{run_id}", sc.etl_tasks)
            page.screenshot(path=str(out_dir / "etl_graph.png"))
            say(f"[browser] graph of ETL run {run_id} shows its {len(sc.etl_tasks)} tasks")

            _graph(page, f"{stack.base_url}/dags/{sc.quality_dag}/runs/{q_run_id}", ())
            page.screenshot(path=str(out_dir / "quality_dag.png"))
            say(f"[browser] graph of the asset-triggered quality run {q_run_id} shown")

            page.goto(f"{stack.base_url}/dags/{sc.etl_dag}/runs/{run_id}/tasks/{sc.log_task}")
            page.locator("button[aria-label^='Show Grid']").first.click()
            expect(page.get_by_text("Log message source details").first).to_be_visible()
            page.get_by_role("button", name="Log Settings").click()
            page.get_by_role("menuitem", name="Wrap").click()
            _widen_details_panel(page)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out_dir / "task_log.png"))
            say(f"[browser] task log of {sc.log_task} shown")
        except Exception:
            with_fail = out_dir / "failure.png"
            try:
                page.screenshot(path=str(with_fail))
                say(f"[browser] failure screenshot: {with_fail}")
            except Exception:  # noqa: S110 - best effort, the original error matters
                pass
            raise
        finally:
            browser.close()
    report.note(f"[browser] screenshots in {out_dir}: dag_list.png etl_graph.png quality_dag.png task_log.png")


def _assert_no_import_errors(page: Any) -> None:
    """The UI's import-error indicator (a red "Dag Import Error" button on the DAG list and home page) is absent."""
    import re

    page.wait_for_load_state("networkidle")
    indicator = page.get_by_role("button", name=re.compile("import error", re.IGNORECASE))
    if indicator.count():
        raise E2EError(f"the UI shows an import-error indicator: {indicator.first.get_attribute('aria-label')}")


def _widen_details_panel(page: Any, x: float = 480) -> None:
    """Drag the splitter between the grid and the details (log) panel to the left."""
    splitter = page.get_by_role("separator").filter(has=page.get_by_role("button", name="Collapse Details Panel")).first
    box = splitter.bounding_box()
    if not box:
        return
    y = box["y"] + box["height"] / 3
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(x, y, steps=10)
    page.mouse.up()


def _graph(page: Any, url: str, tasks: Iterable[str]) -> None:
    """Open `url` (a DAG or a DAG run), switch to the graph, wait for the task nodes."""
    from playwright.sync_api import expect

    page.goto(url)
    page.locator("button[aria-label^='Show Graph']").first.click()
    expect(page.locator(".react-flow__node").first).to_be_visible(timeout=30_000)
    for task_id in tasks:
        expect(page.locator(".react-flow__node").filter(has_text=task_id).first).to_be_visible()
    _assert_no_import_errors(page)
    page.wait_for_timeout(1500)  # let the layout settle before the screenshot


# ---------------------------------------------------------------------------------------------- main
def run_stack_part(
    label: str,
    *,
    executor: str,
    sc: Scenario,
    base_dir: Path,
    raw_dir: Path,
    report: Report,
    workers: int = 2,
    after: Callable[[AirflowStack, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    t0 = time.monotonic()
    stack = AirflowStack(
        base_dir / label,
        executor=executor,
        celery_workers=workers,
        dags_folder=sc.dags_folder,
        extra_env={"ECOM_RAW_DATA_DIR": str(raw_dir), "ECOM_CONFIG": str(_e2e_config(base_dir, label))},
    )
    with stack:
        report.timings[f"{label}: postgres + init (migrate, FAB users, pools)"] = stack.timings["db_migrate"]
        report.timings[f"{label}: components healthy"] = stack.timings["healthy"]
        report.note(f"[{label}] {executor} stack healthy at {stack.base_url}: {stack.pids()}")
        check_component_envs(stack, report, label)
        result = run_pipeline(stack, sc, report, label, raw_dir)
        if label in sc.landing_parts:
            result.update(landing_scenario(stack, sc, report, label, raw_dir))
        check_roles(stack, sc, report, label)
        if executor == "CeleryExecutor":
            check_worker_never_used_metadata(stack, report, label)
        if executor == "CeleryExecutor":
            used = {h for h in result["hosts"].values() if h}
            per_worker = {w: sorted(t for t, h in result["hosts"].items() if h == w) for w in stack.worker_names}
            report.note(f"[{label}] tasks of {result['run_id']} per Celery worker: {per_worker}")
            idle = [w for w in stack.worker_names if w not in used]
            if idle:
                raise E2EError(f"Celery worker(s) {idle} ran no task of run {result['run_id']}: {result['hosts']}")
        if after:
            after(stack, result)
        t_stop = time.monotonic()
    report.timings[f"{label}: stop (all pids)"] = time.monotonic() - t_stop
    report.timings[f"{label}: total"] = time.monotonic() - t0
    return result


def main(argv: list[str] | None = None, scenario: Scenario | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--only", choices=("local", "celery"), help="run one executor part (the browser part runs with celery)"
    )
    parser.add_argument("--no-browser", action="store_true", help="skip the UI part")
    parser.add_argument(
        "--run-dir", type=Path, help=f"where each stack lives (default: a new folder under {DEFAULT_RUNS})"
    )
    parser.add_argument(
        "--images", type=Path, default=IMAGES_DIR, help="where the screenshots go (default docs/images)"
    )
    args = parser.parse_args(argv)

    sc = scenario or Scenario(check_warehouse=default_warehouse_check)
    base = (args.run_dir or DEFAULT_RUNS / time.strftime("run-%Y%m%d-%H%M%S")).resolve()
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)  # noqa: S103 - the embedded PostgreSQL runs as another user and must reach its data dir
    report = Report()
    say(f"run directory: {base}")
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    t0 = time.monotonic()
    ok = False
    try:
        raw_dir = prepare_raw_data(base)
        say(f"input files: {raw_dir}")
        if args.only in (None, "local"):
            run_stack_part("local", executor="LocalExecutor", sc=sc, base_dir=base, raw_dir=raw_dir, report=report)
        if args.only in (None, "celery"):

            def ui(stack: AirflowStack, result: dict[str, Any]) -> None:
                if args.no_browser:
                    return
                t = time.monotonic()
                browser_part(stack, sc, result, args.images, report)
                report.timings["browser: login, checks, 4 screenshots"] = time.monotonic() - t

            run_stack_part(
                "celery", executor="CeleryExecutor", sc=sc, base_dir=base, raw_dir=raw_dir, report=report, after=ui
            )
        ok = True
    except (E2EError, StackError) as exc:
        say(f"FAILED: {exc}")
    except KeyboardInterrupt:
        say("interrupted")
    except Exception:
        say("FAILED with an unexpected error:\n" + traceback.format_exc())
    finally:
        signal.signal(signal.SIGTERM, previous)
        report.timings["total"] = time.monotonic() - t0
        print("\n== e2e timings ==")
        for name, seconds in report.timings.items():
            print(f"  {name:<48} {seconds:7.1f} s")
        print("== e2e facts ==")
        for fact in report.facts:
            print(f"  {fact}")
        (base / "report.json").write_text(json.dumps({"ok": ok, **report.__dict__}, indent=2))
        if ok:  # keep the logs, task logs and reports; drop the databases (~75 MB per stack)
            for pg_dir in base.glob("*/pgdata"):
                shutil.rmtree(pg_dir, ignore_errors=True)
        _prune_old_runs(keep=5)
        print(f"e2e: {'PASSED' if ok else 'FAILED'} (component logs, task logs, reports: {base})", flush=True)
    return 0 if ok else 1


def _prune_old_runs(keep: int) -> None:
    """Remove all but the newest `keep` run folders of DEFAULT_RUNS."""
    runs = sorted(p for p in DEFAULT_RUNS.glob("run-*") if p.is_dir())
    for old in runs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
