"""Hostile tokens and cross-user access, through the gateway only, in both run modes.

Every forged, expired, mis-addressed or malformed token is refused with a 401 problem by a protected route
of every service (each verifies tokens itself) and by the ``/ws`` auth frame; and a user never reads or
changes another user's chats, watchlist, listing, avatar or private topic.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets

from tests.e2e.conftest import Stack
from tests.support import images
from tests.support.forge import Forger
from tests.support.hostile import assert_problem, create_listing, new_user


def forger_for(stack: Stack, http: httpx.Client) -> Forger:
    # Both run modes keep the generated signing key in the stack's DATA_DIR (see tests/e2e/conftest.py).
    return Forger(stack.log_path.parent / "data" / "jwt_private_key.pem", http.get("/api/auth/jwks.json").json())


def protected_calls(listing_id: int, amount: int = 1000) -> list[tuple[str, str, str, dict[str, Any] | None]]:
    """One protected route of each service: (service, method, path, JSON body)."""
    return [
        ("users", "GET", "/api/users/me", None),
        (
            "listings",
            "POST",
            "/api/listings",
            {"title": "forged", "category_id": 1, "start_price": "5", "duration_seconds": 600},
        ),
        ("bidding", "POST", f"/api/listings/{listing_id}/bids", {"amount": str(amount)}),
        ("chat", "GET", "/api/chats", None),
    ]


async def ws_auth_answers(ws_url: str, tokens: dict[str, str], user_id: int) -> dict[str, tuple[Any, Any]]:
    """For each token on a fresh socket: the answer to its auth frame, then to subscribing to the private topic."""
    answers: dict[str, tuple[Any, Any]] = {}
    for name, token in tokens.items():
        async with websockets.connect(ws_url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            auth = json.loads(await asyncio.wait_for(ws.recv(), 10))
            await ws.send(json.dumps({"type": "subscribe", "topic": f"user.{user_id}"}))
            subscribe = json.loads(await asyncio.wait_for(ws.recv(), 10))
            answers[name] = (auth, subscribe)
    return answers


def test_hostile_tokens_refused_by_every_service_and_the_socket(any_stack: Stack) -> None:
    with httpx.Client(base_url=any_stack.base_url, timeout=20) as http:
        seller_auth, _, _ = new_user(http)
        listing = create_listing(http, seller_auth)
        auth, user, login = new_user(http)
        forger = forger_for(any_stack, http)
        hostile = forger.hostile(user["id"], login["refresh_token"])
        calls = protected_calls(listing["id"])

        # The same calls with a genuine token, and with one the forger signed honestly, get through:
        # so the refusals below are about the token, nothing else.
        honest = (auth["Authorization"].removeprefix("Bearer "), forger.signed(user["id"]))
        for amount, token in enumerate(honest, start=1):
            for service, method, path, body in protected_calls(listing["id"], amount * 100):
                r = http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
                assert r.status_code in (200, 201), (service, r.status_code, r.text)

        refused: dict[str, list[str]] = {}
        for name, token in hostile.items():
            for service, method, path, body in calls:
                r = http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
                problem = assert_problem(r, 401)
                assert problem["code"] in ("invalid_token", "unauthorized"), (name, service, problem)
                assert r.headers.get("www-authenticate", "").lower().startswith("bearer"), (name, service)
                refused.setdefault(name, []).append(service)
        assert all(services == ["users", "listings", "bidding", "chat"] for services in refused.values()), refused

        # Nothing the hostile calls tried was done: still only the two honest listings and bids of the user.
        mine = http.get("/api/listings", params={"seller_id": "me"}, headers=auth).json()["items"]
        assert len(mine) == 2
        assert len(http.get(f"/api/listings/{listing['id']}/bids").json()["items"]) == 2

        # Other shapes of the Authorization header.
        for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer  a b", "bearer" + " x" * 5000, "Token abc"):
            assert_problem(http.get("/api/users/me", headers={"Authorization": header}), 401)

    answers = asyncio.run(ws_auth_answers(any_stack.ws_url, hostile, user["id"]))
    for name, (auth_answer, subscribe_answer) in answers.items():
        assert auth_answer["type"] == "error" and auth_answer["code"] == "invalid_token", (name, auth_answer)
        # Not authenticated: the user's private topic stays closed to this socket.
        assert subscribe_answer == {
            "type": "error",
            "code": "forbidden_topic",
            "message": "a private topic belongs to its user only",
        }, (name, subscribe_answer)
    genuine = asyncio.run(ws_auth_answers(any_stack.ws_url, {"genuine": forger.signed(user["id"])}, user["id"]))
    assert genuine["genuine"][0] == {"type": "authed", "user_id": user["id"]}


def test_a_user_never_reads_or_changes_what_is_another_users(any_stack: Stack) -> None:
    with httpx.Client(base_url=any_stack.base_url, timeout=20) as http:
        alice_auth, alice, _ = new_user(http)
        bob_auth, bob, _ = new_user(http)
        eve_auth, eve, _ = new_user(http)

        # Chats: Alice and Bob talk; Eve can neither read, post nor mark read, nor see the chat listed.
        chat = http.post("/api/chats", headers=alice_auth, json={"user_id": bob["id"]}).json()
        sent = http.post(f"/api/chats/{chat['id']}/messages", headers=alice_auth, json={"text": "private"})
        assert sent.status_code == 201, sent.text
        assert_problem(http.get(f"/api/chats/{chat['id']}/messages", headers=eve_auth), 403)
        assert_problem(http.post(f"/api/chats/{chat['id']}/messages", headers=eve_auth, json={"text": "hi"}), 403)
        assert_problem(http.post(f"/api/chats/{chat['id']}/read", headers=eve_auth), 403)
        assert http.get(f"/api/chats/{chat['id']}", headers=eve_auth).status_code in (403, 404)
        assert chat["id"] not in [c["id"] for c in http.get("/api/chats", headers=eve_auth).json()["items"]]
        assert http.get("/api/chats/unread", headers=eve_auth).json()["count"] == 0
        # Bob's unread count was not touched by Eve's read; the history holds only Alice's message.
        assert http.get("/api/chats/unread", headers=bob_auth).json()["count"] == 1
        history = http.get(f"/api/chats/{chat['id']}/messages", headers=bob_auth).json()["items"]
        assert [m["text"] for m in history] == ["private"]

        # Listings: Alice's listing resists Bob's PATCH, DELETE, image and close.
        listing = create_listing(http, alice_auth, title="alice's")
        lid = listing["id"]
        assert_problem(http.patch(f"/api/listings/{lid}", headers=bob_auth, json={"title": "bob's now"}), 403)
        assert_problem(http.delete(f"/api/listings/{lid}", headers=bob_auth), 403)
        image = {"file": ("x.png", images.png(), "image/png")}
        assert_problem(http.put(f"/api/listings/{lid}/image", headers=bob_auth, files=image), 403)
        assert_problem(http.post(f"/api/listings/{lid}/close", headers=bob_auth), 403)
        after = http.get(f"/api/listings/{lid}").json()
        assert (after["title"], after["status"], after["image_url"]) == ("alice's", "active", listing["image_url"])

        # Watchlists: each sees only their own; Bob removing his watch leaves Alice's.
        assert http.put(f"/api/listings/{lid}/watch", headers=alice_auth).status_code == 200
        bob_watched = http.get("/api/listings", params={"watched": "true"}, headers=bob_auth).json()["items"]
        assert lid not in [item["id"] for item in bob_watched]
        assert http.get(f"/api/listings/{lid}", headers=bob_auth).json()["watched"] is False
        assert http.delete(f"/api/listings/{lid}/watch", headers=bob_auth).status_code == 200
        alice_watched = http.get("/api/listings", params={"watched": "true"}, headers=alice_auth).json()["items"]
        assert [item["id"] for item in alice_watched] == [lid]
        # Anonymous "watched=true" shows nothing (or is refused), never someone's watchlist.
        anonymous = http.get("/api/listings", params={"watched": "true"})
        assert anonymous.status_code == 401 or anonymous.json()["items"] == [], anonymous.text

        # Avatars: only one's own, through /me; there is no route to set another's.
        alice_avatar = http.get("/api/users/me", headers=alice_auth).json()["avatar_url"]
        r = http.put(f"/api/users/{alice['id']}/avatar", headers=bob_auth, files=image)
        assert r.status_code in (404, 405) and r.headers["content-type"].startswith("application/problem+json")
        assert http.put("/api/users/me/avatar", headers=bob_auth, files=image).status_code == 200
        assert http.get("/api/users/me", headers=alice_auth).json()["avatar_url"] == alice_avatar
        assert http.get(f"/api/users/{alice['id']}").json()["avatar_url"] == alice_avatar
        # A public profile never shows the email.
        assert "email" not in http.get(f"/api/users/{alice['id']}", headers=bob_auth).json()
        bob_token = bob_auth["Authorization"].removeprefix("Bearer ")

    async def private_topics() -> None:
        async with websockets.connect(any_stack.ws_url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": bob_token}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "authed", "user_id": bob["id"]}
            for other in (alice["id"], eve["id"]):
                await ws.send(json.dumps({"type": "subscribe", "topic": f"user.{other}"}))
                answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert answer["type"] == "error" and answer["code"] == "forbidden_topic", answer
            # A message to Alice does not reach Bob's socket through her topic.
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "pong"}

    asyncio.run(private_topics())
