"""docs/schema.md is generated from a live, freshly built warehouse database and must not be stale."""

from __future__ import annotations

import psycopg

from scripts.schema_doc import DOC, render


def test_schema_doc_is_current(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        current = render(conn)
    assert DOC.read_text() == current, "docs/schema.md is stale: run `make schema-doc` and commit it"


def test_schema_doc_shows_columns_types_nullability_and_comments(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        conn.execute(
            "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, amount numeric(12, 2), note text NOT NULL DEFAULT 'x');"
            "COMMENT ON TABLE t IS 'a table | with a pipe'; COMMENT ON COLUMN t.amount IS 'euros'"
        )
        text = render(conn)
    assert "| [t](#t) | table | a table \\| with a pipe |" in text
    assert "| id | bigint | not null | identity always |  |" in text
    assert "| amount | numeric(12,2) | null |  | euros |" in text
    assert "| note | text | not null | 'x'::text |  |" in text
