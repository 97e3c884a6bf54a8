"""The one e-mail rule: its edge cases, once, in Python and in the real PostgreSQL (the constraint's engine)."""

from __future__ import annotations

import pandas as pd
import psycopg
import pytest

from include.emails import EMAIL_PATTERN, email_series_valid, is_valid_email, normalize_email, redact_emails

# (raw value, valid after btrim + lower)
CASES = [
    ("a@b.c", True),
    ("a+tag@b.c", True),  # plus-addressing
    ("First.Last@Example.COM", True),  # uppercase: valid once lowered
    ("  a@b.c  ", True),  # surrounding spaces are trimmed
    ("a@bücher.de", True),  # IDN domain, as typed
    ("a@sub.b.co.uk", True),
    ("a@b.c.", False),  # trailing dot
    ("a@.b.c", False),  # domain starts with a dot
    ("a@b..c", False),  # empty label
    ("a@b", False),  # no dot in the domain
    ("a b@c.d", False),  # space inside
    ("a@b c.d", False),
    ("a@@b.c", False),  # two @
    ("a@b@c.d", False),
    ("@b.c", False),
    ("a@", False),
    ("", False),
    ("a@b.c\n", True),  # trailing newline is whitespace, trimmed
    ("a@b\n.c", False),
]


@pytest.mark.parametrize(("raw", "valid"), CASES)
def test_python_rule(raw: str, valid: bool) -> None:
    assert is_valid_email(raw) is valid


def test_series_rule_matches_the_scalar_rule() -> None:
    raws = [raw for raw, _ in CASES] + [None]
    got = email_series_valid(pd.Series(raws, dtype="object")).tolist()
    assert got == [valid for _, valid in CASES] + [False]


def test_normalize() -> None:
    assert normalize_email("  Jane.DOE+x@Example.ORG ") == "jane.doe+x@example.org"


def test_postgresql_reads_the_pattern_the_same_way(module_db: str) -> None:
    """`normalised ~ EMAIL_PATTERN` on the real server gives the Python verdict for every case."""
    normalised = [normalize_email(raw) for raw, _ in CASES]
    with psycopg.connect(module_db) as conn:
        rows = conn.execute(
            "SELECT v, v ~ %s FROM unnest(%s::text[]) WITH ORDINALITY AS t(v, i) ORDER BY i",
            (EMAIL_PATTERN, normalised),
        ).fetchall()
    assert [ok for _, ok in rows] == [valid for _, valid in CASES]


def test_customers_constraint_uses_the_rule(module_db: str) -> None:
    """The customers.email CHECK of migration 0003 accepts and refuses exactly what the rule does."""
    with psycopg.connect(module_db) as conn:
        for raw, valid in CASES:
            email = normalize_email(raw)
            with conn.transaction(force_rollback=True):
                if valid:
                    conn.execute("INSERT INTO customers (email, etl_run_id) VALUES (%s, 't')", (email,))
                else:
                    with pytest.raises(psycopg.errors.CheckViolation):
                        conn.execute("INSERT INTO customers (email, etl_run_id) VALUES (%s, 't')", (email,))
        with conn.transaction(force_rollback=True), pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO customers (email, etl_run_id) VALUES ('A@B.C', 't')")  # not lowered


def test_redaction_also_hides_addresses_the_rule_refuses() -> None:
    text = "bad rows: jane@example.org, a@b.c. and a cut-off bob@"
    assert redact_emails(text) == "bad rows: <email>, <email> and a cut-off <email>"
