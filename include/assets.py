"""Assets the ETL load emits, one per warehouse table; downstream DAGs schedule on them.

The URI uses a logical host (`warehouse`): the real host is resolved at run time from the Airflow
connection, and DAG files must not look it up at parse time.
"""

from __future__ import annotations

from airflow.sdk import Asset

from include.entities import SOURCES

# The tables the sources feed (entity registry), in load order.
WAREHOUSE_TABLES = tuple(s.table.name for s in SOURCES)


def table_asset(table: str) -> Asset:
    """The Asset of warehouse table `table`."""
    return Asset(
        name=f"ecommerce.{table}", uri=f"postgres://warehouse:5432/ecommerce/public/{table}", group="ecommerce"
    )


WAREHOUSE_ASSETS = tuple(table_asset(t) for t in WAREHOUSE_TABLES)
