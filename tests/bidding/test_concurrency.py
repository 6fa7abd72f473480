"""Many bids at once on one listing: accepted bids strictly increase, none is lost or duplicated."""

from __future__ import annotations

import asyncio
import itertools
import random
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.bidding.helpers import Bidding, running

BIDDERS = 25
TRIES = 4


async def bid_war(bids: list[Bidding], listing_id: int, increment: str, first_user: int = 100) -> list[httpx.Response]:
    """BIDDERS bidders at once, TRIES times each, bidding the minimum they last heard of or a little more:
    most bids of a round collide on the same few amounts."""
    responses: list[httpx.Response] = []
    step = Decimal(increment)

    async def bidder(user: int) -> None:
        rng = random.Random(user)
        target = bids[user % len(bids)]
        minimum = Decimal("1.00")
        for _ in range(TRIES):
            amount = minimum + step * rng.randint(0, 3)
            response = await target.bid(listing_id, user, f"{amount:.2f}", username=f"u{user}")
            responses.append(response)
            if response.status_code != 201:
                assert response.status_code == 409, response.text
                assert response.json()["code"] == "bid_too_low"
            minimum = Decimal(response.json()["min_next_bid"])

    await asyncio.gather(*(bidder(first_user + i) for i in range(BIDDERS)))
    return responses


async def check_invariants(b: Bidding, listing_id: int, responses: list[httpx.Response], increment: str) -> None:
    accepted = [r.json() for r in responses if r.status_code == 201]
    assert len(accepted) >= 5, "the test should produce a real contest"
    amounts = [Decimal(a["amount"]) for a in accepted]
    assert len(set(amounts)) == len(amounts), "two accepted bids share an amount"

    history = await b.history(listing_id)
    assert {h["id"] for h in history} == {a["id"] for a in accepted}, "an accepted bid is missing, or one too many"
    in_order = sorted(history, key=lambda h: h["id"])
    for before, after in itertools.pairwise(in_order):
        assert Decimal(after["amount"]) >= Decimal(before["amount"]) + Decimal(increment)
        assert after["placed_at"] >= before["placed_at"]
    state = await b.auction(listing_id)
    assert Decimal(state["current_price"]) == max(amounts)
    assert state["bid_count"] == len(accepted)
    assert state["leader_id"] == in_order[-1]["bidder_id"]

    events = await b.recorder.wait_for("bid.placed", listing_id, count=len(accepted))
    by_bid = {e.data["bid_id"]: e.data for e in events}
    assert len(by_bid) == len(accepted)
    previous: Any = None
    for count, bid in enumerate(in_order, start=1):
        data = by_bid[bid["id"]]
        assert (data["amount"], data["bid_count"], data["previous_leader_id"]) == (bid["amount"], count, previous)
        previous = bid["bidder_id"]


async def test_concurrent_bids_on_one_listing(bidding_settings, test_keys) -> None:
    async with running(bidding_settings(), test_keys) as b:
        listing_id = await b.create_listing(start_price="1.00", bid_increment="0.50")
        responses = await bid_war([b], listing_id, "0.50")
        await check_invariants(b, listing_id, responses, "0.50")


@pytest.mark.parametrize("mode", ["postgres"])  # replicas are the distributed deployment
async def test_two_replicas_share_one_auction(mode, bidding_settings, test_keys) -> None:
    settings = bidding_settings()
    async with running(settings, test_keys) as one, running(settings, test_keys) as two:
        listing_id = await one.create_listing(start_price="1.00", bid_increment="0.01")
        await two.wait_known(listing_id)
        responses = await bid_war([one, two], listing_id, "0.01")
        await check_invariants(one, listing_id, responses, "0.01")
