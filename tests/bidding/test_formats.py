"""The auction formats over the bidding API, in both modes: proxy bidding, reserve price, buy-it-now and
the ending-soon alert (the rules themselves are in test_proxy_rules.py)."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta

from services.bidding.repository import auctions, bids
from shared.events import Envelope, utcnow
from tests.bidding.helpers import SELLER, eventually, running


async def test_proxy_bidding_bids_only_as_needed_and_keeps_maximums_private(bidding_settings, test_keys) -> None:
    async with running(bidding_settings(), test_keys) as b:
        lid = await b.create_listing(start_price="10.00", bid_increment="1.00")
        first = await b.bid(lid, 2, max_amount="50", username="alice")
        assert first.status_code == 201, first.text
        body = first.json()
        assert (body["amount"], body["current_price"], body["leading"], body["max_amount"]) == (
            "10.00",
            "10.00",
            True,
            "50.00",
        )
        assert body["min_next_bid"] == "11.00"

        # Bob's 20 is accepted, and Alice's maximum answers at once with 21.
        second = await b.bid(lid, 3, "20", username="bob")
        assert second.status_code == 201, second.text
        body = second.json()
        assert (body["amount"], body["current_price"], body["leading"], body["max_amount"]) == (
            "20.00",
            "21.00",
            False,
            None,
        )
        assert body["min_next_bid"] == "22.00"
        history = await b.history(lid)
        assert [(h["amount"], h["bidder_id"], h["automatic"]) for h in history] == [
            ("21.00", 2, True),
            ("20.00", 3, False),
            ("10.00", 2, False),
        ]

        # Bob's maximum 60 beats Alice's 50: her maximum bids in full, he leads at 51.
        third = await b.bid(lid, 3, max_amount="60", username="bob")
        assert third.status_code == 201
        assert (third.json()["current_price"], third.json()["leading"], third.json()["max_amount"]) == (
            "51.00",
            True,
            "60.00",
        )
        # Raising his own maximum while leading never raises the price: 200, no new bid.
        raised = await b.bid(lid, 3, max_amount="80", username="bob")
        assert raised.status_code == 200, raised.text
        assert (raised.json()["current_price"], raised.json()["max_amount"], raised.json()["bid_count"]) == (
            "51.00",
            "80.00",
            5,
        )
        # An equal maximum loses to the earlier one: Carol's bid goes in one cent below, Bob leads at 80.
        tie = await b.bid(lid, 4, max_amount="80", username="carol")
        assert tie.status_code == 201 and tie.json()["leading"] is False
        assert (tie.json()["amount"], tie.json()["current_price"]) == ("79.99", "80.00")

        state = await b.auction(lid)
        assert (state["current_price"], state["leader_id"], state["bid_count"], state["min_next_bid"]) == (
            "80.00",
            3,
            7,
            "81.00",
        )
        amounts = [h["amount"] for h in await b.history(lid)]
        assert amounts == ["80.00", "79.99", "51.00", "50.00", "21.00", "20.00", "10.00"]

        # Every automatic step was a bid.placed event; no event, history entry or view shows a maximum
        # that was not reached by a bid (Bob's standing 80 became a bid only when Carol forced it).
        placed = await b.recorder.wait_for("bid.placed", lid, count=7)
        assert sorted(e.data["amount"] for e in placed) == sorted(amounts)
        assert [e.data["bid_count"] for e in sorted(placed, key=lambda e: e.data["bid_id"])] == list(range(1, 8))
        automatic = {e.data["amount"] for e in placed if e.data["automatic"]}
        assert automatic == {"21.00", "50.00", "80.00"}
        published = json.dumps([e.data for e in placed])
        assert "max" not in published and "60.00" not in published
        for url in (f"/api/listings/{lid}/auction", f"/api/listings/{lid}/bids"):
            text = (await b.client.get(url)).text
            assert "60.00" not in text and "max" not in text
        # Who was told they were outbid: Bob by Alice's answer, Alice by Bob's 51, Carol by Bob's 80.
        outbid = sorted(
            (e.data["amount"], e.data["previous_leader_id"]) for e in placed if e.data["previous_leader_id"]
        )
        assert outbid == [("21.00", 3), ("51.00", 2), ("80.00", 4)]


async def test_concurrent_maximums_and_amounts_keep_the_accepted_bids_strictly_increasing(
    bidding_settings, test_keys
) -> None:
    async with running(bidding_settings(), test_keys) as b:
        lid = await b.create_listing(start_price="10.00", bid_increment="0.50")
        rng = random.Random(7)

        async def bidder(user: int) -> list[int]:
            codes = []
            for _ in range(4):
                price = float((await b.auction(lid))["current_price"])
                if rng.random() < 0.5:
                    response = await b.bid(lid, user, max_amount=f"{price + rng.uniform(0.5, 40):.2f}")
                else:
                    response = await b.bid(lid, user, f"{price + rng.choice([0.5, 1, 2]):.2f}")
                codes.append(response.status_code)
            return codes

        codes = [c for cs in await asyncio.gather(*(bidder(u) for u in range(2, 22))) for c in cs]
        assert set(codes) <= {200, 201, 409} and codes.count(201) > 10
        async with b.app.state.runtime.db.read() as session:
            rows = (await session.execute(bids.select().where(bids.c.listing_id == lid).order_by(bids.c.id))).all()
            auction = (await session.execute(auctions.select().where(auctions.c.listing_id == lid))).one()
        amounts = [r.amount_cents for r in rows]
        assert amounts == sorted(amounts) and len(set(amounts)) == len(amounts), amounts
        assert (auction.current_cents, auction.leader_id, auction.bid_count) == (
            amounts[-1],
            rows[-1].bidder_id,
            len(rows),
        )
        assert auction.leader_max_cents is None or auction.leader_max_cents > auction.current_cents
        placed = await b.recorder.wait_for("bid.placed", lid, count=len(rows))
        assert sorted(int(e.data["bid_id"]) for e in placed) == [r.id for r in rows]


async def test_reserve_price_decides_whether_an_auction_sells(bidding_settings, test_keys) -> None:
    async with running(bidding_settings(), test_keys) as b:
        unsold = await b.create_listing(start_price="10.00", reserve_price="40.00")
        low = await b.bid(unsold, 2, "20", username="alice")
        assert low.status_code == 201 and low.json()["reserve_met"] is False
        state = await b.auction(unsold)
        assert state["reserve_met"] is False and "40.00" not in json.dumps(state)
        closed = await b.client.post(f"/api/listings/{unsold}/close", headers=test_keys.auth(SELLER))
        assert closed.status_code == 200
        assert (closed.json()["winner_id"], closed.json()["final_price"], closed.json()["reserve_met"]) == (
            None,
            None,
            False,
        )
        event = (await b.recorder.wait_for("auction.closed", unsold))[0]
        assert (event.data["outcome"], event.data["winner_id"], event.data["reserve_met"]) == ("unsold", None, False)

        # A maximum that reaches the reserve lifts the price to it.
        lifted = await b.create_listing(start_price="10.00", reserve_price="40.00")
        response = await b.bid(lifted, 3, max_amount="45", username="bob")
        assert response.status_code == 201
        assert (response.json()["current_price"], response.json()["reserve_met"]) == ("40.00", True)
        assert (await b.bid(lifted, 2, "41", username="alice")).json()["current_price"] == "42.00"
        closed = await b.client.post(f"/api/listings/{lifted}/close", headers=test_keys.auth(SELLER))
        assert (closed.json()["winner_id"], closed.json()["final_price"]) == (3, "42.00")
        event = (await b.recorder.wait_for("auction.closed", lifted))[0]
        assert (event.data["outcome"], event.data["reserve_met"], event.data["winner_id"]) == ("sold", True, 3)


async def test_buy_now_races_bids_and_exactly_one_outcome_wins(bidding_settings, test_keys) -> None:
    async with running(bidding_settings(), test_keys) as b:
        plain = await b.create_listing(start_price="10.00")
        refused = await b.client.post(f"/api/listings/{plain}/buy", headers=test_keys.auth(2))
        assert refused.status_code == 409 and refused.json()["code"] == "buy_now_unavailable"
        assert refused.headers["content-type"].startswith("application/problem+json")

        lid = await b.create_listing(start_price="10.00", buy_now_price="90.00")
        assert (await b.auction(lid))["buy_now_price"] == "90.00"
        own = await b.client.post(f"/api/listings/{lid}/buy", headers=test_keys.auth(SELLER))
        assert own.status_code == 403 and own.json()["code"] == "own_listing"
        assert (await b.client.post(f"/api/listings/{lid}/buy")).status_code == 401

        buys = [b.client.post(f"/api/listings/{lid}/buy", headers=test_keys.auth(u, f"buyer{u}")) for u in range(2, 8)]
        offers = [b.bid(lid, u, "15", username=f"bidder{u}") for u in range(8, 14)]
        results = await asyncio.gather(*buys, *offers)
        buy_codes = [r.status_code for r in results[:6]]
        bid_codes = [r.status_code for r in results[6:]]
        assert set(buy_codes) <= {200, 409} and set(bid_codes) <= {201, 409}
        state = await b.auction(lid)
        assert state["status"] == "closed" or buy_codes.count(200) == 0
        if buy_codes.count(200):
            # The buy won: one buyer, at the buy-now price, and every bid after it refused as closed.
            assert buy_codes.count(200) == 1 and bid_codes.count(201) == 0
            buyer = results[buy_codes.index(200)].json()
            assert (state["winner_id"], state["final_price"]) == (buyer["winner_id"], "90.00")
            closed = await b.recorder.wait_for("auction.closed", lid)
            await asyncio.sleep(0.3)
            assert len(b.recorder.of("auction.closed", lid)) == 1
            assert (closed[0].data["closed_by"], closed[0].data["final_price"]) == ("buy_now", "90.00")
        else:
            # A bid won the race: buying now is gone with the first bid (no reserve).
            assert bid_codes.count(201) == 1 and state["status"] == "active" and state["buy_now_price"] is None
            assert all(r.json()["code"] == "buy_now_unavailable" for r in results[:6])

        # With a reserve, buying stays possible until a bid reaches it.
        reserved = await b.create_listing(start_price="10.00", reserve_price="50.00", buy_now_price="80.00")
        assert (await b.bid(reserved, 2, "20")).status_code == 201
        bought = await b.client.post(f"/api/listings/{reserved}/buy", headers=test_keys.auth(3, "carol"))
        assert bought.status_code == 200, bought.text
        assert (bought.json()["winner_id"], bought.json()["final_price"], bought.json()["status"]) == (
            3,
            "80.00",
            "closed",
        )
        amounts = [h["amount"] for h in await b.history(reserved)]
        assert amounts == ["80.00", "20.00"]
        late = await b.bid(reserved, 2, "85")
        assert late.status_code == 409 and late.json()["code"] == "auction_closed"
        met = await b.create_listing(start_price="10.00", reserve_price="50.00", buy_now_price="80.00")
        assert (await b.bid(met, 2, "50")).status_code == 201
        gone = await b.client.post(f"/api/listings/{met}/buy", headers=test_keys.auth(3))
        assert gone.status_code == 409 and gone.json()["code"] == "buy_now_unavailable"


async def test_ending_soon_goes_once_to_bidders_and_watchers(bidding_settings, test_keys) -> None:
    async with running(bidding_settings(AUCTION_ENDING_SOON_SECONDS=2), test_keys) as b:
        lid = await b.create_listing(ends_at=utcnow() + timedelta(seconds=3.5))
        short = await b.create_listing(ends_at=utcnow() + timedelta(seconds=1.5))
        assert (await b.bid(lid, 2, "10")).status_code == 201
        assert (await b.bid(lid, 3, "11")).status_code == 201
        for user, event in ((7, "listing.watched"), (8, "listing.watched"), (8, "listing.unwatched")):
            await b.bus.publish(Envelope(type=event, producer="listings", data={"listing_id": lid, "user_id": user}))

        async def watchers_known() -> bool:
            async with b.app.state.runtime.db.read() as session:
                from services.bidding.repository import AuctionRepository

                return await AuctionRepository(session).alert_recipients(lid) == [2, 3, 7]

        await eventually(watchers_known, within=5)
        alerts = await b.recorder.wait_for("auction.ending_soon", lid, within=6)
        assert alerts[0].data["recipient_ids"] == [2, 3, 7]
        assert alerts[0].data["ends_at"] and alerts[0].data["title"] == "A thing"
        await b.wait_closed(lid)
        await b.wait_closed(short)
        await asyncio.sleep(0.6)
        assert len(b.recorder.of("auction.ending_soon", lid)) == 1
        assert b.recorder.of("auction.ending_soon", short) == []  # shorter than the lead: no alert


async def test_banded_increments_apply_when_the_listing_sets_none(bidding_settings, test_keys) -> None:
    async with running(bidding_settings(), test_keys) as b:
        lid = await b.create_listing(start_price="3.00", bid_increment=None)
        state = await b.auction(lid)
        assert (state["bid_increment"], state["min_next_bid"]) == (None, "3.00")
        first = await b.bid(lid, 2, "3.00")
        assert first.status_code == 201 and first.json()["min_next_bid"] == "3.25"  # 1.00-4.99: steps of 0.25
        low = await b.bid(lid, 3, "3.10")
        assert low.status_code == 409 and low.json()["min_next_bid"] == "3.25"
        assert (await b.bid(lid, 3, "3.25")).status_code == 201
        higher = await b.bid(lid, 2, "5.00")
        assert higher.json()["min_next_bid"] == "5.50"  # 5.00-24.99: steps of 0.50
        # A maximum answers with the band's step too: 5.50 from Bob is answered at 6.00 by Alice's 20.
        assert (await b.bid(lid, 2, max_amount="20")).status_code == 200
        answered = await b.bid(lid, 3, "5.50")
        assert (answered.json()["current_price"], answered.json()["leading"]) == ("6.00", False)
        placed = await b.recorder.wait_for("bid.placed", lid, count=5)
        assert {e.data["amount"]: e.data["min_next_bid"] for e in placed}["6.00"] == "6.50"
