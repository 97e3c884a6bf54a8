"""The monitoring report: current status of every metric plus trend charts from ``monitoring_metrics``.

One self-contained HTML file and its JSON twin per run (``<reports>/<report_subdir>/monitoring_<run>.*``)
and a copy named ``monitoring_latest.*`` for a stable link.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg import sql

from include.config_loader import Settings
from include.database import connect, ident, table_exists
from include.monitoring import _RANK, MonitoringConfig
from include.reports import chart, render, safe_stem, write_report

log = logging.getLogger(__name__)

# (chart title, metric names, y label): one chart per entry, one series per metric/subject.
CHARTS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "Worker CPU / memory / disk (%)",
        ("system.cpu_percent", "system.memory_percent", "system.disk_used_percent"),
        "%",
    ),
    ("Free space of the staging and reports directories (MB)", ("system.dir_free_mb",), "MB"),
    ("Database connections in use (% of max_connections)", ("db.connections_used_percent",), "%"),
    ("Database connect latency (ms)", ("db.connect_ms",), "ms"),
    ("Cache hit ratio", ("db.cache_hit_ratio",), ""),
    (
        "Sessions idle in transaction / waiting on locks / long queries",
        ("db.idle_in_transaction", "db.lock_waits", "db.long_running_queries"),
        "sessions",
    ),
    ("Database size (MB)", ("db.database_size_mb",), "MB"),
    ("Hours since the newest load per table", ("freshness.age_hours",), "h"),
    ("Hours the oldest landing file has waited unclaimed, per source", ("landing.oldest_unclaimed_age_hours",), "h"),
    ("DAG run duration (s)", ("dag.last_duration_seconds",), "s"),
)


def _fetch(
    conninfo: str, schema: str, run_id: str, since: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with connect(conninfo, schema=schema, application_name="ecommerce_monitoring_report", autocommit=True) as conn:
        if not table_exists(conn, "monitoring_metrics", schema):
            return [], []
        table = ident(schema, "monitoring_metrics")
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT run_id, category, metric_name, subject, value, unit, status, warn_threshold,"
                    " critical_threshold, message, collected_at FROM {} WHERE run_id = %s"
                    " ORDER BY category, metric_name, subject"
                ).format(table),
                (run_id,),
            )
            names = [d.name for d in cur.description or ()]
            current = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            cur.execute(
                sql.SQL(
                    "SELECT metric_name, subject, value, collected_at FROM {} "
                    "WHERE collected_at >= %s AND value IS NOT NULL "
                    "ORDER BY collected_at"
                ).format(table),
                (since,),
            )
            names = [d.name for d in cur.description or ()]
            history = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return current, history


def _latest_per_metric(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The newest row of each (metric, subject): a retried check may have written twice in one run."""
    latest: dict[tuple[str, str | None], dict[str, Any]] = {}
    for row in rows:
        key = (row["metric_name"], row["subject"])
        if key not in latest or row["collected_at"] >= latest[key]["collected_at"]:
            latest[key] = dict(row)
    return sorted(
        latest.values(), key=lambda r: (-_RANK[r["status"]], r["category"], r["metric_name"], r["subject"] or "")
    )


def _charts(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    series: dict[str, dict[str, list[tuple[datetime, float | None]]]] = defaultdict(lambda: defaultdict(list))
    for row in history:
        label = row["metric_name"].split(".", 1)[1] + (f" [{row['subject']}]" if row["subject"] else "")
        series[row["metric_name"]][label].append((row["collected_at"], row["value"]))
    charts = []
    for title, names, ylabel in CHARTS:
        merged: dict[str, list[tuple[datetime | str, float | None]]] = {}
        for name in names:
            for label, points in series.get(name, {}).items():
                merged[label] = list(points)
        drawn = chart(title, merged, ylabel)
        if drawn["uri"] or drawn["notes"]:
            charts.append(drawn)
    return charts


def build_report(
    settings: Settings, cfg: MonitoringConfig, conninfo: str, run_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """Read this run's metrics and the history, write the HTML + JSON report; returns paths and the overall status."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=cfg.report_history_days)
    current_rows, history = _fetch(conninfo, settings.schema, run_id, since)
    current = _latest_per_metric(current_rows)
    counts = {s: sum(1 for r in current if r["status"] == s) for s in ("ok", "warn", "critical", "skipped")}
    overall = max((r["status"] for r in current), key=lambda s: _RANK[s], default="skipped")
    charts = _charts(history)
    context = {
        "run_id": run_id,
        "generated_at": now.isoformat(timespec="seconds"),
        "overall": overall,
        "counts": counts,
        "metrics": current,
        "charts": charts,
        "history_days": cfg.report_history_days,
        "history_points": len(history),
    }
    html = render("monitoring_report.html.j2", **context)
    data = {k: v for k, v in context.items() if k != "charts"} | {"charts": [c["title"] for c in charts]}
    directory = Path(settings.reports_dir) / cfg.report_subdir
    paths = write_report(directory, f"monitoring_{safe_stem(run_id)}", html, data)
    write_report(directory, "monitoring_latest", html, data)
    log.info("monitoring report (%s): %s", overall, paths["html"])
    return {"status": overall, "counts": counts, **paths}
