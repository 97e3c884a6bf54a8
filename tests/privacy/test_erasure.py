"""Erasure and access requests on a warehouse loaded by the real pipeline (real PostgreSQL)."""

from __future__ import annotations

import json
import logging
import stat
import uuid

import pandas as pd
import psycopg
import pytest

from include.backup import table_digests
from include.config_loader import ConfigError, load_config
from include.privacy import (
    privacy_config,
    process_requests,
    reapply_erasures,
    submit_request,
    suppress,
    suppressed_tokens,
    token,
    token_address,
)
from tests.privacy.conftest import KEY, RAW_SUBJECT, SUBJECT, Warehouse, files_holding, tables_holding

TOKEN = token(SUBJECT, KEY)
TOKEN_ADDRESS = token_address(TOKEN)


def _revenue(conn: psycopg.Connection) -> tuple:
    return conn.execute("SELECT count(*), sum(total_amount) FROM orders").fetchone()


def _in_statistics(conn: psycopg.Connection, needle: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stats WHERE schemaname = 'public'"
        " AND strpos(lower(coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, '')), %s) > 0",
        (needle,),
    ).fetchone()
    return bool(row[0])


def _erase(wh: Warehouse, address: str = RAW_SUBJECT) -> tuple[str, list[dict]]:
    rid = submit_request(wh.url, "public", address, "erase")
    return str(rid), process_requests(wh.url, "public", wh.dirs, KEY, run_id="test-run", actor="pytest")


def test_token_is_keyed_and_passes_the_email_rule() -> None:
    assert token(" Jane.Subject@Example.COM ", KEY) == token(SUBJECT, KEY)
    assert token(SUBJECT, b"another-key-0123456789") != token(SUBJECT, KEY)
    assert TOKEN_ADDRESS == f"erased-{TOKEN}@erased.invalid"
    assert len(TOKEN) == 32


def test_erasure_removes_the_address_everywhere_and_keeps_revenue(warehouse: Warehouse) -> None:
    with warehouse.connect() as conn:
        before = _revenue(conn)
        subject_id, subject_orders = conn.execute(
            "SELECT c.customer_id, count(o.*) FROM customers c JOIN orders o USING (customer_id)"
            " WHERE c.email = %s GROUP BY 1",
            (SUBJECT,),
        ).fetchone()
        assert subject_orders == 2
        assert tables_holding(conn, SUBJECT) == {"public.customers": 1, "public.rejected_records": 1}
        conn.execute("ANALYZE")
        assert _in_statistics(conn, SUBJECT)  # sampled values of the planner statistics hold it too
    assert files_holding(warehouse.settings.staging_dir, SUBJECT)  # the fixture really staged it

    rid, done = _erase(warehouse)

    assert done == [
        {
            "request_id": rid,
            "action": "erase",
            "status": "done",
            "token": TOKEN,
            "counts": {
                "customers": 1,
                "orders": 0,
                "user_sessions": 1,
                "rejected_records": 1,
                "staging_files": 7,  # 3 parquet parts and 4 CSV files deleted
                "report_files": 1,
                "export_files": 0,
            },
        }
    ]
    with warehouse.connect() as conn:
        assert tables_holding(conn, SUBJECT) == {}  # no table of any schema, privacy tables included
        assert not _in_statistics(conn, SUBJECT)
        assert _revenue(conn) == before
        row = conn.execute(
            "SELECT customer_id, first_name, last_name, country, signup_date, order_count, total_spent, session_count"
            " FROM customers WHERE email = %s",
            (TOKEN_ADDRESS,),
        ).fetchone()
        assert row == (subject_id, None, None, None, None, 2, row[6], 0)
        assert str(row[6]) == "120.99"  # 2 x 10.50 + 99.99, exact
        assert conn.execute("SELECT count(*) FROM user_sessions WHERE customer_id = %s", (subject_id,)).fetchone() == (
            0,
        )
        assert conn.execute(
            "SELECT count(*) FROM rejected_records WHERE raw_record->>'order_reference' = 'ORD-900003'"
        ).fetchone() == (0,)  # purged, not just rewritten
        audit = dict(
            conn.execute(
                "SELECT table_name, rows_changed FROM privacy.privacy_audit WHERE request_id = %s AND token = %s"
                " AND action = 'erase' AND actor = 'pytest' AND run_id = 'test-run'",
                (uuid.UUID(rid), TOKEN),
            ).fetchall()
        )
        assert audit["customers"] == 1 and audit["user_sessions"] == 1 and audit["rejected_records"] == 1
        assert conn.execute(
            "SELECT email, token, status FROM privacy.privacy_requests WHERE request_id = %s", (uuid.UUID(rid),)
        ).fetchone() == (None, TOKEN, "done")
        assert suppressed_tokens(conn) == {TOKEN}
    for folder in (warehouse.settings.staging_dir, warehouse.settings.reports_dir, warehouse.cfg.backup_dir):
        assert files_holding(folder, SUBJECT) == [], folder
    run_dir = warehouse.settings.staging_dir / "etl_ecommerce_pipeline" / "run-1"
    assert list((run_dir / "transform").glob("products.*.clean.csv"))  # files without the address stay
    assert not (run_dir / "transform" / "customers.clean.csv").exists()  # it also held her names
    # Report text files are rewritten, not dropped: the other rows of the report stay.
    report = (warehouse.settings.reports_dir / "extract.csv").read_text()
    assert report == f"email,orders\n{TOKEN_ADDRESS},2\nother@example.org,1\n"
    assert json.loads((warehouse.cfg.backup_dir / "suppressions.json").read_text())["tokens"][0]["token"] == TOKEN


def test_repeating_a_request_changes_nothing(warehouse: Warehouse) -> None:
    rid, _ = _erase(warehouse)
    with warehouse.connect() as conn:
        digests = table_digests(conn)
        audit_rows = conn.execute("SELECT count(*) FROM privacy.privacy_audit").fetchone()
    again = process_requests(warehouse.url, "public", warehouse.dirs, KEY, run_id="r2", actor="pytest", request_id=rid)
    assert again == [{"request_id": rid, "action": "erase", "status": "already_done", "counts": {}}]
    assert process_requests(warehouse.url, "public", warehouse.dirs, KEY, run_id="r3", actor="pytest") == []
    # A second request for the same address: nothing left to change in the warehouse.
    _, second = _erase(warehouse, SUBJECT)
    assert {k: v for k, v in second[0]["counts"].items() if v} == {}
    with warehouse.connect() as conn:
        assert table_digests(conn) == digests
        assert (
            conn.execute("SELECT count(*) FROM privacy.privacy_audit WHERE request_id IS NOT NULL").fetchone()[0]
            > audit_rows[0]
        )


def test_unknown_request_id_is_named(warehouse: Warehouse) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(LookupError, match=missing):
        process_requests(warehouse.url, "public", warehouse.dirs, KEY, run_id="r", actor="t", request_id=missing)


def test_reprocessing_the_raw_file_does_not_bring_the_address_back(warehouse: Warehouse) -> None:
    _erase(warehouse)
    with warehouse.connect() as conn:
        before = _revenue(conn)
        tokens = suppressed_tokens(conn)
    assert tokens
    warehouse.reload("reprocess")  # the real pipeline: the transform maps the erased address to its token
    with warehouse.connect() as conn:
        assert tables_holding(conn, SUBJECT) == {}
        assert _revenue(conn) == before
        assert conn.execute(
            "SELECT count(*) FROM orders o JOIN customers c USING (customer_id) WHERE c.email = %s", (TOKEN_ADDRESS,)
        ).fetchone() == (2,)
        # The reprocessed session comes back under the token only; the maintenance step deletes it again.
        assert conn.execute(
            "SELECT count(*) FROM user_sessions s JOIN customers c USING (customer_id) WHERE c.email = %s",
            (TOKEN_ADDRESS,),
        ).fetchone() == (1,)
    reapply_erasures(warehouse.url, "public", KEY, warehouse.cfg.backup_dir, run_id="m", actor="pytest")
    with warehouse.connect() as conn:
        assert conn.execute(
            "SELECT count(*) FROM user_sessions s JOIN customers c USING (customer_id) WHERE c.email LIKE %s",
            ("%@erased.invalid",),
        ).fetchone() == (0,)


def test_reprocess_without_suppression_is_caught_by_the_reapply_step(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any other path back (here: the transform's suppression switched off), reapply_erasures merges into the token."""
    from include import privacy

    _erase(warehouse)
    monkeypatch.setattr(privacy, "suppression_for", lambda conninfo, settings: (frozenset(), None))
    with warehouse.connect() as conn:
        before = _revenue(conn)
    warehouse.reload("reprocess-unsuppressed")
    with warehouse.connect() as conn:
        assert tables_holding(conn, SUBJECT)  # it came back: this is what suppression prevents
    counts = reapply_erasures(warehouse.url, "public", KEY, warehouse.cfg.backup_dir, run_id="m", actor="pytest")
    assert counts["erasures"] == 1 and counts["customers"] == 1 and counts["orders"] == 2
    with warehouse.connect() as conn:
        assert tables_holding(conn, SUBJECT) == {}
        assert _revenue(conn) == before
        assert conn.execute("SELECT order_count FROM customers WHERE email = %s", (TOKEN_ADDRESS,)).fetchone() == (2,)
        assert (
            conn.execute(
                "SELECT count(*) FROM privacy.privacy_audit WHERE action = 'reapply' AND request_id IS NULL AND token = %s",
                (TOKEN,),
            ).fetchone()[0]
            >= 1
        )


def test_suppress_maps_only_suppressed_addresses() -> None:
    frame = pd.DataFrame(
        {"customer_email": [RAW_SUBJECT, "other@example.org", None, SUBJECT.upper()], "n": [1, 2, 3, 4]}
    )
    out = suppress(frame, "customer_email", {TOKEN}, KEY)
    got = out["customer_email"].tolist()
    assert got[:2] == [TOKEN_ADDRESS, "other@example.org"] and pd.isna(got[2]) and got[3] == TOKEN_ADDRESS
    assert out["n"].tolist() == [1, 2, 3, 4]
    assert frame["customer_email"].iloc[0] == RAW_SUBJECT  # pure: the input is not changed
    assert suppress(frame, "customer_email", set(), KEY) is frame
    # The raw record the extract keeps beside the columns (quarantine's raw_record) is mapped in those rows too.
    raw = pd.DataFrame(
        {
            "customer_email": [RAW_SUBJECT, "other@example.org"],
            "_raw": [f'{{"customer_email": "{RAW_SUBJECT}", "x": 1}}', '{"customer_email": "other@example.org"}'],
        }
    ).astype({"_raw": "str"})
    mapped = suppress(raw, "customer_email", {TOKEN}, KEY)
    assert mapped["_raw"].tolist() == [
        f'{{"customer_email": " {TOKEN_ADDRESS}", "x": 1}}',
        '{"customer_email": "other@example.org"}',
    ]


def test_export_writes_exactly_that_customers_rows(warehouse: Warehouse, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    rid = submit_request(warehouse.url, "public", RAW_SUBJECT, "export")
    done = process_requests(warehouse.url, "public", warehouse.dirs, KEY, run_id="x", actor="pytest")
    path = warehouse.cfg.exports_dir / f"access-{rid}.json"
    assert done == [{"request_id": str(rid), "action": "export", "status": "done", "path": str(path)}]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert [c["email"] for c in doc["customer"]] == [SUBJECT]
    assert doc["customer"][0]["first_name"] == "Jane" and doc["customer"][0]["country"] == "FR"
    assert sorted(o["order_reference"] for o in doc["orders"]) == ["ORD-900001", "ORD-900002"]
    assert sorted(o["total_amount"] for o in doc["orders"]) == ["21.00", "99.99"]  # exact decimals as text
    assert [s["session_id"] for s in doc["sessions"]] == ["subject-session-1"]
    assert [r["raw_record"]["order_reference"] for r in doc["quarantined_records"]] == ["ORD-900003"]
    # Nobody else's address is in it.
    import re

    others = set(re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", path.read_text().lower())) - {SUBJECT}
    assert others == set()
    assert str(path) in caplog.text and SUBJECT not in caplog.text.lower()
    with warehouse.connect() as conn:
        assert conn.execute(
            "SELECT email, status FROM privacy.privacy_requests WHERE request_id = %s", (rid,)
        ).fetchone() == (None, "done")
        assert conn.execute(
            "SELECT table_name, rows_changed FROM privacy.privacy_audit WHERE request_id = %s", (rid,)
        ).fetchall() == [("export_file", 1)]
    # A later erasure also removes the export document.
    _erase(warehouse)
    assert not path.exists()


def test_privacy_config_rejects_unknown_keys(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "config.yaml"
    text = (load_config().config_path).read_text().replace("  sessions_months: 13", "  sesions_months: 13")
    cfg.write_text(text)
    monkeypatch.setenv("ECOM_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match=r"'privacy\.sesions_months'"):
        privacy_config(load_config())


def test_suppression_for_needs_no_key_until_something_is_erased(warehouse: Warehouse, monkeypatch) -> None:
    from include.privacy import suppression_for

    monkeypatch.delenv("AIRFLOW_CONN_PRIVACY_KEY", raising=False)
    assert suppression_for(warehouse.url, warehouse.settings) == (frozenset(), None)
    _erase(warehouse)
    with pytest.raises(ConfigError, match="privacy_key"):
        suppression_for(warehouse.url, warehouse.settings)
    monkeypatch.setenv("AIRFLOW_CONN_PRIVACY_KEY", json.dumps({"conn_type": "generic", "password": KEY.decode()}))
    assert suppression_for(warehouse.url, warehouse.settings) == (frozenset({TOKEN}), KEY)
