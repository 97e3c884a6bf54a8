"""The ``alerting:`` section: channels, recipients and how often an open incident is repeated."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from include.emails import is_valid_email
from include.settings.base import ConnId, HttpUrl, StrictModel, Text, key_error

CHANNELS = ("email", "slack")
Channel = Literal["email", "slack"]


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else ([] if value is None else value)


class EmailChannel(StrictModel):
    conn_id: ConnId = "smtp_default"
    to: tuple[Text, ...] = Field(default=(), strict=False)
    from_email: Text | None = None  # None: the connection's extra "from_email"

    @field_validator("to", mode="before")
    @classmethod
    def _recipients(cls, value: Any) -> Any:
        value = _as_list(value)
        if not isinstance(value, list) or not all(isinstance(a, str) and is_valid_email(a) for a in value):
            raise ValueError("must be a list of e-mail addresses")
        return value


class SlackChannel(StrictModel):
    conn_id: ConnId = "slack_webhook_default"


class AlertingSection(StrictModel):
    """``alerting:`` (see config.yaml for the meaning of each key)."""

    channels: tuple[Channel, ...] = Field(default=(), strict=False)
    email: EmailChannel = EmailChannel()
    slack: SlackChannel = SlackChannel()
    ui_base_url: HttpUrl | None = None  # None: Airflow's [api] base_url
    repeat_after_minutes: int = Field(default=0, ge=0)
    notify_recovery: bool = True

    @field_validator("channels", mode="before")
    @classmethod
    def _channel_list(cls, value: Any) -> Any:
        value = _as_list(value)
        if not isinstance(value, list) or any(c not in CHANNELS for c in value):
            raise ValueError(f"must be a list of {', '.join(CHANNELS)} (or empty)")
        return list(dict.fromkeys(value))

    @field_validator("email", "slack", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _recipients_when_on(self) -> AlertingSection:
        if "email" in self.channels and not self.email.to:
            raise key_error("email.to", "must name at least one recipient when the email channel is on")
        return self

    # Flat names the notifier uses.
    @property
    def email_conn_id(self) -> str:
        return self.email.conn_id

    @property
    def email_to(self) -> tuple[str, ...]:
        return self.email.to

    @property
    def email_from(self) -> str | None:
        return self.email.from_email

    @property
    def slack_conn_id(self) -> str:
        return self.slack.conn_id


AlertingConfig = AlertingSection
