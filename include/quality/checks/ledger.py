"""``reconciliation``, ``reject_rate`` and ``volume_anomaly``: judged from the ETL run ledger of the source."""

from __future__ import annotations

import statistics
from typing import Literal

from psycopg import sql
from pydantic import Field, model_validator

from include.quality.base import CheckSpec, Ctx, LedgerCheck, Outcome
from include.settings.base import Severity, key_error


class Reconciliation(LedgerCheck):
    """The last run's counts add up (read = loaded + rejected + duplicates) and match the quarantine table."""

    category = "completeness"
    check: Literal["reconciliation"]
    compare_quarantine: bool = True

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        runs = c.last_runs(s.source, 1)
        if not runs:
            return Outcome(None, None, "0 unaccounted rows", f"no ETL run of source {s.source!r} recorded yet")
        run_id, read, loaded, rejected, dup, _ = runs[0]
        ledger_gap = read - (loaded + rejected + dup)
        parts = [f"run {run_id}: read {read} = loaded {loaded} + rejected {rejected} + duplicates {dup}"]
        if ledger_gap:
            parts.append(f"ledger off by {ledger_gap}")
        unaccounted = abs(ledger_gap)
        if self.compare_quarantine:
            q = sql.SQL("SELECT count(*) FROM {} WHERE etl_run_id = %s AND source = %s").format(
                c.table("rejected_records")
            )
            (quarantined,) = c.one(q, (run_id, s.source))
            parts.append(f"{quarantined} row(s) in rejected_records")
            if quarantined != rejected:
                parts.append(f"rejected_records differs from rows_rejected by {quarantined - rejected}")
            unaccounted += abs(quarantined - rejected)
        return Outcome(unaccounted == 0, unaccounted, "0 unaccounted rows", "; ".join(parts))


class RejectRate(LedgerCheck):
    """The last run rejected at most `max_rate` of the rows read (null: the ETL guard's transform.max_reject_rate)."""

    category = "completeness"
    check: Literal["reject_rate"]
    severity: Severity = "warn"
    max_rate: float | None = Field(default=None, ge=0, le=1)

    def bind(self, max_reject_rate: float) -> RejectRate:
        return self if self.max_rate is not None else self.model_copy(update={"max_rate": max_reject_rate})

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        runs = c.last_runs(s.source, 1)
        mx = float(self.max_rate if self.max_rate is not None else 0.0)
        if not runs:
            return Outcome(None, None, f"<= {mx:g}", f"no ETL run of source {s.source!r} recorded yet")
        run_id, read, _, rejected, _, _ = runs[0]
        exact = rejected / read if read else 0.0  # the ETL guard's definition (transform.check_reject_rates)
        rate = round(exact, 4)
        return Outcome(
            exact <= mx, rate, f"<= {mx:g}", f"run {run_id}: {rejected} of {read} rows rejected ({rate:.2%})"
        )


class VolumeAnomaly(LedgerCheck):
    """The last run loaded within ±`tolerance` of the median of the `history_runs` runs before it."""

    category = "completeness"
    check: Literal["volume_anomaly"]
    severity: Severity = "warn"
    history_runs: int = Field(default=7, ge=1, le=1000)
    min_history: int = Field(default=3, ge=1)
    tolerance: float = Field(default=0.5, ge=0)

    @model_validator(mode="after")
    def _enough_runs(self) -> VolumeAnomaly:
        if self.min_history > self.history_runs:
            raise key_error("min_history", f"must be <= {self.history_runs} (history_runs), got {self.min_history}")
        return self

    def run(self, c: Ctx, s: CheckSpec) -> Outcome:
        n, need, tol = self.history_runs, self.min_history, self.tolerance
        runs = c.last_runs(s.source, n + 1)
        if not runs:
            msg = f"no ETL run of source {s.source!r} recorded yet"
            return Outcome(None, None, f"within ±{tol:.0%} of the median", msg)
        last_id, last = runs[0][0], int(runs[0][2])
        previous = [int(r[2]) for r in runs[1:]]
        if len(previous) < need:
            return Outcome(
                None,
                last,
                f"within ±{tol:.0%} of the median of {n} previous runs",
                f"not enough history: {len(previous)} previous run(s) of {s.source}, need {need}",
            )
        median = statistics.median(previous)
        lo, hi = median * (1 - tol), median * (1 + tol)
        threshold = f"between {lo:g} and {hi:g} (±{tol:.0%} of median {median:g} of {len(previous)} runs)"
        ok = lo <= last <= hi
        return Outcome(ok, last, threshold, f"run {last_id} loaded {last} {s.source} rows; previous median {median:g}")
