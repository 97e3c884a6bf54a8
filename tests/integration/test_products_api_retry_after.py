"""Retry-After against a real local HTTP server: capped by max_backoff_seconds, HTTP dates honoured.

The client's injectable `sleep` records each delay instead of waiting it (a server answering
Retry-After: 3600 must not park the task for an hour).
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import pytest
from pytest_httpserver import HTTPServer

from include.config_loader import ProductsApiConfig
from include.products_api import ProductsApiClient

PRODUCTS = [{"id": 1, "title": "Mug", "price": 5.5}]


def client(url: str, sleeps: list[float], max_backoff: float = 5.0, retries: int = 2) -> ProductsApiClient:
    cfg = ProductsApiConfig(
        url=url, timeout_seconds=2, max_retries=retries, backoff_seconds=0.01, max_backoff_seconds=max_backoff
    )
    return ProductsApiClient(cfg, sleep=sleeps.append)


def throttled_then_ok(server: HTTPServer, retry_after: str, status: int = 429) -> None:
    server.expect_ordered_request("/products").respond_with_data(
        "slow down", status=status, headers={"Retry-After": retry_after}
    )
    server.expect_ordered_request("/products").respond_with_json(PRODUCTS)


def http_date(delta: timedelta) -> str:
    return email.utils.format_datetime(datetime.now(UTC) + delta, usegmt=True)


@pytest.mark.parametrize(
    ("retry_after", "max_backoff", "expected"),
    [
        ("3600", 5.0, 5.0),  # an hour asked, the cap wins
        ("5", 5.0, 5.0),  # exactly at the cap
        ("4", 5.0, 4.0),  # below the cap: honoured as asked
        ("6", 5.0, 5.0),  # one second over the cap
        ("0", 5.0, 0.0),
        ("-3", 5.0, 0.0),  # nonsense never becomes a negative sleep
    ],
)
def test_retry_after_seconds_is_capped(
    httpserver: HTTPServer, retry_after: str, max_backoff: float, expected: float
) -> None:
    throttled_then_ok(httpserver, retry_after)
    sleeps: list[float] = []
    assert client(httpserver.url_for("/products"), sleeps, max_backoff).fetch() == PRODUCTS
    assert sleeps == [expected]
    assert len(httpserver.log) == 2


def test_retry_after_on_503_is_capped_too(httpserver: HTTPServer) -> None:
    throttled_then_ok(httpserver, "3600", status=503)
    sleeps: list[float] = []
    assert client(httpserver.url_for("/products"), sleeps, max_backoff=2.5).fetch() == PRODUCTS
    assert sleeps == [2.5]


def test_retry_after_http_date_is_honoured(httpserver: HTTPServer) -> None:
    throttled_then_ok(httpserver, http_date(timedelta(seconds=4)))
    sleeps: list[float] = []
    assert client(httpserver.url_for("/products"), sleeps, max_backoff=30).fetch() == PRODUCTS
    assert len(sleeps) == 1
    assert 2.0 <= sleeps[0] <= 4.0  # whole seconds in the header, a moment spent answering: not 0, not the cap


def test_retry_after_http_date_far_ahead_is_capped(httpserver: HTTPServer) -> None:
    throttled_then_ok(httpserver, http_date(timedelta(hours=2)))
    sleeps: list[float] = []
    assert client(httpserver.url_for("/products"), sleeps, max_backoff=7).fetch() == PRODUCTS
    assert sleeps == [7.0]


def test_retry_after_http_date_in_the_past_means_now(httpserver: HTTPServer) -> None:
    throttled_then_ok(httpserver, http_date(timedelta(minutes=-5)))
    sleeps: list[float] = []
    assert client(httpserver.url_for("/products"), sleeps, max_backoff=7).fetch() == PRODUCTS
    assert sleeps == [0.0]


@pytest.mark.parametrize("retry_after", ["soon", "Sun, 06 Nov 1994 08:49:37 -0000"])
def test_unusable_retry_after_falls_back_to_backoff(httpserver: HTTPServer, retry_after: str) -> None:
    """A header that is neither seconds nor a zoned HTTP date is ignored: the normal backoff applies, no crash."""
    throttled_then_ok(httpserver, retry_after)
    sleeps: list[float] = []
    assert client(httpserver.url_for("/products"), sleeps, max_backoff=5).fetch() == PRODUCTS
    assert len(sleeps) == 1
    assert 0.0 < sleeps[0] <= 0.01  # backoff_seconds 0.01 × 2**0 with jitter in [50 %, 100 %]


def test_backoff_without_retry_after_is_capped(httpserver: HTTPServer) -> None:
    for _ in range(4):
        httpserver.expect_ordered_request("/products").respond_with_data("boom", status=500)
    httpserver.expect_ordered_request("/products").respond_with_json(PRODUCTS)
    cfg = ProductsApiConfig(
        url=httpserver.url_for("/products"), timeout_seconds=2, max_retries=4, backoff_seconds=1, max_backoff_seconds=2
    )
    sleeps: list[float] = []
    assert ProductsApiClient(cfg, sleep=sleeps.append).fetch() == PRODUCTS
    # 1, 2, 4, 8 s nominal with jitter in [50 %, 100 %], never above the 2 s cap
    assert len(sleeps) == 4
    assert 0.5 <= sleeps[0] <= 1.0
    assert all(s <= 2.0 for s in sleeps)
    assert sleeps[3] == 2.0  # 8 s × ≥ 50 % jitter is ≥ 4 s: always the cap
