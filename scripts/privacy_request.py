"""Privacy operations from the command line (the Makefile targets of mk/privacy.mk).

    python -m scripts.privacy_request request --action erase|export   (address in ECOM_PRIVACY_EMAIL)
    python -m scripts.privacy_request process [--request-id ID]
    python -m scripts.privacy_request backup | restore-check [--file F] | restore --file F --yes | reapply

The address is read from the environment, not argv, so it stays out of the process list; only the
request id is printed. Without ``AIRFLOW_CONN_POSTGRES_DEFAULT`` the embedded warehouse of ``make run``
is used, and the keys (connections ``privacy_key``/``backup_key``) default to files in ``.local``
(0600) shared with ``make airflow``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import secrets
import sys
from pathlib import Path

from include.config_loader import load_config

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
log = logging.getLogger("privacy")


def _local_secret(name: str) -> str:
    path = LOCAL / name
    if not path.exists():
        LOCAL.mkdir(exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def local_environment() -> None:
    """Point the warehouse and the key connections at the local set-up unless the environment already does."""
    for conn_id, file in (("PRIVACY_KEY", "privacy.key"), ("BACKUP_KEY", "backup.key")):
        var = f"AIRFLOW_CONN_{conn_id}"
        if not os.environ.get(var):
            os.environ[var] = json.dumps({"conn_type": "generic", "password": _local_secret(file)})
    if not os.environ.get("AIRFLOW_CONN_POSTGRES_DEFAULT"):
        from include import local_postgres
        from scripts.run_local import PG_DIR, WAREHOUSE_DB

        server = local_postgres.start(PG_DIR)
        os.environ["AIRFLOW_CONN_POSTGRES_DEFAULT"] = local_postgres.create_database(server, WAREHOUSE_DB)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    req = sub.add_parser("request", help="queue an erase/export request (address in ECOM_PRIVACY_EMAIL)")
    req.add_argument("--action", choices=("erase", "export"), required=True)
    proc = sub.add_parser("process", help="process pending requests now (what the privacy_requests DAG does)")
    proc.add_argument("--request-id")
    sub.add_parser("backup", help="encrypted backup + restore-check")
    chk = sub.add_parser("restore-check", help="restore the newest backup (or --file) into a scratch database")
    chk.add_argument("--file", type=Path)
    rst = sub.add_parser("restore", help="restore a backup over the warehouse, then re-apply every erasure")
    rst.add_argument("--file", type=Path, required=True)
    rst.add_argument("--yes", action="store_true", help="confirm: the warehouse tables are replaced")
    sub.add_parser("reapply", help="re-apply every erasure (after a restore)")
    args = parser.parse_args(argv)

    local_environment()
    import psycopg

    from include import backup, privacy
    from include.database import conninfo_from_connection

    settings = load_config()
    cfg = privacy.privacy_config(settings)
    conninfo = conninfo_from_connection(cfg.conn_id or settings.conn_id)
    actor = f"cli:{getpass.getuser()}"

    if args.command == "request":
        address = os.environ.get("ECOM_PRIVACY_EMAIL", "")
        if not address:
            parser.error("set EMAIL=... (make) / ECOM_PRIVACY_EMAIL")
        rid = privacy.submit_request(conninfo, settings.schema, address, args.action)
        log.info(
            "request %s queued (%s); trigger the privacy_requests DAG with request_id=%s, or run "
            "`make privacy-process`",
            rid,
            args.action,
            rid,
        )
        sys.stdout.write(f"{rid}\n")
    elif args.command == "process":
        done = privacy.process_requests(
            conninfo,
            settings.schema,
            privacy.Dirs.of(settings, cfg),
            privacy.secret_key(cfg.key_conn_id),
            run_id=f"cli-{os.getpid()}",
            actor=actor,
            request_id=args.request_id,
        )
        for d in done:
            sys.stdout.write(f"{d['request_id']} {d['action']} {d['status']} {d.get('path', '')}\n")
    elif args.command == "backup":
        out = backup.backup_and_check(
            conninfo,
            cfg,
            privacy.secret_key(cfg.backup_key_conn_id),
            f"cli-{os.getpid()}",
            metrics_conninfo=conninfo_from_connection(settings.reporting_conn_id),
        )
        sys.stdout.write(f"backup {out['backup']}: restore-check passed ({out['tables']} tables, {out['rows']} rows)\n")
    elif args.command == "restore-check":
        res = backup.restore_check(conninfo, cfg, privacy.secret_key(cfg.backup_key_conn_id), args.file)
        sys.stdout.write(f"restore-check of {res['file']} passed ({res['tables']} tables, {res['rows']} rows)\n")
    elif args.command == "restore":
        if not args.yes:
            parser.error("restore replaces the warehouse tables: add --yes (make restore FILE=... CONFIRM=yes)")
        dbname = str(psycopg.conninfo.conninfo_to_dict(conninfo).get("dbname"))
        backup.restore_into(conninfo, args.file, privacy.secret_key(cfg.backup_key_conn_id), cfg, dbname, clean=True)
        counts = privacy.reapply_erasures(
            conninfo,
            settings.schema,
            privacy.secret_key(cfg.key_conn_id),
            cfg.backup_dir,
            run_id=f"cli-restore-{os.getpid()}",
            actor=actor,
        )
        sys.stdout.write(f"restored {args.file}; erasures re-applied: {counts}\n")
    elif args.command == "reapply":
        counts = privacy.reapply_erasures(
            conninfo,
            settings.schema,
            privacy.secret_key(cfg.key_conn_id),
            cfg.backup_dir,
            run_id=f"cli-reapply-{os.getpid()}",
            actor=actor,
        )
        sys.stdout.write(f"erasures re-applied: {counts}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
