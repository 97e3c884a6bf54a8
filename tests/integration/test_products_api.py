"""ProductsApiClient against a real local HTTP server: retries, Retry-After, timeouts, fail-fast 4xx."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from include.config_loader import ProductsApiConfig
from include.products_api import ApiError, ProductsApiClient

PRODUCTS = [
    {
        "id": 1,
        "title": "Mug",
        "price": 5.5,
        "description": "d",
        "category": "home",
        "image": "http://i",
        "rating": {"rate": 4.2, "count": 7},
    }
]
# fetch() keeps non-integer JSON numbers as exact Decimal text (issue 12 #4): what it must return for PRODUCTS.
FETCHED = json.loads(json.dumps(PRODUCTS), parse_float=Decimal)


def client(url: str, retries: int = 3, timeout: float = 2.0, sleeps: list[float] | None = None) -> ProductsApiClient:
    cfg = ProductsApiConfig(
        url=url, timeout_seconds=timeout, max_retries=retries, backoff_seconds=0.01, max_backoff_seconds=5
    )
    record = sleeps if sleeps is not None else []
    return ProductsApiClient(cfg, sleep=lambda s: (record.append(s), time.sleep(min(s, 0.05))))


def test_5xx_then_success(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/products").respond_with_data("boom", status=503)
    httpserver.expect_ordered_request("/products").respond_with_data("boom", status=500)
    httpserver.expect_ordered_request("/products").respond_with_json(PRODUCTS)
    assert client(httpserver.url_for("/products")).fetch() == FETCHED
    assert len(httpserver.log) == 3


def test_429_honours_retry_after(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/products").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "2"}
    )
    httpserver.expect_ordered_request("/products").respond_with_json(PRODUCTS)
    sleeps: list[float] = []
    assert client(httpserver.url_for("/products"), sleeps=sleeps).fetch() == FETCHED
    assert sleeps == [2.0]


def test_404_fails_fast_without_retry(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/products").respond_with_data("nope", status=404)
    with pytest.raises(ApiError) as err:
        client(httpserver.url_for("/products")).fetch()
    assert err.value.retryable is False and "HTTP 404" in str(err.value)
    assert len(httpserver.log) == 1


def test_retries_exhausted_fails_loudly(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/products").respond_with_data("down", status=502)
    with pytest.raises(ApiError) as err:
        client(httpserver.url_for("/products"), retries=2).fetch()
    assert err.value.retryable is True and "failed after 3 attempts; last error: HTTP 502" in str(err.value)
    assert len(httpserver.log) == 3


def test_timeout_is_retried_then_succeeds() -> None:
    calls = {"n": 0}
    httpserver = HTTPServer(threaded=True)  # the hanging first request must not block the retry
    httpserver.start()

    def slow_then_fast(request: Request) -> Response:
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(1.0)
        return Response(json.dumps(PRODUCTS), content_type="application/json")

    try:
        httpserver.expect_request("/products").respond_with_handler(slow_then_fast)
        assert client(httpserver.url_for("/products"), timeout=0.3).fetch() == FETCHED
        assert calls["n"] == 2
    finally:
        httpserver.clear()
        httpserver.stop()


def test_connection_refused_is_retried_and_reported() -> None:
    with pytest.raises(ApiError, match=r"failed after 2 attempts; last error: ConnectionError"):
        client("http://127.0.0.1:9/products", retries=1).fetch()


def test_body_must_be_a_json_array(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/products").respond_with_json({"items": PRODUCTS})
    with pytest.raises(ApiError, match="returned JSON dict, expected an array"):
        client(httpserver.url_for("/products")).fetch()


def test_credentials_in_url_are_not_repeated(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/products").respond_with_data("nope", status=401)
    url = httpserver.url_for("/products").replace("http://", "http://user:hunter2@") + "?token=abc123"
    with pytest.raises(ApiError) as err:
        client(url).fetch()
    assert "hunter2" not in str(err.value) and "abc123" not in str(err.value)


def test_api_key_in_query_never_reaches_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"), pytest.raises(ApiError) as err:
        client("http://127.0.0.1:9/products?api_key=SECRET123", retries=1).fetch()
    assert "SECRET123" not in str(err.value)
    assert "SECRET123" not in caplog.text and "ConnectionError" in caplog.text


def test_nan_in_the_body_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/products").respond_with_data(
        '[{"id": 1, "price": NaN}]', content_type="application/json"
    )
    with pytest.raises(ApiError, match="NaN is not valid JSON"):
        client(httpserver.url_for("/products")).fetch()
