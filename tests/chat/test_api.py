"""The chat service through HTTP and the bus, in both modes (SQLite + in-process bus; PostgreSQL + RabbitMQ)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from shared import events
from shared.events import Envelope
from tests.chat.conftest import ChatHarness, auction_closed, user_registered

ALICE, BOB, CAROL = 1, 2, 3


async def test_one_chat_per_pair_whoever_starts_it(chat: ChatHarness) -> None:
    await chat.register(ALICE, "alice")
    await chat.register(BOB, "bob", "/media/avatars/bob.jpg")

    first = await chat.client.post("/api/chats", json={"user_id": BOB}, headers=chat.auth(ALICE))
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["peer"] == {"id": BOB, "username": "bob", "avatar_url": "/media/avatars/bob.jpg"}
    assert body["last_message"] is None
    assert body["unread"] == 0

    again = await chat.client.post("/api/chats", json={"user_id": BOB}, headers=chat.auth(ALICE))
    other_side = await chat.client.post("/api/chats", json={"user_id": ALICE}, headers=chat.auth(BOB))
    assert (again.status_code, other_side.status_code) == (200, 200)
    assert again.json()["id"] == other_side.json()["id"] == body["id"]
    assert other_side.json()["peer"]["username"] == "alice"

    detail = await chat.client.get(f"/api/chats/{body['id']}", headers=chat.auth(BOB))
    assert detail.status_code == 200
    assert detail.json()["peer"]["id"] == ALICE

    own = await chat.client.post("/api/chats", json={"user_id": ALICE}, headers=chat.auth(ALICE))
    assert own.status_code == 422
    assert own.headers["content-type"].startswith("application/problem+json")
    assert own.json()["code"] == "self_chat"

    unknown = await chat.client.post("/api/chats", json={"user_id": 999}, headers=chat.auth(ALICE))
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"

    assert [c["id"] for c in (await chat.chats(ALICE))["items"]] == [body["id"]]
    assert [c["id"] for c in (await chat.chats(BOB))["items"]] == [body["id"]]


async def test_caller_without_a_profile_yet_and_profile_updates(chat: ChatHarness) -> None:
    await chat.register(ALICE, "alice")
    # Dave's registration event has not arrived: his token vouches for him.
    dave = 4
    started = await chat.client.post("/api/chats", json={"user_id": ALICE}, headers=chat.auth(dave, "dave"))
    assert started.status_code == 201, started.text
    listed = (await chat.chats(ALICE))["items"]
    assert listed[0]["peer"] == {"id": dave, "username": "dave", "avatar_url": "/media/avatars/default.svg"}

    # Then his events arrive, the older one last: the newer profile stays.
    registered = user_registered(dave, "dave", "/media/avatars/default.svg")
    updated = Envelope(
        type=events.USER_UPDATED,
        producer="users",
        data={"user_id": dave, "username": "dave", "avatar_url": "/media/avatars/dave.jpg"},
        occurred_at=registered.occurred_at + timedelta(seconds=1),
    )
    await chat.publish(updated, registered)
    assert (await chat.chats(ALICE))["items"][0]["peer"]["avatar_url"] == "/media/avatars/dave.jpg"

    # A known caller starting another chat does not reset their avatar from the token.
    await chat.register(BOB, "bob")
    assert (await chat.client.post("/api/chats", json={"user_id": BOB}, headers=chat.auth(dave))).status_code == 201
    assert (await chat.chats(BOB))["items"][0]["peer"]["avatar_url"] == "/media/avatars/dave.jpg"


async def test_racing_to_start_the_same_chat_ends_with_one(chat: ChatHarness) -> None:
    rounds = [(100 + 2 * i, 101 + 2 * i) for i in range(5)]
    await chat.register_many(*(user for pair in rounds for user in pair))
    for a, b in rounds:
        responses = await asyncio.gather(
            chat.client.post("/api/chats", json={"user_id": b}, headers=chat.auth(a)),
            chat.client.post("/api/chats", json={"user_id": a}, headers=chat.auth(b)),
            chat.client.post("/api/chats", json={"user_id": b}, headers=chat.auth(a)),
            chat.client.post("/api/chats", json={"user_id": a}, headers=chat.auth(b)),
        )
        assert sorted(r.status_code for r in responses) == [200, 200, 200, 201], [r.text for r in responses]
        assert len({r.json()["id"] for r in responses}) == 1
        assert len((await chat.chats(a))["items"]) == 1
        assert len((await chat.chats(b))["items"]) == 1


async def test_only_members_see_or_touch_a_chat(chat: ChatHarness) -> None:
    await chat.register_many(ALICE, BOB, CAROL)
    chat_id = (await chat.start_chat(ALICE, BOB))["id"]
    await chat.send(ALICE, chat_id, "for Bob only")
    await chat.wait_published(events.CHAT_MESSAGE_SENT, 1)
    before = await chat.message_count()

    outsider = chat.auth(CAROL)
    calls = [
        chat.client.get(f"/api/chats/{chat_id}", headers=outsider),
        chat.client.get(f"/api/chats/{chat_id}/messages", headers=outsider),
        chat.client.post(f"/api/chats/{chat_id}/messages", json={"text": "hi"}, headers=outsider),
        chat.client.post(f"/api/chats/{chat_id}/read", headers=outsider),
    ]
    for response in await asyncio.gather(*calls):
        assert response.status_code == 403, response.text
        problem = response.json()
        assert problem["code"] == "forbidden"
        assert "for Bob only" not in response.text and "user1" not in response.text

    for path in ("/api/chats/999999", "/api/chats/999999/messages"):
        missing = await chat.client.get(path, headers=chat.auth(ALICE))
        assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    missing = await chat.client.post("/api/chats/999999/messages", json={"text": "x"}, headers=chat.auth(ALICE))
    assert missing.status_code == 404

    assert (await chat.chats(CAROL))["items"] == []
    assert await chat.unread(CAROL) == 0
    assert await chat.message_count() == before
    await chat.settle()
    # Nothing published involves Carol.
    for event in chat.published:
        assert CAROL not in (event.data.get("sender_id"), event.data.get("recipient_id"), event.data.get("user_id"))


async def test_history_is_newest_first_and_paginated(chat: ChatHarness) -> None:
    await chat.register_many(ALICE, BOB)
    chat_id = (await chat.start_chat(ALICE, BOB))["id"]
    sent = [await chat.send(ALICE if i % 2 else BOB, chat_id, f"message {i}") for i in range(5)]
    assert sent[0]["text"] == "message 0" and sent[0]["chat_id"] == chat_id and sent[0]["sender_id"] == BOB
    assert sent[0]["created_at"].endswith("Z")

    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await chat.client.get(f"/api/chats/{chat_id}/messages", params=params, headers=chat.auth(BOB))
        assert page.status_code == 200, page.text
        seen += [m["id"] for m in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [m["id"] for m in reversed(sent)]

    bad = await chat.client.get(f"/api/chats/{chat_id}/messages", params={"cursor": "nonsense"}, headers=chat.auth(BOB))
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_cursor")
    too_many = await chat.client.get(f"/api/chats/{chat_id}/messages", params={"limit": 101}, headers=chat.auth(BOB))
    assert too_many.status_code == 422


async def test_chat_list_orders_by_activity_and_paginates(chat: ChatHarness) -> None:
    await chat.register_many(ALICE, BOB, CAROL, 4)
    with_bob = (await chat.start_chat(ALICE, BOB))["id"]
    with_carol = (await chat.start_chat(ALICE, CAROL))["id"]
    with_dave = (await chat.start_chat(4, ALICE))["id"]
    assert [c["id"] for c in (await chat.chats(ALICE))["items"]] == [with_dave, with_carol, with_bob]

    message = await chat.send(BOB, with_bob, "news")
    items = (await chat.chats(ALICE))["items"]
    assert [c["id"] for c in items] == [with_bob, with_dave, with_carol]
    assert items[0]["last_message"] == {k: message[k] for k in ("id", "sender_id", "text", "created_at")}
    assert items[0]["unread"] == 1

    pages: list[int] = []
    cursor = None
    while True:
        page = await chat.chats(ALICE, limit=1, **({"cursor": cursor} if cursor else {}))
        pages += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [with_bob, with_dave, with_carol]


async def test_bad_input_is_a_problem_and_changes_nothing(chat: ChatHarness) -> None:
    await chat.register_many(ALICE, BOB)
    chat_id = (await chat.start_chat(ALICE, BOB))["id"]
    await chat.send(ALICE, chat_id, "kept")
    await chat.wait_published(events.CHAT_MESSAGE_SENT, 1)
    before = await chat.message_count()
    url = f"/api/chats/{chat_id}/messages"
    headers = chat.auth(ALICE)

    bodies: list[object] = [
        {"text": ""},
        {"text": "   "},
        {"text": "x" * 1001},
        {"text": 12},
        {"text": None},
        {},
        ["x"],
    ]
    for body in bodies:
        response = await chat.client.post(url, json=body, headers=headers)
        assert response.status_code == 422, (body, response.text)
        problem = response.json()
        assert problem["code"] == "validation_error" and problem["errors"], problem
    broken = await chat.client.post(url, content=b"{not json", headers=headers | {"content-type": "application/json"})
    assert broken.status_code == 422
    nul = await chat.client.post(url, json={"text": "a\u0000b"}, headers=headers)
    assert nul.status_code == 422

    for body in ({"user_id": "2"}, {"user_id": 2**63}, {"user_id": 0}, {}):
        response = await chat.client.post("/api/chats", json=body, headers=headers)
        assert response.status_code == 422, (body, response.text)
    for path in ("/api/chats/abc/messages", f"/api/chats/{2**63}/messages", "/api/chats/0/read"):
        response = await chat.client.post(path, json={"text": "x"}, headers=headers)
        assert response.status_code == 422, (path, response.text)
    too_long_key = await chat.client.post(url, json={"text": "x"}, headers=headers | {"Idempotency-Key": "k" * 256})
    assert too_long_key.status_code == 422

    assert (await chat.client.post(url, json={"text": "x"})).status_code == 401
    assert (await chat.client.get("/api/chats")).status_code == 401
    bad_token = await chat.client.get("/api/chats", headers={"Authorization": "Bearer nope"})
    assert (bad_token.status_code, bad_token.json()["code"]) == (401, "invalid_token")

    ok = await chat.send(ALICE, chat_id, "x" * 1000)
    assert len(ok["text"]) == 1000
    assert await chat.message_count() == before + 1
    await chat.settle()
    assert len(chat.of_type(events.CHAT_MESSAGE_SENT)) == 2


async def test_idempotency_key_returns_the_first_result(chat: ChatHarness) -> None:
    await chat.register_many(ALICE, BOB)
    chat_id = (await chat.start_chat(ALICE, BOB))["id"]

    first = await chat.send(ALICE, chat_id, "once", key="k-1")
    again = await chat.send(ALICE, chat_id, "once", key="k-1")
    assert again == first
    raced = await asyncio.gather(*(chat.send(ALICE, chat_id, "race", key="k-2") for _ in range(4)))
    assert len({m["id"] for m in raced}) == 1
    # The same key from another user is their own.
    bobs = await chat.send(BOB, chat_id, "once", key="k-1")
    assert bobs["id"] != first["id"]
    # The same key for a different message is refused, not silently answered with the first.
    reused = await chat.client.post(
        f"/api/chats/{chat_id}/messages", json={"text": "other"}, headers=chat.auth(ALICE) | {"Idempotency-Key": "k-1"}
    )
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")

    history = await chat.client.get(f"/api/chats/{chat_id}/messages", headers=chat.auth(ALICE))
    assert [m["text"] for m in history.json()["items"]] == ["once", "race", "once"]
    await chat.settle()
    assert len(chat.of_type(events.CHAT_MESSAGE_SENT)) == 3
    assert await chat.unread(BOB) == 2


async def test_unread_totals_never_count_own_messages_and_events_carry_them(chat: ChatHarness) -> None:
    await chat.register_many(ALICE, BOB, CAROL)
    with_bob = (await chat.start_chat(BOB, ALICE))["id"]
    with_carol = (await chat.start_chat(CAROL, ALICE))["id"]

    await chat.send(BOB, with_bob, "b1")
    await chat.send(BOB, with_bob, "b2")
    await chat.send(CAROL, with_carol, "c1")
    await chat.send(ALICE, with_bob, "a1")
    sent = await chat.wait_published(events.CHAT_MESSAGE_SENT, 4)
    assert [(e.data["recipient_id"], e.data["recipient_unread"]) for e in sent] == [
        (ALICE, 1),
        (ALICE, 2),
        (ALICE, 3),
        (BOB, 1),
    ]
    last = sent[-1].data
    assert set(last) == {"chat_id", "sender_id", "recipient_id", "message", "recipient_unread"}
    assert last["chat_id"] == with_bob and last["sender_id"] == ALICE
    assert set(last["message"]) == {"id", "chat_id", "sender_id", "text", "created_at"}
    assert last["message"]["text"] == "a1"

    assert await chat.unread(ALICE) == 3
    assert await chat.unread(BOB) == 1  # Alice's one; never his own two
    assert await chat.unread(CAROL) == 0
    unread_by_chat = {c["id"]: c["unread"] for c in (await chat.chats(ALICE))["items"]}
    assert unread_by_chat == {with_bob: 2, with_carol: 1}

    read = await chat.client.post(f"/api/chats/{with_bob}/read", headers=chat.auth(ALICE))
    assert read.status_code == 200, read.text
    assert read.json() == {"chat_id": with_bob, "unread": 1}
    (read_event,) = await chat.wait_published(events.CHAT_READ, 1)
    assert read_event.data == {"chat_id": with_bob, "user_id": ALICE, "unread": 1}
    assert await chat.unread(ALICE) == 1
    assert {c["id"]: c["unread"] for c in (await chat.chats(ALICE))["items"]} == {with_bob: 0, with_carol: 1}

    # A new message after the read counts again, on top of the other chat's.
    await chat.send(BOB, with_bob, "b3")
    sent = await chat.wait_published(events.CHAT_MESSAGE_SENT, 5)
    assert (sent[-1].data["recipient_id"], sent[-1].data["recipient_unread"]) == (ALICE, 2)

    await chat.client.post(f"/api/chats/{with_carol}/read", headers=chat.auth(ALICE))
    await chat.client.post(f"/api/chats/{with_bob}/read", headers=chat.auth(ALICE))
    reads = await chat.wait_published(events.CHAT_READ, 3)
    assert [e.data["unread"] for e in reads] == [1, 1, 0]
    assert await chat.unread(ALICE) == 0
    # Bob reading does not touch Alice's total.
    await chat.client.post(f"/api/chats/{with_bob}/read", headers=chat.auth(BOB))
    reads = await chat.wait_published(events.CHAT_READ, 4)
    assert reads[-1].data == {"chat_id": with_bob, "user_id": BOB, "unread": 0}
    assert await chat.unread(ALICE) == 0


async def test_concurrent_messages_to_one_user_carry_distinct_true_totals(chat: ChatHarness) -> None:
    await chat.register_many(ALICE, BOB, CAROL)
    with_bob = (await chat.start_chat(BOB, ALICE))["id"]
    with_carol = (await chat.start_chat(CAROL, ALICE))["id"]
    await asyncio.gather(
        *(chat.send(BOB, with_bob, f"b{i}") for i in range(4)),
        *(chat.send(CAROL, with_carol, f"c{i}") for i in range(4)),
        *(chat.send(ALICE, with_bob, f"a{i}") for i in range(2)),
    )
    sent = await chat.wait_published(events.CHAT_MESSAGE_SENT, 10)
    to_alice = sorted(e.data["recipient_unread"] for e in sent if e.data["recipient_id"] == ALICE)
    to_bob = sorted(e.data["recipient_unread"] for e in sent if e.data["recipient_id"] == BOB)
    assert to_alice == list(range(1, 9))
    assert to_bob == [1, 2]
    assert await chat.unread(ALICE) == 8


async def test_auction_winner_gets_exactly_one_message(chat: ChatHarness) -> None:
    seller, winner = 10, 11
    await chat.register(seller, "seller")
    await chat.register(winner, "winner")

    closed = auction_closed(42, seller, winner)
    replayed = auction_closed(42, seller, winner)  # the same fact re-published under a new id
    await chat.publish(closed, closed, replayed)

    chats = (await chat.chats(winner))["items"]
    assert len(chats) == 1
    assert chats[0]["peer"]["id"] == seller and chats[0]["unread"] == 1
    history = await chat.client.get(f"/api/chats/{chats[0]['id']}/messages", headers=chat.auth(winner))
    (message,) = history.json()["items"]
    assert message["sender_id"] == seller
    assert message["text"] == 'Congratulations, you won "Harry Potter box set" for 156.36! /listings/42'
    assert "/listings/42" in message["text"]

    (event,) = await chat.wait_published(events.CHAT_MESSAGE_SENT, 1)
    assert event.data["recipient_id"] == winner and event.data["recipient_unread"] == 1
    assert event.data["message"]["id"] == message["id"]
    # The seller's own message never counts for the seller.
    assert await chat.unread(seller) == 0
    assert await chat.unread(winner) == 1

    # A sale without a winner sends nothing; another win uses the existing chat.
    await chat.publish(auction_closed(43, seller, None))
    await chat.publish(auction_closed(44, seller, winner, title="Lamp", final_price="5.00"))
    chats = (await chat.chats(winner))["items"]
    assert len(chats) == 1 and chats[0]["unread"] == 2
    assert chats[0]["last_message"]["text"] == 'Congratulations, you won "Lamp" for 5.00! /listings/44'
    await chat.settle()
    assert len(chat.of_type(events.CHAT_MESSAGE_SENT)) == 2
    assert await chat.message_count() == 2


async def test_winner_message_before_profiles_arrive(chat: ChatHarness) -> None:
    seller, winner = 20, 21
    await chat.publish(auction_closed(7, seller, winner))
    chats = (await chat.chats(winner))["items"]
    assert chats[0]["peer"] == {"id": seller, "username": f"user{seller}", "avatar_url": "/media/avatars/default.svg"}
    # The profile, when it comes, replaces the stand-in.
    await chat.register(seller, "real-seller", "/media/avatars/s.jpg")
    chats = (await chat.chats(winner))["items"]
    assert chats[0]["peer"]["username"] == "real-seller"
    assert (await chat.chats(seller))["items"][0]["unread"] == 0
