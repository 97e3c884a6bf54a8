"""Assets the ETL load emits, one per warehouse table; downstream DAGs schedule on them.

The URI uses a logical host (`warehouse`): the real host is resolved at run time from the Airflow
connection, and DAG files must not look it up at parse time.
"""

from __future__ import annotations

from pathlib import Path

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


def landing_marker_asset(landing_dir: Path, marker: str) -> Asset:
    """The Asset updated when the exporter drops `marker` in the landing folder (consumed by the watcher).

    Only the marker is deleted (DirectoryFileDeleteTrigger); the data files are left to the ETL's claim.
    No I/O here: the triggerer scans the folder, not the DAG parser.
    """
    from airflow.providers.standard.triggers.file import DirectoryFileDeleteTrigger
    from airflow.sdk import AssetWatcher

    trigger = DirectoryFileDeleteTrigger(directory=str(landing_dir), filename=marker, poke_interval=10.0)
    return Asset(
        name="ecommerce.landing_marker",
        uri=f"file://{landing_dir}/{marker}",
        group="ecommerce",
        watchers=[AssetWatcher(name="ecommerce_landing_marker_watcher", trigger=trigger)],
    )
