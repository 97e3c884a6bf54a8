"""`make run` / `make airflow`: run the project's DAGs against a real PostgreSQL, no Docker needed.

* Airflow's own metadata lives in an embedded PostgreSQL under `.local/` (git-ignored), which is
  also the warehouse unless `AIRFLOW_CONN_POSTGRES_DEFAULT` points elsewhere.
* Before any DAG runs, the warehouse is migrated as its owner role (include/roles.py: roles
  ecom_owner / ecom_loader / ecom_reporting, passwords in `.local/`); the DAGs' `postgres_default`
  connection is the loader (no DDL), quality and monitoring use `postgres_reporting`.
* `make run` runs `airflow dags test` for the ETL, then the quality and monitoring DAGs, prints a
  summary table and the report paths, and exits non-zero if any DAG run failed.
* `make airflow` (`--serve`) starts the api-server, scheduler, dag-processor and triggerer on
  http://localhost:8080 against the same database and waits until Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from include import local_postgres
from include.config_loader import ConfigError, load_config
from include.database import connect
from include.run_summary import results_block

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
AIRFLOW_HOME = LOCAL / "airflow"
PG_DIR = LOCAL / "pgdata"
WAREHOUSE_DB = "ecommerce_db"
DAGS = ("etl_ecommerce_pipeline", "data_quality_checks", "monitoring_dag")
DAG_FILES = {
    "etl_ecommerce_pipeline": "etl_ecommerce_dag.py",
    "data_quality_checks": "data_quality_dag.py",
    "monitoring_dag": "monitoring_dag.py",
}
POOLS = {"warehouse_load": (1, "Serialises warehouse loads")}

log = logging.getLogger("make-run")

# The newest successful run: the first successful attempt per run id (view of migration 0002) when it exists.
_LAST_SUCCESS = """
SELECT etl_run_id, max(finished_at) FROM etl_runs_effective
 GROUP BY etl_run_id ORDER BY max(finished_at) DESC LIMIT 1
"""


# The newest ETL run (any status but failed): landing files claimed / loaded / skipped (migration 0005).
_LATEST_FILES = """
SELECT etl_run_id, sum(files_claimed)::int, sum(files_loaded)::int, sum(files_skipped)::int FROM etl_runs
 WHERE status IN ('success', 'nothing_new') AND source <> '*'
 GROUP BY etl_run_id, attempt ORDER BY max(finished_at) DESC LIMIT 1
"""


def _secret(name: str, make: object) -> str:
    path = LOCAL / name
    if not path.exists():
        path.write_text(make() if callable(make) else str(make))
        path.chmod(0o600)
    return path.read_text().strip()


def airflow_env(
    server: local_postgres.LocalServer, warehouse_url: str | None, reporting_url: str | None = None
) -> dict[str, str]:
    """The environment every Airflow process of the local setup shares."""
    from cryptography.fernet import Fernet

    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(AIRFLOW_HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": server.url("airflow", scheme="postgresql+psycopg2"),
            "AIRFLOW__CORE__FERNET_KEY": _secret("fernet.key", lambda: Fernet.generate_key().decode()),
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret("jwt.secret", lambda: secrets.token_urlsafe(32)),
            "AIRFLOW__API__BASE_URL": "http://localhost:8080",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://localhost:8080/execution/",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(AIRFLOW_HOME / "logs"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            # Secrets of the privacy DAGs (keyed erasure tokens, backup encryption): generated once per checkout,
            # the same files `make privacy-request` / `make backup` use.
            "AIRFLOW_CONN_PRIVACY_KEY": json.dumps(
                {"conn_type": "generic", "password": _secret("privacy.key", lambda: secrets.token_urlsafe(32))}
            ),
            "AIRFLOW_CONN_BACKUP_KEY": json.dumps(
                {"conn_type": "generic", "password": _secret("backup.key", lambda: secrets.token_urlsafe(32))}
            ),
            "ECOM_STAGING_DIR": env.get("ECOM_STAGING_DIR", str(LOCAL / "staging")),
            "ECOM_REPORTS_DIR": env.get("ECOM_REPORTS_DIR", str(LOCAL / "reports")),
        }
    )
    if warehouse_url:
        env["AIRFLOW_CONN_POSTGRES_DEFAULT"] = warehouse_url
    if reporting_url:
        env["AIRFLOW_CONN_POSTGRES_REPORTING"] = reporting_url
        env["ECOM_REPORTING_CONN_ID"] = "postgres_reporting"
    return env


def _airflow(env: dict[str, str], *args: str, log_file: Path | None = None, check: bool = True) -> int:
    cmd = [str(Path(sys.executable).parent / "airflow"), *args]
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("w") as out:
            rc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    else:
        rc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False).returncode
    if check and rc != 0:
        raise SystemExit(
            f"`airflow {' '.join(args)}` failed with exit code {rc}" + (f"; log: {log_file}" if log_file else "")
        )
    return rc


def prepare() -> tuple[local_postgres.LocalServer, dict[str, str], str]:
    """Start the embedded PostgreSQL, migrate Airflow's metadata, create pools; return (server, env, warehouse description)."""
    LOCAL.mkdir(exist_ok=True)
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    server = local_postgres.start(PG_DIR)
    local_postgres.create_database(server, "airflow")
    reporting_url = None
    if os.environ.get("AIRFLOW_CONN_POSTGRES_DEFAULT"):
        warehouse_url = None
        where = "your AIRFLOW_CONN_POSTGRES_DEFAULT"
        migrate_own_warehouse()
    else:
        warehouse_url, reporting_url = prepare_embedded_warehouse(server)
        where = f"embedded PostgreSQL 127.0.0.1:{server.port}/{WAREHOUSE_DB} (data in {PG_DIR.relative_to(ROOT)})"
    env = airflow_env(server, warehouse_url, reporting_url)
    stamp = AIRFLOW_HOME / ".migrated"
    version = importlib.metadata.version("apache-airflow")
    if not stamp.exists() or stamp.read_text() != version:
        log.info("migrating Airflow's metadata database (first run only)...")
        _airflow(env, "db", "migrate", log_file=LOCAL / "logs" / "db-migrate.log")
        stamp.write_text(version)
    for name, (slots, description) in POOLS.items():
        _airflow(env, "pools", "set", name, str(slots), description)
    return server, env, where


def prepare_embedded_warehouse(server: local_postgres.LocalServer) -> tuple[str, str]:
    """Create the warehouse, its roles and schema (migrations as the owner); return (loader URL, reporting URL)."""
    from include.roles import RoleNames, setup_warehouse

    local_postgres.create_database(server, WAREHOUSE_DB)
    names = RoleNames()
    passwords = {
        kind: _secret(f"warehouse-{kind}.password", lambda: secrets.token_urlsafe(18))
        for kind in ("owner", "loader", "reporting")
    }
    applied = setup_warehouse(server.url(), WAREHOUSE_DB, load_config().schema, passwords, names)
    log.info("warehouse schema %s", f"migrated: {', '.join(applied)}" if applied else "up to date")
    return (
        server.url_as(names.loader, passwords["loader"], WAREHOUSE_DB),
        server.url_as(names.reporting, passwords["reporting"], WAREHOUSE_DB),
    )


def migrate_own_warehouse() -> None:
    """Migrate the warehouse of your AIRFLOW_CONN_POSTGRES_DEFAULT with that connection (it must be allowed DDL)."""
    from include.database import conninfo_from_connection
    from include.migrations import migrate

    settings = load_config()
    with psycopg.connect(conninfo_from_connection(settings.conn_id), autocommit=True) as conn:
        applied = migrate(conn, settings.schema)
    log.info("warehouse schema %s", f"migrated: {', '.join(applied)}" if applied else "up to date")


def _warehouse_conninfo(env: dict[str, str]) -> str:
    if "AIRFLOW_CONN_POSTGRES_DEFAULT" in env:
        os.environ["AIRFLOW_CONN_POSTGRES_DEFAULT"] = env["AIRFLOW_CONN_POSTGRES_DEFAULT"]
    from include.database import conninfo_from_connection

    return conninfo_from_connection(load_config().conn_id)


def print_summary(env: dict[str, str], results: dict[str, tuple[int, float, Path]], where: str) -> None:
    out = sys.stdout.write
    out("\n== make run: summary ==\n")
    out(f"warehouse: {where}\n\n")
    out("\n".join(results_block(results, ROOT)) + "\n")
    etl_failed = results.get(DAGS[0], (0, 0.0, ROOT))[0] != 0
    try:
        with connect(_warehouse_conninfo(env), schema=load_config().schema) as conn:
            # The ledger counts each run once (its first successful attempt): etl_runs_effective.
            row = conn.execute(_LAST_SUCCESS).fetchone()
            if row:
                # After a failed run the newest ledger rows are an older run's: say so, or it reads like success.
                title = (
                    f"previous successful ETL run ({row[0]}, finished {row[1]:%Y-%m-%d %H:%M %Z})"
                    if etl_failed
                    else f"last ETL run {row[0]}"
                )
                out(f"\n{title}:\n")
                out(
                    f"{'source':<14}{'read':>9}{'loaded':>9}{'rejected':>9}{'dupl.':>9}{'inserted':>9}{'updated':>9}  file\n"
                )
                for r in conn.execute(
                    "SELECT source, rows_read, rows_loaded, rows_rejected, rows_duplicate, rows_inserted, rows_updated,"
                    " source_file FROM etl_runs_effective WHERE etl_run_id = %s ORDER BY source",
                    (row[0],),
                ):
                    out(f"{r[0]:<14}{r[1]:>9}{r[2]:>9}{r[3]:>9}{r[4]:>9}{r[5]:>9}{r[6]:>9}  {r[7]}\n")
                # The newest run of all (a "nothing new" run has no effective rows): its landing files.
                latest = conn.execute(_LATEST_FILES).fetchone()
                if latest and not etl_failed:
                    run, claimed, loaded_files, skipped = latest
                    if run != row[0]:
                        out(f"\nlatest ETL run {run}: nothing new ({skipped} file(s) skipped: already loaded)\n")
                    else:
                        out(
                            f"files: {claimed} claimed, {loaded_files} loaded, {skipped} skipped (table ingested_files)\n"
                        )
                rej = conn.execute(
                    "SELECT source, reason, count(*) FROM rejected_records WHERE etl_run_id = %s GROUP BY 1, 2 ORDER BY 1, 3 DESC",
                    (row[0],),
                ).fetchall()
                if rej:
                    out("rejected rows by reason (table rejected_records):\n")
                    for source, reason, n in rej:
                        out(f"  {source:<14}{reason:<32}{n:>6}\n")
                totals = conn.execute(
                    "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM products),"
                    " (SELECT count(*) FROM orders), (SELECT count(*) FROM user_sessions)"
                ).fetchone()
                if totals:
                    out(
                        f"warehouse rows: customers={totals[0]} products={totals[1]} orders={totals[2]} user_sessions={totals[3]}\n"
                    )
            if conn.execute("SELECT to_regclass('data_quality_results') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
                q = conn.execute("SELECT run_id FROM data_quality_results ORDER BY checked_at DESC LIMIT 1").fetchone()
                if q:
                    rows = conn.execute(
                        "SELECT severity, status, count(*) FROM data_quality_results WHERE run_id = %s GROUP BY 1, 2 ORDER BY 1, 2",
                        (q[0],),
                    ).fetchall()
                    out(
                        (
                            "quality checks (previous run; not run this time): "
                            if etl_failed
                            else "quality checks (last run): "
                        )
                        + ", ".join(f"{sev}/{status}={n}" for sev, status, n in rows)
                        + "\n"
                    )
    except psycopg.Error as err:
        out(f"(could not read the warehouse for the summary: {err})\n")
    reports = Path(env["ECOM_REPORTS_DIR"])
    if reports.exists():
        newest: dict[str, Path] = {}
        for p in reports.rglob("*.html"):
            kind = p.parent.name
            if kind not in newest or p.stat().st_mtime > newest[kind].stat().st_mtime:
                newest[kind] = p
        for kind, p in sorted(newest.items()):
            out(f"{kind} report: {p}\n")
    out("\n")


def config_error() -> str | None:
    """The one-line error of config.yaml (or $ECOM_CONFIG), or None when it is valid."""
    try:
        load_config()
    except ConfigError as err:
        return str(err)
    return None


def print_config_error(error: str) -> None:
    """What `make run` shows for an invalid config: the line with the fix, and every DAG as not run."""
    out = sys.stdout.write
    out("\n== make run: summary ==\n")
    out(f"{error}\n\n")
    out(f"{'DAG':<26}result\n")
    for dag_id in DAGS:
        out(f"{dag_id:<26}not run (config error)\n")
    out("\n")


def run_once() -> int:
    _, env, where = prepare()
    results: dict[str, tuple[int, float, Path]] = {}
    failed = False
    for dag_id in DAGS:
        if not (ROOT / "dags" / DAG_FILES[dag_id]).exists():
            continue
        if failed and dag_id == "data_quality_checks":
            log.warning("skipping %s: the ETL run failed", dag_id)
            continue
        log_file = LOCAL / "logs" / "make-run" / f"{dag_id}.log"
        log.info("running %s (log: %s) ...", dag_id, log_file.relative_to(ROOT))
        t = time.monotonic()
        rc = _airflow(env, "dags", "test", dag_id, log_file=log_file, check=False)
        results[dag_id] = (rc, time.monotonic() - t, log_file)
        if rc != 0:
            failed = True
            log.error("%s FAILED; the summary below says why (full log: %s)", dag_id, log_file.relative_to(ROOT))
    print_summary(env, results, where)
    return 1 if failed else 0


API_URL = "http://localhost:8080"


def _unpause(
    dag_ids: tuple[str, ...], password: str, procs: list[subprocess.Popen[bytes]], timeout: float = 300
) -> None:
    """Unpause `dag_ids` through the REST API once the api-server answers and the dag-processor has parsed them."""
    import requests

    pending = list(dag_ids)
    deadline = time.monotonic() + timeout
    token = None
    while pending and time.monotonic() < deadline and all(p.poll() is None for p in procs):
        time.sleep(3)
        try:
            if token is None:
                r = requests.post(f"{API_URL}/auth/token", json={"username": "admin", "password": password}, timeout=5)
                r.raise_for_status()
                token = r.json()["access_token"]
            for dag_id in list(pending):
                r = requests.patch(
                    f"{API_URL}/api/v2/dags/{dag_id}",
                    json={"is_paused": False},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=5,
                )
                if r.status_code == 200:
                    pending.remove(dag_id)
                    log.info("unpaused %s", dag_id)
        except requests.RequestException:
            continue  # the api-server is still starting, or the DAG is not parsed yet (404): try again
    if pending:
        log.warning("could not unpause %s; unpause them in the UI", ", ".join(pending))


def serve(paused: bool = False) -> int:
    _, env, where = prepare()
    pw_file = AIRFLOW_HOME / "simple_auth_manager_passwords.json.generated"
    if not pw_file.exists():
        pw_file.write_text(json.dumps({"admin": secrets.token_urlsafe(12)}))
    password = json.loads(pw_file.read_text())["admin"]
    # The monitoring DAG reads DAG runs through this connection: REST API of the api-server started below.
    env["AIRFLOW_CONN_AIRFLOW_API"] = json.dumps(
        {"conn_type": "http", "host": API_URL, "login": "admin", "password": password}
    )
    env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = str(paused)
    logs = LOCAL / "logs" / "serve"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    airflow_bin = str(Path(sys.executable).parent / "airflow")
    for component in (["api-server", "--port", "8080"], ["scheduler"], ["dag-processor"], ["triggerer"]):
        f = (logs / f"{component[0]}.log").open("w")
        procs.append(
            subprocess.Popen(
                [airflow_bin, *component], env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
            )
        )

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM, or SIGINT when started in the background: stop the components below

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    dag_ids = tuple(d for d in DAGS if (ROOT / "dags" / DAG_FILES[d]).exists())
    if paused:
        state = "DAGs stay paused (PAUSED=1): unpause one in the UI before triggering it"
    else:
        state = f"DAGs unpaused once parsed: {', '.join(dag_ids)} (they run on their schedules; `make airflow PAUSED=1` keeps them paused)"
        threading.Thread(target=_unpause, args=(dag_ids, password, procs), daemon=True).start()
    sys.stdout.write(
        f"Airflow UI: {API_URL}  (user admin, password {password})\nwarehouse: {where}\n{state}\n"
        f"monitoring reads DAG runs through the connection airflow_api -> {API_URL}\n"
        f"component logs: {logs}\nCtrl-C stops everything.\n"
    )
    sys.stdout.flush()
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        sys.stderr.write("an Airflow component exited; see the logs above\n")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the clean-up short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        local_postgres.stop(PG_DIR)
        sys.stdout.write("stopped: Airflow components and the embedded PostgreSQL are down\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--serve", action="store_true", help="serve the Airflow UI with the scheduler instead of running once"
    )
    parser.add_argument(
        "--paused",
        action="store_true",
        default=os.environ.get("PAUSED", "") not in ("", "0", "false", "False"),
        help="with --serve: leave the DAGs paused (default: unpaused, so a trigger runs; env PAUSED=1 does the same)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)  # before anything imports airflow (it would create ~/airflow)
    logging.getLogger("airflow").setLevel(logging.WARNING)  # its start-up chatter would land inside the summary
    error = config_error()
    if error is not None:  # one line with the fix, no traceback, before anything starts
        sys.stderr.write(f"{error}\n")
        if not args.serve:
            print_config_error(error)
        return 1
    try:
        return serve(args.paused) if args.serve else run_once()
    finally:
        if not args.serve:
            local_postgres.stop(PG_DIR)


if __name__ == "__main__":
    sys.exit(main())
