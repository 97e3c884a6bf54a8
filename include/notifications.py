"""Alerts of the three DAGs by email (SMTP connection) and/or Slack (incoming-webhook connection).

Contract used by the DAG files:

- `dag_callbacks(dag_id)` -> kwargs for ``@dag`` (``on_failure_callback`` / ``on_success_callback``).
- `task_callbacks()` -> kwargs for ``default_args`` (task ``on_failure_callback``).
- `send_run_summary(summary)` -> the ETL run summary, sent only when ``etl.notify_on_success`` is true.

How an incident becomes exactly one message:

1. A task's ``on_failure_callback`` runs only after its *last* try (retries go to ``on_retry_callback``,
   which we do not set). `TaskFailureRecorder` sends nothing: it records the task and a one-line,
   scrubbed reason in ``alert_task_failures`` (warehouse database).
2. The DAG's ``on_failure_callback`` (`DagFailureNotifier`, once per failed run) opens the incident in
   ``alert_state`` and sends one message naming the first failed task of the run and its reason,
   the other failed tasks by name, and a link to the run. While the incident stays open, further failed
   runs of the DAG are counted, not re-sent (unless ``alerting.repeat_after_minutes`` > 0).
3. The DAG's ``on_success_callback`` (`DagSuccessNotifier`) closes an open incident and sends one
   "recovered" message.

The state lives in the warehouse (tables created here idempotently, also in init_db.sql) rather than
being read back from Airflow: DAG callbacks run in the dag processor, must not touch the metadata
database, and an alerting path that needs the REST API would go quiet exactly when Airflow is unwell.
A row lock makes the decision atomic when two callbacks race. When the warehouse itself is down, a
failure is still sent (better a duplicate than silence) and a recovery cannot be detected.

Delivery uses the providers' notifiers (`SmtpNotifier`, `SlackWebhookNotifier`, built on
``BaseNotifier``) with the text already composed (no Jinja rendering of exception text). A delivery
error is logged and never raised, so it cannot mask the failure being reported. Messages carry DAG,
task, run, a reason and a link; passwords, URLs with credentials, e-mail and IP addresses are removed.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import psycopg
from airflow.sdk import BaseNotifier
from psycopg import sql
from pydantic import ValidationError

from include.config_loader import ConfigError, Settings, load_config
from include.database import apply_schema, connect, conninfo_from_connection, ident
from include.settings.alerting import AlertingConfig, AlertingSection
from include.settings.base import format_error

log = logging.getLogger(__name__)

REASON_CHARS = 300
TASK_FAILURE_RETENTION_DAYS = 30

# Incident state lives in the warehouse: tables alert_state and alert_task_failures of init_db.sql.


# ---------------------------------------------------------------------------------------------- config
def parse_alerting(raw: Mapping[str, Any]) -> AlertingConfig:
    """Validate an ``alerting:`` mapping on its own (tests, tools); `load_config` does it for config.yaml.

    Raises:
        ConfigError: unknown channel or key, e-mail channel without recipients, bad URL or number.
    """
    try:
        return AlertingSection.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_error(err, "alerting")) from None


# -------------------------------------------------------------------------------------------- messages
_SCRUBBERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]*@"), r"\1***@"),  # credentials in URLs
    # before the key=value rule, which would mask only the word "Bearer" of "Authorization: Bearer <token>"
    (re.compile(r"(?i)bearer\s+[a-z0-9._~+/=-]+"), "Bearer ***"),
    (
        re.compile(
            r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|authorization)\b(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)"
        ),
        r"\1\2***",
    ),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "<email>"),
    (re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){4,7}[0-9a-fA-F]{1,4}\b"), "<ip>"),  # IPv6, full
    (
        re.compile(
            r"(?<![\w:])(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?::(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?(?![\w:])"
        ),
        "<ip>",
    ),
    (re.compile(r"\b(?!127\.)(?:\d{1,3}\.){3}\d{1,3}\b"), "<ip>"),
)


def scrub(text: str, limit: int = REASON_CHARS) -> str:
    """One line of `text` without secrets or personal data (masked values, credentials, e-mail, IP)."""
    try:
        from airflow.sdk._shared.secrets_masker import redact

        text = str(redact(text))
    except ImportError:  # an Airflow without the masker: the patterns below still apply
        pass
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    for pattern, repl in _SCRUBBERS:
        line = pattern.sub(repl, line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def exception_reason(exc: BaseException | None) -> str:
    """The same one line the ``make run`` summary shows (include/run_summary.py), plus the runbook link."""
    if exc is None:
        return "failed"
    from include.run_summary import reason_line, root_exception, runbook_link

    exc = root_exception(exc)
    link = runbook_link(type(exc).__name__)
    return reason_line(type(exc).__name__, str(exc)) + (f" (runbook: {link})" if link else "")


_TITLES = {"failure": "FAILED", "reminder": "STILL FAILING", "recovered": "RECOVERED", "summary": "SUCCESS"}


@dataclass(frozen=True)
class Alert:
    """One message: what happened, where, why, and the link to look at."""

    kind: str  # failure | reminder | recovered | summary
    dag_id: str
    run_id: str
    reason: str
    task_id: str | None = None
    url: str | None = None
    details: tuple[str, ...] = field(default_factory=tuple)

    @property
    def subject(self) -> str:
        where = f"{self.dag_id} / {self.task_id}" if self.task_id else self.dag_id
        return f"[{_TITLES.get(self.kind, self.kind.upper())}] {where}"

    def lines(self) -> list[str]:
        out = [f"DAG: {self.dag_id}"]
        if self.task_id:
            out.append(f"Task: {self.task_id}")
        out += [f"Run: {self.run_id}", f"Reason: {self.reason}", *self.details]
        if self.url:
            out.append(f"Run in Airflow: {self.url}")
        return out

    def text(self) -> str:
        return "\n".join([self.subject, *self.lines()])

    def html(self) -> str:
        rows = "".join(
            f"<li>{html.escape(line)}</li>" for line in self.lines() if not (self.url and line.endswith(self.url))
        )
        link = f'<p><a href="{html.escape(self.url, quote=True)}">Open the run in Airflow</a></p>' if self.url else ""
        return f"<h3>{html.escape(self.subject)}</h3><ul>{rows}</ul>{link}"

    def slack_blocks(self) -> list[dict[str, Any]]:
        body = "\n".join(f"• {line}" for line in self.lines() if not (self.url and line.endswith(self.url)))
        if self.url:
            body += f"\n<{self.url}|Open the run in Airflow>"
        return [
            {"type": "header", "text": {"type": "plain_text", "text": self.subject[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body[:2900]}},
        ]


def run_url(dag_id: str, run_id: str, base_url: str | None = None) -> str:
    """Link to the run in the Airflow 3 UI (``[api] base_url`` unless `base_url`)."""
    if not base_url:
        from airflow.sdk.configuration import conf

        base_url = conf.get("api", "base_url", fallback="http://localhost:8080")
    return f"{str(base_url).rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id)}"


def deliver(alert: Alert, cfg: AlertingConfig) -> dict[str, bool]:
    """Send `alert` on every configured channel; returns channel -> delivered. Never raises."""
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    results: dict[str, bool] = {}
    for channel in cfg.channels:
        try:
            notifier: BaseNotifier
            if channel == "email":
                notifier = SmtpNotifier(
                    to=list(cfg.email_to),
                    from_email=cfg.email_from,
                    subject=alert.subject,
                    html_content=alert.html(),
                    smtp_conn_id=cfg.email_conn_id,
                )
            else:
                notifier = SlackWebhookNotifier(
                    slack_webhook_conn_id=cfg.slack_conn_id, text=alert.text(), blocks=alert.slack_blocks()
                )
            # notify() directly, not __call__: the text is final and must not be rendered as a Jinja
            # template (an exception message may contain "{{"). An empty context: nothing in it is
            # needed, and the DAG of a callback context may be a serialized one without Jinja support.
            notifier.notify({})  # type: ignore[arg-type]
            results[channel] = True
            log.info("alert %r sent by %s", alert.subject, channel)
        # The one broad catch: whatever breaks in delivery (SMTP, HTTP, TLS, a missing connection) is
        # logged and never raised, so it cannot mask the failure it reports nor stop the other channel.
        except Exception:  # why: see above — a delivery failure must not mask the failure it reports
            results[channel] = False
            log.exception("could not deliver alert %r by %s", alert.subject, channel)
    return results


# ---------------------------------------------------------------------------------------- incident state
@dataclass(frozen=True)
class Decision:
    send: bool
    kind: str = "failure"
    task_id: str | None = None
    reason: str = ""
    other_tasks: tuple[str, ...] = ()
    failed_runs: int = 0
    opened_at: datetime | None = None
    opened_run_id: str | None = None


class IncidentStore:
    """Incident state per DAG in the warehouse database (``alert_state``, ``alert_task_failures``)."""

    def __init__(self, conninfo: str, schema: str = "public") -> None:
        self.conninfo = conninfo
        self.schema = schema

    def _connect(self) -> psycopg.Connection[Any]:
        conn = connect(self.conninfo, schema=self.schema, application_name="ecommerce_alerting")
        apply_schema(conn, self.schema)  # idempotent and race-safe: the incident tables are in init_db.sql
        conn.commit()
        return conn

    def _t(self, name: str) -> sql.Composable:
        return ident(self.schema, name)

    def record_task_failure(self, dag_id: str, run_id: str, task_id: str, reason: str) -> None:
        with self._connect() as conn:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (dag_id, run_id, task_id, reason) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
                ).format(self._t("alert_task_failures")),
                (dag_id, run_id, task_id, reason),
            )

    def on_dag_failure(
        self, dag_id: str, run_id: str, fallback_task: str | None, fallback_reason: str, repeat_after_minutes: int = 0
    ) -> Decision:
        """Count this failed run into the DAG's incident; say whether (and what) to send."""
        state, failures = self._t("alert_state"), self._t("alert_task_failures")
        with self._connect() as conn, conn.transaction():
            conn.execute(sql.SQL("INSERT INTO {} (dag_id) VALUES (%s) ON CONFLICT DO NOTHING").format(state), (dag_id,))
            row = conn.execute(
                sql.SQL(
                    "SELECT status, last_failed_run_id, failed_runs, notified_at, opened_at, opened_run_id, now() "
                    "FROM {} WHERE dag_id = %s FOR UPDATE"
                ).format(state),
                (dag_id,),
            ).fetchone()
            if row is None:
                raise psycopg.errors.NoData(f"alert_state row of {dag_id} vanished")
            status, last_run, failed_runs, notified_at, opened_at, opened_run, now = row
            tasks = conn.execute(
                sql.SQL(
                    "SELECT task_id, reason FROM {} WHERE dag_id = %s AND run_id = %s ORDER BY failed_at, task_id"
                ).format(failures),
                (dag_id, run_id),
            ).fetchall()
            first_task, reason = tasks[0] if tasks else (fallback_task, fallback_reason)
            others = tuple(t for t, _ in tasks[1:])
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE failed_at < now() - make_interval(days => %s)").format(failures),
                (TASK_FAILURE_RETENTION_DAYS,),
            )
            if last_run == run_id:  # the callback of this run already ran (e.g. re-delivered)
                return Decision(False, task_id=first_task, reason=reason)
            if status == "ok":
                conn.execute(
                    sql.SQL(
                        "UPDATE {} SET status = 'failing', opened_run_id = %s, opened_at = now(), "
                        "last_failed_run_id = %s, failed_runs = 1, first_task = %s, reason = %s, "
                        "notified_at = now(), updated_at = now() WHERE dag_id = %s"
                    ).format(state),
                    (run_id, run_id, first_task, reason, dag_id),
                )
                return Decision(True, "failure", first_task, reason, others, 1, now, run_id)
            failed_runs += 1
            due = notified_at is None or (
                repeat_after_minutes > 0 and now - notified_at >= timedelta(minutes=repeat_after_minutes)
            )
            conn.execute(
                sql.SQL(
                    "UPDATE {} SET last_failed_run_id = %s, failed_runs = %s, updated_at = now(),"
                    " notified_at = CASE WHEN %s THEN now() ELSE notified_at END WHERE dag_id = %s"
                ).format(state),
                (run_id, failed_runs, due, dag_id),
            )
            kind = "failure" if notified_at is None else "reminder"
            return Decision(due, kind, first_task, reason, others, failed_runs, opened_at, opened_run)

    def mark_undelivered(self, dag_id: str) -> None:
        """No channel took the message: let the next failed run send it again."""
        with self._connect() as conn:
            conn.execute(
                sql.SQL("UPDATE {} SET notified_at = NULL WHERE dag_id = %s AND status = 'failing'").format(
                    self._t("alert_state")
                ),
                (dag_id,),
            )

    def on_dag_success(self, dag_id: str, run_id: str) -> Decision:
        """Close the DAG's open incident, if any; `send` says whether there was one."""
        state = self._t("alert_state")
        with self._connect() as conn, conn.transaction():
            row = conn.execute(
                sql.SQL(
                    "SELECT status, failed_runs, opened_at, opened_run_id, first_task, reason FROM {} "
                    "WHERE dag_id = %s FOR UPDATE"
                ).format(state),
                (dag_id,),
            ).fetchone()
            if row is None or row[0] != "failing":
                return Decision(False, "recovered")
            conn.execute(
                sql.SQL("UPDATE {} SET status = 'ok', notified_at = NULL, updated_at = now() WHERE dag_id = %s").format(
                    state
                ),
                (dag_id,),
            )
            _, failed_runs, opened_at, opened_run, first_task, reason = row
            return Decision(True, "recovered", first_task, reason, (), failed_runs, opened_at, opened_run)


# ------------------------------------------------------------------------------------------- notifiers
def _load() -> tuple[Settings, AlertingConfig] | None:
    try:
        settings = load_config()
        return settings, settings.alerting
    except ConfigError:
        log.exception("alerting disabled: the configuration is invalid")
        return None


def _store(settings: Settings) -> IncidentStore | None:
    try:
        return IncidentStore(conninfo_from_connection(settings.conn_id), settings.schema)
    except LookupError:
        log.exception("alert state unavailable: no warehouse connection '%s'", settings.conn_id)
        return None


def _ids(context: Mapping[str, Any]) -> tuple[str, str, Any]:
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None) or "unknown_dag"
    run_id = context.get("run_id") or getattr(ti, "run_id", None) or "unknown_run"
    return str(dag_id), str(run_id), ti


class _PlainNotifier(BaseNotifier):
    """A notifier without templated fields: nothing to render.

    Skipping the render also avoids ``BaseNotifier`` asking the context's DAG for a Jinja environment,
    which the serialized DAG of ``dag.test()``'s DAG callbacks does not have.
    """

    template_fields = ()

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        return None


class TaskFailureRecorder(_PlainNotifier):
    """Task ``on_failure_callback`` (after the last retry): records the reason; the DAG callback sends."""

    def notify(self, context: Any) -> None:
        dag_id, run_id, ti = _ids(context)
        task_id = str(getattr(ti, "task_id", "unknown_task"))
        reason = exception_reason(context.get("exception"))
        tries = getattr(ti, "try_number", None)
        if tries:
            reason = f"{reason} (after {tries} attempt(s))"
        log.error("task %s.%s failed in run %s: %s", dag_id, task_id, run_id, reason)
        loaded = _load()
        if loaded is None or not loaded[1].channels:
            return
        store = _store(loaded[0])
        if store is None:
            return
        try:
            store.record_task_failure(dag_id, run_id, task_id, reason)
        except psycopg.Error:
            log.exception("could not record the failure of %s.%s for the alert", dag_id, task_id)


class DagFailureNotifier(_PlainNotifier):
    """DAG ``on_failure_callback``: one message per incident (see the module docstring)."""

    def notify(self, context: Any) -> None:
        dag_id, run_id, ti = _ids(context)
        loaded = _load()
        if loaded is None:
            return
        settings, cfg = loaded
        if not cfg.channels:
            log.info("DAG %s failed in run %s; alerting has no channel configured", dag_id, run_id)
            return
        fallback_task = getattr(ti, "task_id", None)
        fallback_reason = (
            f"task {fallback_task} failed"
            if fallback_task
            else f"run failed ({context.get('reason') or 'unknown reason'})"
        )
        store = _store(settings)
        decision: Decision | None = None
        if store is not None:
            try:
                decision = store.on_dag_failure(
                    dag_id, run_id, fallback_task, fallback_reason, cfg.repeat_after_minutes
                )
            except psycopg.Error:
                log.exception("alert state unavailable; sending the failure alert without de-duplication")
        if decision is None:
            decision = Decision(True, "failure", fallback_task, fallback_reason)
        if not decision.send:
            log.info(
                "DAG %s failed in run %s: incident already notified (%d failed run(s)); no new message",
                dag_id,
                run_id,
                decision.failed_runs,
            )
            return
        details = []
        if decision.other_tasks:
            details.append("Also failed: " + ", ".join(decision.other_tasks))
        if decision.kind == "reminder" and decision.opened_at:
            details.append(f"Failing since {decision.opened_at:%Y-%m-%d %H:%M %Z} ({decision.failed_runs} failed runs)")
        alert = Alert(
            decision.kind,
            dag_id,
            run_id,
            decision.reason,
            decision.task_id,
            run_url(dag_id, run_id, cfg.ui_base_url),
            tuple(details),
        )
        results = deliver(alert, cfg)
        if store is not None and not any(results.values()):
            try:
                store.mark_undelivered(dag_id)
            except psycopg.Error:
                log.exception("could not mark the alert of %s as undelivered", dag_id)


class DagSuccessNotifier(_PlainNotifier):
    """DAG ``on_success_callback``: a "recovered" message when the DAG had an open incident."""

    def notify(self, context: Any) -> None:
        dag_id, run_id, _ = _ids(context)
        loaded = _load()
        if loaded is None or not loaded[1].channels:
            return
        settings, cfg = loaded
        store = _store(settings)
        if store is None:
            return
        try:
            decision = store.on_dag_success(dag_id, run_id)
        except psycopg.Error:
            log.exception("alert state unavailable; cannot tell whether %s recovered", dag_id)
            return
        if not decision.send or not cfg.notify_recovery:
            return
        since = f" since {decision.opened_at:%Y-%m-%d %H:%M %Z}" if decision.opened_at else ""
        reason = f"succeeded after {decision.failed_runs} failed run(s){since}"
        details = (
            (f"Incident started with: {decision.task_id or 'the run'}: {decision.reason}",) if decision.reason else ()
        )
        deliver(
            Alert("recovered", dag_id, run_id, reason, None, run_url(dag_id, run_id, cfg.ui_base_url), details),
            cfg,
        )


def dag_callbacks(dag_id: str) -> dict[str, Any]:
    """kwargs for ``@dag``: the incident notifiers (no I/O here; configuration is read when they fire)."""
    return {"on_failure_callback": DagFailureNotifier(), "on_success_callback": DagSuccessNotifier()}


def task_callbacks() -> dict[str, Any]:
    """kwargs for ``default_args``: record each final task failure (retries send nothing)."""
    return {"on_failure_callback": TaskFailureRecorder()}


def _count(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def summary_alert(summary: Mapping[str, Any], base_url: str | None = None) -> Alert:
    """The success message of an ETL run: counts per source only (no row content)."""
    dag_id = scrub(str(summary.get("dag_id") or "etl_ecommerce_pipeline"), 100)
    run_id = scrub(str(summary.get("run_id") or "unknown_run"), 200)
    sources = summary.get("sources") or {}
    lines = []
    totals = dict.fromkeys(("rows_read", "rows_loaded", "rows_rejected", "rows_duplicate"), 0)
    if isinstance(sources, Mapping):
        for name, raw in sorted(sources.items()):
            counts = raw if isinstance(raw, Mapping) else {}
            c = {k: _count(counts.get(k)) for k in totals}
            for k in totals:
                totals[k] += c[k]
            lines.append(
                f"{scrub(str(name), 60)}: read {c['rows_read']}, loaded {c['rows_loaded']}, "
                f"rejected {c['rows_rejected']}, duplicate {c['rows_duplicate']}"
            )
    if totals["rows_rejected"] and summary.get("rejects_table"):
        lines.append(f"Rejected rows are in table {scrub(str(summary['rejects_table']), 60)}")
    reason = (
        f"loaded {totals['rows_loaded']} of {totals['rows_read']} rows "
        f"({totals['rows_rejected']} rejected, {totals['rows_duplicate']} duplicate)"
    )
    return Alert("summary", dag_id, run_id, reason, None, run_url(dag_id, run_id, base_url), tuple(lines))


def send_run_summary(summary: dict[str, Any]) -> None:
    """Send the ETL run summary when ``etl.notify_on_success`` is true and a channel is on. Never raises."""
    loaded = _load()
    if loaded is None:
        return
    settings, cfg = loaded
    log.info("ETL run summary: %s", {k: v for k, v in summary.items() if k != "sources"})
    if not settings.notify_on_success or not cfg.channels:
        log.info(
            "run summary not sent (etl.notify_on_success=%s, channels=%s)",
            settings.notify_on_success,
            list(cfg.channels),
        )
        return
    deliver(summary_alert(summary, cfg.ui_base_url), cfg)


__all__: Sequence[str] = (
    "Alert",
    "AlertingConfig",
    "DagFailureNotifier",
    "DagSuccessNotifier",
    "IncidentStore",
    "TaskFailureRecorder",
    "dag_callbacks",
    "deliver",
    "parse_alerting",
    "scrub",
    "send_run_summary",
    "task_callbacks",
)
