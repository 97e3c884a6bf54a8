"""ProductsApiClient, exactly: the request it sends, its sentences, the retry count and backoff bounds, redaction.

Against a real local HTTP server (pytest-httpserver); written to kill mutants of include/products_api.py.
"""

from __future__ import annotations

import logging

import pytest
from pytest_httpserver import HTTPServer

from include import products_api
from include.config_loader import ProductsApiConfig
from include.products_api import ApiError, ProductsApiClient, redact_url


def _client(
    url: str, sleeps: list[float], retries: int = 2, backoff: float = 1.0, cap: float = 100.0
) -> ProductsApiClient:
    cfg = ProductsApiConfig(
        url=url, timeout_seconds=2, max_retries=retries, backoff_seconds=backoff, max_backoff_seconds=cap
    )
    return ProductsApiClient(cfg, sleep=sleeps.append)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:pw@api.example.com:8443/v1/products?key=SECRET#frag",
            "https://api.example.com:8443/v1/products",
        ),
        ("http://api.example.com/products?token=x", "http://api.example.com/products"),
        ("http://127.0.0.1:9/p", "http://127.0.0.1:9/p"),
        ("file:///srv/products.json", "file:///srv/products.json"),
    ],
)
def test_redact_url_keeps_scheme_host_port_and_path_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_client_without_url_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^products API URL is not configured$"):
        ProductsApiClient(ProductsApiConfig(None, 2, 0, 1.0, 10.0))


def test_it_asks_for_json(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/products", headers={"Accept": "application/json"}).respond_with_json([])
    assert _client(httpserver.url_for("/products"), []).fetch() == []


@pytest.mark.parametrize("status", [400, 401, 404])
def test_every_4xx_but_429_fails_at_once_naming_the_status(httpserver: HTTPServer, status: int) -> None:
    httpserver.expect_request("/products").respond_with_data("no", status=status)
    url = httpserver.url_for("/products")
    sleeps: list[float] = []
    with pytest.raises(ApiError) as err:
        _client(url + "?key=SECRET", sleeps).fetch()
    assert str(err.value) == f"products API {url} answered HTTP {status}; not retrying"
    assert err.value.retryable is False
    assert (len(httpserver.log), sleeps) == (1, [])


def test_a_body_that_is_not_json_is_not_retried(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/products").respond_with_data("<html>", content_type="text/html")
    url = httpserver.url_for("/products")
    with pytest.raises(ApiError) as err:
        _client(url, []).fetch()
    assert str(err.value) == (
        f"products API {url} returned a body that is not JSON: Expecting value: line 1 column 1 (char 0)"
    )
    assert err.value.retryable is False
    assert len(httpserver.log) == 1


def test_json_that_is_not_an_array_is_not_retried(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/products").respond_with_json({"items": []})
    url = httpserver.url_for("/products")
    with pytest.raises(ApiError) as err:
        _client(url, []).fetch()
    assert str(err.value) == f"products API {url} returned JSON dict, expected an array"
    assert err.value.retryable is False


def test_retries_sleep_between_attempts_only_and_log_each(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(products_api.random, "random", lambda: 1.0)  # the jitter's top: the whole backoff
    httpserver.expect_request("/products").respond_with_data("down", status=503)
    url = httpserver.url_for("/products")
    sleeps: list[float] = []
    with caplog.at_level(logging.WARNING, logger="include.products_api"), pytest.raises(ApiError) as err:
        _client(url, sleeps, retries=2, backoff=1.0).fetch()
    assert str(err.value) == f"products API {url} failed after 3 attempts; last error: HTTP 503"
    assert err.value.retryable is True
    assert len(httpserver.log) == 3
    assert sleeps == [1.0, 2.0]  # backoff × 2^attempt, none after the last attempt
    assert [r.getMessage() for r in caplog.records] == [
        f"products API {url}: HTTP 503 (attempt 1/3); retrying in 1.0s",
        f"products API {url}: HTTP 503 (attempt 2/3); retrying in 2.0s",
    ]


@pytest.mark.parametrize(("jitter", "expected"), [(0.0, [0.5, 1.0, 2.0, 4.0]), (0.5, [0.75, 1.5, 3.0, 6.0])])
def test_backoff_doubles_per_attempt_with_jitter_between_half_and_all(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, jitter: float, expected: list[float]
) -> None:
    monkeypatch.setattr(products_api.random, "random", lambda: jitter)
    httpserver.expect_request("/products").respond_with_data("down", status=502)
    sleeps: list[float] = []
    with pytest.raises(ApiError):
        _client(httpserver.url_for("/products"), sleeps, retries=4, backoff=1.0).fetch()
    assert sleeps == expected
