"""The entity registry: every warehouse table, and for each source its input, clean file, keys and limits.

One definition, read by every stage: extract takes the expected input headers from here, the transform
its clean-file columns, the loader its COPY column lists, staging types, upsert keys and update sets,
the assets and the ETL DAG their source list, the data generator its headers, and the schema migrations
the table and column COMMENTs. `tests/integration/test_entities_schema.py` compares it with the live
schema so the two cannot drift. Pure data: no I/O, no Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

# Limits of the warehouse column types: a value beyond them is quarantined instead of failing the load.
INT4_MAX = 2_147_483_647
NUMERIC_LIMITS: Mapping[str, Decimal] = MappingProxyType(
    {
        "numeric(12,2)": Decimal("1e10"),  # prices
        "numeric(14,2)": Decimal("1e12"),  # order totals, lifetime spend
        "numeric(4,2)": Decimal("1e2"),  # product rating
    }
)


@dataclass(frozen=True)
class Column:
    """One table column: its PostgreSQL type (as `format_type()` spells it), nullability and comment.

    `staged`: the column arrives in the source's clean file (False: filled by the database or the loader).
    `references`: the parent table of a foreign key. `via`: the clean-file column the loader resolves to
    this one through the parent's natural key (orders carry `customer_email`, the table `customer_id`).
    """

    name: str
    type: str
    comment: str
    nullable: bool = True
    staged: bool = False
    references: str | None = None
    via: str | None = None


@dataclass(frozen=True)
class Table:
    """A warehouse table: columns in table order, primary key, unique keys and its comment."""

    name: str
    comment: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    unique: tuple[tuple[str, ...], ...] = ()

    def column(self, name: str) -> Column:
        """The column called `name`.

        Raises:
            KeyError: the table has no such column.
        """
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def parents(self) -> tuple[str, ...]:
        """Tables this one references, in column order."""
        return tuple(dict.fromkeys(c.references for c in self.columns if c.references))


@dataclass(frozen=True)
class Source:
    """A source feeding one table: its input fields, natural key and the clean file the transform writes."""

    name: str
    table: Table
    natural_key: str
    # Field of the raw record holding the natural key (products: the API's `id`); reject_key is built from it.
    input_key: str
    input_format: str  # "csv" or "json"
    input_fields: tuple[str, ...]
    optional_inputs: frozenset[str] = field(default_factory=frozenset)

    @property
    def parents(self) -> tuple[str, ...]:
        """Tables that must be loaded before this one."""
        return self.table.parents

    @property
    def clean_columns(self) -> tuple[str, ...]:
        """Columns of the clean file, in COPY order (a resolved foreign key appears as its `via` column)."""
        return tuple(c.via or c.name for c in self.table.columns if c.staged)

    @property
    def staging_types(self) -> dict[str, str]:
        """Column → PostgreSQL type of the loader's staging table (the clean file's columns)."""
        return {(c.via or c.name): ("text" if c.via else c.type) for c in self.table.columns if c.staged}

    @property
    def select(self) -> dict[str, str]:
        """Table column → SQL expression over staging alias `s` and the resolved parent (`c` for customers)."""
        return {c.name: (f"c.{c.name}" if c.via else f"s.{c.name}") for c in self.table.columns if c.staged}

    @property
    def joins_customer(self) -> bool:
        """Whether the load resolves `customer_email` to `customer_id` (and derives missing customers)."""
        return any(c.via == "customer_email" for c in self.table.columns)

    @property
    def update_columns(self) -> tuple[str, ...]:
        """Columns an upsert overwrites when a value changed (everything staged but the natural key)."""
        return tuple(c for c in self.select if c != self.natural_key)


def _audit(what: str) -> tuple[Column, ...]:
    return (
        Column("created_at", "timestamp with time zone", f"When the {what} was first loaded.", nullable=False),
        Column("updated_at", "timestamp with time zone", f"When the {what} last changed.", nullable=False),
        Column("etl_run_id", "text", f"Airflow run id of the ETL run that last wrote the {what}.", nullable=False),
    )


def _lineage(what: str) -> tuple[Column, ...]:
    # Migration 0005_landing: the version of the row under the one version rule (file order, then line).
    return (
        Column("src_file", "text", f"Landing file (path under the raw directory) the {what} was last written from."),
        Column("src_line", "integer", f"Line (or JSON item) of src_file the {what} came from."),
        Column("src_file_id", "bigint", "ingested_files.file_id of src_file (version tie-break for a changed file)."),
    )


TS = "timestamp with time zone"

CUSTOMERS = Table(
    "customers",
    "One row per customer, keyed by e-mail; names from customers.csv, aggregates refreshed by every load.",
    (
        Column("customer_id", "bigint", "Surrogate key (identity).", nullable=False),
        Column(
            "email",
            "text",
            "Natural key: trimmed, lower-cased e-mail address (personal data).",
            nullable=False,
            staged=True,
        ),
        Column("first_name", "text", "First name as given in customers.csv (personal data).", staged=True),
        Column("last_name", "text", "Last name as given in customers.csv (personal data).", staged=True),
        Column("country", "text", "Country code, upper-cased.", staged=True),
        Column("signup_date", "date", "Date the customer signed up.", staged=True),
        Column("order_count", "integer", "Number of orders of the customer.", nullable=False),
        Column("total_spent", "numeric(14,2)", "Sum of the customer's order totals.", nullable=False),
        Column("first_order_at", TS, "Date and time of the customer's first order."),
        Column("last_order_at", TS, "Date and time of the customer's latest order."),
        Column("session_count", "integer", "Number of web sessions of the customer.", nullable=False),
        Column("conversion_rate", "numeric(5,4)", "Share of the customer's sessions that converted (0–1)."),
        *_audit("customer"),
        *_lineage("customer"),
    ),
    primary_key=("customer_id",),
    unique=(("email",),),
)

PRODUCTS = Table(
    "products",
    "Product catalogue from the products API or products.json, keyed by the shop's product id.",
    (
        Column("product_id", "integer", "Natural key: the shop's product id.", nullable=False, staged=True),
        Column("name", "text", "Product title.", nullable=False, staged=True),
        Column("description", "text", "Product description.", staged=True),
        Column("price", "numeric(12,2)", "List price.", nullable=False, staged=True),
        Column("category", "text", "Category, lower-cased.", staged=True),
        Column(
            "price_tier", "text", "Price band from transform.price_tiers in config.yaml.", nullable=False, staged=True
        ),
        Column("image_url", "text", "URL of the product image.", staged=True),
        Column("rating_rate", "numeric(4,2)", "Average rating (NULL when outside 0–99.99).", staged=True),
        Column("rating_count", "integer", "Number of ratings.", staged=True),
        *_audit("product"),
        *_lineage("product"),
    ),
    primary_key=("product_id",),
)

ORDERS = Table(
    "orders",
    "One row per order line, keyed by the order reference of orders.csv.",
    (
        Column("order_id", "bigint", "Surrogate key (identity).", nullable=False),
        Column("order_reference", "text", "Natural key: the order reference of the shop.", nullable=False, staged=True),
        Column(
            "customer_id",
            "bigint",
            "Customer who ordered (resolved from the order's e-mail).",
            nullable=False,
            staged=True,
            references="customers",
            via="customer_email",
        ),
        Column("product_id", "integer", "Product ordered.", nullable=False, staged=True, references="products"),
        Column("quantity", "integer", "Units ordered (at least 1).", nullable=False, staged=True),
        Column("unit_price", "numeric(12,2)", "Price of one unit.", nullable=False, staged=True),
        Column("total_amount", "numeric(14,2)", "quantity × unit_price.", nullable=False, staged=True),
        Column("order_date", TS, "When the order was placed (UTC).", nullable=False, staged=True),
        Column("status", "text", "Order status, lower-cased.", nullable=False, staged=True),
        Column("payment_method", "text", "Payment method, lower-cased.", staged=True),
        *_audit("order"),
        *_lineage("order"),
    ),
    primary_key=("order_id",),
    unique=(("order_reference",),),
)

USER_SESSIONS = Table(
    "user_sessions",
    "One row per web session from user_sessions.json, keyed by session id.",
    (
        Column("session_id", "text", "Natural key: the session id of the web tracker.", nullable=False, staged=True),
        Column(
            "customer_id",
            "bigint",
            "Customer of the session (resolved from the session's e-mail).",
            nullable=False,
            staged=True,
            references="customers",
            via="customer_email",
        ),
        Column("session_start", TS, "Session start (UTC).", nullable=False, staged=True),
        Column("session_end", TS, "Session end (UTC); NULL while unknown.", staged=True),
        Column("duration_seconds", "integer", "session_end − session_start in seconds.", staged=True),
        Column("pages_viewed", "integer", "Pages viewed in the session.", nullable=False, staged=True),
        Column("items_viewed", "jsonb", "JSON array of the product ids viewed.", nullable=False, staged=True),
        Column(
            "items_added_to_cart",
            "jsonb",
            "JSON array of the product ids added to the cart.",
            nullable=False,
            staged=True,
        ),
        Column("items_viewed_count", "integer", "Length of items_viewed.", nullable=False, staged=True),
        Column("items_added_to_cart_count", "integer", "Length of items_added_to_cart.", nullable=False, staged=True),
        Column("converted", "boolean", "Whether the session ended in a purchase.", nullable=False, staged=True),
        Column("device_type", "text", "Device type, lower-cased.", staged=True),
        Column("browser", "text", "Browser name.", staged=True),
        Column(
            "ip_network",
            "cidr",
            "Network of the visitor (IPv4 /24, IPv6 /48 by default), never the address itself (GDPR).",
            staged=True,
        ),
        *_audit("session"),
        *_lineage("session"),
    ),
    primary_key=("session_id",),
)

REJECTED_RECORDS = Table(
    "rejected_records",
    "Quarantine: every input row that broke a rule, with the reason, a readable detail and the raw record.",
    (
        Column("rejected_id", "bigint", "Surrogate key (identity).", nullable=False),
        Column("etl_run_id", "text", "Airflow run id of the ETL run that rejected the row.", nullable=False),
        Column("source", "text", "Source of the row (orders, user_sessions, products, customers).", nullable=False),
        Column("source_file", "text", "Input file (or redacted API URL) the row came from.", nullable=False),
        Column("line_number", "integer", "Line (CSV, JSON Lines) or item number (JSON array) of the row."),
        Column("reason", "text", "Machine-readable rule the row broke, e.g. invalid_quantity.", nullable=False),
        Column("field", "text", "Input field that broke the rule."),
        Column("detail", "text", "What was expected and what was found; e-mail values are never repeated."),
        Column("raw_record", "jsonb", "The input row as read (personal data).", nullable=False),
        Column("rejected_at", TS, "When the row was quarantined.", nullable=False),
        Column(
            "reject_key",
            "text",
            "md5 of source, natural key (or raw record when keyless) and reason: the same reject in another run.",
        ),
    ),
    primary_key=("rejected_id",),
)

ETL_RUNS = Table(
    "etl_runs",
    "Run ledger: one row per ETL run, attempt and source; rows_read = rows_loaded + rows_rejected + rows_duplicate.",
    (
        Column("etl_run_id", "text", "Airflow run id of the ETL run.", nullable=False),
        Column(
            "source", "text", "Source of the row, or '*' for a failure before any source was counted.", nullable=False
        ),
        Column("source_file", "text", "Input file (or redacted API URL) of the source."),
        Column("rows_read", "integer", "Input rows read.", nullable=False),
        Column("rows_loaded", "integer", "Distinct rows that reached the table.", nullable=False),
        Column("rows_rejected", "integer", "Rows quarantined in rejected_records.", nullable=False),
        Column(
            "rows_duplicate", "integer", "Rows superseded by a later row with the same natural key.", nullable=False
        ),
        Column("rows_inserted", "integer", "Loaded rows that were new.", nullable=False),
        Column("rows_updated", "integer", "Loaded rows that changed an existing row.", nullable=False),
        Column("started_at", TS, "When the run started.", nullable=False),
        Column("finished_at", TS, "When the run's load (or failure) was recorded.", nullable=False),
        Column("status", "text", "success, failed, aborted (reject-rate guard) or nothing_new.", nullable=False),
        # Redesigned ledger (migration 0002_ledger, see CONTRACTS.md).
        Column("attempt", "integer", "1 for the first execution of a run id, then 2, 3, …", nullable=False),
        Column("failed_step", "text", "Step that failed (status <> 'success')."),
        Column("error_class", "text", "Class of the error that failed the run."),
        Column("error_message", "text", "First line of the error, secrets and e-mails scrubbed."),
        Column("files_claimed", "integer", "Landing files claimed by the run."),
        Column("files_loaded", "integer", "Landing files loaded by the run."),
        Column("files_skipped", "integer", "Landing files skipped (already loaded).", nullable=False),
        Column("rows_stale", "integer", "Loaded rows older than the stored version (kept unchanged).", nullable=False),
        Column("rows_unchanged", "integer", "Loaded rows identical to the stored row.", nullable=False),
    ),
    primary_key=("etl_run_id", "attempt", "source"),
)

INGESTED_FILES = Table(
    "ingested_files",
    "Landing-zone registry: one row per file loaded (or quarantined), committed with its rows; the same content loads once.",
    (
        Column(
            "file_id",
            "bigint",
            "Surrogate key (identity); version tie-break between files of the same name.",
            nullable=False,
        ),
        Column("source", "text", "Source the file feeds (orders, user_sessions, products, customers).", nullable=False),
        Column(
            "rel_path",
            "text",
            "Path under the raw directory (or api:<redacted url>) when it was loaded.",
            nullable=False,
        ),
        Column("sha256", "text", "SHA-256 of the file's bytes: identical content is skipped.", nullable=False),
        Column("bytes", "bigint", "Size of the file.", nullable=False),
        Column("rows_read", "integer", "Input rows read from the file.", nullable=False),
        Column(
            "rows_loaded", "integer", "Rows of the file that were the run's last version of their key.", nullable=False
        ),
        Column("rows_rejected", "integer", "Rows of the file quarantined in rejected_records.", nullable=False),
        Column(
            "rows_duplicate",
            "integer",
            "Rows superseded by a later row of the same key in the same run.",
            nullable=False,
        ),
        Column("rows_stale", "integer", "Rows older than the stored version (not written).", nullable=False),
        Column(
            "etl_run_id", "text", "Airflow run id of the run that loaded (or quarantined) the file.", nullable=False
        ),
        Column("status", "text", "loaded, or quarantined (on_bad_file: quarantine; see reason).", nullable=False),
        Column("reason", "text", "Why the file was quarantined."),
        Column("first_seen_at", TS, "When the file was registered.", nullable=False),
        Column("loaded_at", TS, "When the file's rows were committed."),
        Column("archived_to", "text", "Where the file was moved after the commit (null: left in place)."),
    ),
    primary_key=("file_id",),
)

DATA_QUALITY_RESULTS = Table(
    "data_quality_results",
    "History of every data quality check result (appended, never replaced).",
    (
        Column("result_id", "bigint", "Surrogate key (identity).", nullable=False),
        Column("run_id", "text", "Airflow run id of the data_quality_checks run.", nullable=False),
        Column("check_name", "text", "Name of the check in config.yaml.", nullable=False),
        Column("check_type", "text", "Kind of check, e.g. not_null, unique, email.", nullable=False),
        Column("table_name", "text", "Table checked.", nullable=False),
        Column("column_name", "text", "Column checked, if any."),
        Column("severity", "text", "warn (reported) or fail (fails the run).", nullable=False),
        Column("passed", "boolean", "Verdict; NULL when the check could not run."),
        Column("status", "text", "passed, warned, failed, skipped or error.", nullable=False),
        Column("observed_value", "text", "What the check measured."),
        Column("threshold", "text", "The limit the observed value was held against."),
        Column("message", "text", "One-line explanation of the result."),
        Column("checked_at", TS, "When the check ran.", nullable=False),
    ),
    primary_key=("result_id",),
)

MONITORING_METRICS = Table(
    "monitoring_metrics",
    "Time series of the monitoring DAG's metrics with their verdicts.",
    (
        Column("metric_id", "bigint", "Surrogate key (identity).", nullable=False),
        Column("run_id", "text", "Airflow run id of the monitoring run.", nullable=False),
        Column("category", "text", "system, database, freshness or airflow.", nullable=False),
        Column("metric_name", "text", "Metric name, e.g. system.memory_percent.", nullable=False),
        Column("subject", "text", "What the metric is about (table, DAG, directory), if any."),
        Column("value", "double precision", "Measured value, in `unit`."),
        Column("unit", "text", "Unit of value."),
        Column("status", "text", "ok, warn, critical or skipped.", nullable=False),
        Column("warn_threshold", "double precision", "Warning threshold in force."),
        Column("critical_threshold", "double precision", "Critical threshold in force."),
        Column("message", "text", "One-line explanation of the verdict."),
        Column("collected_at", TS, "When the metric was collected.", nullable=False),
    ),
    primary_key=("metric_id",),
)

ALERT_STATE = Table(
    "alert_state",
    "Alert incident per DAG: one message when it starts failing, one when it recovers.",
    (
        Column("dag_id", "text", "DAG the incident is about.", nullable=False),
        Column("status", "text", "ok or failing.", nullable=False),
        Column("opened_run_id", "text", "Run that opened the current incident."),
        Column("opened_at", TS, "When the current incident opened."),
        Column("last_failed_run_id", "text", "Latest failed run of the incident."),
        Column("failed_runs", "integer", "Failed runs in the current incident.", nullable=False),
        Column("first_task", "text", "First task that failed in the incident."),
        Column("reason", "text", "Scrubbed first line of the failure."),
        Column("notified_at", TS, "When the incident was last notified."),
        Column("updated_at", TS, "When the row last changed.", nullable=False),
    ),
    primary_key=("dag_id",),
)

ALERT_TASK_FAILURES = Table(
    "alert_task_failures",
    "Failed tasks per DAG run, collected for the run's alert.",
    (
        Column("dag_id", "text", "DAG of the failed task.", nullable=False),
        Column("run_id", "text", "Run of the failed task.", nullable=False),
        Column("task_id", "text", "The failed task.", nullable=False),
        Column("reason", "text", "Scrubbed first line of the task's error.", nullable=False),
        Column("failed_at", TS, "When the task failed.", nullable=False),
    ),
    primary_key=("dag_id", "run_id", "task_id"),
)


# Load order: parents before children (orders and sessions reference customers and products).
SOURCES: tuple[Source, ...] = (
    Source(
        "products",
        PRODUCTS,
        natural_key="product_id",
        input_key="id",
        input_format="json",
        input_fields=("id", "title", "price", "description", "category", "image", "rating_rate", "rating_count"),
    ),
    Source(
        "customers",
        CUSTOMERS,
        natural_key="email",
        input_key="email",
        input_format="csv",
        input_fields=("email", "first_name", "last_name", "country", "signup_date"),
        optional_inputs=frozenset({"first_name", "last_name", "country", "signup_date"}),
    ),
    Source(
        "orders",
        ORDERS,
        natural_key="order_reference",
        input_key="order_reference",
        input_format="csv",
        input_fields=(
            "order_reference",
            "customer_email",
            "product_id",
            "quantity",
            "unit_price",
            "order_date",
            "status",
            "payment_method",
        ),
        optional_inputs=frozenset({"payment_method"}),
    ),
    Source(
        "user_sessions",
        USER_SESSIONS,
        natural_key="session_id",
        input_key="session_id",
        input_format="json",
        input_fields=(
            "session_id",
            "customer_email",
            "session_start",
            "session_end",
            "pages_viewed",
            "items_viewed",
            "items_added_to_cart",
            "conversion",
            "device_type",
            "browser",
            "ip_address",
        ),
    ),
)

SOURCE_NAMES: tuple[str, ...] = tuple(s.name for s in SOURCES)
BY_NAME: Mapping[str, Source] = MappingProxyType({s.name: s for s in SOURCES})

# Every table of the warehouse: the sources' tables first (load order), then the bookkeeping tables.
TABLES: tuple[Table, ...] = (
    *(s.table for s in SOURCES),
    REJECTED_RECORDS,
    ETL_RUNS,
    INGESTED_FILES,
    DATA_QUALITY_RESULTS,
    MONITORING_METRICS,
    ALERT_STATE,
    ALERT_TASK_FAILURES,
)


def source(name: str) -> Source:
    """The source called `name`.

    Raises:
        KeyError: no such source.
    """
    return BY_NAME[name]


def table_comments() -> dict[str, str]:
    """Table name → its COMMENT, for every table of the warehouse."""
    return {t.name: t.comment for t in TABLES}


def column_comments() -> dict[tuple[str, str], str]:
    """(table, column) → its COMMENT, for every column of every table of the warehouse."""
    return {(t.name, c.name): c.comment for t in TABLES for c in t.columns}


def comments_sql() -> str:
    """The COMMENT statements of every table and column (include/migrations/comments.sql is this text).

    Generated rather than hand-written so the registry stays the one place for the descriptions; the file
    exists for the psql-only container init (scripts/container_init_warehouse.sh).
    """
    from psycopg import sql

    lines = [
        "-- GENERATED from include/entities.py by `python -m include.entities > include/migrations/comments.sql`.",
        "-- Applied after the numbered migrations whenever the live comments differ (idempotent). Do not edit.",
    ]
    for table, text in table_comments().items():
        lines.append(sql.SQL("COMMENT ON TABLE {} IS {};").format(sql.Identifier(table), sql.Literal(text)).as_string())
    for (table, column), text in column_comments().items():
        lines.append(
            sql.SQL("COMMENT ON COLUMN {} IS {};").format(sql.Identifier(table, column), sql.Literal(text)).as_string()
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(comments_sql())
