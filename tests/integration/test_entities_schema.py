"""The entity registry against the live schema, migration 0003, and "seen before" rejects (real PostgreSQL)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import psycopg
import pytest

from include import entities, pipeline
from include.config_loader import DEFAULT_CONFIG, Settings, load_config

ROOT = Path(__file__).resolve().parents[2]
MIGRATION_0003 = ROOT / "include" / "migrations" / "0003_entities.sql"


def _columns(conn: psycopg.Connection, table: str) -> list[tuple[str, str, bool]]:
    return conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull FROM pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (table,),
    ).fetchall()


def _keys(conn: psycopg.Connection, table: str, kind: str) -> set[tuple[str, ...]]:
    rows = conn.execute(
        "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_constraint c"
        " CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum"
        " WHERE c.conrelid = %s::regclass AND c.contype = %s GROUP BY c.oid",
        (table, kind),
    ).fetchall()
    return {tuple(r[0]) for r in rows}


def _foreign_keys(conn: psycopg.Connection, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT a.attname, c.confrelid::regclass::text FROM pg_constraint c"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
        " WHERE c.conrelid = %s::regclass AND c.contype = 'f'",
        (table,),
    ).fetchall()
    return dict(rows)


@pytest.mark.parametrize("src", entities.SOURCES, ids=lambda s: s.name)
def test_source_tables_match_the_registry(module_db: str, src: entities.Source) -> None:
    """Columns (order, type, NULL-ability), primary and unique keys and foreign keys of each source's table."""
    t = src.table
    with psycopg.connect(module_db) as conn:
        assert _columns(conn, t.name) == [(c.name, c.type, c.nullable) for c in t.columns]
        assert _keys(conn, t.name, "p") == {t.primary_key}
        assert _keys(conn, t.name, "u") == set(t.unique)
        assert _foreign_keys(conn, t.name) == {c.name: c.references for c in t.columns if c.references}
        # the natural key is the upsert's ON CONFLICT target: it must be unique
        assert (src.natural_key,) in _keys(conn, t.name, "p") | _keys(conn, t.name, "u")


@pytest.mark.parametrize("table", entities.TABLES, ids=lambda t: t.name)
def test_every_live_column_is_in_the_registry_with_its_type(module_db: str, table: entities.Table) -> None:
    with psycopg.connect(module_db) as conn:
        live = {name: (typ, nullable) for name, typ, nullable in _columns(conn, table.name)}
        assert _keys(conn, table.name, "p") == {table.primary_key}
    registry = {c.name: (c.type, c.nullable) for c in table.columns}
    assert live == registry


def test_every_table_of_the_schema_is_registered(module_db: str) -> None:
    with psycopg.connect(module_db) as conn:
        live = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    # schema_migrations is the migration runner's own bookkeeping, not warehouse data
    assert live - {"schema_migrations"} == {t.name for t in entities.TABLES}


def test_parents_come_first_and_the_sources_cover_the_reject_check() -> None:
    order = [s.name for s in entities.SOURCES]
    for s in entities.SOURCES:
        assert all(order.index(p) < order.index(s.name) for p in s.parents), s.name
    assert entities.source("orders").parents == ("customers", "products")


def test_comments_cover_every_column_in_one_line() -> None:
    tables, columns = entities.table_comments(), entities.column_comments()
    assert set(tables) == {t.name for t in entities.TABLES}
    assert len(columns) == sum(len(t.columns) for t in entities.TABLES)
    for text in [*tables.values(), *columns.values()]:
        assert text.strip() and "\n" not in text and len(text) <= 200, text


def test_comments_apply_to_the_live_schema(module_db: str) -> None:
    """migrate() applied the registry's comments (include/migrations/comments.sql) to every table and column."""
    from include.migrations import stale_comments

    with psycopg.connect(module_db) as conn:
        assert stale_comments(conn) == []
        row = conn.execute("SELECT col_description('orders'::regclass, 3)").fetchone()  # customer_id
    assert row == (entities.ORDERS.column("customer_id").comment,)


def test_migration_0003_upgrades_a_warehouse_of_the_previous_release(empty_db: str) -> None:
    """Schema of the previous release with rows the old rule let in: 0003 applies, keeps them, refuses new ones, backfills keys."""
    from include.migrations import migrate

    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute((ROOT / "tests" / "fixtures" / "init_db_round1.sql").read_text())
        conn.execute("INSERT INTO customers (email, etl_run_id) VALUES ('old@b.c.', 'r0'), ('ok@b.c', 'r0')")
        conn.execute(
            "INSERT INTO rejected_records (etl_run_id, source, source_file, line_number, reason, field, detail, raw_record)"
            " VALUES ('r0', 'orders', 'orders.csv', 2, 'invalid_quantity', 'quantity', 'x', '{\"order_reference\": \"O-1\"}'),"
            "        ('r1', 'orders', 'orders.csv', 2, 'invalid_quantity', 'quantity', 'x', '{\"order_reference\": \"O-1\"}')"
        )
        assert "0003_entities.sql" in migrate(conn)
        conn.execute(MIGRATION_0003.read_bytes())  # idempotent
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (2,)
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO customers (email, etl_run_id) VALUES ('new@b.c.', 'r2')")
        with pytest.raises(psycopg.errors.CheckViolation):  # an old bad row cannot be updated without fixing it
            conn.execute("UPDATE customers SET first_name = 'x' WHERE email = 'old@b.c.'")
        rows = conn.execute(
            "SELECT etl_run_id, status, first_seen_run, times_seen FROM rejected_records_status ORDER BY rejected_id"
        ).fetchall()
    assert rows == [("r0", "new", "r0", 2), ("r1", "seen_before", "r0", 2)]


@pytest.fixture
def sample_settings(tmp_path: Path) -> Settings:
    return dataclasses.replace(
        load_config(DEFAULT_CONFIG), raw_data_dir=ROOT / "data" / "raw", staging_dir=tmp_path / "staging"
    )


def test_same_bad_file_twice_is_seen_before_with_readable_details(sample_settings: Settings, fresh_db: str) -> None:
    first = pipeline.run_all(sample_settings, "run-1", fresh_db)
    # The landing registry skips the identical files; a direct load of the same files (no registry) re-reads them.
    assert pipeline.run_all(sample_settings, "run-2", fresh_db)["sources"] == {}
    staging = pipeline.run_dir(sample_settings, "etl_ecommerce_pipeline", "run-2")
    manifests = {s: pipeline.extract(s, sample_settings, staging) for s in pipeline.EXTRACTORS}
    pipeline.load(pipeline.transform(manifests, sample_settings, staging, fresh_db), sample_settings, "run-2", fresh_db)
    rejected = sum(s["rows_rejected"] for s in first["sources"].values())
    assert rejected > 0
    with psycopg.connect(fresh_db) as conn:
        by_run = dict(
            conn.execute(
                "SELECT etl_run_id, array_agg(DISTINCT status || ':' || first_seen_run || ':' || times_seen)"
                " FROM rejected_records_status GROUP BY etl_run_id"
            ).fetchall()
        )
        assert by_run == {"run-1": ["new:run-1:2"], "run-2": ["seen_before:run-1:2"]}
        assert conn.execute("SELECT count(*) FROM rejected_records WHERE etl_run_id = 'run-2'").fetchone() == (
            rejected,
        )
        details = dict(
            conn.execute(
                "SELECT DISTINCT ON (reason) reason, detail FROM rejected_records WHERE etl_run_id = 'run-1'"
                " ORDER BY reason, line_number"
            ).fetchall()
        )
        keys = conn.execute("SELECT count(DISTINCT reject_key), count(*) FROM rejected_records").fetchone()
    assert keys is not None and keys[0] * 2 == keys[1]  # every reject of run-2 repeats one of run-1
    assert details["invalid_quantity"].startswith("quantity must be an integer ≥ 1, got '")
    assert details["invalid_email"].endswith("(value not shown: personal data)")
    assert "@" not in " ".join(details.values()).replace("name@example.com", "")  # no customer's address
    for reason, text in details.items():
        assert " fails " not in text, (reason, text)  # every reason has its own sentence
