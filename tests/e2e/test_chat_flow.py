"""Chat through the gateway and /ws only, in both run modes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets

from tests.e2e.conftest import Stack
from tests.e2e.test_api_flow import new_user, receive_until


def test_live_chat_unread_counts_and_privacy(any_stack: Stack) -> None:
    http = httpx.Client(base_url=any_stack.base_url, timeout=20)
    alice, alice_user, alice_token = new_user(http)
    bob, bob_user, bob_token = new_user(http)
    eve, _, eve_token = new_user(http)

    # Both race to start the conversation: one chat whichever side starts it.
    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=any_stack.base_url, timeout=20) as client:
            calls = []
            for _ in range(3):
                calls.append(client.post("/api/chats", headers=alice, json={"user_id": bob_user["id"]}))
                calls.append(client.post("/api/chats", headers=bob, json={"user_id": alice_user["id"]}))
            return list(await asyncio.gather(*calls))

    results = asyncio.run(race())
    assert {r.status_code for r in results} <= {200, 201} and [r.status_code for r in results].count(201) == 1
    chat_id = results[0].json()["id"]
    assert {r.json()["id"] for r in results} == {chat_id}
    assert http.post("/api/chats", headers=alice, json={"user_id": alice_user["id"]}).status_code == 422

    async def live() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        async with (
            websockets.connect(any_stack.ws_url) as bob_ws,
            websockets.connect(any_stack.ws_url) as alice_ws,
            websockets.connect(any_stack.ws_url) as eve_ws,
        ):
            for ws, token in ((bob_ws, bob_token), (alice_ws, alice_token), (eve_ws, eve_token)):
                await ws.send(json.dumps({"type": "auth", "token": token}))
                assert json.loads(await ws.recv())["type"] == "authed"
            # Eve subscribes to everything she may: the public feeds; the others' private topics are refused.
            await eve_ws.send(json.dumps({"type": "subscribe", "topic": "listings"}))
            assert json.loads(await eve_ws.recv())["type"] == "subscribed"
            for other in (alice_user["id"], bob_user["id"]):
                await eve_ws.send(json.dumps({"type": "subscribe", "topic": f"user.{other}"}))
                assert json.loads(await eve_ws.recv())["code"] == "forbidden_topic"

            for text in ("hello bob", "are you there?"):
                r = await asyncio.to_thread(
                    http.post, f"/api/chats/{chat_id}/messages", headers=alice, json={"text": text}
                )
                assert r.status_code == 201, r.text
            bob_seen = await receive_until(
                bob_ws,
                lambda s: [m.get("data", {}).get("count") for m in s if m.get("event") == "chat.unread"][-1:] == [2],
            )
            read = await asyncio.to_thread(http.post, f"/api/chats/{chat_id}/read", headers=bob)
            assert read.status_code == 200, read.text
            bob_seen += await receive_until(
                bob_ws, lambda s: any(m.get("event") == "chat.unread" and m["data"]["count"] == 0 for m in s)
            )
            alice_seen = await receive_until(
                alice_ws, lambda s: len([m for m in s if m.get("event") == "chat.message"]) == 2
            )
            try:
                eve_seen = [json.loads(await asyncio.wait_for(eve_ws.recv(), 1.0))]
            except TimeoutError:
                eve_seen = []
            return bob_seen, alice_seen, eve_seen

    bob_seen, alice_seen, eve_seen = asyncio.run(live())
    messages = [m["data"]["message"]["text"] for m in bob_seen if m.get("event") == "chat.message"]
    assert messages == ["hello bob", "are you there?"]
    unread = [m["data"]["count"] for m in bob_seen if m.get("event") == "chat.unread"]
    assert unread == [1, 2, 0]
    # Alice's own messages reach her other tabs, but never count as unread for her.
    assert not any(m.get("event") == "chat.unread" and m["data"]["count"] > 0 for m in alice_seen)
    assert eve_seen == []
    assert http.get("/api/chats/unread", headers=alice).json() == {"count": 0}
    assert http.get("/api/chats/unread", headers=bob).json() == {"count": 0}
    assert http.get(f"/api/chats/{chat_id}/messages", headers=eve).status_code == 403
    assert http.get("/api/chats", headers=eve).json()["items"] == []
    history = http.get(f"/api/chats/{chat_id}/messages", headers=bob, params={"limit": 1}).json()
    assert [m["text"] for m in history["items"]] == ["are you there?"] and history["next_cursor"]
    http.close()
