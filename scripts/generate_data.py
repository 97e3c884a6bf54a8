"""Deterministic generator of realistic e-commerce input files for the ETL.

Writes four files into an output directory:

- ``orders.csv``          one order line per row (``ORD-000123``, email, product, quantity, price, date, status,
                          payment method)
- ``user_sessions.json``  a JSON array (or JSON Lines) of browsing sessions
- ``customers.csv``       the customer list (orders/sessions also use guest emails that are not in it)
- ``products.json``       products in the Fake Store API format

plus ``manifest.json`` (the counts returned by :func:`generate`: rows, deliberate defects, quirks) and
``README.md`` (the same counts, for humans).

Determinism: the output depends only on the arguments. Every source (and every chunk of a large source)
draws from its own ``numpy.random.Generator`` seeded with ``(seed, source, chunk)``; dates are spread over
the ``WINDOW_DAYS`` days before the fixed ``REFERENCE_DATE``, never "now".

Speed and memory: rows are built column-wise with numpy (``StringDType`` string operations, no per-row
Python) and written in chunks of at most ``CHUNK_ROWS`` rows, so 1,000,000 orders + 1,000,000 sessions take
seconds and a bounded amount of memory.

Defects (``defects=True``, the default): a small, exactly counted number of rows per source breaks exactly
one validation rule each (see ``*_DEFECT_RATES``); duplicate keys are repeated on a *later* line of the
same file with changed content (the last one wins). Quirks that stay valid after trimming and
lower-casing (mixed-case statuses, padded emails, string booleans, ...) are always present and counted
separately. The files are never structurally damaged (column counts, quoting and JSON syntax are correct).

CLI::

    .venv/bin/python -m scripts.generate_data --out data/raw
    .venv/bin/python -m scripts.generate_data --out /tmp/bench --orders 1000000 --sessions 1000000
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from include.entities import source  # the input headers: one definition, the entity registry

log = logging.getLogger(__name__)

ORDER_COLUMNS = source("orders").input_fields
CUSTOMER_COLUMNS = source("customers").input_fields
SESSION_FIELDS = source("user_sessions").input_fields

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = ROOT / "data" / "raw"

REFERENCE_DATE = "2026-11-01"  # fixed "today" of the data; dates fall in the WINDOW_DAYS days before it
WINDOW_DAYS = 90
LARGE_THRESHOLD = 100_000  # orders or sessions at or above this switch to large mode
CHUNK_ROWS = 100_000  # rows built and written at a time (part of the determinism contract)

SMALL_DEFAULTS = {"customers": 40, "products": 40}
LARGE_DEFAULTS = {"customers": 50_000, "products": 1_000}

ORDERS_FILE = "orders.csv"
SESSIONS_FILE = "user_sessions.json"
CUSTOMERS_FILE = "customers.csv"
PRODUCTS_FILE = "products.json"
MANIFEST_FILE = "manifest.json"
README_FILE = "README.md"


PRODUCT_FIELDS = ("id", "title", "price", "description", "category", "image", "rating")

STATUSES = ("pending", "processing", "shipped", "delivered", "cancelled", "refunded")
PAYMENT_METHODS = ("credit_card", "paypal", "debit_card", "bank_transfer", "apple_pay")
DEVICE_TYPES = ("desktop", "mobile", "tablet")
BROWSERS = ("Chrome", "Safari", "Firefox", "Edge", "Samsung Internet", "Opera")
CATEGORIES = ("electronics", "jewelery", "men's clothing", "women's clothing")
ENCODINGS = ("utf-8", "utf-8-sig", "latin-1")
DELIMITERS = {",": ",", ";": ";", "|": "|", "\t": "\t", "\\t": "\t", "tab": "\t"}

# Deliberate defects: rate per row (at least one of each when the source has enough rows). Each defective
# row breaks exactly one rule; the duplicate kinds are counted as duplicates, not rejects.
ORDER_DEFECT_RATES = {
    "missing_order_reference": 0.004,
    "invalid_email": 0.004,
    "quantity_zero": 0.004,
    "quantity_not_numeric": 0.004,
    "negative_unit_price": 0.004,
    "unparseable_order_date": 0.004,
    "unknown_product_id": 0.004,
}
ORDER_DUPLICATE_RATE = 0.006
SESSION_DEFECT_RATES = {
    "missing_session_id": 0.005,
    "invalid_email": 0.005,
    "session_end_before_start": 0.005,
    "negative_pages_viewed": 0.005,
}
SESSION_DUPLICATE_RATE = 0.005
CUSTOMER_DEFECT_RATES = {"invalid_email": 0.001}
CUSTOMER_DUPLICATE_RATE = 0.001
PRODUCT_DEFECT_RATES = {"missing_title": 0.002, "negative_price": 0.002}
DUPLICATE_KIND = {
    "orders": "duplicate_order_reference",
    "user_sessions": "duplicate_session_id",
    "customers": "duplicate_email",
    "products": "duplicate_id",
}
MIN_ROWS_FOR_DEFECTS = {"orders": 50, "user_sessions": 50, "customers": 10, "products": 10}

INVALID_EMAILS = ("not-an-email", "john.doe@", "@example.com", "jane@@example.com", "mary.smith.example.com")
UNPARSEABLE_DATES = ("not-a-date", "2026-13-45T10:00:00", "31/02/2026 10:00", "2026-02-30T08:15:00", "yesterday")
NON_NUMERIC_QUANTITIES = ("abc", "two")

GUEST_RATE = {"orders": 0.06, "user_sessions": 0.10}
EMAIL_VARIANT_RATE = 0.02  # valid emails written upper-case, capitalised or padded with spaces
MESSY_RATE = 0.03  # statuses / payment methods with stray spaces or mixed case
DATE_FORMAT_P = (0.94, 0.04, 0.02)  # 2026-10-03T14:22:05 | 2026-10-03 14:22:05 | 2026-10-03T14:22:05Z
DISCOUNT_RATE = 0.08
MAX_ITEMS = 10

EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "inbox.example", "webmail.example")
FIRST_NAMES = (
    "Emma",
    "Liam",
    "Olivia",
    "Noah",
    "Ava",
    "Lucas",
    "Sophia",
    "Mateo",
    "Mia",
    "Elijah",
    "Chloé",
    "José",
    "Zoë",
    "Renée",
    "Björn",
    "François",
    "Søren",
    "Inès",
    "Jürgen",
    "Ana",
    "Marco",
    "Giulia",
    "Hannah",
    "Jonas",
    "Léa",
    "Hugo",
    "Sofía",
    "Diego",
    "Aisha",
    "Omar",
    "Yuki",
    "Priya",
    "Arjun",
    "Mei",
    "Fatima",
    "Lars",
    "Ingrid",
    "Siobhán",
    "Seán",
    "Maja",
    "Tomás",
    "Nora",
    "Ethan",
    "Grace",
    "Oscar",
    "Amelia",
    "Felix",
    "Clara",
)
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Müller",
    "García",
    "Martínez",
    "Rossi",
    "Dubois",
    "Nielsen",
    "O'Brien",
    "Kowalski",
    "Novak",
    "Schmidt",
    "Fernández",
    "López",
    "Bianchi",
    "Lefèvre",
    "Jansen",
    "de Vries",
    "Andersson",
    "Nakamura",
    "Patel",
    "Khan",
    "Silva",
    "Costa",
    "Brown",
    "Wilson",
    "Taylor",
    "Nguyen",
    "Kim",
    "Murphy",
    "Gómez-Ruiz",
    "Smith, Jr.",
    "Becker",
    "Moreau",
    "Eriksson",
    "Ferreira",
    "Walsh",
    "Hoffmann",
    "Romano",
    "Okafor",
)
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "CA", "AU", "BR", "IE", "SE", "JP")
COUNTRY_P = (0.30, 0.12, 0.12, 0.10, 0.06, 0.06, 0.05, 0.06, 0.04, 0.03, 0.02, 0.02, 0.02)
_ASCII_FOLD = str.maketrans({"ø": "o", "Ø": "O", "ß": "ss", "æ": "ae", "Æ": "AE", "đ": "d", "ł": "l"})

PRODUCT_CATALOGUE: dict[str, tuple[tuple[str, ...], tuple[tuple[str, float, float], ...]]] = {
    "electronics": (
        ("Acme", "Voltix", "Nordlicht", "Sonara", "Kiroshi", "Pixelon", "Terabyte", "Luma"),
        (
            ("Wireless Noise-Cancelling Headphones", 49, 399),
            ("27-inch 4K Monitor", 199, 799),
            ("Portable SSD 1TB", 59, 199),
            ("Mechanical Keyboard", 39, 179),
            ("Smartwatch", 79, 499),
            ("Bluetooth Speaker", 19, 149),
            ("USB-C Charger 65W", 15, 59),
            ("Gaming Laptop 16-inch", 799, 1000),
            ("Action Camera", 99, 449),
            ("Wireless Mouse", 9, 69),
            ("External Hard Drive 4TB", 79, 159),
            ("Tablet 11-inch", 229, 899),
        ),
    ),
    "jewelery": (
        ("Aurelia", "Lumière", "Goldwyn", "Pierra", "Stellaris"),
        (
            ("Sterling Silver Infinity Ring", 15, 120),
            ("18K Gold Plated Hoop Earrings", 12, 90),
            ("Freshwater Pearl Necklace", 40, 300),
            ("Diamond Solitaire Pendant", 250, 1000),
            ("Rose Gold Charm Bracelet", 20, 150),
            ("Titanium Wedding Band", 60, 400),
            ("Stainless Steel Stud Earrings", 5, 30),
            ("Sapphire Cocktail Ring", 180, 950),
        ),
    ),
    "men's clothing": (
        ("Northway", "Fjellwear", "Urban Thread", "Harbor & Co", "Redwood"),
        (
            ("Slim Fit Cotton T-Shirt", 8, 35),
            ("Casual Denim Jacket", 39, 120),
            ("Wool Blend Overcoat", 79, 149),
            ("Chino Trousers", 25, 70),
            ("Hooded Sweatshirt", 20, 60),
            ("Oxford Button-Down Shirt", 22, 65),
            ("Running Shorts", 9, 35),
            ("Leather Belt", 12, 45),
        ),
    ),
    "women's clothing": (
        ("Bellamie", "Sora", "Linea", "Marisol", "Opaline"),
        (
            ("Floral Summer Dress", 19, 89),
            ("Rain Jacket with Hood", 35, 120),
            ("High-Waist Skinny Jeans", 25, 79),
            ("Cashmere Crew Sweater", 59, 149),
            ("Short Sleeve V-Neck Top", 6, 29),
            ("Pleated Midi Skirt", 22, 69),
            ("Yoga Leggings", 12, 48),
            ("Faux Leather Moto Biker Jacket", 39, 110),
        ),
    ),
}
CATEGORY_P = (0.30, 0.20, 0.25, 0.25)
PRODUCT_SENTENCES = (
    "Designed for everyday use and built to last.",
    "A customer favourite, now in a refreshed design.",
    "Backed by a two-year warranty.",
    "Lightweight, comfortable and easy to care for.",
    "Ships in recyclable packaging.",
    "Pairs well with the rest of the collection.",
    "Crafted from carefully selected materials.",
    "Free returns within 30 days.",
)

# Status probabilities by order age (< 2 days, < 7 days, older), columns in STATUSES order.
STATUS_P_BY_AGE = np.array(
    [
        [0.35, 0.45, 0.12, 0.00, 0.08, 0.00],
        [0.03, 0.15, 0.45, 0.27, 0.08, 0.02],
        [0.00, 0.01, 0.04, 0.80, 0.08, 0.07],
    ]
)
PAYMENT_P = (0.45, 0.22, 0.18, 0.05, 0.10)
QUANTITY_P = (0.60, 0.22, 0.10, 0.05, 0.03)  # 1..5
DEVICE_P = (0.45, 0.45, 0.10)
BROWSER_P_BY_DEVICE = np.array(
    [  # rows: DEVICE_TYPES, columns: BROWSERS
        [0.62, 0.10, 0.12, 0.14, 0.00, 0.02],
        [0.55, 0.35, 0.02, 0.00, 0.08, 0.00],
        [0.40, 0.55, 0.05, 0.00, 0.00, 0.00],
    ]
)
HOUR_WEIGHTS = np.array([2, 1, 1, 1, 1, 2, 3, 5, 6, 7, 8, 9, 10, 10, 9, 8, 8, 9, 11, 13, 14, 12, 8, 4], dtype=float)
WEEKDAY_WEIGHTS = np.array([1.0, 0.95, 0.95, 1.0, 1.1, 1.25, 1.2])  # Monday .. Sunday
IPV4_FIRST_OCTETS = np.array([o for o in range(1, 224) if o not in (10, 100, 127, 169, 172, 192, 198, 203)])

SD = np.dtypes.StringDType()
_SOURCE_IDS = {"customers": 1, "products": 2, "orders": 3, "user_sessions": 4}


class GenerationError(ValueError):
    """Invalid arguments for the generator."""


# --------------------------------------------------------------------------------------------------- helpers


def _rng(seed: int, source: str, chunk: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, _SOURCE_IDS[source], chunk])


def _defect_count(rows: int, rate: float, source: str) -> int:
    if rows < MIN_ROWS_FOR_DEFECTS[source]:
        return 0
    return max(1, math.floor(rows * rate + 0.5))


def _cat(*parts: Any) -> np.ndarray:
    """Element-wise concatenation of string arrays and str scalars (at least one array)."""
    acc = parts[0]
    for p in parts[1:]:
        acc = np.strings.add(acc, p)
    return acc


def _table(values: Sequence[str]) -> np.ndarray:
    return np.array(list(values), dtype=SD)


def _int_str(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.int64).astype(SD)


def _cents_str(cents: np.ndarray) -> np.ndarray:
    """Integer cents -> '12.30' / '-12.30'."""
    cents = np.asarray(cents, dtype=np.int64)
    a = np.abs(cents)
    out = _cat(_int_str(a // 100), ".", np.strings.zfill(_int_str(a % 100), 2))
    neg = cents < 0
    if neg.any():
        out[neg] = np.strings.add("-", out[neg])
    return out


def _timestamps_str(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds -> 'YYYY-MM-DDTHH:MM:SS'."""
    return np.datetime_as_string(np.asarray(seconds, dtype="datetime64[s]"), unit="s").astype(SD)


def _choice_by_row(rng: np.random.Generator, group: np.ndarray, p_matrix: np.ndarray) -> np.ndarray:
    """One draw per row from the categorical distribution p_matrix[group[row]]."""
    cdf = np.cumsum(p_matrix, axis=1)
    cdf[:, -1] = 1.0
    u = rng.random(len(group))
    return (u[:, None] >= cdf[group]).sum(axis=1)


def _fold(name: str) -> str:
    """ASCII local-part fragment of a name: 'Søren' -> 'soren', "O'Brien" -> 'obrien'."""
    s = unicodedata.normalize("NFKD", name.translate(_ASCII_FOLD)).encode("ascii", "ignore").decode()
    return "".join(ch for ch in s.lower() if ch.isalnum())


def _email_variant(email: str, kind: int) -> str:
    """Valid after trim + lower-case: 1 upper-case, 2 capitalised, 3 padded with spaces."""
    if kind == 1:
        return email.upper()
    if kind == 2:
        local, _, domain = email.partition("@")
        return ".".join(p.capitalize() for p in local.split(".")) + "@" + domain.capitalize()
    if kind == 3:
        return f"  {email} "
    return email


def _messy_forms(value: str) -> tuple[str, ...]:
    """The clean value then four stray-space / mixed-case forms of it."""
    return value, f" {value.title()} ", value.upper(), value.title(), f"{value} "


def _chunk_sizes(rows: int, chunk_rows: int) -> list[int]:
    k = max(1, math.ceil(rows / chunk_rows))
    return [rows // k + (1 if i < rows % k else 0) for i in range(k)]


def _share(total: int, start: int, end: int, rows: int) -> int:
    """The part of `total` that falls in rows [start, end) of `rows` (exact over all chunks)."""
    return (total * end) // rows - (total * start) // rows if rows else 0


def _special_positions(
    rng: np.random.Generator, n: int, kinds: dict[str, int], dups: int
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Disjoint row positions: duplicate originals (first half), their repeats (second half), defects."""
    half = n // 2
    if dups > half or sum(kinds.values()) + 2 * dups > n:
        raise GenerationError(f"too many defects ({sum(kinds.values())} + {dups} duplicates) for {n} rows")
    originals = np.sort(rng.choice(half, dups, replace=False)) if dups else np.empty(0, np.int64)
    repeats = np.sort(rng.choice(np.arange(half, n), dups, replace=False)) if dups else np.empty(0, np.int64)
    free = np.setdiff1d(np.arange(n), np.concatenate([originals, repeats]))
    chosen = rng.choice(free, sum(kinds.values()), replace=False)
    out: dict[str, np.ndarray] = {}
    i = 0
    for kind, count in kinds.items():
        out[kind] = np.sort(chosen[i : i + count])
        i += count
    return originals, repeats, out


def _time_cdf() -> tuple[np.datetime64, np.ndarray]:
    """Hourly bins of the window weighted by hour of day, weekday and a mild growth trend."""
    start = np.datetime64(REFERENCE_DATE, "D") - np.timedelta64(WINDOW_DAYS, "D")
    days = np.arange(WINDOW_DAYS)
    weekday = (days + (start.astype("datetime64[D]").astype(np.int64) + 3) % 7) % 7  # 1970-01-01 was a Thursday
    w = (WEEKDAY_WEIGHTS[weekday] * (1.0 + 0.25 * days / WINDOW_DAYS))[:, None] * HOUR_WEIGHTS[None, :]
    cdf = np.cumsum(w.ravel())
    return start.astype("datetime64[s]"), cdf / cdf[-1]


def _sorted_times(rng: np.random.Generator, n: int, start: int, total: int) -> np.ndarray:
    """n ascending epoch seconds: the rows [start, start+n) of `total` rows spread over the window."""
    window_start, cdf = _time_cdf()
    u = (start + n * np.sort(rng.random(n))) / total
    b = np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)
    lo = np.where(b > 0, cdf[np.maximum(b - 1, 0)], 0.0)
    frac = np.clip((u - lo) / np.maximum(cdf[b] - lo, 1e-300), 0.0, 0.999999)
    return window_start.astype(np.int64) + b * 3600 + (frac * 3600).astype(np.int64)


def _csv_field(col: np.ndarray, delimiter: str) -> np.ndarray:
    """Quote (RFC 4180) the fields that need it: delimiter, quote, line break, or leading/trailing spaces."""
    needs = np.strings.find(col, delimiter) >= 0
    for ch in ('"', "\n", "\r"):
        needs |= np.strings.find(col, ch) >= 0
    needs |= np.strings.str_len(col) != np.strings.str_len(np.strings.strip(col))
    if needs.any():
        col = col.copy()
        col[needs] = _cat('"', np.strings.replace(col[needs], '"', '""'), '"')
    return col


def _csv_text(columns: Sequence[np.ndarray], delimiter: str, newline: str) -> str:
    fields = [_csv_field(np.asarray(c, dtype=SD), delimiter) for c in columns]
    acc = fields[0]
    for f in fields[1:]:
        acc = _cat(acc, delimiter, f)
    return newline.join(acc.tolist()) + newline if len(acc) else ""


def _json_list(matrix: np.ndarray, lengths: np.ndarray, first: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """'[3, 17, 4]' per row from the first lengths[row] ids of matrix[row] (first/rest: id -> text tables)."""
    acc = np.full(len(lengths), "[", dtype=SD)
    for j in range(matrix.shape[1]):
        m = lengths > j
        if not m.any():
            break
        acc[m] = np.strings.add(acc[m], (first if j == 0 else rest)[matrix[m, j]])
    return np.strings.add(acc, "]")


# -------------------------------------------------------------------------------------------- shared context


@dataclass
class _Context:
    """Pools shared by the order and session generators."""

    n_customers: int  # canonical (valid, distinct) customers; pool rows [0, n_customers)
    n_guests: int  # guest emails; pool rows [n_customers, n_customers + n_guests)
    customer_p: np.ndarray
    email_pool: list[np.ndarray]  # by variant: plain, upper, capitalised, padded
    email_pool_json: list[np.ndarray]
    product_ids: np.ndarray  # valid product ids (orders and sessions reference only these)
    product_p: np.ndarray
    price_cents: np.ndarray  # by product id
    unknown_product_id: int
    guest_used: np.ndarray  # guests seen in a valid order or session row

    def pick_emails(self, rng: np.random.Generator, n: int, guest_rate: float) -> tuple[np.ndarray, np.ndarray]:
        is_guest = rng.random(n) < guest_rate
        idx = rng.choice(self.n_customers, n, p=self.customer_p)
        if self.n_guests:
            idx = np.where(is_guest, self.n_customers + rng.integers(0, self.n_guests, n), idx)
        else:
            rng.integers(0, 1, n)  # keep the stream aligned
        variant = np.where(rng.random(n) < EMAIL_VARIANT_RATE, rng.integers(1, 4, n), 0)
        return idx, variant

    def emails(self, idx: np.ndarray, variant: np.ndarray, as_json: bool) -> np.ndarray:
        pools = self.email_pool_json if as_json else self.email_pool
        out = pools[0][idx]
        for v in (1, 2, 3):
            m = variant == v
            if m.any():
                out[m] = pools[v][idx[m]]
        return out

    def mark_guests(self, idx: np.ndarray, valid: np.ndarray) -> None:
        g = idx[valid & (idx >= self.n_customers)] - self.n_customers
        self.guest_used[g] = True


def _source_summary(
    file: str, rows: int, *, defects: dict[str, int], dup_kind: str, dups: int, quirks: dict[str, int]
) -> dict[str, Any]:
    rejected = sum(defects.values())
    return {
        "file": file,
        "rows": rows,
        "defects": {**defects, dup_kind: dups},
        "rejected": rejected,
        "duplicates": dups,
        "valid": rows - rejected - dups,
        "reject_rate": round(rejected / rows, 4) if rows else 0.0,
        "quirks": quirks,
    }


# ------------------------------------------------------------------------------------------------- customers


def _generate_customers(rows: int, seed: int, defects: bool) -> tuple[list[list[str]], list[str], dict[str, Any]]:
    """Customer rows (as written), the canonical valid emails (distinct) and the summary."""
    rng = _rng(seed, "customers")
    kinds = {k: (_defect_count(rows, r, "customers") if defects else 0) for k, r in CUSTOMER_DEFECT_RATES.items()}
    dups = _defect_count(rows, CUSTOMER_DUPLICATE_RATE, "customers") if defects else 0
    canonical = rows - sum(kinds.values()) - dups
    if canonical < 1:
        raise GenerationError("need at least one customer")

    first = rng.integers(0, len(FIRST_NAMES), canonical)
    last = rng.integers(0, len(LAST_NAMES), canonical)
    domain = rng.integers(0, len(EMAIL_DOMAINS), canonical)
    country = rng.choice(len(COUNTRIES), canonical, p=COUNTRY_P)
    # Signed up before the order window (so no order precedes its customer's signup), more of them recently.
    earliest = np.datetime64("2023-01-01", "D")
    span = (np.datetime64(REFERENCE_DATE, "D") - np.timedelta64(WINDOW_DAYS + 1, "D") - earliest).astype(int)
    signup = np.datetime_as_string(earliest + (span * rng.random(canonical) ** 0.7).astype(int), unit="D")

    seen: dict[str, int] = {}
    emails: list[str] = []
    out_rows: list[list[str]] = []
    for i in range(canonical):
        fn, ln = FIRST_NAMES[first[i]], LAST_NAMES[last[i]]
        local = f"{_fold(fn)}.{_fold(ln)}"
        n = seen.get(f"{local}@{domain[i]}", 0) + 1
        seen[f"{local}@{domain[i]}"] = n
        email = f"{local}{n if n > 1 else ''}@{EMAIL_DOMAINS[domain[i]]}"
        emails.append(email)
        out_rows.append([email, fn, ln, COUNTRIES[country[i]], str(signup[i])])

    # Valid quirks: a few emails written upper-case, capitalised or padded (not the duplicated ones).
    originals = rng.choice(max(1, canonical // 2), dups, replace=False) if dups else np.empty(0, np.int64)
    candidates = np.setdiff1d(np.arange(canonical), originals)
    enough = rows >= MIN_ROWS_FOR_DEFECTS["customers"]
    n_variants = min(len(candidates), max(2, round(canonical * 0.05))) if enough else 0
    for i in rng.choice(candidates, n_variants, replace=False):
        out_rows[i][0] = _email_variant(emails[i], int(rng.integers(1, 4)))

    # Duplicates: a later row repeats an earlier email (the customer moved: other country); last one wins.
    for original in [out_rows[o] for o in originals]:
        copy = list(original)
        copy[3] = COUNTRIES[(COUNTRIES.index(copy[3]) + 1 + int(rng.integers(0, len(COUNTRIES) - 1))) % len(COUNTRIES)]
        at = next(i for i, row in enumerate(out_rows) if row is original)  # earlier copies may have shifted it
        out_rows.insert(int(rng.integers(at + 1, len(out_rows) + 1)), copy)
    for _ in range(kinds["invalid_email"]):
        bad = [
            INVALID_EMAILS[int(rng.integers(0, len(INVALID_EMAILS)))],
            FIRST_NAMES[int(rng.integers(0, len(FIRST_NAMES)))],
            LAST_NAMES[int(rng.integers(0, len(LAST_NAMES)))],
            COUNTRIES[int(rng.integers(0, len(COUNTRIES)))],
            str(signup[int(rng.integers(0, canonical))]),
        ]
        out_rows.insert(int(rng.integers(0, len(out_rows) + 1)), bad)

    summary = _source_summary(
        CUSTOMERS_FILE,
        rows,
        defects=kinds,
        dup_kind=DUPLICATE_KIND["customers"],
        dups=dups,
        quirks={"email_variant_rows": n_variants},
    )
    return out_rows, emails, summary


def _guest_emails(count: int, seed: int, taken: set[str]) -> list[str]:
    """Guest checkout emails: 'jsmith42@…' (no dot in the local part, so never a customer's)."""
    rng = _rng(seed, "customers", 1)
    out: list[str] = []
    seen = set(taken)
    while len(out) < count:
        fn = FIRST_NAMES[int(rng.integers(0, len(FIRST_NAMES)))]
        ln = LAST_NAMES[int(rng.integers(0, len(LAST_NAMES)))]
        email = f"{_fold(fn)[0]}{_fold(ln)}{int(rng.integers(1, 10_000))}@{EMAIL_DOMAINS[int(rng.integers(0, 6))]}"
        if email not in seen:
            seen.add(email)
            out.append(email)
    return out


# -------------------------------------------------------------------------------------------------- products


def _generate_products(rows: int, seed: int, defects: bool) -> tuple[list[dict[str, Any]], np.ndarray, dict[str, Any]]:
    """Fake Store API products, the ids valid products have, and the summary."""
    rng = _rng(seed, "products")
    kinds = {k: (_defect_count(rows, r, "products") if defects else 0) for k, r in PRODUCT_DEFECT_RATES.items()}
    if rows < 1:
        raise GenerationError("need at least one product")
    cats = rng.choice(len(CATEGORIES), rows, p=CATEGORY_P)
    products: list[dict[str, Any]] = []
    for pid in range(1, rows + 1):
        category = CATEGORIES[cats[pid - 1]]
        brands, items = PRODUCT_CATALOGUE[category]
        item, lo, hi = items[int(rng.integers(0, len(items)))]
        brand = brands[int(rng.integers(0, len(brands)))]
        title = (
            f"{brand} Men's {item}"
            if category == "men's clothing"
            else (f"{brand} Women's {item}" if category == "women's clothing" else f"{brand} {item}")
        )
        price = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        cents = int(price) * 100 + (99, 95, 50, 0, int(rng.integers(1, 99)))[int(rng.integers(0, 5))]
        cents = max(cents, 100)
        sentences = rng.choice(len(PRODUCT_SENTENCES), 2, replace=False)
        products.append(
            {
                "id": pid,
                "title": title,
                "price": cents / 100,
                "description": f"{item}. " + " ".join(PRODUCT_SENTENCES[s] for s in sentences),
                "category": category,
                "image": f"https://cdn.shop.example/img/product-{pid}.jpg",
                "rating": {
                    "rate": round(float(np.clip(rng.normal(3.9, 0.7), 1.0, 5.0)), 1),
                    "count": int(min(1000, rng.lognormal(4.5, 1.0))),
                },
            }
        )

    # Valid quirk: categories with stray spaces / capitals.
    n_messy = max(2, round(rows * 0.08)) if rows >= MIN_ROWS_FOR_DEFECTS["products"] else 0
    for i in rng.choice(rows, min(n_messy, rows), replace=False):
        forms = _messy_forms(products[i]["category"])[1:]
        products[i]["category"] = forms[int(rng.integers(0, len(forms)))]

    bad = rng.choice(rows, sum(kinds.values()), replace=False)
    for i in bad[: kinds["missing_title"]]:
        products[i]["title"] = ""
    for i in bad[kinds["missing_title"] :]:
        products[i]["price"] = -products[i]["price"]
    valid_ids = np.setdiff1d(np.arange(1, rows + 1), bad + 1)
    summary = _source_summary(
        PRODUCTS_FILE,
        rows,
        defects=kinds,
        dup_kind=DUPLICATE_KIND["products"],
        dups=0,
        quirks={"messy_category_rows": min(n_messy, rows)},
    )
    return products, valid_ids, summary


# ---------------------------------------------------------------------------------------------------- orders


def _orders_chunk(
    rng: np.random.Generator,
    ctx: _Context,
    n: int,
    *,
    start: int,
    total: int,
    kinds: dict[str, int],
    dups: int,
    ref_width: int,
    delimiter: str,
    newline: str,
    quirks: dict[str, int],
) -> str:
    ts = _sorted_times(rng, n, start, total)
    email_idx, email_var = ctx.pick_emails(rng, n, GUEST_RATE["orders"])
    pid = ctx.product_ids[rng.choice(len(ctx.product_ids), n, p=ctx.product_p)]
    cents = ctx.price_cents[pid]
    discounted = rng.random(n) < DISCOUNT_RATE
    factor = np.array([0.95, 0.9, 0.85, 0.8, 0.75])[rng.integers(0, 5, n)]
    cents = np.where(discounted, np.round(cents * factor).astype(np.int64), cents)
    qty = rng.choice(np.arange(1, 6), n, p=QUANTITY_P)
    age_days = (np.datetime64(REFERENCE_DATE, "s").astype(np.int64) - ts) / 86400
    status = _choice_by_row(rng, np.digitize(age_days, [2, 7]), STATUS_P_BY_AGE)
    payment = rng.choice(len(PAYMENT_METHODS), n, p=PAYMENT_P)
    status_var = np.where(rng.random(n) < MESSY_RATE, rng.integers(1, 5, n), 0)
    payment_var = np.where(rng.random(n) < MESSY_RATE, rng.integers(1, 5, n), 0)
    date_fmt = rng.choice(3, n, p=DATE_FORMAT_P)
    ref_num = np.arange(start + 1, start + n + 1)

    # Duplicates: a later line repeats an earlier order with its status one step further; the last one wins.
    originals, repeats, positions = _special_positions(rng, n, kinds, dups)
    status[originals] = rng.integers(0, 3, len(originals))  # pending, processing or shipped
    status_var[originals] = 0
    for col in (ts, email_idx, email_var, pid, cents, discounted, qty, payment, payment_var, date_fmt, ref_num):
        col[repeats] = col[originals]
    status[repeats] = status[originals] + 1
    status_var[repeats] = 0

    refs = _cat("ORD-", np.strings.zfill(_int_str(ref_num), ref_width))
    emails = ctx.emails(email_idx, email_var, as_json=False)
    pid_s = _int_str(pid)
    qty_s = _int_str(qty)
    price_s = _cents_str(cents)
    dates = _timestamps_str(ts)
    space, utc = date_fmt == 1, date_fmt == 2
    dates[space] = np.strings.replace(dates[space], "T", " ")
    dates[utc] = np.strings.add(dates[utc], "Z")
    status_s = _table([f for s in STATUSES for f in _messy_forms(s)])[status * 5 + status_var]
    payment_s = _table([f for p in PAYMENT_METHODS for f in _messy_forms(p)])[payment * 5 + payment_var]

    def pick(values: Sequence[str], count: int) -> np.ndarray:
        return _table(values)[rng.integers(0, len(values), count)]

    p = positions
    refs[p["missing_order_reference"]] = ""
    emails[p["invalid_email"]] = pick(INVALID_EMAILS, len(p["invalid_email"]))
    qty_s[p["quantity_zero"]] = "0"
    qty_s[p["quantity_not_numeric"]] = pick(NON_NUMERIC_QUANTITIES, len(p["quantity_not_numeric"]))
    price_s[p["negative_unit_price"]] = np.strings.add("-", price_s[p["negative_unit_price"]])
    dates[p["unparseable_order_date"]] = pick(UNPARSEABLE_DATES, len(p["unparseable_order_date"]))
    pid_s[p["unknown_product_id"]] = str(ctx.unknown_product_id)

    valid = np.ones(n, dtype=bool)
    for pos in p.values():
        valid[pos] = False
    ctx.mark_guests(email_idx, valid)
    for key, value in (
        ("guest_email_rows", email_idx >= ctx.n_customers),
        ("email_variant_rows", email_var > 0),
        ("messy_status_rows", status_var > 0),
        ("messy_payment_method_rows", payment_var > 0),
        ("date_space_separator_rows", space),
        ("date_utc_z_rows", utc),
        ("discounted_price_rows", discounted),
    ):
        quirks[key] = quirks.get(key, 0) + int(value.sum())
    return _csv_text([refs, emails, pid_s, qty_s, price_s, dates, status_s, payment_s], delimiter, newline)


def _write_orders(
    path: Path,
    ctx: _Context,
    *,
    rows: int,
    seed: int,
    defects: bool,
    delimiter: str,
    encoding: str,
    newline: str,
    chunk_rows: int,
) -> dict[str, Any]:
    kinds = {k: (_defect_count(rows, r, "orders") if defects else 0) for k, r in ORDER_DEFECT_RATES.items()}
    dups = _defect_count(rows, ORDER_DUPLICATE_RATE, "orders") if defects else 0
    ref_width = max(6, len(str(rows)))
    quirks: dict[str, int] = {}
    with path.open("w", encoding=encoding, newline="") as f:
        f.write(delimiter.join(ORDER_COLUMNS) + newline)
        start = 0
        for c, n in enumerate(_chunk_sizes(rows, chunk_rows) if rows else []):
            end = start + n
            chunk_kinds = {k: _share(v, start, end, rows) for k, v in kinds.items()}
            f.write(
                _orders_chunk(
                    _rng(seed, "orders", c),
                    ctx,
                    n,
                    start=start,
                    total=rows,
                    kinds=chunk_kinds,
                    dups=_share(dups, start, end, rows),
                    ref_width=ref_width,
                    delimiter=delimiter,
                    newline=newline,
                    quirks=quirks,
                )
            )
            start = end
    return _source_summary(
        ORDERS_FILE, rows, defects=kinds, dup_kind=DUPLICATE_KIND["orders"], dups=dups, quirks=quirks
    )


# -------------------------------------------------------------------------------------------------- sessions


def _sessions_chunk(
    rng: np.random.Generator,
    ctx: _Context,
    n: int,
    *,
    start: int,
    total: int,
    kinds: dict[str, int],
    dups: int,
    tables: dict[str, np.ndarray],
    quirks: dict[str, int],
) -> list[str]:
    begin = _sorted_times(rng, n, start, total)
    email_idx, email_var = ctx.pick_emails(rng, n, GUEST_RATE["user_sessions"])
    device = rng.choice(len(DEVICE_TYPES), n, p=DEVICE_P)
    browser = _choice_by_row(rng, device, BROWSER_P_BY_DEVICE)
    viewed_n = np.minimum(rng.poisson(2.5, n), MAX_ITEMS)
    viewed = ctx.product_ids[rng.choice(len(ctx.product_ids), (n, MAX_ITEMS), p=ctx.product_p)]
    cart_n = rng.binomial(viewed_n, 0.2)
    converted = (cart_n > 0) & (rng.random(n) < 0.45)
    pages = viewed_n + rng.poisson(1.5, n) + 1
    end = begin + np.clip(rng.lognormal(math.log(240), 1.0, n) + 20 * pages, 5, 7200).astype(np.int64)
    viewed_null = rng.random(n) < 0.05
    conv_repr = rng.choice(3, n, p=(0.8, 0.1, 0.1))  # JSON boolean | "true"/"false" | 1/0
    ipv6 = rng.random(n) < 0.12
    octets = rng.integers(0, 256, (n, 3))
    first_octet = IPV4_FIRST_OCTETS[rng.integers(0, len(IPV4_FIRST_OCTETS), n)]
    hextets = rng.integers(0, 65536, (n, 6))
    sid_bytes = np.frombuffer(rng.bytes(16 * n).hex().encode("ascii"), dtype="S32").copy()

    # Duplicates: a later line repeats an earlier session, which went on (more pages, later end); last one wins.
    originals, repeats, positions = _special_positions(rng, n, kinds, dups)
    for col in (
        begin,
        email_idx,
        email_var,
        device,
        browser,
        viewed_n,
        viewed,
        cart_n,
        converted,
        pages,
        end,
        viewed_null,
        conv_repr,
        ipv6,
        octets,
        first_octet,
        hextets,
        sid_bytes,
    ):
        col[repeats] = col[originals]
    pages[repeats] += rng.integers(1, 6, len(repeats))
    end[repeats] += rng.integers(30, 600, len(repeats))

    p = positions
    end[p["session_end_before_start"]] = begin[p["session_end_before_start"]] - rng.integers(
        60, 3600, len(p["session_end_before_start"])
    )
    pages[p["negative_pages_viewed"]] = -rng.integers(1, 6, len(p["negative_pages_viewed"]))

    sid = _cat('"', sid_bytes.astype(SD), '"')
    sid[p["missing_session_id"]] = '""'
    emails = ctx.emails(email_idx, email_var, as_json=True)
    emails[p["invalid_email"]] = _table([json.dumps(e) for e in INVALID_EMAILS])[
        rng.integers(0, len(INVALID_EMAILS), len(p["invalid_email"]))
    ]
    viewed_s = _json_list(viewed, viewed_n, tables["id"], tables["id_rest"])
    viewed_s[viewed_null] = "null"
    cart_s = _json_list(viewed, cart_n, tables["id"], tables["id_rest"])
    conv_s = tables["conversion"][conv_repr * 2 + converted]
    octet = tables["octet"]
    ip = _cat(octet[first_octet], ".", octet[octets[:, 0]], ".", octet[octets[:, 1]], ".", octet[octets[:, 2]])
    if ipv6.any():
        hx = tables["hextet"]
        h = hextets[ipv6]
        ip[ipv6] = _cat(
            "2001:db8:",
            hx[h[:, 0]],
            ":",
            hx[h[:, 1]],
            ":",
            hx[h[:, 2]],
            ":",
            hx[h[:, 3]],
            ":",
            hx[h[:, 4]],
            ":",
            hx[h[:, 5]],
        )
    lines = _cat(
        '{"session_id": ',
        sid,
        ', "customer_email": ',
        emails,
        ', "session_start": "',
        _timestamps_str(begin),
        '", "session_end": "',
        _timestamps_str(end),
        '", "pages_viewed": ',
        _int_str(pages),
        ', "items_viewed": ',
        viewed_s,
        ', "items_added_to_cart": ',
        cart_s,
        ', "conversion": ',
        conv_s,
        ', "device_type": ',
        tables["device"][device],
        ', "browser": ',
        tables["browser"][browser],
        ', "ip_address": "',
        ip,
        '"}',
    )

    valid = np.ones(n, dtype=bool)
    for pos in p.values():
        valid[pos] = False
    ctx.mark_guests(email_idx, valid)
    for key, value in (
        ("guest_email_rows", email_idx >= ctx.n_customers),
        ("email_variant_rows", email_var > 0),
        ("conversion_string_rows", conv_repr == 1),
        ("conversion_int_rows", conv_repr == 2),
        ("items_viewed_null_rows", viewed_null),
        ("ipv6_rows", ipv6),
        ("converted_rows", converted),
    ):
        quirks[key] = quirks.get(key, 0) + int(value.sum())
    return lines.tolist()


def _write_sessions(
    path: Path, ctx: _Context, *, rows: int, seed: int, defects: bool, jsonl: bool, chunk_rows: int
) -> dict[str, Any]:
    kinds = {k: (_defect_count(rows, r, "user_sessions") if defects else 0) for k, r in SESSION_DEFECT_RATES.items()}
    dups = _defect_count(rows, SESSION_DUPLICATE_RATE, "user_sessions") if defects else 0
    max_id = int(ctx.price_cents.shape[0])
    ids = np.arange(max_id).astype(SD)
    tables = {
        "id": ids,
        "id_rest": np.strings.add(", ", ids),
        "conversion": _table(["false", "true", '"false"', '"true"', "0", "1"]),
        "device": _table([json.dumps(d) for d in DEVICE_TYPES]),
        "browser": _table([json.dumps(b) for b in BROWSERS]),
        "octet": np.arange(256).astype(SD),
        "hextet": _table([f"{i:x}" for i in range(65536)]),
    }
    quirks: dict[str, int] = {}
    with path.open("w", encoding="utf-8", newline="") as f:
        if not jsonl:
            f.write("[\n" if rows else "[]\n")
        start = 0
        for c, n in enumerate(_chunk_sizes(rows, chunk_rows) if rows else []):
            end = start + n
            chunk_kinds = {k: _share(v, start, end, rows) for k, v in kinds.items()}
            lines = _sessions_chunk(
                _rng(seed, "user_sessions", c),
                ctx,
                n,
                start=start,
                total=rows,
                kinds=chunk_kinds,
                dups=_share(dups, start, end, rows),
                tables=tables,
                quirks=quirks,
            )
            if jsonl:
                f.write("\n".join(lines) + "\n")
            else:
                f.write(("" if c == 0 else ",\n") + ",\n".join(lines))
            start = end
        if rows and not jsonl:
            f.write("\n]\n")
    return _source_summary(
        SESSIONS_FILE, rows, defects=kinds, dup_kind=DUPLICATE_KIND["user_sessions"], dups=dups, quirks=quirks
    )


# ----------------------------------------------------------------------------------------------------- entry


def generate(
    out: str | Path,
    *,
    orders: int = 500,
    sessions: int = 400,
    customers: int | None = None,
    products: int | None = None,
    seed: int = 42,
    defects: bool = True,
    delimiter: str = ",",
    encoding: str = "utf-8",
    crlf: bool = False,
    jsonl: bool | None = None,
    large: bool | None = None,
    chunk_rows: int = CHUNK_ROWS,
    write_docs: bool = True,
) -> dict[str, Any]:
    """Write the four input files into `out`; return the manifest (also written to manifest.json).

    Args:
        orders, sessions, customers, products: rows per file (defects and duplicates included).
            customers/products default to 40/40, or 50,000/1,000 in large mode.
        seed: the only source of randomness.
        defects: inject the deliberate defects (exact counts in the result).
        delimiter, encoding, crlf: how the CSV files are written (JSON files are always UTF-8, LF).
        jsonl: sessions as JSON Lines instead of a JSON array; default: only in large mode.
        large: large mode; default when orders or sessions >= LARGE_THRESHOLD.
        chunk_rows: rows built at a time (changing it changes the random streams, hence the bytes).
        write_docs: also write manifest.json and README.md.

    Returns:
        {"orders"|"user_sessions"|"customers"|"products": {"file", "rows", "defects": {kind: count},
        "rejected", "duplicates", "valid", "reject_rate", "quirks"}, "expected": {...}, "options": {...}}
    """
    t0 = time.perf_counter()
    delimiter = DELIMITERS.get(delimiter, delimiter)
    if delimiter not in DELIMITERS.values():
        raise GenerationError(f"delimiter must be one of {sorted(set(DELIMITERS.values()))!r}, got {delimiter!r}")
    if encoding not in ENCODINGS:
        raise GenerationError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    for name, value in (("orders", orders), ("sessions", sessions)):
        if value < 0:
            raise GenerationError(f"{name} must be >= 0")
    if chunk_rows < 100:
        raise GenerationError("chunk_rows must be >= 100")
    if large is None:
        large = max(orders, sessions) >= LARGE_THRESHOLD
    defaults = LARGE_DEFAULTS if large else SMALL_DEFAULTS
    customers = defaults["customers"] if customers is None else customers
    products = defaults["products"] if products is None else products
    jsonl = large if jsonl is None else jsonl
    newline = "\r\n" if crlf else "\n"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    customer_rows, customer_emails, customers_summary = _generate_customers(customers, seed, defects)
    with (out / CUSTOMERS_FILE).open("w", encoding=encoding, newline="") as f:
        f.write(delimiter.join(CUSTOMER_COLUMNS) + newline)
        f.write(
            _csv_text(
                [np.array([r[i] for r in customer_rows], dtype=SD) for i in range(len(CUSTOMER_COLUMNS))],
                delimiter,
                newline,
            )
        )

    product_list, valid_ids, products_summary = _generate_products(products, seed, defects)
    with (out / PRODUCTS_FILE).open("w", encoding="utf-8", newline="") as f:
        f.write(json.dumps(product_list, indent=2, ensure_ascii=False) + "\n")

    guests = _guest_emails(max(8, len(customer_emails) // 3), seed, set(customer_emails))
    pool = customer_emails + guests
    rng = _rng(seed, "customers", 2)
    price_cents = np.zeros(products + 1, dtype=np.int64)
    price_cents[[p["id"] for p in product_list]] = [abs(round(p["price"] * 100)) for p in product_list]
    product_w = 1.0 / (1.0 + rng.permutation(len(valid_ids))) ** 0.8
    customer_w = 1.0 / (1.0 + rng.permutation(len(customer_emails))) ** 0.7
    unknown = 9999
    while unknown <= products:
        unknown = unknown * 10 + 9
    ctx = _Context(
        n_customers=len(customer_emails),
        n_guests=len(guests),
        customer_p=customer_w / customer_w.sum(),
        email_pool=[_table([_email_variant(e, v) for e in pool]) for v in range(4)],
        email_pool_json=[_table([json.dumps(_email_variant(e, v)) for e in pool]) for v in range(4)],
        product_ids=valid_ids,
        product_p=product_w / product_w.sum(),
        price_cents=price_cents,
        unknown_product_id=unknown,
        guest_used=np.zeros(len(guests), dtype=bool),
    )
    if len(valid_ids) == 0:
        raise GenerationError("no valid product to order")

    orders_summary = _write_orders(
        out / ORDERS_FILE,
        ctx,
        rows=orders,
        seed=seed,
        defects=defects,
        delimiter=delimiter,
        encoding=encoding,
        newline=newline,
        chunk_rows=chunk_rows,
    )
    sessions_summary = _write_sessions(
        out / SESSIONS_FILE, ctx, rows=sessions, seed=seed, defects=defects, jsonl=jsonl, chunk_rows=chunk_rows
    )

    result: dict[str, Any] = {
        "orders": orders_summary,
        "user_sessions": sessions_summary,
        "customers": customers_summary,
        "products": products_summary,
        "expected": {
            # What a correct pipeline loads: valid distinct rows; customers = the valid list + the guests
            # that appear in a valid order or session row.
            "orders": orders_summary["valid"],
            "user_sessions": sessions_summary["valid"],
            "products": products_summary["valid"],
            "customers": customers_summary["valid"] + int(ctx.guest_used.sum()),
            "guest_customers": int(ctx.guest_used.sum()),
        },
        "options": {
            "seed": seed,
            "reference_date": REFERENCE_DATE,
            "window_days": WINDOW_DAYS,
            "defects": defects,
            "large": large,
            "jsonl": jsonl,
            "delimiter": delimiter,
            "encoding": encoding,
            "crlf": crlf,
            "chunk_rows": chunk_rows,
        },
    }
    if write_docs:
        (out / MANIFEST_FILE).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        (out / README_FILE).write_text(render_readme(result, out), encoding="utf-8")
    elapsed = time.perf_counter() - t0
    log.info(
        "generated %s in %.2fs: %s",
        out,
        elapsed,
        ", ".join(
            f"{s}={result[s]['rows']} (rejected {result[s]['rejected']}, duplicates {result[s]['duplicates']})"
            for s in ("orders", "user_sessions", "customers", "products")
        ),
    )
    return result


# ---------------------------------------------------------------------------------------------------- README


DEFECT_DESCRIPTIONS = {
    "missing_order_reference": "empty `order_reference`",
    "missing_session_id": "empty `session_id`",
    "invalid_email": "email that is invalid even after trim + lower-case (`not-an-email`, `john.doe@`, ...)",
    "quantity_zero": "`quantity` is `0`",
    "quantity_not_numeric": "`quantity` is not a number (`abc`, `two`)",
    "negative_unit_price": "negative `unit_price`",
    "unparseable_order_date": "`order_date` that no parser accepts (`not-a-date`, `2026-02-30T08:15:00`, ...)",
    "unknown_product_id": "`product_id` not in products.json",
    "session_end_before_start": "`session_end` before `session_start`",
    "negative_pages_viewed": "negative `pages_viewed`",
    "missing_title": "empty `title`",
    "negative_price": "negative `price`",
    "duplicate_order_reference": "a later line repeats an earlier `order_reference` with the status one step "
    "further (last one wins; counted as duplicate, not rejected)",
    "duplicate_session_id": "a later line repeats an earlier `session_id` with more pages and a later end "
    "(last one wins; counted as duplicate, not rejected)",
    "duplicate_email": "a later line repeats an earlier email with another country "
    "(last one wins; counted as duplicate, not rejected)",
    "duplicate_id": "a repeated product id (never generated)",
}


def _command(result: dict[str, Any], out: Path) -> str:
    o = result["options"]
    label = "data/raw" if out.resolve() == SAMPLE_DIR.resolve() else "DIR"
    args = [f"--out {label}"]
    defaults = generate.__kwdefaults__ or {}
    sizes = LARGE_DEFAULTS if o["large"] else SMALL_DEFAULTS
    for key, flag in (("orders", "--orders"), ("user_sessions", "--sessions")):
        if result[key]["rows"] != defaults[key if key == "orders" else "sessions"]:
            args.append(f"{flag} {result[key]['rows']}")
    for key in ("customers", "products"):
        if result[key]["rows"] != sizes[key]:
            args.append(f"--{key} {result[key]['rows']}")
    if o["seed"] != defaults["seed"]:
        args.append(f"--seed {o['seed']}")
    if not o["defects"]:
        args.append("--no-defects")
    if o["delimiter"] != ",":
        args.append(f"--delimiter {json.dumps(o['delimiter'])}")
    if o["encoding"] != "utf-8":
        args.append(f"--encoding {o['encoding']}")
    if o["crlf"]:
        args.append("--crlf")
    if o["jsonl"] != o["large"]:
        args.append("--jsonl" if o["jsonl"] else "--no-jsonl")
    return ".venv/bin/python -m scripts.generate_data " + " ".join(args)


def render_readme(result: dict[str, Any], out: Path) -> str:
    """README.md for a generated directory (deterministic: no timestamps, no absolute paths)."""
    o = result["options"]
    sources = ("orders", "user_sessions", "customers", "products")
    lines = [
        "# Raw input sample",
        "",
        "Generated by `scripts/generate_data.py` (do not edit by hand): realistic e-commerce input files with a",
        "small, exactly counted number of deliberate defects, so that the pipeline's validation, quarantine",
        "(`rejected_records`) and de-duplication have something to do, while every source stays well under the",
        "reject-rate guard (`transform.max_reject_rate`).",
        "",
        "Regenerate (deterministic: same arguments, same bytes):",
        "",
        "```bash",
        _command(result, out),
        "```",
        "",
        f"Seed {o['seed']}; dates fall in the {o['window_days']} days before the fixed reference date "
        f"{o['reference_date']}. `manifest.json` holds the counts below as JSON (the return value of "
        "`scripts.generate_data.generate()`).",
        "",
        "## Files",
        "",
        "| file | format | rows |",
        "|---|---|---:|",
        f"| `{ORDERS_FILE}` | CSV, header `{','.join(ORDER_COLUMNS)}` | {result['orders']['rows']} |",
        f"| `{SESSIONS_FILE}` | {'JSON Lines' if o['jsonl'] else 'JSON array'} of objects "
        f"`{', '.join(SESSION_FIELDS)}` | {result['user_sessions']['rows']} |",
        f"| `{CUSTOMERS_FILE}` | CSV, header `{','.join(CUSTOMER_COLUMNS)}` | {result['customers']['rows']} |",
        f"| `{PRODUCTS_FILE}` | JSON array, Fake Store API format `{', '.join(PRODUCT_FIELDS)}` "
        f"(`rating` = `{{rate, count}}`) | {result['products']['rows']} |",
        "",
        f"CSV: delimiter {json.dumps(o['delimiter'])}, encoding {o['encoding']}, "
        f"line ends {'CRLF' if o['crlf'] else 'LF'}, RFC 4180 quoting where needed (a delimiter, a quote, or "
        "leading/trailing spaces). JSON: UTF-8.",
        "",
        "## Counts",
        "",
        "| source | rows | rejected | duplicates | valid (expected loaded) | reject rate |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in sources:
        r = result[s]
        lines.append(
            f"| {s} | {r['rows']} | {r['rejected']} | {r['duplicates']} | {r['valid']} | "
            f"{100 * r['reject_rate']:.1f}% |"
        )
    e = result["expected"]
    lines += [
        "",
        f"After a correct load the `customers` table holds {e['customers']} customers: the "
        f"{result['customers']['valid']} valid distinct rows of `{CUSTOMERS_FILE}` plus {e['guest_customers']} guest",
        "emails that appear only in valid orders/sessions (guest checkouts, created by the pipeline).",
        "",
        "## Deliberate defects (each defective row breaks exactly one rule)",
        "",
        "| source | defect | rows |",
        "|---|---|---:|",
    ]
    for s in sources:
        for kind, count in result[s]["defects"].items():
            if count or not kind.startswith("duplicate"):
                lines.append(f"| {s} | `{kind}`: {DEFECT_DESCRIPTIONS[kind]} | {count} |")
    lines += [
        "",
        "## Valid quirks (must be accepted after trimming / lower-casing / parsing)",
        "",
        "| source | quirk | rows |",
        "|---|---|---:|",
    ]
    for s in sources:
        for kind, count in result[s]["quirks"].items():
            lines.append(f"| {s} | `{kind}` | {count} |")
    lines += [
        "",
        "- emails: some written upper-case, capitalised or with surrounding spaces; some order/session emails",
        "  are guests that are not in `customers.csv`;",
        '- orders: `status` / `payment_method` with stray spaces or mixed case (`" Shipped "`, `PAYPAL`);',
        "  `order_date` mostly `2026-10-03T14:22:05`, some `2026-10-03 14:22:05` or `2026-10-03T14:22:05Z`",
        "  (naive = UTC); `unit_price` is the product's price except for discounted lines;",
        '- sessions: `conversion` as `true`/`false`, `"true"`/`"false"` or `1`/`0`; `items_viewed` sometimes',
        "  `null`; `ip_address` IPv4, some IPv6;",
        '- products: `category` with stray spaces / capitals (`" Electronics"`).',
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.generate_data",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="output directory (created)")
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=400)
    parser.add_argument(
        "--customers",
        type=int,
        default=None,
        help=f"default {SMALL_DEFAULTS['customers']} ({LARGE_DEFAULTS['customers']} in large mode)",
    )
    parser.add_argument(
        "--products",
        type=int,
        default=None,
        help=f"default {SMALL_DEFAULTS['products']} ({LARGE_DEFAULTS['products']} in large mode)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--defects",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="inject the deliberate defects (default: on)",
    )
    parser.add_argument("--delimiter", default=",", help="CSV delimiter: ',' ';' '|' or '\\t' (default ',')")
    parser.add_argument("--encoding", default="utf-8", choices=ENCODINGS, help="CSV encoding (JSON is always UTF-8)")
    parser.add_argument("--crlf", action="store_true", help="CSV lines end with CRLF")
    parser.add_argument(
        "--jsonl",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sessions as JSON Lines (default: only in large mode)",
    )
    parser.add_argument(
        "--large",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"large mode (default: when orders or sessions >= {LARGE_THRESHOLD})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        generate(
            args.out,
            orders=args.orders,
            sessions=args.sessions,
            customers=args.customers,
            products=args.products,
            seed=args.seed,
            defects=args.defects,
            delimiter=args.delimiter,
            encoding=args.encoding,
            crlf=args.crlf,
            jsonl=args.jsonl,
            large=args.large,
        )
    except GenerationError as err:
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
