"""Declarative data quality checks: declared in config.yaml, run as SQL, appended to a history table.

The ``quality:`` section of config.yaml lists, per warehouse table, checks such as ``row_count``,
``not_null``, ``unique`` or ``relationship``. `load_config` validates it (`config.QualitySection`, a
discriminated union on ``check``) and binds each check to its table (`CheckSpec`);
`validate_against_schema` checks every table and column against ``information_schema`` of the real
database; `run_checks` runs them with bound parameters and driver-quoted identifiers, one `CheckResult`
per check (a check whose SQL errors is an ``error`` result, not a crash); `persist_results` appends them
to ``data_quality_results``; and `blocking_failures` picks the failed checks of severity ``fail`` that
must turn the run red.

Statuses: ``passed``; ``failed`` (the check ran and the data broke it); ``error`` (the check could
not run); ``skipped`` (nothing to judge yet, e.g. not enough history). A ``warn`` check never fails
the run; a ``fail`` check fails it when its status is ``failed`` or ``error``.

Layout: ``checks/`` holds one class per check type (grouped by family: ``row_count``, ``nulls``,
``values``, ``email``, ``relationship``, ``derived``, ``freshness``, ``ledger``), each with its
parameters (pydantic fields), the columns it reads, its SQL and its verdict; ``checks/__init__.py`` is
the registry. ``base.py`` has what they share, ``config.py`` the ``quality:`` section, ``runner.py``
running and persisting.

How to add a check type:
  1. In ``include/quality/checks/<family>.py`` write ``class MyCheck(ColumnCheck)`` (or ``Check`` for a
     table-level check, ``LedgerCheck`` for one reading the ETL run ledger) with
     ``check: Literal["my_check"]``, ``category = "completeness" | "consistency" | "freshness"``, its
     parameters as fields (defaults written there, once), ``column_family`` if the column must be
     numeric/temporal/text, `extra_columns` if it reads other columns, and ``run(c, s) -> Outcome``.
  2. Add the class to ``CHECKS`` in ``include/quality/checks/__init__.py``.
  3. Declare it in config.yaml and add a test in tests/quality/test_quality_checks.py.
"""

from __future__ import annotations

from include.quality.base import (
    CATEGORIES,
    NUMERIC,
    RESULTS_TABLE,
    RUNS_TABLE,
    TEMPORAL,
    TEXT,
    CheckResult,
    CheckSpec,
    ColumnRef,
)
from include.quality.checks import CHECK_TYPES, CHECKS
from include.quality.config import (
    QualityConfig,
    QualitySection,
    build_schedule,
    load_quality_config,
    parse_quality_config,
)
from include.quality.runner import (
    QualityCheckFailed,
    blocking_failures,
    column_refs,
    execute_task,
    failure_message,
    fetch_schema,
    persist_results,
    run_category,
    run_check,
    run_checks,
    summarize,
    validate_against_schema,
)
from include.settings.base import ConfigError

SEVERITIES = ("warn", "fail")

__all__ = [
    "CATEGORIES",
    "CHECKS",
    "CHECK_TYPES",
    "NUMERIC",
    "RESULTS_TABLE",
    "RUNS_TABLE",
    "SEVERITIES",
    "TEMPORAL",
    "TEXT",
    "CheckResult",
    "CheckSpec",
    "ColumnRef",
    "ConfigError",
    "QualityCheckFailed",
    "QualityConfig",
    "QualitySection",
    "blocking_failures",
    "build_schedule",
    "column_refs",
    "execute_task",
    "failure_message",
    "fetch_schema",
    "load_quality_config",
    "parse_quality_config",
    "persist_results",
    "run_category",
    "run_check",
    "run_checks",
    "summarize",
    "validate_against_schema",
]
