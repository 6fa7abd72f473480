"""The bid API in both modes: answers, bad input, history, Idempotency-Key, the seller's close."""

from __future__ import annotations

import asyncio
import json
import time

from services.bidding.models import CLOSED
from services.bidding.repository import auctions
from tests.bidding.helpers import SELLER, listing_created, new_listing_id, running

BID_PLACED_FIELDS = {
    "listing_id",
    "bid_id",
    "amount",
    "bidder_id",
    "bidder_username",
    "bid_count",
    "ends_at",
    "placed_at",
    "previous_leader_id",
    "seller_id",
    "automatic",
    "reserve_met",
    "buy_now_available",
    "min_next_bid",
}


async def test_bids_follow_the_rules_and_answer_in_the_contracts_shape(bidding_settings, test_keys) -> None:
    async with running(bidding_settings(), test_keys) as b:
        lid = await b.create_listing(start_price="10.00", bid_increment="1.00")
        url = f"/api/listings/{lid}/bids"

        missing = await b.client.post(url, json={"amount": "10"})
        assert missing.status_code == 401
        assert missing.headers["content-type"].startswith("application/problem+json")
        bad_token = await b.client.post(url, json={"amount": "10"}, headers={"Authorization": "Bearer nope"})
        assert bad_token.status_code == 401

        own = await b.bid(lid, SELLER, "50")
        assert own.status_code == 403 and own.json()["code"] == "own_listing"

        low = await b.bid(lid, 2, "9.99")
        assert low.status_code == 409
        assert low.json()["code"] == "bid_too_low" and low.json()["min_next_bid"] == "10.00"

        first = await b.bid(lid, 2, "10", username="alice")
        assert first.status_code == 201, first.text
        body = first.json()
        assert set(body) >= {"id", "listing_id", "bidder_id", "amount", "placed_at", "current_price", "ends_at"}
        assert (body["listing_id"], body["bidder_id"], body["amount"], body["current_price"]) == (
            lid,
            2,
            "10.00",
            "10.00",
        )
        assert body["placed_at"].endswith("Z") and body["ends_at"].endswith("Z")
        assert "x-server-time" in first.headers

        too_low = await b.bid(lid, 3, "10.99")
        assert too_low.status_code == 409 and too_low.json()["min_next_bid"] == "11.00"
        second = await b.bid(lid, 3, 11, username="bob")  # a JSON number
        assert second.status_code == 201 and second.json()["amount"] == "11.00"
        rounded = await b.bid(lid, 2, "11.995", username="alice")  # rounded half-up to 12.00
        assert rounded.status_code == 201 and rounded.json()["amount"] == "12.00"
        self_raise = await b.bid(lid, 2, "13", username="alice")  # the leader may raise their own bid
        assert self_raise.status_code == 201

        # History: highest first, paginated.
        page = (await b.client.get(f"/api/listings/{lid}/bids", params={"limit": 2})).json()
        assert [i["amount"] for i in page["items"]] == ["13.00", "12.00"]
        assert page["items"][0]["bidder_username"] == "alice"
        rest = (await b.client.get(f"/api/listings/{lid}/bids", params={"cursor": page["next_cursor"]})).json()
        assert [i["amount"] for i in rest["items"]] == ["11.00", "10.00"] and rest["next_cursor"] is None
        bad_cursor = await b.client.get(f"/api/listings/{lid}/bids", params={"cursor": "garbage"})
        assert bad_cursor.status_code == 422

        # My bids: newest first, with where the auction stands.
        mine = await b.client.get("/api/bids", params={"bidder": "me", "limit": 2}, headers=test_keys.auth(2))
        assert mine.status_code == 200
        items = mine.json()["items"]
        assert [i["amount"] for i in items] == ["13.00", "12.00"] and items[0]["leading"] is True
        assert (await b.client.get("/api/bids", params={"bidder": "me"})).status_code == 401
        assert (await b.client.get("/api/bids", params={"bidder": "7"}, headers=test_keys.auth(2))).status_code == 422
        bobs = (await b.client.get("/api/bids", headers=test_keys.auth(3))).json()["items"]
        assert [(i["amount"], i["leading"], i["status"]) for i in bobs] == [("11.00", False, "active")]

        state = await b.auction(lid)
        assert (state["current_price"], state["bid_count"], state["leader_id"], state["min_next_bid"]) == (
            "13.00",
            4,
            2,
            "14.00",
        )

        # Events: one bid.placed per accepted bid, the catalogue's fields, the previous leader for bid.outbid.
        placed = await b.recorder.wait_for("bid.placed", lid, count=4)
        assert all(set(e.data) == BID_PLACED_FIELDS for e in placed)
        by_amount = {e.data["amount"]: e.data for e in placed}
        assert by_amount["10.00"]["previous_leader_id"] is None
        assert by_amount["11.00"]["previous_leader_id"] == 2
        assert by_amount["12.00"]["previous_leader_id"] == 3
        assert by_amount["12.00"]["bidder_username"] == "alice" and by_amount["12.00"]["seller_id"] == SELLER
        assert by_amount["13.00"]["bid_count"] == 4 and by_amount["13.00"]["bid_id"] == self_raise.json()["id"]
        assert all(e.producer == "bidding" for e in placed)

        openapi = (await b.client.get("/openapi.json")).json()
        paths = {"/api/listings/{listing_id}/bids", "/api/listings/{listing_id}/close", "/api/bids"}
        assert paths <= set(openapi["paths"])
        metrics = (await b.client.get("/metrics")).text
        assert "bidding_close_sends_total" in metrics


async def test_unknown_listings_wait_briefly_for_listing_created(bidding_settings, test_keys) -> None:
    async with running(bidding_settings(BIDDING_UNKNOWN_LISTING_WAIT_SECONDS=0.8), test_keys) as b:
        started = time.monotonic()
        unknown = await b.bid(new_listing_id(), 2, "10")
        assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
        assert time.monotonic() - started >= 0.75
        assert (await b.client.get(f"/api/listings/{new_listing_id()}/bids")).status_code == 404
        huge = await b.client.post(
            "/api/listings/99999999999999999999999/bids", json={"amount": 1}, headers=test_keys.auth(2)
        )
        assert huge.status_code == 422

        # The bid arrives before listing.created has been applied: it waits, then goes through.
        lid = new_listing_id()

        async def created_late() -> None:
            await asyncio.sleep(0.2)
            await b.bus.publish(listing_created(lid))

        early, _ = await asyncio.gather(b.bid(lid, 2, "10"), created_late())
        assert early.status_code == 201, early.text


RAW_BAD_BODIES: list[tuple[str, str]] = [
    ('{"amount": "abc"}', "text"),
    ('{"amount": null}', "null"),
    ('{"amount": "NaN"}', "NaN text"),
    ('{"amount": NaN}', "NaN literal"),
    ('{"amount": Infinity}', "Infinity literal"),
    ('{"amount": "-Infinity"}', "-Infinity text"),
    ('{"amount": "Infinity"}', "Infinity text"),
    ('{"amount": -5}', "negative"),
    ('{"amount": "-5.00"}', "negative text"),
    ('{"amount": 0}', "zero"),
    ('{"amount": "0.004"}', "rounds to zero"),
    ('{"amount": 1e400}', "1e400 number"),
    ('{"amount": "1e400"}', "1e400 text"),
    ('{"amount": "-1e400"}', "-1e400 text"),
    ('{"amount": "1000000000.01"}', "over the maximum"),
    ('{"amount": [10]}', "a list"),
    ('{"amount": {"v": 10}}', "an object"),
    ('{"amount": true}', "a boolean"),
    ('{"amount": ""}', "empty"),
    ('{"amount": "12,50"}', "comma"),
    ('{"amount": "1.0000000000000000000000000000000000000001"}', "too many decimals to be a price"),
    ("{}", "missing"),
    ("[]", "not an object"),
    ('{"amount": ', "not JSON"),
    ("", "no body"),
]


async def test_every_bad_amount_is_a_422_problem_and_changes_nothing(bidding_settings, test_keys) -> None:
    async with running(bidding_settings(), test_keys) as b:
        lid = await b.create_listing(start_price="10.00")
        headers = test_keys.auth(2) | {"content-type": "application/json"}
        for raw, what in RAW_BAD_BODIES:
            response = await b.client.post(f"/api/listings/{lid}/bids", content=raw, headers=headers)
            assert response.status_code == 422, (what, response.status_code, response.text)
            problem = response.json()
            assert response.headers["content-type"].startswith("application/problem+json"), what
            assert {"type", "title", "status", "code"} <= set(problem) and problem["status"] == 422, what
            assert "Traceback" not in response.text
        for body in ({"amount": "20", "max_amount": "15"}, {"max_amount": None}, {"max_amount": "-1"}):
            proxy = await b.client.post(f"/api/listings/{lid}/bids", json=body, headers=test_keys.auth(2))
            assert proxy.status_code == 422, body
        state = await b.auction(lid)
        assert state["bid_count"] == 0 and state["current_price"] == "10.00"
        assert await b.history(lid) == []
        # The largest amount allowed is accepted.
        assert (await b.bid(lid, 2, "1000000000")).status_code == 201
        await asyncio.sleep(0.2)
        assert len(b.recorder.of("bid.placed", lid)) == 1


async def test_idempotency_key_returns_the_first_result(bidding_settings, test_keys) -> None:
    async with running(bidding_settings(), test_keys) as b:
        lid = await b.create_listing(start_price="10.00", bid_increment="1.00")

        first = await b.bid(lid, 2, "10", key="k-1")
        again = await b.bid(lid, 2, "10", key="k-1")
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json() and again.headers.get("idempotent-replayed") == "true"

        # The same key, many times at once: one bid, the same answer everywhere.
        burst = await asyncio.gather(*(b.bid(lid, 3, "11", key="k-2") for _ in range(12)))
        assert {r.status_code for r in burst} == {201}
        assert len({json.dumps(r.json(), sort_keys=True) for r in burst}) == 1

        # Another user's key with the same name is theirs alone.
        other = await b.bid(lid, 4, "12", key="k-1")
        assert other.status_code == 201 and other.json()["bidder_id"] == 4

        # A refusal is a result too: replayed as it was, even once the situation changed.
        refused = await b.bid(lid, 2, "12.50", key="k-3")
        assert refused.status_code == 409 and refused.json()["min_next_bid"] == "13.00"
        assert (await b.bid(lid, 2, "12.50", key="k-3")).json() == refused.json()

        # The same key for a different request is refused.
        reused = await b.bid(lid, 2, "20", key="k-1")
        assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"

        long_key = await b.bid(lid, 2, "20", key="x" * 256)
        assert long_key.status_code == 422

        assert [i["amount"] for i in await b.history(lid)] == ["12.00", "11.00", "10.00"]
        await b.recorder.wait_for("bid.placed", lid, count=3)
        await asyncio.sleep(0.2)
        assert len(b.recorder.of("bid.placed", lid)) == 3


async def test_the_seller_closes_early_once(bidding_settings, test_keys) -> None:
    async with running(bidding_settings(), test_keys) as b:
        lid = await b.create_listing(start_price="10.00")
        assert (await b.bid(lid, 2, "10", username="alice")).status_code == 201
        close_url = f"/api/listings/{lid}/close"

        assert (await b.client.post(close_url)).status_code == 401
        not_seller = await b.client.post(close_url, headers=test_keys.auth(2))
        assert not_seller.status_code == 403
        unknown = await b.client.post(f"/api/listings/{new_listing_id()}/close", headers=test_keys.auth(SELLER))
        assert unknown.status_code == 404

        closes = await asyncio.gather(*(b.client.post(close_url, headers=test_keys.auth(SELLER)) for _ in range(5)))
        assert sorted(r.status_code for r in closes) == [200, 409, 409, 409, 409]
        closed = next(r.json() for r in closes if r.status_code == 200)
        assert (closed["status"], closed["winner_id"], closed["winner_username"], closed["final_price"]) == (
            "closed",
            2,
            "alice",
            "10.00",
        )
        assert all(r.json()["code"] == "auction_closed" for r in closes if r.status_code == 409)

        late = await b.bid(lid, 3, "20")
        assert late.status_code == 409 and late.json()["code"] == "auction_closed"

        event = (await b.recorder.wait_for("auction.closed", lid))[0]
        assert event.data == {
            "listing_id": lid,
            "seller_id": SELLER,
            "title": "A thing",
            "winner_id": 2,
            "winner_username": "alice",
            "final_price": "10.00",
            "bid_count": 1,
            "closed_at": closed["closed_at"],
            "outcome": "sold",
            "reserve_met": None,
            "closed_by": "seller",
        }
        async with b.app.state.runtime.db.read() as session:
            row = (await session.execute(auctions.select().where(auctions.c.listing_id == lid))).one()
        assert (row.status, row.closed_by) == (CLOSED, "seller")
        await asyncio.sleep(0.6)  # a sweep round: nothing more happens
        assert len(b.recorder.of("auction.closed", lid)) == 1
