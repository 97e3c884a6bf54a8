"""The data quality report of one run: every check with its status, what broke and since when, trends.

Reads the run's results and the history from ``data_quality_results`` (so it also works when a check
task failed) and writes ``<run>.html`` (self-contained: charts are data URIs) and ``<run>.json`` under
``<reports_dir>/quality``, plus ``latest.html`` / ``latest.json`` copies.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from include import reports
from include.config_loader import Settings
from include.quality import CATEGORIES, CHECK_TYPES, RESULTS_TABLE

log = logging.getLogger(__name__)

_STATUS_ORDER = {"failed": 0, "error": 1, "skipped": 2, "passed": 3}


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, gathered from the history table."""

    run_id: str
    generated_at: datetime
    results: list[dict[str, Any]]
    summary: dict[str, Any]
    runs: list[dict[str, Any]]
    row_counts: dict[str, list[tuple[datetime, float | None]]]


def _badge(status: str, severity: str) -> str:
    if status == "passed":
        return "passed"
    if status == "skipped":
        return "skipped"
    if status == "error":
        return "error" if severity == "fail" else "warn"
    return "fail" if severity == "fail" else "warn"


def collect(conn: psycopg.Connection[Any], run_id: str, schema: str = "public", history_runs: int = 30) -> ReportData:
    """Read the results of `run_id` and the last `history_runs` runs from the history table."""
    t = sql.Identifier(schema, RESULTS_TABLE)
    cur_rows = conn.execute(
        sql.SQL(
            "SELECT check_name, check_type, table_name, column_name, severity, status, passed, observed_value, "
            "threshold, message, checked_at FROM {} WHERE run_id = %s ORDER BY result_id"
        ).format(t),
        (run_id,),
    ).fetchall()
    # Since when each currently failing check has been failing: first failure after its last pass.
    streaks = {
        name: (since, runs)
        for name, since, runs in conn.execute(
            sql.SQL(
                "WITH last_ok AS (SELECT check_name, max(checked_at) AS t FROM {t} WHERE status = 'passed' "
                "GROUP BY check_name) "
                "SELECT r.check_name, min(r.checked_at), count(DISTINCT r.run_id) FROM {t} AS r "
                "LEFT JOIN last_ok AS o USING (check_name) "
                "WHERE r.status IN ('failed', 'error') AND r.checked_at > coalesce(o.t, '-infinity') "
                "AND r.check_name = ANY(%s) GROUP BY r.check_name"
            ).format(t=t),
            ([r[0] for r in cur_rows],),
        ).fetchall()
    }
    results: list[dict[str, Any]] = []
    for name, ctype, table, column, severity, status, passed, observed, threshold, message, checked_at in cur_rows:
        since, streak = streaks.get(name, (None, 0)) if status in ("failed", "error") else (None, 0)
        results.append(
            {
                "name": name,
                "check_type": ctype,
                "category": CHECK_TYPES[ctype].category if ctype in CHECK_TYPES else "other",
                "table": table,
                "column": column,
                "severity": severity,
                "status": status,
                "passed": passed,
                "badge": _badge(status, severity),
                "observed": observed,
                "threshold": threshold,
                "message": message,
                "checked_at": checked_at,
                "failing_since": since,
                "failing_runs": streak,
            }
        )
    results.sort(key=lambda r: (_STATUS_ORDER.get(r["status"], 9), r["severity"] != "fail", r["table"], r["name"]))

    run_rows = conn.execute(
        sql.SQL(
            "SELECT run_id, min(checked_at) AS started, count(*) FILTER (WHERE status <> 'skipped'), "
            "count(*) FILTER (WHERE status = 'passed'), "
            "count(*) FILTER (WHERE severity = 'fail' AND status IN ('failed', 'error')), "
            "count(*) FILTER (WHERE severity = 'warn' AND status IN ('failed', 'error')) "
            "FROM {} GROUP BY run_id ORDER BY started DESC LIMIT %s"
        ).format(t),
        (history_runs,),
    ).fetchall()
    runs = [
        {
            "run_id": rid,
            "started": started,
            "judged": judged,
            "passed": ok,
            "failed": failed,
            "warned": warned,
            "pass_rate": round(ok / judged, 4) if judged else None,
        }
        for rid, started, judged, ok, failed, warned in reversed(run_rows)
    ]
    counts: dict[str, list[tuple[datetime, float | None]]] = defaultdict(list)
    if runs:
        started_of = {r["run_id"]: r["started"] for r in runs}
        for rid, table, observed in conn.execute(
            sql.SQL(
                "SELECT run_id, table_name, observed_value FROM {} "
                "WHERE check_type = 'row_count' AND run_id = ANY(%s) ORDER BY checked_at, result_id"
            ).format(t),
            (list(started_of),),
        ).fetchall():
            started = started_of[rid]
            try:
                value: float | None = float(observed) if observed is not None else None
            except ValueError:
                value = None
            counts[table].append((started, value))
    summary = {
        "checks": len(results),
        "passed": sum(r["status"] == "passed" for r in results),
        "failed": sum(r["badge"] in ("fail", "error") for r in results),
        "warned": sum(r["badge"] == "warn" for r in results),
        "skipped": sum(r["status"] == "skipped" for r in results),
        "errors": sum(r["status"] == "error" for r in results),
    }
    summary["status"] = "failed" if summary["failed"] else ("warn" if summary["warned"] else "passed")
    return ReportData(run_id, datetime.now(UTC), results, summary, runs, dict(counts))


def render_html(data: ReportData) -> str:
    """The self-contained HTML of `data`."""
    row_chart = reports.chart("Rows per table per run", data.row_counts, "rows")
    rate_chart = reports.chart(
        "Pass rate per run (% of judged checks that passed)",
        {"pass rate": [(r["started"], None if r["pass_rate"] is None else r["pass_rate"] * 100) for r in data.runs]},
        "%",
    )
    by_category = {c: [r for r in data.results if r["category"] == c] for c in (*CATEGORIES, "other")}
    return reports.render(
        "quality_report.html.j2",
        data=data,
        problems=[r for r in data.results if r["badge"] in ("fail", "error", "warn")],
        by_category={k: v for k, v in by_category.items() if v},
        row_chart=row_chart,
        rate_chart=rate_chart,
    )


def _iso(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def as_json(data: ReportData) -> dict[str, Any]:
    """The JSON twin of the report (timestamps in ISO 8601)."""
    return {
        "run_id": data.run_id,
        "generated_at": data.generated_at.isoformat(),
        "summary": data.summary,
        "results": [_iso(r) for r in data.results],
        "runs": [_iso(r) for r in data.runs],
        "row_counts": {t: [(ts.isoformat(), v) for ts, v in pts] for t, pts in data.row_counts.items()},
    }


def write(
    conn: psycopg.Connection[Any], run_id: str, directory: Path, schema: str = "public", history_runs: int = 30
) -> dict[str, Any]:
    """Write the report of `run_id` into `directory`; return the paths and the summary."""
    data = collect(conn, run_id, schema, history_runs)
    html, payload = render_html(data), as_json(data)
    paths = reports.write_report(directory, reports.safe_stem(run_id), html, payload)
    reports.write_report(directory, "latest", html, payload)
    log.info("data quality report of %s (%s): %s", run_id, data.summary, paths["html"])
    return {
        **paths,
        "status": data.summary["status"],
        "checks": data.summary["checks"],
        "failed": data.summary["failed"],
    }


def execute_task(run_id: str, settings: Settings) -> dict[str, Any]:
    """What ``generate_quality_report`` does: connect, write the report under ``<reports_dir>/quality``."""
    from include.database import connect, conninfo_from_connection, require_migrated
    from include.quality import load_quality_config

    cfg = load_quality_config(settings)
    conn = connect(
        conninfo_from_connection(settings.reporting_conn_id),
        schema=settings.schema,
        application_name="quality_report",
        autocommit=True,
    )
    try:
        require_migrated(conn, settings.schema)  # a migrated warehouse before the first load shows "no results"
        return write(conn, run_id, Path(settings.reports_dir) / "quality", settings.schema, cfg.history_runs)
    finally:
        conn.close()
