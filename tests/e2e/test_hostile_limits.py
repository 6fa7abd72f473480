"""Limits through the gateway, on a stack of this module's own with low limits set by environment:
request body size (declared and streamed), per-user rates of bids, comments and chat messages, and login
throttling (per account and per client address). Each is answered with a 413 or 429 problem, never a crash.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.e2e.conftest import Stack, start_stack, stop_stack
from tests.support import images
from tests.support.hostile import PASSWORD, assert_problem, create_listing, new_user

MAX_BODY = 100_000
LOGIN_WINDOW = 4


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        "GATEWAY_MAX_BODY_BYTES": str(MAX_BODY),
        "RATE_LIMIT_BIDS": "3/1m burst 3",
        "RATE_LIMIT_COMMENTS": "2/1m burst 2",
        "RATE_LIMIT_MESSAGES": "2/1m",
        "LOGIN_MAX_FAILURES_PER_ACCOUNT": "3",
        "LOGIN_MAX_FAILURES_PER_ADDRESS": "8",
        "LOGIN_FAILURE_WINDOW_SECONDS": str(LOGIN_WINDOW),
    }
    s = start_stack(tmp_path_factory.mktemp("limits"), "embedded", env)
    yield s
    stop_stack(s)


def chunks(total: int, size: int = 16 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


def raw_exchange(base_url: str, request: bytes, timeout: float = 5) -> tuple[bytes, float]:
    """Send raw bytes, read the answer's head: (head, seconds it took)."""
    url = urlparse(base_url)
    started = time.monotonic()
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return answer, time.monotonic() - started


def test_request_bodies_over_the_limit_are_413_problems(limited_stack: Stack) -> None:
    with httpx.Client(base_url=limited_stack.base_url, timeout=30) as http:
        auth, _, _ = new_user(http)
        # Under the limit: served as usual.
        ok = http.put("/api/users/me/avatar", headers=auth, files={"file": ("a.png", images.png(), "image/png")})
        assert ok.status_code == 200, ok.text
        avatar = ok.json()["avatar_url"]

        # Declared too large: refused from Content-Length.
        big_json = b'{"title": "' + b"x" * (MAX_BODY + 10) + b'"}'
        r = http.post("/api/listings", headers=auth | {"content-type": "application/json"}, content=big_json)
        assert_problem(r, 413, "payload_too_large")
        # Streamed (chunked, no Content-Length): counted on the way, refused past the limit, JSON and upload.
        r = http.post(
            "/api/listings", headers=auth | {"content-type": "application/json"}, content=chunks(MAX_BODY * 3)
        )
        assert_problem(r, 413, "payload_too_large")
        boundary = "hostileboundary"
        multipart = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'.encode()
            + b"Content-Type: image/png\r\n\r\n",
            *chunks(MAX_BODY * 3),
            f"\r\n--{boundary}--\r\n".encode(),
        ]
        r = http.put(
            "/api/users/me/avatar",
            headers=auth | {"content-type": f"multipart/form-data; boundary={boundary}"},
            content=iter(multipart),
        )
        assert_problem(r, 413, "payload_too_large")
        assert http.get("/api/users/me", headers=auth).json()["avatar_url"] == avatar

    # A huge declared body is answered at once, without waiting for (or reading) a byte of it.
    head, took = raw_exchange(
        limited_stack.base_url,
        b"POST /api/listings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5000000000\r\n\r\n{",
    )
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"application/problem+json" in head
    assert took < 3, took
    with httpx.Client(base_url=limited_stack.base_url, timeout=10) as http:
        assert http.get("/readyz").status_code == 200


def rate_limited(r: httpx.Response) -> dict[str, Any]:
    body = assert_problem(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1, r.headers
    return body


def test_per_user_rates_of_bids_comments_and_messages(limited_stack: Stack) -> None:
    with httpx.Client(base_url=limited_stack.base_url, timeout=30) as http:
        seller_auth, seller, _ = new_user(http)
        alice_auth, alice, _ = new_user(http)
        bob_auth, _, _ = new_user(http)
        listing = create_listing(http, seller_auth)
        bids = f"/api/listings/{listing['id']}/bids"

        for amount in (10, 20, 30):
            r = http.post(bids, headers=alice_auth, json={"amount": str(amount)})
            assert r.status_code == 201, r.text
        rate_limited(http.post(bids, headers=alice_auth, json={"amount": "40"}))
        # Bob has his own bucket; Alice's refused bid was never placed.
        assert http.post(bids, headers=bob_auth, json={"amount": "50"}).status_code == 201
        history = http.get(bids).json()["items"]
        assert sorted(b["amount"] for b in history) == ["10.00", "20.00", "30.00", "50.00"]

        comments = f"/api/listings/{listing['id']}/comments"
        for text in ("one", "two"):
            assert http.post(comments, headers=alice_auth, json={"text": text}).status_code == 201
        rate_limited(http.post(comments, headers=alice_auth, json={"text": "three"}))
        assert http.post(comments, headers=bob_auth, json={"text": "bob's"}).status_code == 201

        chat = http.post("/api/chats", headers=alice_auth, json={"user_id": seller["id"]}).json()
        messages = f"/api/chats/{chat['id']}/messages"
        for text in ("hi", "there"):
            assert http.post(messages, headers=alice_auth, json={"text": text}).status_code == 201
        rate_limited(http.post(messages, headers=alice_auth, json={"text": "again"}))
        assert http.post(messages, headers=seller_auth, json={"text": "hello"}).status_code == 201
        texts = [m["text"] for m in http.get(messages, headers=alice_auth).json()["items"]]
        assert "again" not in texts and {"hi", "there", "hello"} <= set(texts)

        # Reading is never limited; anonymous writes share their address's bucket (401 until it is empty).
        assert all(http.get(bids).status_code == 200 for _ in range(10))
        anonymous = [http.post(bids, json={"amount": "99"}) for _ in range(4)]
        assert [r.status_code for r in anonymous] == [401, 401, 401, 429]
        rate_limited(anonymous[-1])
        assert alice["id"] != seller["id"]


def login(http: httpx.Client, username: str, password: str) -> httpx.Response:
    return http.post("/api/auth/login", json={"username": username, "password": password})


def test_login_throttling_per_account_then_per_address(limited_stack: Stack) -> None:
    """Runs last in this module: it locks the test client's address out for a while."""
    with httpx.Client(base_url=limited_stack.base_url, timeout=30) as http:
        _, victim, _ = new_user(http)
        _, bystander, _ = new_user(http)
        name = victim["username"]

        for _ in range(3):
            assert_problem(login(http, name, "wrong-password"), 401, "invalid_credentials")
        locked = assert_problem(login(http, name, "wrong-password"), 429, "too_many_attempts")
        assert locked["detail"]
        # During the lockout even the right password is refused: a guesser learns nothing from the answer.
        right = login(http, name, PASSWORD)
        assert_problem(right, 429, "too_many_attempts")
        assert int(right.headers["retry-after"]) >= 1
        # Only that account is locked (3 failures from this address, under the address limit of 8).
        assert login(http, bystander["username"], PASSWORD).status_code == 200
        time.sleep(LOGIN_WINDOW + 0.5)
        assert login(http, name, PASSWORD).status_code == 200

        # Per address: failures spread over many accounts add up. (The address is the one the gateway saw;
        # uvicorn takes X-Forwarded-For only from FORWARDED_ALLOW_IPS, 127.0.0.1 by default, so this test,
        # itself on 127.0.0.1, cannot show a forged one ignored.)
        for i in range(8):
            assert_problem(login(http, f"nobody{i}", "wrong-password"), 401, "invalid_credentials")
        assert_problem(login(http, bystander["username"], PASSWORD), 429, "too_many_attempts")
        time.sleep(LOGIN_WINDOW + 0.5)
        assert login(http, bystander["username"], PASSWORD).status_code == 200
