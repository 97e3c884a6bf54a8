"""The registry of quality check types: every check class, in one tuple; the config union is built from it.

To add a check type: write a `Check` subclass (in the module of its family, or a new module here) with
``check: Literal["<type>"]``, its `category`, its parameters as fields, and `run`; then add the class to
`CHECKS` below. That is all: the config model, the schema validation and the DAG task pick it up.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from include.quality.base import Check
from include.quality.checks.derived import DerivedDuration, DerivedProduct
from include.quality.checks.email import Email
from include.quality.checks.freshness import Freshness, LoadFreshness
from include.quality.checks.ledger import Reconciliation, RejectRate, VolumeAnomaly
from include.quality.checks.nulls import NotNull, NullRate
from include.quality.checks.relationship import Relationship
from include.quality.checks.row_count import RowCount
from include.quality.checks.values import AcceptedValues, Range, Unique

CHECKS: tuple[type[Check], ...] = (
    RowCount,
    NotNull,
    NullRate,
    Reconciliation,
    RejectRate,
    VolumeAnomaly,
    Unique,
    AcceptedValues,
    Range,
    Email,
    Relationship,
    DerivedProduct,
    DerivedDuration,
    Freshness,
    LoadFreshness,
)


# check type name -> class (its `category`, `column_family`, fields); what the report and tests list.
CHECK_TYPES: dict[str, type[Check]] = {c.type_name(): c for c in CHECKS}

# One entry of quality.tables.<table>: pydantic picks the class by the `check` key.
CheckConfig = Annotated[Union[CHECKS], Field(discriminator="check")]  # type: ignore[valid-type]  # noqa: UP007

__all__ = ["CHECKS", "CHECK_TYPES", "Check", "CheckConfig"]
