"""The products REST API behind a small client: timeout, retries with capped backoff and Retry-After, exact prices.

Tests run it against a real local HTTP server (tests/integration/test_products_api*.py).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from include.config_loader import ProductsApiConfig
from include.emails import redact_emails
from include.parsing import reject_json_constant

log = logging.getLogger(__name__)


class ApiError(RuntimeError):
    """The products API failed: `retryable` is False for answers that retrying cannot fix (see include.errors)."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


def redact_url(url: str) -> str:
    """The URL without user info or query (they may carry credentials)."""
    p = urlsplit(url)
    host = p.hostname or ""
    netloc = host + (f":{p.port}" if p.port else "")
    return urlunsplit((p.scheme, netloc, p.path, "", ""))


def _retry_after_seconds(value: str) -> float | None:
    """Seconds asked by a Retry-After header (delta-seconds or HTTP date); None when it is neither."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (ValueError, TypeError):  # not a date at all: the normal backoff applies
        return None
    if parsed.tzinfo is None:  # "-0000" means an unknown zone: no instant to wait for
        return None
    return (parsed - datetime.now(UTC)).total_seconds()


class ProductsApiClient:
    """GET a JSON array of products with a timeout, retries with backoff and Retry-After."""

    RETRY_STATUS = frozenset({429, 500, 502, 503, 504})

    def __init__(self, cfg: ProductsApiConfig, session: requests.Session | None = None, sleep: Any = time.sleep):
        if not cfg.url:
            raise ValueError("products API URL is not configured")
        self.cfg = cfg
        self.url = cfg.url
        self.session = session or requests.Session()
        self._sleep = sleep

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        seconds = _retry_after_seconds(retry_after) if retry_after else None
        if seconds is not None:
            return max(0.0, min(seconds, self.cfg.max_backoff_seconds))
        base = self.cfg.backoff_seconds * (2**attempt)
        return min(base * (0.5 + random.random() / 2), self.cfg.max_backoff_seconds)  # noqa: S311 - jitter, not crypto

    def fetch(self) -> list[Any]:
        """The decoded JSON array.

        Raises:
            ApiError: a 4xx other than 429 (not retryable), a body that is not a JSON array,
                or retries exhausted on 5xx/429/connection errors/timeouts.
        """
        shown = redact_url(self.url)
        attempts = self.cfg.max_retries + 1
        last = ""
        for attempt in range(attempts):
            retry_after = None
            try:
                resp = self.session.get(
                    self.url, timeout=self.cfg.timeout_seconds, headers={"Accept": "application/json"}
                )
            except (requests.ConnectionError, requests.Timeout) as err:
                # Not str(err): requests repeats the URL, query string (API keys) included.
                last = type(err).__name__
            else:
                if resp.status_code in self.RETRY_STATUS:
                    last = f"HTTP {resp.status_code}"
                    retry_after = resp.headers.get("Retry-After")
                elif resp.status_code >= 400:
                    raise ApiError(
                        f"products API {shown} answered HTTP {resp.status_code}; not retrying", retryable=False
                    )
                else:
                    try:
                        # Decimal: a price's text survives exactly (1.005 stays 1.005, 1e1 stays exponent text).
                        data = json.loads(resp.text, parse_constant=reject_json_constant, parse_float=Decimal)
                    except ValueError as err:
                        raise ApiError(
                            f"products API {shown} returned a body that is not JSON: {redact_emails(str(err))[:200]}",
                            retryable=False,
                        ) from err
                    if not isinstance(data, list):
                        raise ApiError(
                            f"products API {shown} returned JSON {type(data).__name__}, expected an array",
                            retryable=False,
                        )
                    return data
            if attempt + 1 < attempts:
                delay = self._delay(attempt, retry_after)
                log.warning(
                    "products API %s: %s (attempt %d/%d); retrying in %.1fs", shown, last, attempt + 1, attempts, delay
                )
                self._sleep(delay)
        raise ApiError(f"products API {shown} failed after {attempts} attempts; last error: {last}", retryable=True)
