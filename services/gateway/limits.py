"""Per-user rate limits on the writes people could flood: bids, comments and chat messages.

Token buckets, one per (rule, caller). The caller is the ``sub`` of a bearer token the gateway verified
(the JWKS verifier it already has for ``/ws``); without a valid token, the client's address (the service
answers such a request 401 anyway; keying it by address keeps anonymous floods from reaching it).
A refused request gets a 429 ``rate_limited`` problem with ``Retry-After``.

Buckets live in the memory of one gateway instance: with N replicas behind a balancer a caller can get up
to N times the rate. They are bounded (least recently used dropped first), so a flood of distinct callers
cannot grow memory without limit.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import JSONResponse

from shared.auth import InvalidTokenError, TokenVerifier
from shared.errors import problem_response

_SPEC = re.compile(
    r"^\s*(?P<count>\d+(?:\.\d+)?)\s*/\s*(?P<amount>\d+(?:\.\d+)?)?\s*(?P<unit>ms|s|m|h)\s*"
    r"(?:burst\s+(?P<burst>\d+))?\s*$",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Rate:
    """``per_second`` tokens come back each second, up to ``burst`` saved."""

    per_second: float
    burst: float


def parse_rate(spec: str) -> Rate | None:
    """``"20/1s burst 60"``, ``"20/s"``, ``"300/1m burst 50"`` (burst defaults to the count); ``"off"`` = no limit."""
    if spec.strip().lower() in ("", "off", "none", "0"):
        return None
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(f"rate {spec!r}: expected '<count>/<period>[ burst <n>]', e.g. '20/1s burst 60'")
    count = float(match["count"])
    period = float(match["amount"] or 1) * _UNIT_SECONDS[match["unit"].lower()]
    burst = float(match["burst"]) if match["burst"] else count
    if count <= 0 or period <= 0 or burst < 1:
        raise ValueError(f"rate {spec!r}: count, period and burst must be positive (burst at least 1)")
    return Rate(per_second=count / period, burst=burst)


class Buckets:
    """Token buckets by key, at most ``max_keys`` of them (the least recently used go first)."""

    def __init__(self, rate: Rate, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0.0 if allowed, else the seconds until one is back."""
        now = self.clock()
        tokens, at = self._buckets.pop(key, (self.rate.burst, now))
        tokens = min(self.rate.burst, tokens + (now - at) * self.rate.per_second)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate.per_second
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            # A dropped bucket starts full again: forgetting only ever errs towards letting a caller through.
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


#: The limited writes: (rule name, method, path pattern).
RULES: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("bids", "POST", re.compile(r"^/api/listings/[^/]+/bids/?$")),
    ("comments", "POST", re.compile(r"^/api/listings/[^/]+/comments/?$")),
    ("messages", "POST", re.compile(r"^/api/chats/[^/]+/messages/?$")),
)


def rule_for(method: str, path: str) -> str | None:
    for name, rule_method, pattern in RULES:
        if method == rule_method and pattern.match(path):
            return name
    return None


class RateLimiter:
    """Applies the configured rates (rule name -> Rate, None = unlimited) to requests at the gateway."""

    def __init__(self, rates: dict[str, Rate | None], verifier: TokenVerifier, max_keys: int = 100_000) -> None:
        self.verifier = verifier
        self.buckets = {name: Buckets(rate, max_keys) for name, rate in rates.items() if rate is not None}

    async def caller(self, request: Request) -> str:
        """``user:<sub>`` for a verified bearer token, else ``addr:<client address>``."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            try:
                claims = await self.verifier.verify(token.strip())
                return f"user:{claims['sub']}"
            except InvalidTokenError:
                pass
        return f"addr:{request.client.host if request.client else 'unknown'}"

    async def check(self, request: Request) -> JSONResponse | None:
        """None if the request may go on; else the 429 problem to answer with."""
        if not self.buckets:
            return None
        rule = rule_for(request.method, request.url.path)
        buckets = self.buckets.get(rule) if rule else None
        if buckets is None:
            return None
        wait = buckets.take(await self.caller(request))
        if wait <= 0:
            return None
        retry_after = max(1, math.ceil(wait))
        response = problem_response(
            429, "rate_limited", f"too many {rule} at once; try again in {retry_after} s", retry_after=retry_after
        )
        response.headers["Retry-After"] = str(retry_after)
        return response
