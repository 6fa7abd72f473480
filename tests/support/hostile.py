"""Helpers of the hostile-input tests: users and listings through the public surface, problem checks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

PASSWORD = "hostile-pass-123"
#: Members every problem answer carries (RFC 9457 plus the contract's ``code``).
PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "code"})
#: Text that only a leaked Python stack trace would contain.
STACK_TRACE_MARKERS = ("Traceback (most recent call last)", 'File "/', '.py", line ')


def _retry_unavailable(call: Callable[[], httpx.Response]) -> httpx.Response:
    """A 503 problem says "try again shortly" (SQLite busy on a loaded machine): set-up does, twice."""
    for _ in range(2):
        response = call()
        if response.status_code != 503:
            return response
        time.sleep(0.5)
    return call()


def new_user(http: httpx.Client) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
    """Register and log in a fresh user: (auth headers, user, the whole login answer)."""
    name = f"h{uuid.uuid4().hex[:10]}"
    account = {"username": name, "email": f"{name}@example.org", "password": PASSWORD}
    r = _retry_unavailable(lambda: http.post("/api/auth/register", json=account))
    assert r.status_code == 201, r.text
    login = _retry_unavailable(lambda: http.post("/api/auth/login", json={"username": name, "password": PASSWORD}))
    assert login.status_code == 200, login.text
    body: dict[str, Any] = login.json()
    return {"Authorization": f"Bearer {body['access_token']}"}, body["user"], body


def create_listing(http: httpx.Client, auth: dict[str, str], duration: int = 600, **extra: Any) -> dict[str, Any]:
    cats = http.get("/api/categories").json()["items"]
    body = {"title": "hostile item", "category_id": cats[0]["id"], "start_price": "5", "duration_seconds": duration}
    r = http.post("/api/listings", headers=auth, json=body | extra)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with that status (and code), and no stack trace."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text[:500]}"
    assert response.headers.get("content-type", "").startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_MEMBERS, body
    assert body["status"] == status, body
    if code is not None:
        assert body["code"] == code, body
    for marker in STACK_TRACE_MARKERS:
        assert marker not in response.text
    return body
