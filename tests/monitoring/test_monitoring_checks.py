"""Collectors against the real PostgreSQL: healthy values, breaches built on purpose, history, report."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from include.config_loader import ConfigError, load_config
from include.monitoring import (
    MonitoringBreach,
    collect_dag_status,
    collect_database_metrics,
    collect_freshness,
    collect_system_metrics,
    dag_run_metrics,
    parse_monitoring,
    persist_metrics,
    raise_on_critical,
)

ROOT = Path(__file__).resolve().parents[2]


def by_name(metrics, name, subject=None):
    found = [m for m in metrics if m.name == name and (subject is None or m.subject == subject)]
    assert found, f"no metric {name}[{subject}] in {[m.name for m in metrics]}"
    return found[0]


def test_default_config_parses_and_thresholds_judge_both_directions() -> None:
    cfg = parse_monitoring(load_config(ROOT / "config.yaml").monitoring)
    assert cfg.schedule == "@hourly"
    assert cfg.thresholds.for_("system.cpu_percent").critical is None  # warn only on a busy CI box
    assert cfg.thresholds.for_("freshness.age_hours", "customers").warn == 170
    m = dag_run_metrics(cfg, "d", [{"state": "failed", "duration": 1}] * 3, datetime.now(UTC))
    assert by_name(m, "dag.consecutive_failures").status == "critical"  # 3 >= 3
    assert by_name(m, "dag.hours_since_success").status == "warn"  # never succeeded


def test_monitoring_never_judges_itself_critical() -> None:
    """A red monitoring run must not keep the next one red forever (its own streak/age only warns)."""
    cfg = parse_monitoring(load_config(ROOT / "config.yaml").monitoring)
    week_ago = (datetime.now(UTC) - timedelta(days=7)).isoformat()
    runs = [{"state": "failed", "duration": 1}] * 5 + [{"state": "success", "duration": 1, "end_date": week_ago}]
    own = dag_run_metrics(cfg, "monitoring_dag", runs, datetime.now(UTC))
    assert by_name(own, "dag.consecutive_failures").status == "warn"
    assert by_name(own, "dag.hours_since_success").status == "warn"
    other = dag_run_metrics(cfg, "etl_ecommerce_pipeline", runs, datetime.now(UTC))
    assert by_name(other, "dag.consecutive_failures").status == "critical"


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^unknown metric 'monitoring\.thresholds\.db\.nope' \(valid: airflow"):
        parse_monitoring({"thresholds": {"db.nope": {"warn": 1}}})
    with pytest.raises(ConfigError, match=r"^unknown key 'monitoring\.recent_run' — did you mean 'recent_runs'\?$"):
        parse_monitoring({"recent_run": 5})
    with pytest.raises(ConfigError, match="warn must be <= critical"):
        parse_monitoring({"thresholds": {"db.lock_waits": {"warn": 5, "critical": 1}}})
    with pytest.raises(ConfigError, match=r"monitoring\.recent_runs"):
        parse_monitoring({"recent_runs": 0})


def test_system_metrics_are_within_default_limits(tmp_path: Path) -> None:
    cfg = parse_monitoring(load_config(ROOT / "config.yaml").monitoring)
    metrics = collect_system_metrics(
        cfg, {"staging": tmp_path / "not-yet-created", "reports": tmp_path}, cpu_interval=0.2
    )
    assert {m.name for m in metrics} >= {"system.cpu_percent", "system.memory_percent", "system.disk_used_percent"}
    assert by_name(metrics, "system.dir_free_mb", "staging").value > 0
    raise_on_critical("check_system_metrics", metrics)  # a healthy machine: no critical breach


def test_database_health_healthy(fresh_db: str) -> None:
    cfg = parse_monitoring(load_config(ROOT / "config.yaml").monitoring)
    metrics = collect_database_metrics(cfg, fresh_db)
    assert by_name(metrics, "db.connect_ms").status == "ok"
    assert 0 < by_name(metrics, "db.connections_used_percent").value < 100
    assert by_name(metrics, "db.idle_in_transaction").value == 0
    assert by_name(metrics, "db.lock_waits").value == 0
    assert by_name(metrics, "db.table_size_mb", "orders").value > 0
    raise_on_critical("check_database_health", metrics)


def test_database_health_breach_idle_in_transaction_and_lock_wait(fresh_db: str) -> None:
    cfg = parse_monitoring(
        {
            "idle_in_transaction_seconds": 1,
            "thresholds": {
                "db.idle_in_transaction": {"warn": 1, "critical": 1},
                "db.lock_waits": {"warn": 1, "critical": 1},
            },
        }
    )
    holder = psycopg.connect(fresh_db)  # takes a lock, then sits idle in its transaction
    holder.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
    waiter = psycopg.connect(fresh_db)
    blocked = threading.Thread(target=lambda: waiter.execute("SELECT count(*) FROM orders"), daemon=True)
    blocked.start()
    try:
        time.sleep(1.5)
        metrics = collect_database_metrics(cfg, fresh_db)
        idle = by_name(metrics, "db.idle_in_transaction")
        locks = by_name(metrics, "db.lock_waits")
        assert idle.value == 1 and idle.status == "critical"
        assert locks.value == 1 and locks.status == "critical"
        with pytest.raises(MonitoringBreach, match="2 critical breach") as err:
            raise_on_critical("check_database_health", metrics)
        assert "db.idle_in_transaction=1" in str(err.value)
        assert "SELECT" not in str(err.value)  # never the query text
    finally:
        holder.rollback()
        blocked.join(10)
        holder.close()
        waiter.close()


def test_freshness_per_table(fresh_db: str) -> None:
    settings = load_config(ROOT / "config.yaml")
    cfg = parse_monitoring(settings.monitoring)
    now = datetime.now(UTC)
    with psycopg.connect(fresh_db) as conn:
        for source, hours in (("orders", 1), ("user_sessions", 30), ("products", 60), ("products", 70)):
            at = now - timedelta(hours=hours)
            conn.execute(
                "INSERT INTO etl_runs (etl_run_id, source, rows_read, rows_loaded, rows_rejected, rows_duplicate, "
                "started_at, finished_at) VALUES (%s, %s, 1, 1, 0, 0, %s, %s)",
                (f"run{hours}", source, at, at),
            )
    metrics = collect_freshness(cfg, settings, fresh_db, now)
    assert by_name(metrics, "freshness.age_hours", "orders").status == "ok"
    assert by_name(metrics, "freshness.age_hours", "user_sessions").status == "warn"
    products = by_name(metrics, "freshness.age_hours", "products")
    assert products.status == "critical" and round(products.value) == 60  # newest load counts
    assert by_name(metrics, "freshness.age_hours", "customers").status == "ok"  # optional, never loaded


def test_dag_status_skipped_without_connection_and_critical_when_unreachable() -> None:
    from include.monitoring import AirflowApiClient

    cfg = parse_monitoring({})
    skipped = collect_dag_status(cfg, None)
    assert [m.status for m in skipped] == ["skipped"]
    raise_on_critical("check_dag_status", skipped)  # a warning, not a failure
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = collect_dag_status(cfg, AirflowApiClient(f"http://127.0.0.1:{port}", "admin", "pw", timeout=2))
    assert by_name(down, "airflow.api_reachable").status == "critical"
    with pytest.raises(MonitoringBreach, match=r"airflow\.api_reachable"):
        raise_on_critical("check_dag_status", down)


def test_history_grows_and_report_has_trends(fresh_db: str, tmp_path: Path) -> None:
    from dataclasses import replace

    from include.monitoring_report import build_report

    settings = replace(load_config(ROOT / "config.yaml"), reports_dir=tmp_path)
    cfg = parse_monitoring(settings.monitoring)
    counts = []
    for i, run_id in enumerate(("scheduled__1", "scheduled__2")):
        metrics = collect_database_metrics(cfg, fresh_db) + collect_system_metrics(cfg, {"reports": tmp_path}, 0.1)
        persist_metrics(fresh_db, "public", run_id, metrics, datetime.now(UTC) - timedelta(hours=1 - i))
        with psycopg.connect(fresh_db) as conn:
            counts.append(conn.execute("SELECT count(*), count(DISTINCT run_id) FROM monitoring_metrics").fetchone())
    assert counts[1][0] > counts[0][0] and counts[1][1] == 2
    out = build_report(settings, cfg, fresh_db, "scheduled__2")
    html = Path(out["html"]).read_text()
    assert out["status"] in ("ok", "warn")
    assert "db.connections_used_percent" in html and html.count("data:image/png;base64,") == 0
    assert "not enough history yet: 2 run(s)" in html  # two runs: values shown, no trend drawn
    data = json.loads(Path(out["json"]).read_text())
    assert data["run_id"] == "scheduled__2" and data["history_points"] >= counts[1][0] // 2
    assert (tmp_path / "monitoring" / "monitoring_latest.html").exists()
