"""Monitoring: collect metrics of the host, the warehouse database, the data and the DAGs; judge them.

Every collector returns `Metric` objects already judged against the ``warn`` / ``critical`` limits of
the ``monitoring:`` section of config.yaml (`parse_monitoring`). `persist_metrics` appends them to the
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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import requests
from psycopg import sql

from include.config_loader import (
    SOURCES,
    ConfigError,
    Settings,
    get_float,
    get_identifier,
    get_int,
    get_str,
    section,
)
from include.database import connect, describe, ident, table_exists

log = logging.getLogger(__name__)

STATUSES = ("ok", "warn", "critical", "skipped")
_RANK = {"skipped": 0, "ok": 1, "warn": 2, "critical": 3}


# ---------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class MetricSpec:
    """What a metric is and which way is bad: ``above`` breaches at value >= limit, ``below`` at value < limit."""

    name: str
    category: str
    unit: str
    direction: str
    warn: float | None = None
    critical: float | None = None


# Known metrics with their default limits (overridable per metric and per subject in config.yaml).
METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec("system.cpu_percent", "system", "%", "above", warn=95),
        MetricSpec("system.load_per_cpu", "system", "", "above"),
        MetricSpec("system.memory_percent", "system", "%", "above", warn=90, critical=98),
        MetricSpec("system.disk_used_percent", "system", "%", "above", warn=90, critical=98),
        MetricSpec("system.dir_free_mb", "system", "MB", "below", warn=1024, critical=100),
        MetricSpec("db.connect_ms", "database", "ms", "above", warn=1000, critical=10000),
        MetricSpec("db.connections_used_percent", "database", "%", "above", warn=80, critical=95),
        MetricSpec("db.connections", "database", "", "above"),
        MetricSpec("db.database_size_mb", "database", "MB", "above"),
        MetricSpec("db.table_size_mb", "database", "MB", "above"),
        MetricSpec("db.cache_hit_ratio", "database", "", "below", warn=0.8),
        MetricSpec("db.long_running_queries", "database", "", "above", warn=1),
        MetricSpec("db.idle_in_transaction", "database", "", "above", warn=1, critical=5),
        MetricSpec("db.lock_waits", "database", "", "above", warn=1, critical=10),
        MetricSpec("db.dead_tuple_ratio", "database", "", "above", warn=0.2),
        MetricSpec("freshness.age_hours", "freshness", "h", "above", warn=26, critical=50),
        MetricSpec("airflow.api_reachable", "airflow", "", "below", critical=1),
        MetricSpec("airflow.health", "airflow", "", "below", critical=1),
        MetricSpec("dag.consecutive_failures", "dag", "", "above", warn=1, critical=3),
        MetricSpec("dag.failed_runs", "dag", "", "above"),
        MetricSpec("dag.last_duration_seconds", "dag", "s", "above"),
        MetricSpec("dag.duration_ratio", "dag", "", "above", warn=3),
        MetricSpec("dag.hours_since_success", "dag", "h", "above", warn=26, critical=50),
    )
}


@dataclass(frozen=True)
class Limits:
    warn: float | None
    critical: float | None


@dataclass(frozen=True)
class Thresholds:
    """Limits per metric, with optional per-subject overrides (e.g. one table, one DAG)."""

    limits: Mapping[str, Limits]
    subjects: Mapping[str, Mapping[str, Limits]] = field(default_factory=dict)

    def for_(self, name: str, subject: str | None = None) -> Limits:
        if subject is not None and subject in self.subjects.get(name, {}):
            return self.subjects[name][subject]
        spec = METRICS[name]
        return self.limits.get(name, Limits(spec.warn, spec.critical))


@dataclass(frozen=True)
class MonitoringConfig:
    dag_id: str
    schedule: str | None
    start_date: str
    retries: int
    retry_delay_seconds: int
    api_conn_id: str
    api_timeout_seconds: float
    watched_dags: tuple[str, ...]
    recent_runs: int
    long_query_seconds: int
    idle_in_transaction_seconds: int
    dead_tuple_min_rows: int
    report_history_days: int
    report_subdir: str
    thresholds: Thresholds


def _limits(raw: Any, where: str, base: Limits) -> Limits:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{where}' must be a mapping with warn and/or critical, got {raw!r}")
    unknown = set(raw) - {"warn", "critical", "subjects"}
    if unknown:
        raise ConfigError(f"'{where}' has unknown key(s) {sorted(unknown)}; allowed: warn, critical, subjects")
    warn = get_float(raw, "warn", where, base.warn, optional=True) if "warn" in raw else base.warn
    crit = get_float(raw, "critical", where, base.critical, optional=True) if "critical" in raw else base.critical
    return Limits(warn, crit)


def _check_order(name: str, lim: Limits, where: str) -> None:
    if lim.warn is None or lim.critical is None:
        return
    direction = METRICS[name].direction
    if (direction == "above" and lim.warn > lim.critical) or (direction == "below" and lim.warn < lim.critical):
        word = "<=" if direction == "above" else ">="
        raise ConfigError(f"'{where}': warn must be {word} critical for '{direction}' metric {name}, got {lim}")


def parse_thresholds(raw: Mapping[str, Any], path: str = "monitoring.thresholds") -> Thresholds:
    limits: dict[str, Limits] = {}
    subjects: dict[str, dict[str, Limits]] = {}
    for name, value in raw.items():
        if name not in METRICS:
            raise ConfigError(f"'{path}' has unknown metric {name!r}; known: {sorted(METRICS)}")
        where = f"{path}.{name}"
        spec = METRICS[name]
        lim = _limits(value, where, Limits(spec.warn, spec.critical))
        _check_order(name, lim, where)
        limits[name] = lim
        subj = value.get("subjects") or {}
        if not isinstance(subj, Mapping):
            raise ConfigError(f"'{where}.subjects' must be a mapping of subject -> limits, got {subj!r}")
        for subject, sv in subj.items():
            sl = _limits(sv, f"{where}.subjects.{subject}", lim)
            _check_order(name, sl, f"{where}.subjects.{subject}")
            subjects.setdefault(name, {})[str(subject)] = sl
    return Thresholds(limits, subjects)


def parse_monitoring(raw: Mapping[str, Any]) -> MonitoringConfig:
    """Validate the ``monitoring:`` section.

    Raises:
        ConfigError: a key has the wrong type, range or an unknown metric name.
    """
    p = "monitoring"
    dags = raw.get("watched_dags", ["etl_ecommerce_pipeline", "data_quality_checks", "monitoring_dag"])
    if not isinstance(dags, list) or not all(isinstance(d, str) and d for d in dags):
        raise ConfigError(f"'{p}.watched_dags' must be a list of DAG ids, got {dags!r}")
    start_date = str(get_str(raw, "start_date", p, "2024-01-01"))
    try:
        datetime.strptime(start_date, "%Y-%m-%d")
    except ValueError as err:
        raise ConfigError(f"'{p}.start_date' must be a date YYYY-MM-DD, got {start_date!r}") from err
    subdir = str(get_str(raw, "report_subdir", p, "monitoring"))
    if "/" in subdir or subdir.startswith("."):
        raise ConfigError(f"'{p}.report_subdir' must be a plain directory name, got {subdir!r}")
    return MonitoringConfig(
        dag_id=get_identifier(raw, "dag_id", p, "monitoring_dag"),
        schedule=get_str(raw, "schedule", p, "@hourly", optional=True),
        start_date=start_date,
        retries=get_int(raw, "retries", p, 1, minimum=0, maximum=10),
        retry_delay_seconds=get_int(raw, "retry_delay_seconds", p, 60, minimum=0),
        api_conn_id=str(get_str(raw, "api_conn_id", p, "airflow_api")),
        api_timeout_seconds=get_float(raw, "api_timeout_seconds", p, 10, minimum=0.5, maximum=300) or 10.0,
        watched_dags=tuple(dags),
        recent_runs=get_int(raw, "recent_runs", p, 10, minimum=2, maximum=100),
        long_query_seconds=get_int(raw, "long_query_seconds", p, 300, minimum=0),
        idle_in_transaction_seconds=get_int(raw, "idle_in_transaction_seconds", p, 60, minimum=0),
        dead_tuple_min_rows=get_int(raw, "dead_tuple_min_rows", p, 1000, minimum=0),
        report_history_days=get_int(raw, "report_history_days", p, 14, minimum=1, maximum=3660),
        report_subdir=subdir,
        thresholds=parse_thresholds(section(raw, "thresholds", p) if "thresholds" in raw else {}),
    )


def monitoring_config(settings: Settings) -> MonitoringConfig:
    return parse_monitoring(settings.monitoring)


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
        if not table_exists(conn, "etl_runs", settings.schema):
            newest: dict[str, datetime] = {}
        else:
            newest = dict(
                conn.execute(
                    sql.SQL("SELECT source, max(finished_at) FROM {} WHERE status = 'success' GROUP BY source").format(
                        ident(settings.schema, "etl_runs")
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
    if not table_exists(conn, "monitoring_metrics", schema):
        from include.database import apply_schema

        apply_schema(conn, schema)


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
