"""The ``privacy:`` section of config.yaml (erasure keys, retention, backups): used by include/privacy.py."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from include.settings.base import key_error

# Keys that moved out of this section: a config.yaml still carrying one is refused with the replacement named.
MOVED_KEYS = {
    "staging_days": "paths.staging_retention_days",
}


class PrivacyConfig(BaseModel):
    """The ``privacy:`` section of config.yaml (durations: null = keep forever)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Warehouse connection of the privacy DAGs; null = database.conn_id. With least-privilege roles use the
    # owner: erasure VACUUMs the tables it changed and restore-check creates its scratch database (CREATEDB).
    conn_id: str | None = None
    key_conn_id: str = "privacy_key"
    backup_key_conn_id: str = "backup_key"
    requests_schedule: str | None = "@hourly"
    maintenance_schedule: str | None = "30 2 * * *"
    exports_dir: Path = Path(".local/exports")
    archive_dir: Path | None = None
    backup_dir: Path = Path(".local/backups")
    pg_bin_dir: Path | None = None
    scratch_database: str | None = None
    sessions_months: int | None = Field(default=13, ge=1)
    rejected_days: int | None = Field(default=90, ge=1)
    # Staging run folders expire by paths.staging_retention_days (one key, read by the ETL and by retention).
    reports_days: int | None = Field(default=90, ge=1)
    archive_days: int | None = Field(default=30, ge=1)
    exports_days: int | None = Field(default=30, ge=1)
    backups_keep: int = Field(default=7, ge=1)
    backup_max_age_hours: float = Field(default=26, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old, new in MOVED_KEYS.items():
                if old in data:
                    raise key_error(
                        old,
                        f"was replaced by '{new}' (one retention for staging run folders, used by the ETL and by"
                        f" privacy_maintenance): move the value there and delete this key",
                    )
        return data

    @field_validator("scratch_database")
    @classmethod
    def _plain_identifier(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[a-z_][a-z0-9_]{0,62}$", v):
            raise ValueError("must be a plain lower-case identifier")
        return v

    def resolved(self, base: Path) -> PrivacyConfig:
        """Relative paths made absolute against `base` (the directory of config.yaml)."""

        def fix(p: Path | None) -> Path | None:
            if p is None:
                return None
            p = Path(os.path.expandvars(os.path.expanduser(str(p))))
            return p if p.is_absolute() else (base / p).resolve()

        return self.model_copy(
            update={
                "exports_dir": fix(self.exports_dir),
                "archive_dir": fix(self.archive_dir),
                "backup_dir": fix(self.backup_dir),
                "pg_bin_dir": fix(self.pg_bin_dir),
            }
        )
