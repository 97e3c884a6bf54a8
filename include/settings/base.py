"""Building blocks of the config models: the strict base model, shared field types and one-line errors.

Every model derives from `StrictModel`: strict types (``"5"`` is not an integer, ``yes`` is not a string),
frozen, and an unknown key is an error that names the nearest valid one (difflib). `format_error` turns
pydantic's `ValidationError` into the one line a user sees:
``config.yaml: unknown key 'transform.max_reject_rat' — did you mean 'max_reject_rate'?``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from include.errors import NonRetryable

# TODO(entities): take SOURCES (and which are optional) from include/entities.py once it exists.
SOURCES: tuple[str, ...] = ("products", "customers", "orders", "user_sessions")
OPTIONAL_SOURCES: frozenset[str] = frozenset({"customers"})


class ConfigError(ValueError, NonRetryable):
    """The configuration is invalid; the message is one line naming the key and the offending value."""


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_CONN_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_URL = re.compile(r"^https?://")


def check_identifier(value: str) -> str:
    if not _IDENT.match(value):
        raise ValueError("must be a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return value


def _conn_id(value: str) -> str:
    if not _CONN_ID.match(value):
        raise ValueError("must be an Airflow connection id (letters, digits, _ . -)")
    return value


def _date(value: str) -> str:
    if not _DATE.match(value):
        raise ValueError("must be a date YYYY-MM-DD")
    return value


def _url(value: str) -> str:
    if not _URL.match(value):
        raise ValueError("must start with http:// or https://")
    return value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value


Text = Annotated[str, AfterValidator(_non_empty)]
Identifier = Annotated[str, AfterValidator(check_identifier)]
ConnId = Annotated[str, AfterValidator(_conn_id)]
IsoDate = Annotated[str, AfterValidator(_date)]
HttpUrl = Annotated[str, AfterValidator(_url)]
Severity = Literal["warn", "fail"]


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The valid choice closest to `word`, or None when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_key_error(key: str, allowed: Sequence[str], what: str = "key") -> PydanticCustomError:
    """A validation error for an unknown `key`; `format_error` prints it with the nearest allowed one."""
    return PydanticCustomError(
        "unknown_key", "unknown {what} {key}", {"key": str(key), "allowed": list(allowed), "what": what}
    )


def key_error(sub: str, message: str) -> PydanticCustomError:
    """A validation error about key `sub` below the model being validated (``""``: the model itself).

    `message` is the rest of the sentence after the dotted key, e.g. ``must be >= 5, got 2``.
    """
    return PydanticCustomError("key_error", "{message}", {"sub": sub, "message": message})


class StrictModel(BaseModel):
    """Base of every config model: strict types, frozen, unknown keys rejected with a suggestion."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = [f.alias or name for name, f in cls.model_fields.items()]
            for key in data:
                if key not in allowed:
                    raise cls._unknown_key(str(key), allowed)
        return data

    @classmethod
    def _unknown_key(cls, key: str, allowed: list[str]) -> PydanticCustomError:
        """The error for `key`; a model may explain a key that belongs elsewhere better than a suggestion."""
        return unknown_key_error(key, allowed)


_TYPE_WORDS = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "finite_number": "must be a finite number",
}
_LENGTH_WORDS = {"string_too_long": "characters", "too_long": "items"}


def dotted(loc: Sequence[str | int], tags: frozenset[str] = frozenset()) -> str:
    """`('quality', 'tables', 'orders', 0, 'row_count', 'min')` -> ``quality.tables.orders[0].min``.

    `tags` are discriminator values pydantic inserts into the location of a tagged-union member.
    """
    out = ""
    prev: str | int | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(prev, int) and part in tags:
            pass  # the union member's tag, not a key of the file
        elif "[" in part or part.startswith("function-"):
            pass  # pydantic's own validator labels
        else:
            out += f".{part}" if out else part
        prev = part
    return out


def _one_error(err: dict[str, Any], prefix: str, tags: frozenset[str]) -> str:
    loc = dotted(err["loc"], tags)
    key = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "unknown_key":
        name = ctx["key"]
        full = f"{key}.{name}" if key else name
        near = suggest(name, ctx["allowed"])
        if near:
            return f"unknown {ctx['what']} '{full}' — did you mean '{near}'?"
        return f"unknown {ctx['what']} '{full}' (valid: {', '.join(ctx['allowed'])})"
    if kind == "key_error":
        sub = ctx["sub"]
        full = key if not sub else (f"{key}{sub}" if sub.startswith("[") or not key else f"{key}.{sub}")
        return f"'{full}' {ctx['message']}" if full else str(ctx["message"])
    if kind == "missing":
        return f"missing required key '{key}'"
    if kind == "union_tag_invalid":
        expected = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag = str(ctx.get("tag"))
        near = suggest(tag, expected)
        hint = f" — did you mean '{near}'?" if near else ""
        return f"'{key}.check' must be one of {', '.join(expected)}, got {tag!r}{hint}"
    if kind == "union_tag_not_found":
        return f"missing required key '{key}.check'"
    if kind == "literal_error":
        return f"'{key}' must be one of {ctx.get('expected')}, got {value!r}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        limit = next(iter(ctx.values()))
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"'{key}' must be {op} {limit}, got {value!r}"
    if kind in _LENGTH_WORDS:
        return f"'{key}' must have at most {ctx.get('max_length')} {_LENGTH_WORDS[kind]}"
    if kind == "too_short":
        return f"'{key}' must have at least {ctx.get('min_length')} item(s), got {value!r}"
    if kind in _TYPE_WORDS:
        shown = value if not isinstance(value, (dict, list)) else type(value).__name__
        return f"'{key}' {_TYPE_WORDS[kind]}, got {shown!r}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind == "value_error" and loc == "" and not prefix:
        return msg
    if isinstance(value, dict) or kind != "value_error" or key.endswith("email.to"):
        return f"'{key}' {msg}"  # (recipients' addresses stay out of messages)
    return f"'{key}' {msg}, got {value!r}"


def format_error(err: ValidationError, prefix: str = "", tags: frozenset[str] = frozenset()) -> str:
    """The first error of `err` as one line naming the dotted key, the bad value and, if any, the fix."""
    errors = err.errors(include_url=False)
    line = _one_error(dict(errors[0]), prefix, tags)
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more error(s))"
    return line
