"""Monitoring: collect metrics of the host, the warehouse database, the data and the DAGs; judge them.

Every collector returns `Metric` objects already judged against the ``warn`` / ``critical`` limits of
the ``monitoring:`` section of config.yaml (`include.settings.monitoring`, defaults and limits there). `persist_metrics` appends them to the
``monitoring_metrics`` time series; `raise_on_critical` fails the calling task after that, so a breach
is both recorded and red.

Airflow's own state is read only through the REST API v2 (`AirflowApiClient`), never from the
metadata database (Airflow 3 forbids that from task code). The API's base URL and credentials are the
Airflow connection ``monitoring.api_conn_id`` (``airflow_api``); a token is obtained with
``POST /auth/token`` (simple auth manager and FAB alike). No connection -> the DAG check is skipped.

Messages name objects and counts only: no query text, no row content (they may reach an alert).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import requests
from psycopg import sql
from pydantic import ValidationError

from include.config_loader import SOURCES, ConfigError, Settings
from include.database import connect, describe, ident, table_exists
from include.settings.base import format_error
from include.settings.monitoring import (
    METRICS,
    MonitoringConfig,
    MonitoringSection,
    Thresholds,
)

log = logging.getLogger(__name__)

STATUSES = ("ok", "warn", "critical", "skipped")
_RANK = {"skipped": 0, "ok": 1, "warn": 2, "critical": 3}


# ---------------------------------------------------------------------------------------------- config
def parse_monitoring(raw: Mapping[str, Any]) -> MonitoringConfig:
    """Validate a ``monitoring:`` mapping on its own (tests, tools); `load_config` does it for config.yaml.

    Raises:
        ConfigError: one line naming the key, the bad value and, for an unknown key or metric, the nearest one.
    """
    try:
        return MonitoringSection.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_error(err, "monitoring")) from None


def monitoring_config(settings: Settings) -> MonitoringConfig:
    """The validated ``monitoring:`` section of `settings`."""
    return settings.monitoring


# --------------------------------------------------------------------------------------------- metrics
@dataclass
class Metric:
    """One measurement, judged: status is ok / warn / critical / skipped."""

    name: str
    value: float | None
    subject: str | None = None
    status: str = "ok"
    warn: float | None = None
    critical: float | None = None
    message: str = ""
    category: str = ""
    unit: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        who = f"{self.name}[{self.subject}]" if self.subject else self.name
        val = "n/a" if self.value is None else f"{self.value:g}{self.unit}"
        limit = self.critical if self.status == "critical" else self.warn
        op = ">=" if METRICS[self.name].direction == "above" else "<"
        tail = f" ({op} {limit:g})" if limit is not None and self.value is not None else ""
        return f"{who}={val}{tail}" + (f": {self.message}" if self.message else "")


def judge(
    name: str,
    value: float | None,
    thresholds: Thresholds,
    *,
    subject: str | None = None,
    message: str = "",
    status_if_none: str = "ok",
) -> Metric:
    """A `Metric` with its status from the limits of `name` (and `subject`)."""
    spec = METRICS[name]
    lim = thresholds.for_(name, subject)
    status = status_if_none
    if value is not None:
        if isinstance(value, float) and math.isnan(value):
            value = None
        else:
            status = "ok"
            for level, limit in (("critical", lim.critical), ("warn", lim.warn)):
                if limit is None:
                    continue
                hit = value >= limit if spec.direction == "above" else value < limit
                if hit:
                    status = level
                    break
    return Metric(name, value, subject, status, lim.warn, lim.critical, message, spec.category, spec.unit)


def worst(metrics: Iterable[Metric]) -> str:
    return max((m.status for m in metrics), key=lambda s: _RANK[s], default="ok")


class MonitoringBreach(Exception):
    """A critical limit was breached; the metrics are already persisted."""

    def __init__(self, check: str, breaches: Sequence[Metric]) -> None:
        self.check = check
        self.breaches = list(breaches)
        detail = "; ".join(m.describe() for m in self.breaches[:5])
        more = f" (+{len(self.breaches) - 5} more)" if len(self.breaches) > 5 else ""
        super().__init__(f"{check}: {len(self.breaches)} critical breach(es): {detail}{more}")


def raise_on_critical(check: str, metrics: Sequence[Metric]) -> None:
    """Log warnings; raise `MonitoringBreach` when any metric is critical."""
    for m in metrics:
        if m.status == "warn":
            log.warning("%s: warning: %s", check, m.describe())
        elif m.status == "skipped":
            log.warning("%s: skipped: %s", check, m.describe())
    breaches = [m for m in metrics if m.status == "critical"]
    if breaches:
        raise MonitoringBreach(check, breaches)


# ---------------------------------------------------------------------------------------------- system
def collect_system_metrics(
    cfg: MonitoringConfig, directories: Mapping[str, Path], cpu_interval: float = 1.0
) -> list[Metric]:
    """CPU, load, memory and root disk of this worker, and free space where `directories` live."""
    import psutil

    t = cfg.thresholds
    out = [
        judge("system.cpu_percent", psutil.cpu_percent(interval=cpu_interval), t),
        judge("system.memory_percent", psutil.virtual_memory().percent, t),
        judge("system.disk_used_percent", psutil.disk_usage("/").percent, t, subject="/"),
    ]
    try:
        load1 = os.getloadavg()[0]
        out.append(judge("system.load_per_cpu", round(load1 / (psutil.cpu_count() or 1), 3), t))
    except OSError:  # not available on this platform
        pass
    for label, directory in directories.items():
        probe = Path(directory)
        while not probe.exists() and probe != probe.parent:  # not created yet: measure its filesystem
            probe = probe.parent
        usage = shutil.disk_usage(probe)
        out.append(
            judge("system.dir_free_mb", round(usage.free / 1024 / 1024, 1), t, subject=label, message=str(directory))
        )
    return out


# -------------------------------------------------------------------------------------------- database
def _scalar(conn: psycopg.Connection[Any], query: str, params: Sequence[Any] = ()) -> Any:
    row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    return row[0] if row else None


def collect_database_metrics(cfg: MonitoringConfig, conninfo: str, schema: str = "public") -> list[Metric]:
    """Health of the warehouse PostgreSQL; the monitoring session itself is excluded from every count.

    Raises:
        psycopg.OperationalError: the server cannot be reached (message names host:port/db).
    """
    t = cfg.thresholds
    started = time.perf_counter()
    conn = connect(conninfo, schema=schema, application_name="ecommerce_monitoring", autocommit=True)
    try:
        conn.execute("SELECT 1")
        # monitoring must never queue behind the locks it is looking for
        conn.execute("SET lock_timeout = '2s'")
        conn.execute("SET statement_timeout = '60s'")
        out = [judge("db.connect_ms", round((time.perf_counter() - started) * 1000, 1), t, message=describe(conninfo))]
        max_conn = int(_scalar(conn, "SELECT setting::int FROM pg_settings WHERE name = 'max_connections'"))
        in_use = int(_scalar(conn, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"))
        out.append(judge("db.connections", in_use, t, message=f"max_connections={max_conn}"))
        out.append(
            judge(
                "db.connections_used_percent",
                round(100.0 * in_use / max_conn, 1),
                t,
                message=f"{in_use} of {max_conn} connections",
            )
        )
        out.append(
            judge(
                "db.database_size_mb",
                round(_scalar(conn, "SELECT pg_database_size(current_database())") / 1048576, 2),
                t,
            )
        )
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1",
                (schema,),
            ).fetchall()
        ]
        for table in tables:
            try:  # the size functions take a share lock: a table locked exclusively answers "unavailable"
                size = _scalar(
                    conn,
                    "SELECT pg_total_relation_size(format('%%I.%%I', %s::text, %s::text)::regclass)",
                    (schema, table),
                )
            except psycopg.errors.LockNotAvailable:
                out.append(judge("db.table_size_mb", None, t, subject=table, message="locked: size unavailable"))
                continue
            out.append(judge("db.table_size_mb", round(size / 1048576, 3), t, subject=table))
        hit, read = conn.execute(
            "SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone() or (0, 0)
        total = (hit or 0) + (read or 0)
        out.append(
            judge(
                "db.cache_hit_ratio",
                round(hit / total, 4) if total else None,
                t,
                message=f"{hit} hits, {read} reads since stats reset" if total else "no block reads yet",
            )
        )
        n, longest = conn.execute(
            "SELECT count(*), coalesce(max(extract(epoch FROM now() - query_start)), 0) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND datname = current_database() AND backend_type = 'client backend' "
            "AND state = 'active' AND now() - query_start > make_interval(secs => %s)",
            (cfg.long_query_seconds,),
        ).fetchone() or (0, 0)
        out.append(
            judge(
                "db.long_running_queries",
                n,
                t,
                message=f"{n} active quer(ies) over {cfg.long_query_seconds} s, longest {float(longest):.0f} s",
            )
        )
        n, longest = conn.execute(
            "SELECT count(*), coalesce(max(extract(epoch FROM now() - state_change)), 0) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND datname = current_database() AND backend_type = 'client backend' "
            "AND state IN ('idle in transaction', 'idle in transaction (aborted)') "
            "AND now() - state_change >= make_interval(secs => %s)",
            (cfg.idle_in_transaction_seconds,),
        ).fetchone() or (0, 0)
        out.append(
            judge(
                "db.idle_in_transaction",
                n,
                t,
                message=f"{n} session(s) idle in transaction for >= {cfg.idle_in_transaction_seconds} s, "
                f"longest {float(longest):.0f} s",
            )
        )
        n, longest = conn.execute(
            "SELECT count(*), coalesce(max(extract(epoch FROM now() - state_change)), 0) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND datname = current_database() AND backend_type = 'client backend' "
            "AND wait_event_type = 'Lock'"
        ).fetchone() or (0, 0)
        out.append(
            judge("db.lock_waits", n, t, message=f"{n} session(s) waiting on a lock, longest {float(longest):.0f} s")
        )
        for table, live, dead in conn.execute(
            "SELECT relname, n_live_tup, n_dead_tup FROM pg_stat_user_tables WHERE schemaname = %s ORDER BY 1",
            (schema,),
        ).fetchall():
            if live + dead >= max(cfg.dead_tuple_min_rows, 1):
                out.append(
                    judge(
                        "db.dead_tuple_ratio",
                        round(dead / (live + dead), 4),
                        t,
                        subject=table,
                        message=f"{dead} dead of {live + dead} tuples",
                    )
                )
    finally:
        conn.close()
    return out


# ------------------------------------------------------------------------------------------- freshness
def collect_freshness(
    cfg: MonitoringConfig, settings: Settings, conninfo: str, now: datetime | None = None
) -> list[Metric]:
    """Hours since the newest successful load of each source (``etl_runs.finished_at``, written in the load transaction just before its commit).

    Raises:
        psycopg.OperationalError: the server cannot be reached.
    """
    now = now or datetime.now(UTC)
    t = cfg.thresholds
    with connect(conninfo, schema=settings.schema, application_name="ecommerce_monitoring", autocommit=True) as conn:
        if not table_exists(conn, "etl_runs_effective", settings.schema):
            newest: dict[str, datetime] = {}
        else:
            newest = dict(
                conn.execute(
                    sql.SQL("SELECT source, max(finished_at) FROM {} GROUP BY source").format(
                        ident(settings.schema, "etl_runs_effective")
                    )
                ).fetchall()
            )
    out = []
    for source in SOURCES:
        at = newest.get(source)
        if at is None:
            required = settings.sources[source].required if source in settings.sources else True
            out.append(
                judge(
                    "freshness.age_hours",
                    None,
                    t,
                    subject=source,
                    message="no successful load recorded" + ("" if required else " (optional source)"),
                    status_if_none="warn" if required else "ok",
                )
            )
            continue
        age = max(0.0, (now - at).total_seconds() / 3600)
        out.append(
            judge(
                "freshness.age_hours",
                round(age, 3),
                t,
                subject=source,
                message=f"last load {at.isoformat(timespec='seconds')}",
            )
        )
    return out


def _loaded_registry(
    conn: psycopg.Connection[Any], schema: str
) -> tuple[dict[tuple[str, str, int], datetime], dict[str, set[str]]]:
    """Loaded rows of ``ingested_files``: (source, rel_path, bytes) -> first_seen_at, and sha256s per source."""
    if not table_exists(conn, "ingested_files", schema):
        return {}, {}
    by_name: dict[tuple[str, str, int], datetime] = {}
    shas: dict[str, set[str]] = {}
    rows = conn.execute(
        sql.SQL("SELECT source, rel_path, bytes, sha256, first_seen_at FROM {} WHERE status = 'loaded'").format(
            ident(schema, "ingested_files")
        )
    ).fetchall()
    for source, rel_path, size, sha, seen in rows:
        key = (source, rel_path, int(size))
        by_name[key] = max(seen, by_name.get(key, seen))
        shas.setdefault(source, set()).add(sha)
    return by_name, shas


def collect_landing_backlog(
    cfg: MonitoringConfig, settings: Settings, conninfo: str, now: datetime | None = None
) -> list[Metric]:
    """Hours the oldest unclaimed file of each source has waited in the landing folder (0: nothing waiting).

    "Unclaimed" uses the claim's own rules (`include.landing.candidates`: the source's pattern, not hidden,
    not ``.part``/``.tmp``, not the marker, old enough) and is not registered as loaded. A file whose
    (source, rel_path, size) equals a loaded ``ingested_files`` row and whose mtime is not newer than that
    row's ``first_seen_at`` is taken as loaded without hashing (the hourly check stays cheap on big files);
    any other file is hashed and is unclaimed unless its sha256 is loaded for the source (the claim skips it).
    The age is ``now - mtime`` (when the file was completed). Products fetched from the API have no
    landing files. A landing folder missing on this worker is a warning (is the volume mounted?).

    Raises:
        psycopg.OperationalError: the server cannot be reached.
    """
    from include.landing import candidates, sha256_of

    now = now or datetime.now(UTC)
    t = cfg.thresholds
    base = settings.raw_data_dir
    if not base.is_dir():
        return [
            judge(
                "landing.oldest_unclaimed_age_hours",
                None,
                t,
                subject=source,
                message=f"landing folder {base} not found on this worker",
                status_if_none="warn",
            )
            for source in SOURCES
        ]
    with connect(conninfo, schema=settings.schema, application_name="ecommerce_monitoring", autocommit=True) as conn:
        by_name, shas = _loaded_registry(conn, settings.schema)
    out = []
    for source in SOURCES:
        if source == "products" and settings.products_api.url:
            out.append(
                judge("landing.oldest_unclaimed_age_hours", 0, t, subject=source, message="products from the API")
            )
            continue
        waiting: list[tuple[float, str]] = []
        hashed = 0
        for path in candidates(settings, source):
            st = path.stat()
            rel = path.relative_to(base).as_posix()
            seen = by_name.get((source, rel, st.st_size))
            if seen is not None and st.st_mtime <= seen.timestamp():
                continue  # this very file (name, size, not modified since) is registered as loaded
            hashed += 1
            if sha256_of(path) in shas.get(source, set()):
                continue  # same content already loaded (under another name, or rewritten): the claim skips it
            waiting.append((st.st_mtime, rel))
        if not waiting:
            out.append(
                judge(
                    "landing.oldest_unclaimed_age_hours",
                    0,
                    t,
                    subject=source,
                    message=f"no file waiting ({hashed} hashed)",
                )
            )
            continue
        mtime, rel = min(waiting)
        age = max(0.0, (now.timestamp() - mtime) / 3600)
        out.append(
            judge(
                "landing.oldest_unclaimed_age_hours",
                round(age, 3),
                t,
                subject=source,
                message=f"{len(waiting)} file(s) waiting, oldest {rel}",
            )
        )
    return out


def collect_backup_status(
    cfg: MonitoringConfig, settings: Settings, conninfo: str, now: datetime | None = None
) -> list[Metric]:
    """Age of the newest encrypted backup and the result of its last restore-check (include/backup.py).

    A shop without a backup is warned (never silently ok); a restore-check that failed is critical.
    """
    from include.backup import newest_backup_age_hours
    from include.privacy import privacy_config

    t = cfg.thresholds
    age = newest_backup_age_hours(privacy_config(settings), now)
    out = [
        judge(
            "backup.age_hours",
            None if age is None else round(age, 3),
            t,
            message="no backup taken yet (make backup, or the privacy_maintenance DAG)" if age is None else "",
            status_if_none="warn",
        )
    ]
    with connect(conninfo, schema=settings.schema, application_name="ecommerce_monitoring", autocommit=True) as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT value, subject, message FROM {} WHERE metric_name = 'backup.restore_check'"
                " ORDER BY collected_at DESC LIMIT 1"
            ).format(ident(settings.schema, "monitoring_metrics"))
        ).fetchone()
    if row is not None:
        value, subject, message = row
        out.append(judge("backup.restore_check", value, t, subject=subject, message=message or "last restore-check"))
    return out


# ----------------------------------------------------------------------------------------- Airflow API
class AirflowApiError(RuntimeError):
    """The Airflow REST API could not be reached or answered an error."""


class AirflowApiClient:
    """A small client of the Airflow 3 REST API v2 with JWT auth (``POST /auth/token``).

    Works with the simple auth manager (users from ``simple_auth_manager_users``; with
    ``simple_auth_manager_all_admins`` and no login, ``GET /auth/token``) and with FAB (database/LDAP users).
    """

    def __init__(self, base_url: str, username: str | None, password: str | None, timeout: float = 10.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"Airflow API base URL must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self.timeout = timeout
        self._token: str | None = None
        self._session = requests.Session()

    @classmethod
    def from_connection(cls, conn_id: str, timeout: float = 10.0) -> AirflowApiClient | None:
        """The client for Airflow connection `conn_id`, or None when no such connection is defined."""
        from airflow.sdk import Connection
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = Connection.get(conn_id)
        except AirflowNotFoundException:
            return None
        host = (conn.host or "").strip()
        if not host:
            raise ConfigError(
                f"Airflow connection '{conn_id}' has no host (the API base URL, e.g. http://airflow:8080)"
            )
        if "://" not in host:
            host = f"{conn.schema or 'http'}://{host}"
            if conn.port:
                host = f"{host}:{conn.port}"
        return cls(host, conn.login or None, conn.password or None, timeout)

    def _fetch_token(self) -> str:
        url = f"{self.base_url}/auth/token"
        try:
            if self._username:
                resp = self._session.post(
                    url, json={"username": self._username, "password": self._password or ""}, timeout=self.timeout
                )
            else:  # simple auth manager with all_admins (dev only)
                resp = self._session.get(url, timeout=self.timeout)
        except requests.RequestException as err:
            raise AirflowApiError(f"cannot reach Airflow API at {self.base_url}: {type(err).__name__}") from err
        if resp.status_code not in (200, 201):
            raise AirflowApiError(f"Airflow API token request to {url} answered HTTP {resp.status_code}")
        try:
            return str(resp.json()["access_token"])
        except (ValueError, KeyError) as err:
            raise AirflowApiError(f"Airflow API token answer from {url} has no access_token") from err

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, auth: bool = True) -> Any:
        """GET ``base_url + path`` as JSON; one token refresh on 401.

        Raises:
            AirflowApiError: unreachable, or HTTP status other than 2xx (``status`` attribute set).
        """
        url = f"{self.base_url}{path}"
        for attempt in (1, 2):
            headers = {}
            if auth:
                if self._token is None or attempt == 2:
                    self._token = self._fetch_token()
                headers["Authorization"] = f"Bearer {self._token}"
            try:
                resp = self._session.get(url, params=params, headers=headers, timeout=self.timeout)
            except requests.RequestException as err:
                raise AirflowApiError(f"cannot reach Airflow API at {self.base_url}: {type(err).__name__}") from err
            if resp.status_code != 401 or not auth:
                break
        if not resp.ok:
            error = AirflowApiError(f"GET {path} answered HTTP {resp.status_code}")
            error.status = resp.status_code  # type: ignore[attr-defined]
            raise error
        try:
            return resp.json()
        except ValueError as err:
            raise AirflowApiError(f"GET {path} answered HTTP {resp.status_code} with a body that is not JSON") from err

    def health(self) -> dict[str, Any]:
        return dict(self.get("/api/v2/monitor/health", auth=False))

    def dag_runs(self, dag_id: str, limit: int = 10) -> list[dict[str, Any]]:
        """The newest `limit` runs of `dag_id` (newest first)."""
        data = self.get(f"/api/v2/dags/{dag_id}/dagRuns", {"limit": limit, "order_by": "-run_after"})
        return list(data.get("dag_runs", []))


def _parse_ts(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def dag_run_metrics(
    cfg: MonitoringConfig, dag_id: str, runs: Sequence[Mapping[str, Any]], now: datetime
) -> list[Metric]:
    """Consecutive failures, duration vs recent median and age of the last success of one DAG (runs newest first)."""
    t = cfg.thresholds
    finished = [r for r in runs if r.get("state") in ("success", "failed")]
    out: list[Metric] = []
    streak = 0
    for r in finished:
        if r["state"] != "failed":
            break
        streak += 1
    out.append(
        judge(
            "dag.consecutive_failures", streak, t, subject=dag_id, message=f"{len(finished)} finished run(s) examined"
        )
    )
    out.append(
        judge(
            "dag.failed_runs",
            sum(r["state"] == "failed" for r in finished),
            t,
            subject=dag_id,
            message=f"of the last {len(finished)} finished runs",
        )
    )
    durations = [float(r["duration"]) for r in finished if r.get("duration") is not None]
    if durations:
        last = durations[0]
        out.append(judge("dag.last_duration_seconds", round(last, 2), t, subject=dag_id))
        previous = durations[1:]
        if len(previous) >= 3:
            median = statistics.median(previous)
            ratio = round(last / median, 3) if median > 0 else None
            out.append(
                judge(
                    "dag.duration_ratio",
                    ratio,
                    t,
                    subject=dag_id,
                    message=f"last {last:.0f} s vs median {median:.0f} s of {len(previous)} runs",
                )
            )
    ends = [_parse_ts(r.get("end_date")) for r in finished if r["state"] == "success"]
    successes = [s for s in ends if s is not None]
    if successes:
        hours = max(0.0, (now - max(successes)).total_seconds() / 3600)
        out.append(judge("dag.hours_since_success", round(hours, 3), t, subject=dag_id))
    else:
        out.append(
            judge(
                "dag.hours_since_success",
                None,
                t,
                subject=dag_id,
                message=f"no successful run among the last {len(runs)}",
                status_if_none="warn" if finished else "ok",
            )
        )
    return out


_HEALTH_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def collect_dag_status(
    cfg: MonitoringConfig, client: AirflowApiClient | None, now: datetime | None = None
) -> list[Metric]:
    """State of the watched DAGs and of Airflow's components, through the REST API only.

    No client (no connection configured) -> one ``skipped`` metric. Unreachable -> a critical
    ``airflow.api_reachable``.
    """
    now = now or datetime.now(UTC)
    t = cfg.thresholds
    if client is None:
        return [
            Metric(
                "airflow.api_reachable",
                None,
                status="skipped",
                message=f"no Airflow connection '{cfg.api_conn_id}' configured: DAG status not checked",
                category="airflow",
            )
        ]
    out: list[Metric] = []
    try:
        health = client.health()
        client.get("/api/v2/version")  # proves the credentials work before the per-DAG calls
    except AirflowApiError as err:
        return [judge("airflow.api_reachable", 0, t, message=str(err))]
    out.append(judge("airflow.api_reachable", 1, t, message=client.base_url))
    for comp in _HEALTH_COMPONENTS:
        info = health.get(comp)
        if info is None:
            continue  # the component is not reported by this Airflow version
        status = info.get("status")
        value = None if status is None else (1.0 if status == "healthy" else 0.0)
        out.append(
            judge(
                "airflow.health",
                value,
                t,
                subject=comp,
                message=f"status {status or 'unknown (no heartbeat recorded)'}",
                status_if_none="warn",
            )
        )
    for dag_id in cfg.watched_dags:
        try:
            runs = client.dag_runs(dag_id, cfg.recent_runs)
        except AirflowApiError as err:
            if getattr(err, "status", None) == 404:
                out.append(
                    Metric(
                        "dag.consecutive_failures",
                        None,
                        dag_id,
                        "warn",
                        message="DAG not known to Airflow (not parsed yet?)",
                        category="dag",
                    )
                )
                continue
            # Keep the metrics collected so far (persisted before the task fails): this DAG's runs are unknown.
            out.append(
                Metric(
                    "dag.consecutive_failures",
                    None,
                    dag_id,
                    "critical",
                    message=f"runs could not be read: {err}",
                    category="dag",
                )
            )
            continue
        out.extend(dag_run_metrics(cfg, dag_id, runs, now))
    return out


# The latest attempt of each ETL run id (ledger of migration 0002): failed when any of its rows is.
_LEDGER_RUNS = """
WITH latest AS (
    SELECT etl_run_id, max(attempt) AS attempt FROM {ledger} GROUP BY etl_run_id
)
SELECT bool_or(r.status IN ('failed', 'aborted')) AS failed, max(r.finished_at) AS finished_at
  FROM {ledger} r JOIN latest l USING (etl_run_id, attempt)
 GROUP BY r.etl_run_id
 ORDER BY max(r.finished_at) DESC
 LIMIT %s
"""


def collect_etl_status_from_ledger(
    cfg: MonitoringConfig,
    conninfo: str,
    schema: str = "public",
    etl_dag_id: str = "etl_ecommerce_pipeline",
    now: datetime | None = None,
) -> list[Metric]:
    """ETL health from the warehouse's run ledger, for when the Airflow API is not configured.

    Consecutive failed runs (status failed/aborted of each run id's latest attempt, newest first),
    failed runs among the last ``recent_runs`` and hours since the last success, judged like the API's.
    """
    now = now or datetime.now(UTC)
    t = cfg.thresholds
    note = Metric(
        "airflow.api_reachable",
        None,
        status="skipped",
        message=f"no Airflow connection '{cfg.api_conn_id}' configured: ETL health judged from etl_runs",
        category="airflow",
    )
    with connect(conninfo, schema=schema) as conn:
        if not table_exists(conn, "etl_runs", schema):
            return [note, judge("dag.consecutive_failures", None, t, subject=etl_dag_id, message="no etl_runs table")]
        try:
            rows = conn.execute(
                sql.SQL(_LEDGER_RUNS).format(ledger=ident(schema, "etl_runs")), (cfg.recent_runs,)
            ).fetchall()
        except psycopg.errors.UndefinedColumn:
            return [
                note,
                judge(
                    "dag.consecutive_failures",
                    None,
                    t,
                    subject=etl_dag_id,
                    message="etl_runs has no attempt/status columns yet (migration 0002 not applied)",
                ),
            ]
    streak = 0
    for failed, _ in rows:
        if not failed:
            break
        streak += 1
    failures = sum(1 for failed, _ in rows if failed)
    source = "from the run ledger etl_runs"
    out = [
        note,
        judge(
            "dag.consecutive_failures",
            streak,
            t,
            subject=etl_dag_id,
            message=f"{streak} consecutive failed run(s) {source} ({len(rows)} run(s) examined)",
        ),
        judge("dag.failed_runs", failures, t, subject=etl_dag_id, message=f"of the last {len(rows)} runs, {source}"),
    ]
    successes = [at for failed, at in rows if not failed and at is not None]
    if successes:
        hours = max(0.0, (now - max(successes)).total_seconds() / 3600)
        out.append(judge("dag.hours_since_success", round(hours, 3), t, subject=etl_dag_id))
    return out


# ------------------------------------------------------------------------------------------- persisting
def ensure_metrics_table(conn: psycopg.Connection[Any], schema: str) -> None:
    """Fail with "warehouse schema is not migrated: run …" when the history table is missing (no DDL here)."""
    if not table_exists(conn, "monitoring_metrics", schema):
        from include.database import require_migrated

        require_migrated(conn, schema)


def persist_metrics(
    conninfo: str, schema: str, run_id: str, metrics: Sequence[Metric], collected_at: datetime | None = None
) -> int:
    """Append `metrics` to ``monitoring_metrics``; returns the number of rows written."""
    if not metrics:
        return 0
    at = collected_at or datetime.now(UTC)
    with connect(conninfo, schema=schema, application_name="ecommerce_monitoring") as conn:
        ensure_metrics_table(conn, schema)
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (run_id, category, metric_name, subject, value, unit, status, warn_threshold, "
                    "critical_threshold, message, collected_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                ).format(ident(schema, "monitoring_metrics")),
                [
                    (
                        run_id,
                        m.category,
                        m.name,
                        m.subject,
                        m.value,
                        m.unit or None,
                        m.status,
                        m.warn,
                        m.critical,
                        m.message[:1000] or None,
                        at,
                    )
                    for m in metrics
                ],
            )
        conn.commit()
    log.info("stored %d metric(s) for run %s (worst: %s)", len(metrics), run_id, worst(metrics))
    return len(metrics)
