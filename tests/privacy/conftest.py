"""Fixtures of the privacy tests: a warehouse loaded by the real pipeline with one data subject everywhere."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from include import pipeline
from include.config_loader import Settings, load_config
from include.privacy import Dirs, PrivacyConfig, privacy_config

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "raw"
SUBJECT = "jane.subject@example.com"
RAW_SUBJECT = " Jane.Subject@Example.COM"  # as a messy source spells it
KEY = b"test-privacy-key-0123456789abcdef"
BACKUP_KEY = b"test-backup-key-0123456789abcdef"


@dataclass
class Warehouse:
    url: str
    settings: Settings
    cfg: PrivacyConfig
    dirs: Dirs
    raw: Path
    tmp: Path

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url)

    def reload(self, run_id: str) -> dict[str, Any]:
        # A reprocess of the same raw files: the landing registry would skip identical content, so forget it.
        with psycopg.connect(self.url) as conn:
            conn.execute("DELETE FROM ingested_files")
        return pipeline.run_all(self.settings, run_id, self.url)


def write_raw(raw: Path) -> None:
    """The sample files plus the subject: a customer row, two orders, a session and a quarantined order."""
    raw.mkdir(parents=True, exist_ok=True)
    for name in ("products.json", "customers.csv", "orders.csv", "user_sessions.json"):
        shutil.copy(SAMPLE / name, raw / name)
    with (raw / "customers.csv").open("a", encoding="utf-8") as f:
        f.write(f"{RAW_SUBJECT},Jane,Subject,FR,2025-01-02\n")
    with (raw / "orders.csv").open("a", encoding="utf-8") as f:
        f.write(f"ORD-900001,{RAW_SUBJECT},8,2,10.50,2026-08-05T10:00:00,delivered,paypal\n")
        f.write(f"ORD-900002,{SUBJECT},8,1,99.99,2026-08-06T10:00:00,shipped,credit_card\n")
        f.write(f"ORD-900003,{SUBJECT},8,0,10.00,2026-08-06T11:00:00,delivered,paypal\n")  # quantity 0: quarantined
    sessions = json.loads((raw / "user_sessions.json").read_text(encoding="utf-8"))
    sessions.append(
        {
            "session_id": "subject-session-1",
            "customer_email": RAW_SUBJECT,
            "session_start": "2026-08-05T09:50:00",
            "session_end": "2026-08-05T10:05:00",
            "pages_viewed": 4,
            "items_viewed": [8],
            "items_added_to_cart": [8],
            "conversion": True,
            "device_type": "mobile",
            "browser": "Firefox",
            "ip_address": "203.0.113.77",
        }
    )
    (raw / "user_sessions.json").write_text(
        "[\n" + ",\n".join(json.dumps(s, ensure_ascii=False) for s in sessions) + "\n]\n", encoding="utf-8"
    )


@pytest.fixture
def warehouse(fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Warehouse]:
    raw = tmp_path / "raw"
    write_raw(raw)
    monkeypatch.setenv("ECOM_RAW_DATA_DIR", str(raw))
    monkeypatch.setenv("ECOM_STAGING_DIR", str(tmp_path / "staging"))
    monkeypatch.setenv("ECOM_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("ECOM_EXPORTS_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("ECOM_BACKUP_DIR", str(tmp_path / "backups"))
    # The erasure key as the transform reads it (include.privacy.suppression_for → Airflow connection privacy_key).
    monkeypatch.setenv("AIRFLOW_CONN_PRIVACY_KEY", json.dumps({"conn_type": "generic", "password": KEY.decode()}))
    settings = load_config()
    cfg = privacy_config(settings)
    wh = Warehouse(fresh_db, settings, cfg, Dirs.of(settings, cfg), raw, tmp_path)
    wh.reload("run-1")
    # A report that quotes the subject (e.g. an operator's CSV extract next to the HTML reports).
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    (settings.reports_dir / "extract.csv").write_text(f"email,orders\n{SUBJECT},2\nother@example.org,1\n")
    yield wh


def files_holding(root: Path, needle: str) -> list[Path]:
    """Every file under `root` whose bytes or (parquet) values contain `needle`, case-insensitively."""
    hits = []
    for p in sorted(x for x in root.rglob("*") if x.is_file()):
        if needle.encode() in p.read_bytes().lower():
            hits.append(p)
        elif p.suffix == ".parquet":
            frame = pq.read_table(p).to_pandas()
            if any(frame[c].astype(str).str.lower().str.contains(needle, regex=False).any() for c in frame.columns):
                hits.append(p)
    return hits


def tables_holding(conn: psycopg.Connection[Any], needle: str) -> dict[str, int]:
    """Rows of every table of every user schema whose text form contains `needle`, case-insensitively."""
    tables = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    out = {}
    for schema, table in tables:
        n = conn.execute(
            psycopg.sql.SQL("SELECT count(*) FROM {} t WHERE strpos(lower(t::text), %s) > 0").format(
                psycopg.sql.Identifier(schema, table)
            ),
            (needle,),
        ).fetchone()[0]
        if n:
            out[f"{schema}.{table}"] = n
    return out
