"""Rate limits of the gateway (services/gateway/limits.py): parsing, token buckets, keys, the 429 answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.requests import Request

from services.gateway.config import Settings
from services.gateway.limits import Buckets, Rate, RateLimiter, parse_rate, rule_for
from shared.auth import TokenVerifier
from tests.support.tokens import AUDIENCE, ISSUER, TestKeys


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("spec", "per_second", "burst"),
    [
        ("20/1s burst 60", 20.0, 60.0),
        ("20/s", 20.0, 20.0),
        ("300/1m burst 50", 5.0, 50.0),
        ("5 / 10s", 0.5, 5.0),
        ("3600/h burst 1", 1.0, 1.0),
        ("1/500ms", 2.0, 1.0),
        ("2.5/s BURST 4", 2.5, 4.0),
    ],
)
def test_parse_rate(spec: str, per_second: float, burst: float) -> None:
    assert parse_rate(spec) == Rate(per_second=per_second, burst=burst)


@pytest.mark.parametrize("spec", ["off", "OFF", "", "none", "0"])
def test_parse_rate_off(spec: str) -> None:
    assert parse_rate(spec) is None


@pytest.mark.parametrize("spec", ["20", "twenty/s", "20/1d", "0/s", "20/0s", "20/s burst 0", "20/s burst", "-1/s"])
def test_parse_rate_refuses_nonsense(spec: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(spec)


def test_settings_refuse_a_bad_rate_at_start_and_default_generously() -> None:
    with pytest.raises(ValueError, match="rate"):
        Settings(RATE_LIMIT_BIDS="lots")
    limits = Settings().rate_limits
    # A benchmark bidder places ~10 bids per second: the defaults never get in its way.
    assert all(rate is not None and rate.per_second >= 10 and rate.burst >= 20 for rate in limits.values()), limits
    assert Settings(RATE_LIMIT_COMMENTS="off").rate_limits["comments"] is None
    assert Settings(GATEWAY_MAX_BODY_BYTES=1234).max_body_bytes == 1234


def test_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    buckets = Buckets(Rate(per_second=2.0, burst=3.0), clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token back in half a second
    assert buckets.take("b") == 0.0  # buckets are per key
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    clock.now += 100  # a long pause refills only up to the burst
    assert [buckets.take("a") for _ in range(4)][:3] == [0.0, 0.0, 0.0]
    assert buckets.take("a") > 0


def test_refused_attempts_do_not_pay_and_waits_are_exact() -> None:
    clock = FakeClock()
    buckets = Buckets(Rate(per_second=1.0, burst=1.0), clock=clock)
    assert buckets.take("a") == 0.0
    clock.now += 0.25
    assert buckets.take("a") == pytest.approx(0.75)
    assert buckets.take("a") == pytest.approx(0.75)  # refusals take nothing away
    clock.now += 0.75
    assert buckets.take("a") == 0.0


def test_buckets_are_bounded() -> None:
    clock = FakeClock()
    buckets = Buckets(Rate(per_second=1.0, burst=1.0), max_keys=100, clock=clock)
    for i in range(1000):
        buckets.take(f"caller{i}")
    assert len(buckets) == 100
    # The most recent callers are kept: their empty buckets still refuse.
    assert buckets.take("caller999") > 0


@pytest.mark.parametrize(
    ("method", "path", "rule"),
    [
        ("POST", "/api/listings/5/bids", "bids"),
        ("POST", "/api/listings/5/bids/", "bids"),
        ("GET", "/api/listings/5/bids", None),
        ("POST", "/api/listings/5/comments", "comments"),
        ("POST", "/api/chats/9/messages", "messages"),
        ("GET", "/api/chats/9/messages", None),
        ("POST", "/api/listings", None),
        ("POST", "/api/listings/5/bids/extra", None),
    ],
)
def test_rule_for(method: str, path: str, rule: str | None) -> None:
    assert rule_for(method, path) == rule


def _request(method: str, path: str, headers: dict[str, str], client: str = "10.0.0.7") -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": (client, 5000),
        "server": ("testserver", 80),
        "scheme": "http",
    }
    return Request(scope)


async def test_limiter_keys_by_verified_user_else_address_and_answers_429_problem(test_keys: TestKeys) -> None:
    verifier = TokenVerifier(test_keys.source, issuer=ISSUER, audience=AUDIENCE)
    limiter = RateLimiter({"bids": Rate(per_second=0.1, burst=2.0), "comments": None}, verifier)
    alice = test_keys.auth(1)
    bob = test_keys.auth(2)
    bids = "/api/listings/5/bids"
    assert await limiter.caller(_request("POST", bids, alice)) == "user:1"
    assert await limiter.caller(_request("POST", bids, {"Authorization": "Bearer forged"})) == "addr:10.0.0.7"
    assert await limiter.caller(_request("POST", bids, {})) == "addr:10.0.0.7"

    # (the caller() calls above took nothing: only check() takes tokens)
    assert await limiter.check(_request("POST", bids, alice)) is None
    assert await limiter.check(_request("POST", bids, alice)) is None
    refused = await limiter.check(_request("POST", bids, alice))
    assert refused is not None and refused.status_code == 429
    assert refused.headers["retry-after"] == "10"
    assert refused.media_type == "application/problem+json"
    body = json.loads(bytes(refused.body))
    assert body["code"] == "rate_limited" and body["status"] == 429 and body["retry_after"] == 10
    assert {"type", "title", "detail"} <= set(body)
    # Others are not affected: another user, other routes, an unlimited rule.
    assert await limiter.check(_request("POST", bids, bob)) is None
    assert await limiter.check(_request("GET", bids, alice)) is None
    assert all([await limiter.check(_request("POST", "/api/listings/5/comments", alice)) is None for _ in range(5)])
    # A forged token cannot borrow Alice's bucket, nor escape its own address's one.
    forged = {"Authorization": f"Bearer {test_keys.token(1)[:-4]}AAAA"}
    assert await limiter.check(_request("POST", bids, forged, client="10.0.0.8")) is None
    assert await limiter.check(_request("POST", bids, forged, client="10.0.0.8")) is None
    assert await limiter.check(_request("POST", bids, {}, client="10.0.0.8")) is not None
