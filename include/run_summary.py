"""Why a DAG run failed, in one line: read from an `airflow dags test` log (``make run``) or an exception.

The same `reason_line` feeds the ``make run`` summary and the failure alert (include/notifications.py),
so what a user reads in the terminal is what the on-call person reads in the message.

The reason is the project's own message, not Airflow's wrapper: a task that fails fast re-raises
``AirflowFailException(str(err)) from err``, and a library error may be wrapped by ours
(``ijson.IncompleteJSONError`` -> ``InputFileError: user_sessions.json: invalid JSON after item 200``).
In a chained traceback the wrapper comes last, the root cause first; the useful one is the last
exception that is not Airflow's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

RUNBOOK = "docs/runbook.md"

# Error class -> anchor in docs/runbook.md (keep in sync with the `<a id=...>` anchors there).
RUNBOOK_ANCHORS: dict[str, str] = {
    "FileNotFoundError": "missing-input",
    "MissingInputError": "missing-input",  # the landing claim: a required source has no file and none was loaded
    "InvalidParamError": "invalid-param",  # a trigger-form Param (reprocess date range) is malformed
    "InputFileError": "input-file-error",
    "ApiError": "api-error",
    "RejectRateExceeded": "reject-rate-exceeded",
    "ConfigError": "config-error",
    "LoadError": "load-error",
    "DataError": "load-error",
    "OperationalError": "database-unreachable",
    "InsufficientPrivilege": "database-permission",
    "QualityCheckFailed": "quality-check-failed",
    "MonitoringBreach": "monitoring-breach",
    "AirflowTaskTimeout": "task-timeout",
    "AirflowApiError": "airflow-api-error",
    "EncodingProblem": "encoding-problem",
    "SchemaNotMigrated": "schema-not-migrated",
    "MigrationError": "migration-error",
    "ConnectionNotDefined": "connection-not-defined",
    "DatabaseAccessDenied": "database-access-denied",
    "BackupError": "backup-error",
    "ClientTooOld": "client-too-old",
    "NonRetryable": "non-retryable",
}

_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
_RUNNING = re.compile(r"\[DAG TEST\] running task <TaskInstance: ([\w.-]+)\.([\w.-]+) ")
_EXC_LINE = re.compile(
    r"^((?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Exceeded|Failed|Breach|Timeout|Interrupt|Exit|Warning)\w*)(?::\s?(.*))?$"
)
_WRAPPERS = ("airflow.",)


@dataclass(frozen=True)
class TaskFailure:
    """The first failed task of a run and why."""

    task_id: str
    error_class: str
    message: str
    also_failed: tuple[str, ...] = field(default_factory=tuple)

    @property
    def reason(self) -> str:
        return reason_line(self.error_class, self.message)

    @property
    def runbook(self) -> str | None:
        return runbook_link(self.error_class)


def reason_line(error_class: str, message: str) -> str:
    """``Class: first line of the message``, scrubbed of secrets, e-mail and IP addresses, at most 300 chars."""
    from include.notifications import scrub  # lazy: notifications imports this module back for its alerts

    short = error_class.rsplit(".", 1)[-1]
    first = next((ln.strip() for ln in str(message).splitlines() if ln.strip()), "")
    return scrub(f"{short}: {first}" if first else short)


def runbook_link(error_class: str) -> str | None:
    """``docs/runbook.md#anchor`` for an error class the runbook covers, else None."""
    anchor = RUNBOOK_ANCHORS.get(error_class.rsplit(".", 1)[-1])
    return f"{RUNBOOK}#{anchor}" if anchor else None


def root_exception(exc: BaseException) -> BaseException:
    """The exception worth reporting: Airflow's fail-fast wrapper is unwrapped to what it wraps."""
    while type(exc).__module__.startswith(_WRAPPERS) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _pick(chain: list[tuple[str, str]]) -> tuple[str, str]:
    ours = [c for c in chain if not c[0].startswith(_WRAPPERS)]
    return (ours or chain)[-1]


def failures_from_log(text: str) -> list[tuple[str, str, str]]:
    """Every ``(task_id, error_class, message)`` of an `airflow dags test` log, in order; a retried task keeps its last."""
    task = "unknown_task"
    found: dict[str, tuple[str, str]] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _RUNNING.search(line)
        if m:
            task = m.group(2)
        if _TS.match(line) and "Task failed with exception" in line:
            chain: list[tuple[str, str]] = []
            i += 1
            while i < len(lines) and not _TS.match(lines[i]):
                e = _EXC_LINE.match(lines[i])
                if e and not lines[i].startswith((" ", "\t")):
                    chain.append((e.group(1), e.group(2) or ""))
                i += 1
            if chain:
                found.pop(task, None)  # re-insert: order of the final failure
                found[task] = _pick(chain)
            continue
        i += 1
    return [(t, c, msg) for t, (c, msg) in found.items()]


def failure_from_log(log_file: Path) -> TaskFailure | None:
    """The first failed task of the run logged in `log_file`, or None when no task failed with an exception."""
    try:
        text = log_file.read_text(errors="replace")
    except FileNotFoundError:
        return None
    failures = sorted(failures_from_log(text))
    if not failures:
        return None
    task_id, cls, msg = failures[0]
    return TaskFailure(task_id, cls, msg, tuple(t for t, _, _ in failures[1:]))


def fallback_reason(log_file: Path) -> str:
    """No task raised (DAG import error, config error, Airflow itself): the last error-looking line of the log."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"no log written ({log_file})"
    for line in reversed(lines):
        e = _EXC_LINE.match(line.strip())
        if e and not line.startswith((" ", "\t")):
            return reason_line(e.group(1), e.group(2) or "")
    return "no task error found in the log"


def failure_lines(dag_id: str, log_file: Path, root: Path | None = None) -> list[str]:
    """The lines the ``make run`` summary prints under a failed DAG: each failed task (by name) and its reason."""
    shown = log_file.relative_to(root) if root and log_file.is_relative_to(root) else log_file
    try:
        failures = sorted(failures_from_log(log_file.read_text(errors="replace")))
    except FileNotFoundError:
        failures = []
    if not failures:
        return [f"  {dag_id}: {fallback_reason(log_file)}", f"    log: {shown}"]
    out = [f"  {dag_id}: task {task} failed: {reason_line(cls, msg)}" for task, cls, msg in failures]
    links = dict.fromkeys(link for _, cls, _ in failures if (link := runbook_link(cls)))
    out += [f"    what to do: {link}" for link in links]
    out.append(f"    log: {shown}")
    return out


def results_block(results: dict[str, tuple[int, float, Path]], root: Path | None = None) -> list[str]:
    """The per-DAG table of the ``make run`` summary, then why each failed DAG failed."""
    out = [f"{'DAG':<26}{'result':<10}{'seconds':>8}  log"]
    failed = []
    for dag_id, (rc, seconds, log_file) in results.items():
        shown = log_file.relative_to(root) if root and log_file.is_relative_to(root) else log_file
        out.append(f"{dag_id:<26}{'success' if rc == 0 else 'FAILED':<10}{seconds:>8.1f}  {shown}")
        if rc != 0:
            failed.append((dag_id, log_file))
    if failed:
        out += ["", "why:"]
        for dag_id, log_file in failed:
            out += failure_lines(dag_id, log_file, root)
    return out
