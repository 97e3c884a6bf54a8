"""DataTransformer: clean, validate and enrich staged records; quarantine what breaks a rule.

The rule functions are pure: a frame of raw strings in, ``(valid, rejected)`` out. Each rejected
row carries the first rule it broke (a machine-readable reason), the field, a short detail and the
raw record. `DataTransformer` runs them chunk by chunk over the staged Parquet parts, writes the
clean rows as CSV ready for COPY, the rejects as CSV for the quarantine table, counts duplicates
(the last occurrence of a natural key wins) and applies the reject-rate guard.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from include import entities
from include.config_loader import IpPolicy, PriceTier, Settings
from include.emails import email_series_valid
from include.errors import NonRetryable
from include.extract import LINE_COLUMN, REJECT_MARK_COLUMNS
from include.manifests import TransformedSource
from include.parsing import ParsedDates, date_detail, parse_dates, parse_decimal, parse_integer, units_to_text

log = logging.getLogger(__name__)

TRUE_VALUES = frozenset({"true", "1", "yes", "y", "t"})
FALSE_VALUES = frozenset({"false", "0", "no", "n", "f"})
REJECT_COLUMNS = ["source", "source_file", "line_number", "reason", "field", "detail", "raw_record"]
# Natural key of each source: duplicates within one input share it, the last occurrence wins.
NATURAL_KEYS = {s.name: s.natural_key for s in entities.SOURCES}
# Columns of the clean files, in COPY order (the loader's staging tables use the same names).
CLEAN_COLUMNS = {s.name: list(s.clean_columns) for s in entities.SOURCES}


class RejectRateExceeded(RuntimeError, NonRetryable):
    """A source rejected more rows than transform.max_reject_rate allows; nothing may be loaded."""


@dataclass(frozen=True)
class TransformContext:
    """What the rules need besides the rows: the file name and the settings that shape them."""

    source_file: str
    price_tiers: tuple[PriceTier, ...] = ()
    ip_policy: IpPolicy = field(default_factory=lambda: IpPolicy("truncate", 24, 48))
    known_product_ids: frozenset[int] = frozenset()
    date_formats: tuple[str, ...] = ("iso8601",)  # sources.<name>.date_formats


# ---- helpers -----------------------------------------------------------------------------------
def _clean(s: pd.Series) -> pd.Series:
    """Trim; strip one pair of stray quotes left around a value by whitespace before the quote."""
    s = s.astype("str").str.strip()
    quoted = s.str.startswith('"') & s.str.endswith('"') & (s.str.len() >= 2)
    if quoted.any():
        s = s.where(~quoted, s.str.slice(1, -1).str.replace('""', '"', regex=False))
    return s


def _text(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df:
        return pd.Series("", index=df.index, dtype="str")
    return _clean(df[col].fillna(""))


def _to_number(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.where(s != ""), errors="coerce").astype("float64")


def _to_timestamp(s: pd.Series, formats: tuple[str, ...] = ("iso8601",)) -> ParsedDates:
    """Parse to UTC under the source's configured formats only (include/parsing.parse_dates); naive = UTC."""
    return parse_dates(s, formats)


def _date_details(text: pd.Series, parsed: ParsedDates, field_name: str, formats: tuple[str, ...]) -> pd.Series:
    """Reject detail per row for a date field: the value and the accepted formats (ambiguity named)."""
    bad = parsed.values.isna() & (text != "")
    out = pd.Series(None, index=text.index, dtype=object)
    for idx in text.index[bad]:
        out[idx] = date_detail(field_name, str(text[idx]), formats, bool(parsed.ambiguous[idx]))
    return out


# Limits of the warehouse column types (entity registry): a value beyond them is quarantined instead of failing the load.
INT4_MAX = entities.INT4_MAX
TOTAL_CENTS_LIMIT = int(
    entities.NUMERIC_LIMITS[entities.ORDERS.column("total_amount").type] * 100
)  # numeric(14,2) in cents


class _Rules:
    """Accumulates the first failing rule per row (reason, field)."""

    def __init__(self, index: pd.Index):
        self.reason = pd.Series(None, index=index, dtype="object")
        self.field = pd.Series(None, index=index, dtype="object")
        self.detail = pd.Series(None, index=index, dtype="object")

    def check(self, ok: pd.Series, reason: str, column: str, detail: pd.Series | None = None) -> None:
        """Record `reason` on rows failing `ok` that broke no rule yet (a missing `ok` fails the rule)."""
        bad = ~ok.fillna(False).astype(bool) & self.reason.isna()
        if bad.any():
            self.reason[bad] = reason
            self.field[bad] = column
            if detail is not None:
                self.detail[bad] = detail[bad]

    @property
    def failed(self) -> pd.Series:
        return self.reason.notna()


def _rejects(
    raw: pd.DataFrame, rules: _Rules, source: str, ctx: TransformContext, values: Mapping[str, pd.Series]
) -> pd.DataFrame:
    bad = rules.failed
    if not bad.any():
        return pd.DataFrame(columns=REJECT_COLUMNS)
    sub = raw.loc[bad]
    if "_raw" in sub:
        raw_json = sub["_raw"].astype(object)
    else:
        cols = [c for c in sub.columns if c != LINE_COLUMN]
        raw_json = pd.Series(
            [
                json.dumps(dict(zip(cols, row, strict=True)), ensure_ascii=False)
                for row in sub[cols].itertuples(index=False)
            ],
            index=sub.index,
        )
    fields = rules.field[bad]
    # Plain lists, one lookup per reject: label lookups on a Series cost ~0.1 ms each.
    field_list, reasons, given = fields.tolist(), rules.reason[bad].tolist(), rules.detail[bad].tolist()
    shown = {f: v[bad].tolist() for f, v in values.items() if f in set(field_list)}
    details = [
        g if isinstance(g, str) else _describe(reason, f, shown[f][i] if f in shown else None)
        for i, (f, reason, g) in enumerate(zip(field_list, reasons, given, strict=True))
    ]
    return pd.DataFrame(
        {
            "source": source,
            "source_file": ctx.source_file,
            "line_number": sub[LINE_COLUMN].astype("int64"),
            "reason": rules.reason[bad].astype(str),
            "field": fields.astype(str),
            "detail": details,
            "raw_record": raw_json,
        }
    ).reset_index(drop=True)


_DATE = "a date with a year from 1900 to 2199 (ISO 8601 preferred)"
_PRICE_MAX = entities.NUMERIC_LIMITS[entities.ORDERS.column("unit_price").type]
_MONEY = f"a plain decimal number ≥ 0 with at most 2 decimals (no exponent), below {_PRICE_MAX:.0f}"
# What each rule expected, one sentence per reason; `{field}` is the input field, `{got}` the value found.
REJECT_DETAILS: dict[str, str] = {
    "missing_order_reference": "order_reference must not be empty",
    "missing_session_id": "session_id must not be empty",
    "missing_status": "status must not be empty",
    "missing_title": "title must not be empty",
    "invalid_email": "{field} must be an e-mail address such as name@example.com (value not shown: personal data)",
    "invalid_product_id": f"{{field}} must be a whole-number product id from 1 to {INT4_MAX}, got {{got}}",
    "unknown_product": "product_id must name a product of this run or of the warehouse, got {got}",
    "invalid_quantity": "quantity must be an integer ≥ 1, got {got}",
    "too_many_decimals": "{field} must have at most 2 decimals (the warehouse keeps cents; no rounding), got {got}",
    "invalid_unit_price": f"unit_price must be {_MONEY}, got {{got}}",
    "invalid_price": f"price must be {_MONEY}, got {{got}}",
    "total_amount_out_of_range": f"quantity × unit_price must be below {TOTAL_CENTS_LIMIT // 100}, got quantity {{got}}",
    "invalid_order_date": f"order_date must be {_DATE}, got {{got}}",
    "invalid_signup_date": f"signup_date must be empty or {_DATE}, got {{got}}",
    "invalid_session_start": f"session_start must be {_DATE}, got {{got}}",
    "invalid_session_end": f"session_end must be empty or {_DATE}, got {{got}}",
    "session_end_before_start": "session_end must not be before session_start, got {got}",
    "session_too_long": f"session_end − session_start must be at most {INT4_MAX} seconds, got session_end {{got}}",
    "invalid_pages_viewed": f"pages_viewed must be an integer from 0 to {INT4_MAX}, got {{got}}",
    "invalid_items_viewed": "items_viewed must be a JSON list (or empty), got {got}",
    "invalid_items_added_to_cart": "items_added_to_cart must be a JSON list (or empty), got {got}",
    "invalid_conversion": "conversion must be true or false (1/0, yes/no, t/f, y/n) or empty, got {got}",
}


def _describe(reason: str, field_name: str, value: Any) -> str:
    """One sentence for a reject saying what was expected; e-mail values are never repeated (personal data)."""
    if "email" in field_name:
        return REJECT_DETAILS["invalid_email"].format(field=field_name)
    shown = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    got = repr(shown[:60]) + ("…" if len(shown) > 60 else "")
    template = REJECT_DETAILS.get(reason, "{field} fails " + reason + ", got {got}")
    return template.format(field=field_name, got=got)


def price_tier(prices: pd.Series, tiers: Iterable[PriceTier]) -> pd.Series:
    """Name of the first tier whose max_price is >= the price (the last tier takes the rest)."""
    tiers = list(tiers)
    out = pd.Series(tiers[-1].name, index=prices.index, dtype="object")
    assigned = pd.Series(False, index=prices.index)
    for t in tiers[:-1]:
        hit = (prices <= (t.max_price if t.max_price is not None else np.inf)) & ~assigned
        out[hit] = t.name
        assigned |= hit
    return out


def _network(value: str, mode: str, v4: int, v6: int) -> str | None:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if mode == "keep":
        return f"{ip}/{ip.max_prefixlen}"
    prefix = v4 if ip.version == 4 else v6
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


_OCTET = r"(0|[1-9]\d{0,2})"  # no leading zeros: ipaddress refuses them too (ambiguous octal)
_IPV4 = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"


def ip_networks(ips: pd.Series, policy: IpPolicy) -> pd.Series:
    """The network of each address per policy (truncate to /24 and /48 by default); NULL when absent or unparsable.

    IPv4 is computed vectorised (most traffic); IPv6 and anything unusual go through `ipaddress`.
    """
    out = pd.Series(None, index=ips.index, dtype="object")
    if policy.mode == "drop" or ips.empty:
        return out
    text = ips.fillna("").astype("str")
    octets = text.str.extract(_IPV4)
    v4 = octets.notna().all(axis=1)
    if v4.any():
        parts = octets[v4].astype("int64").to_numpy()
        ok = (parts <= 255).all(axis=1)
        value = (parts[:, 0] << 24) | (parts[:, 1] << 16) | (parts[:, 2] << 8) | parts[:, 3]
        prefix = 32 if policy.mode == "keep" else policy.ipv4_prefix
        net = value & (((1 << 32) - 1) ^ ((1 << (32 - prefix)) - 1))
        quads = [pd.Series((net >> shift) & 255, dtype="int64").astype(str) for shift in (24, 16, 8, 0)]
        dotted = (quads[0] + "." + quads[1] + "." + quads[2] + "." + quads[3] + f"/{prefix}").to_numpy(dtype=object)
        index = octets.index[v4]
        out[index[ok]] = dotted[ok]
    rest = ~v4 & (text != "")
    if rest.any():
        # Each distinct value once per chunk; no process-wide cache: a cache of every distinct IPv6 address
        # seen grew with the file (up to ~70 MB at 1M sessions), the one thing that kept memory from being flat.
        networks = {v: _network(v, policy.mode, policy.ipv4_prefix, policy.ipv6_prefix) for v in pd.unique(text[rest])}
        out[rest] = text[rest].map(networks).astype(object)
    return out


_SIMPLE_LIST = r"^\[\s*(?:-?\d+(?:\.\d+)?(?:\s*,\s*-?\d+(?:\.\d+)?)*)?\s*\]$"


def _json_list(s: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(ok, json text, count) for a column of JSON lists staged as text; null/empty means an empty list.

    Lists of plain numbers (product ids: nearly all rows) are checked and counted vectorised;
    anything else is parsed with json.
    """
    text = s.where(s.notna(), "").astype("str")
    empty = text.isin(["", "null"])
    simple = text.str.match(_SIMPLE_LIST).fillna(False).astype(bool) & ~empty
    ok = pd.Series(True, index=s.index)
    texts = pd.Series("[]", index=s.index, dtype="object")
    counts = pd.Series(0, index=s.index, dtype="int64")
    if simple.any():
        inner = text[simple].str.slice(1, -1).str.strip()
        texts[simple] = text[simple].astype(object)
        counts[simple] = np.where(inner == "", 0, inner.str.count(",") + 1)
    for idx in text.index[~empty & ~simple]:
        try:
            items = json.loads(text[idx])
        except json.JSONDecodeError:
            items = None
        if isinstance(items, list):
            texts[idx] = json.dumps(items)
            counts[idx] = len(items)
        else:
            ok[idx] = False
    return ok, texts, counts


def _booleans(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(ok, value): true/"true"/1/yes → True; false/"false"/0/no → False; missing → False."""
    low = s.str.lower()
    is_true = low.isin(TRUE_VALUES)
    is_false = low.isin(FALSE_VALUES) | (low == "")
    return (is_true | is_false), is_true


def _integral(n: pd.Series) -> pd.Series:
    return n.notna() & np.isfinite(n) & (np.floor(n) == n)


# ---- rules per source (pure) -------------------------------------------------------------------
def transform_orders(raw: pd.DataFrame, ctx: TransformContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Orders: reference, email, product (known), quantity ≥ 1, price ≥ 0, date; total = quantity × unit_price."""
    ref = _text(raw, "order_reference")
    email = _text(raw, "customer_email").str.lower()
    product_text, qty_text, price_text = _text(raw, "product_id"), _text(raw, "quantity"), _text(raw, "unit_price")
    # Exact parsing from text (include/parsing.py): integers as integer text, money as decimal text in cents.
    product = parse_integer(product_text, 1, INT4_MAX)
    qty = parse_integer(qty_text, 1, INT4_MAX)
    price = parse_decimal(price_text, scale=2, precision=12)
    date_text = _text(raw, "order_date")
    parsed_date = _to_timestamp(date_text, ctx.date_formats)
    date = parsed_date.values
    status = _text(raw, "status").str.lower()
    payment = _text(raw, "payment_method").str.lower()

    r = _Rules(raw.index)
    r.check(ref != "", "missing_order_reference", "order_reference")
    r.check(email_series_valid(email), "invalid_email", "customer_email")
    r.check(product.ok, "invalid_product_id", "product_id")
    known = np.fromiter(ctx.known_product_ids, dtype="int64", count=len(ctx.known_product_ids))
    r.check(product.units.isin(known), "unknown_product", "product_id")
    r.check(qty.ok, "invalid_quantity", "quantity")
    r.check(price.ok | (price.reason != "too_many_decimals"), "too_many_decimals", "unit_price")
    r.check(price.ok & (price.units >= 0), "invalid_unit_price", "unit_price")
    # numeric(14,2): total cents < 10^14, compared without overflow (quantity ≤ 2^31, cents < 10^12).
    r.check(price.units <= (TOTAL_CENTS_LIMIT - 1) // qty.units.clip(lower=1), "total_amount_out_of_range", "quantity")
    r.check(
        date.notna(),
        "invalid_order_date",
        "order_date",
        _date_details(date_text, parsed_date, "order_date", ctx.date_formats),
    )
    r.check(status != "", "missing_status", "status")

    ok = ~r.failed
    cents = price.units[ok]
    valid = pd.DataFrame(
        {
            "order_reference": ref[ok],
            "customer_email": email[ok],
            "product_id": product.units[ok],
            "quantity": qty.units[ok],
            "unit_price": price.text(2)[ok],
            "total_amount": units_to_text(cents * qty.units[ok], 2),
            "order_date": date[ok],
            "status": status[ok],
            "payment_method": payment[ok].where(payment[ok] != ""),
            LINE_COLUMN: raw.loc[ok, LINE_COLUMN],
        }
    )
    # The values a reject sentence repeats (missing fields have nothing to show; bad dates get _date_details).
    values = {"product_id": product_text, "quantity": qty_text, "unit_price": price_text}
    return valid, _rejects(raw, r, "orders", ctx, values)


def transform_sessions(raw: pd.DataFrame, ctx: TransformContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sessions: id, email, start, end ≥ start, pages ≥ 0; duration, item counts, converted, IP network."""
    sid = _text(raw, "session_id")
    email = _text(raw, "customer_email").str.lower()
    start_text, end_text = _text(raw, "session_start"), _text(raw, "session_end")
    start_parsed, end_parsed = _to_timestamp(start_text, ctx.date_formats), _to_timestamp(end_text, ctx.date_formats)
    start, end = start_parsed.values, end_parsed.values
    pages = parse_integer(_text(raw, "pages_viewed"), 0, INT4_MAX)
    viewed_ok, viewed, viewed_n = _json_list(
        raw["items_viewed"] if "items_viewed" in raw else pd.Series(None, index=raw.index)
    )
    cart_ok, cart, cart_n = _json_list(
        raw["items_added_to_cart"] if "items_added_to_cart" in raw else pd.Series(None, index=raw.index)
    )
    conv_ok, converted = _booleans(_text(raw, "conversion"))

    r = _Rules(raw.index)
    r.check(sid != "", "missing_session_id", "session_id")
    r.check(email_series_valid(email), "invalid_email", "customer_email")
    r.check(
        start.notna(),
        "invalid_session_start",
        "session_start",
        _date_details(start_text, start_parsed, "session_start", ctx.date_formats),
    )
    r.check(
        end.notna() | (end_text == ""),
        "invalid_session_end",
        "session_end",
        _date_details(end_text, end_parsed, "session_end", ctx.date_formats),
    )
    r.check(end.isna() | (end >= start), "session_end_before_start", "session_end")
    r.check(pages.ok, "invalid_pages_viewed", "pages_viewed")
    r.check(end.isna() | ((end - start).dt.total_seconds() <= INT4_MAX), "session_too_long", "session_end")
    r.check(viewed_ok, "invalid_items_viewed", "items_viewed")
    r.check(cart_ok, "invalid_items_added_to_cart", "items_added_to_cart")
    r.check(conv_ok, "invalid_conversion", "conversion")

    ok = ~r.failed
    duration = (end[ok] - start[ok]).dt.total_seconds()
    valid = pd.DataFrame(
        {
            "session_id": sid[ok],
            "customer_email": email[ok],
            "session_start": start[ok],
            "session_end": end[ok],
            "duration_seconds": duration.round().astype("Int64"),
            "pages_viewed": pages.units[ok],
            "items_viewed": viewed[ok],
            "items_added_to_cart": cart[ok],
            "items_viewed_count": viewed_n[ok],
            "items_added_to_cart_count": cart_n[ok],
            "converted": converted[ok],
            "device_type": _text(raw, "device_type")[ok].str.lower().replace("", None),
            "browser": _text(raw, "browser")[ok].replace("", None),
            "ip_network": ip_networks(_text(raw, "ip_address")[ok], ctx.ip_policy),
            LINE_COLUMN: raw.loc[ok, LINE_COLUMN],
        }
    )
    values = {
        "session_end": end_text,
        "pages_viewed": _text(raw, "pages_viewed"),
        "items_viewed": _text(raw, "items_viewed"),
        "items_added_to_cart": _text(raw, "items_added_to_cart"),
        "conversion": _text(raw, "conversion"),
    }
    return valid, _rejects(raw, r, "user_sessions", ctx, values)


def transform_products(raw: pd.DataFrame, ctx: TransformContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Products: integer id, non-empty title, price ≥ 0; category trimmed + lower-cased; price tier."""
    pid = parse_integer(_text(raw, "id"), 1, INT4_MAX)
    title = _text(raw, "title")
    price = parse_decimal(_text(raw, "price"), scale=2, precision=12)
    rate = _to_number(_text(raw, "rating_rate"))
    count = _to_number(_text(raw, "rating_count"))

    r = _Rules(raw.index)
    r.check(pid.ok, "invalid_product_id", "id")
    r.check(title != "", "missing_title", "title")
    r.check(price.ok | (price.reason != "too_many_decimals"), "too_many_decimals", "price")
    r.check(price.ok & (price.units >= 0), "invalid_price", "price")

    ok = ~r.failed
    valid = pd.DataFrame(
        {
            "product_id": pid.units[ok],
            "name": title[ok],
            "description": _text(raw, "description")[ok].replace("", None),
            "price": price.text(2)[ok],
            "category": _text(raw, "category")[ok].str.lower().replace("", None),
            # Tier boundaries are compared in cents (exact for any 2-decimal max_price).
            "price_tier": price_tier(price.units[ok] / 100, ctx.price_tiers),
            "image_url": _text(raw, "image")[ok].replace("", None),
            # The rating is decoration, not a rule: one outside numeric(4,2) / integer is stored as NULL.
            "rating_rate": rate[ok].round(2).where((rate[ok].round(2) >= 0) & (rate[ok].round(2) < 100)),
            "rating_count": count[ok]
            .where(_integral(count[ok]) & (count[ok] >= 0) & (count[ok] <= INT4_MAX))
            .astype("Int64"),
            LINE_COLUMN: raw.loc[ok, LINE_COLUMN],
        }
    )
    values = {"id": _text(raw, "id"), "title": title, "price": _text(raw, "price")}
    return valid, _rejects(raw, r, "products", ctx, values)


def transform_customers(raw: pd.DataFrame, ctx: TransformContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Customers: valid email; names trimmed, country upper-cased (blank → NULL); signup_date a date when present."""
    email = _text(raw, "email").str.lower()
    signup_text = _text(raw, "signup_date")
    signup_parsed = _to_timestamp(signup_text, ctx.date_formats)
    signup = signup_parsed.values

    r = _Rules(raw.index)
    r.check(email_series_valid(email), "invalid_email", "email")
    r.check(
        signup.notna() | (signup_text == ""),
        "invalid_signup_date",
        "signup_date",
        _date_details(signup_text, signup_parsed, "signup_date", ctx.date_formats),
    )

    ok = ~r.failed
    valid = pd.DataFrame(
        {
            "email": email[ok],
            "first_name": _text(raw, "first_name")[ok].replace("", None),
            "last_name": _text(raw, "last_name")[ok].replace("", None),
            "country": _text(raw, "country")[ok].str.upper().replace("", None),
            "signup_date": signup[ok].dt.strftime("%Y-%m-%d"),
            LINE_COLUMN: raw.loc[ok, LINE_COLUMN],
        }
    )
    return valid, _rejects(raw, r, "customers", ctx, {"signup_date": signup_text})


RULES: dict[str, Callable[[pd.DataFrame, TransformContext], tuple[pd.DataFrame, pd.DataFrame]]] = {
    "products": transform_products,
    "customers": transform_customers,
    "orders": transform_orders,
    "user_sessions": transform_sessions,
}


# ---- orchestration over staged files ------------------------------------------------------------
@dataclass
class SourceResult:
    """Counts and files of one transformed source."""

    source: str
    source_file: str
    clean_path: str
    rejects_path: str
    rows_read: int = 0
    rows_valid: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def rows_loaded(self) -> int:
        return self.rows_valid - self.rows_duplicate

    @property
    def reject_rate(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0

    def to_dict(self) -> TransformedSource:
        return {
            "source": self.source,
            "source_file": self.source_file,
            "clean_path": self.clean_path,
            "rejects_path": self.rejects_path,
            "rows_read": self.rows_read,
            "rows_valid": self.rows_valid,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "rows_duplicate": self.rows_duplicate,
            "top_reasons": dict(self.reasons.most_common(5)),
        }


def _split_marked(raw: pd.DataFrame, source: str, ctx: TransformContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows for the rules, rejects) where the extract already marked a row broken (JSON type, encoding)."""
    reason_col, field_col, detail_col = REJECT_MARK_COLUMNS
    if reason_col not in raw:
        return raw, pd.DataFrame(columns=REJECT_COLUMNS)
    marked = raw[reason_col].notna()
    rest = raw.loc[~marked].drop(columns=list(REJECT_MARK_COLUMNS))
    if not marked.any():
        return rest, pd.DataFrame(columns=REJECT_COLUMNS)
    sub = raw.loc[marked]
    if "_raw" in sub:
        raw_json = sub["_raw"].astype(object)
    else:
        cols = [c for c in sub.columns if c != LINE_COLUMN and c not in REJECT_MARK_COLUMNS]
        raw_json = pd.Series(
            [
                json.dumps(dict(zip(cols, row, strict=True)), ensure_ascii=False)
                for row in sub[cols].itertuples(index=False)
            ],
            index=sub.index,
        )
    rejects = pd.DataFrame(
        {
            "source": source,
            "source_file": ctx.source_file,
            "line_number": sub[LINE_COLUMN].astype("int64"),
            "reason": sub[reason_col].astype(str),
            "field": sub[field_col].astype(str),
            "detail": sub[detail_col].astype(str),
            "raw_record": raw_json,
        }
    ).reset_index(drop=True)
    return rest, rejects


def _to_arrow(df: pd.DataFrame, columns: list[str]) -> pa.Table:
    out = {}
    for c in [*columns, LINE_COLUMN]:
        s = df[c]
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            out[c] = pc.cast(
                pa.array(s).cast(pa.timestamp("us", tz="UTC")), pa.string()
            )  # e.g. 2026-01-02 09:12:13.000000Z
        elif isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
            out[c] = pa.array(s.array).cast(pa.string())  # already Arrow: no Python objects per value
        else:
            out[c] = pa.array(s.astype(object).where(s.notna(), None), from_pandas=True)
    return pa.table(out)


def _rewrite_part(part: str | Path, frame: pd.DataFrame, schema: pa.Schema) -> None:
    """Atomically replace the parquet part `part` with `frame` (same schema)."""
    path = Path(part)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), tmp)
    os.replace(tmp, path)


class DataTransformer:
    """Transform the staged parts of each source into clean + rejects CSV files under `run_dir/transform`."""

    def __init__(
        self, settings: Settings, run_dir: Path, suppression: tuple[frozenset[str], bytes | None] = (frozenset(), None)
    ):
        self.settings = settings
        self.run_dir = Path(run_dir)
        # Erased customers (include/privacy.py): their addresses become the token address before any rule runs.
        self.suppressed_tokens, self.privacy_key = suppression

    def transform_source(
        self,
        source: str,
        manifest: Mapping[str, Any],
        known_product_ids: frozenset[int] = frozenset(),
        tag: str | None = None,
    ) -> SourceResult:
        """Run the rules of `source` over its staged parts (one chunk in memory at a time).

        Duplicates (several rows of one key) are not decided here: the load's ``DISTINCT ON`` keeps the
        last version across all files of the run and counts the others, so memory stays flat.
        """
        out = self.run_dir / "transform"
        out.mkdir(parents=True, exist_ok=True)
        stem = f"{source}.{tag}" if tag else source
        result = SourceResult(
            source, str(manifest["file"]), str(out / f"{stem}.clean.csv"), str(out / f"{stem}.rejects.csv")
        )
        ctx = TransformContext(
            str(manifest["file"]),
            self.settings.price_tiers,
            self.settings.ip_policy,
            known_product_ids,
            self.settings.sources[source].date_formats,
        )
        rule = RULES[source]
        writer: pacsv.CSVWriter | None = None
        first_reject = True
        try:
            for part in manifest["parts"]:
                part_table = pq.read_table(part)
                raw = part_table.to_pandas()
                if self.privacy_key:
                    from include import privacy  # here: privacy imports the loader, which imports this module

                    if source in privacy.EMAIL_COLUMNS:
                        suppressed = privacy.suppress(
                            raw, privacy.EMAIL_COLUMNS[source], self.suppressed_tokens, self.privacy_key
                        )
                        if suppressed is not raw:
                            # An erased address in a (reprocessed) file: the staged extract part is rewritten
                            # too, so staging never keeps it (a retry reads the token address: same result).
                            _rewrite_part(part, suppressed, part_table.schema)
                        raw = suppressed
                result.rows_read += len(raw)
                raw, marked = _split_marked(raw, source, ctx)
                valid, rejected = rule(raw, ctx)
                if not marked.empty:
                    rejected = pd.concat([marked, rejected], ignore_index=True)
                result.rows_valid += len(valid)
                result.rows_rejected += len(rejected)
                result.reasons.update(rejected["reason"].tolist())
                table = _to_arrow(valid, CLEAN_COLUMNS[source])
                if writer is None:
                    writer = pacsv.CSVWriter(
                        result.clean_path,
                        table.schema,
                        write_options=pacsv.WriteOptions(include_header=True, quoting_style="needed"),
                    )
                writer.write_table(table)
                rejected.to_csv(
                    result.rejects_path, mode="w" if first_reject else "a", header=first_reject, index=False
                )
                first_reject = False
        finally:
            if writer is not None:
                writer.close()
        if writer is None:  # no parts: empty files keep the loader's contract simple
            pd.DataFrame(columns=[*CLEAN_COLUMNS[source], LINE_COLUMN]).to_csv(result.clean_path, index=False)
        if first_reject:
            pd.DataFrame(columns=REJECT_COLUMNS).to_csv(result.rejects_path, index=False)
        log.info(
            "transformed %s (%s): read=%d valid=%d rejected=%d reasons=%s",
            source,
            result.source_file,
            result.rows_read,
            result.rows_valid,
            result.rows_rejected,
            dict(result.reasons.most_common(5)),
        )
        return result

    def transform_all(
        self, manifests: Mapping[str, Mapping[str, Any]], existing_product_ids: Iterable[int] = ()
    ) -> dict[str, SourceResult]:
        """Transform every source (products first: orders need their ids) and apply the reject-rate guard.

        Raises:
            RejectRateExceeded: a source's reject rate is above transform.max_reject_rate.
        """
        results: dict[str, SourceResult] = {}
        results["products"] = self.transform_source("products", manifests["products"])
        run_ids = pd.read_csv(results["products"].clean_path, usecols=["product_id"])["product_id"]
        known = frozenset(int(x) for x in run_ids) | frozenset(int(x) for x in existing_product_ids)
        for source in (s.name for s in entities.SOURCES if s.name != "products"):
            results[source] = self.transform_source(source, manifests[source], known)
        check_reject_rates(results, self.settings.max_reject_rate)
        return results


def check_reject_rates(results: Mapping[str, SourceResult], limit: float) -> None:
    """Raise RejectRateExceeded naming every source above `limit`, its rate and top reasons."""
    bad = [r for r in results.values() if r.reject_rate > limit]
    if bad:
        parts = [
            f"{r.source} ({r.source_file}): {r.rows_rejected}/{r.rows_read} rows rejected = {r.reject_rate:.1%} > {limit:.1%}; "
            f"top reasons {dict(r.reasons.most_common(3))}"
            for r in bad
        ]
        raise RejectRateExceeded("reject-rate guard: nothing loaded. " + " | ".join(parts))
