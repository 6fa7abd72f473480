"""Closing in both modes: on time by itself, exactly once under races, soft close, long waits, restarts."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from services.bidding.repository import auctions
from shared.auth import Principal
from shared.events import utcnow
from tests.bidding.helpers import SELLER, Bidding, eventually, listing_created, new_listing_id, running

#: How late a close may be here. Typically it is 10-100 ms; the margin absorbs a loaded test machine.
LATENESS = 0.8


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def _true(value: bool) -> bool:
    return value


async def row(b: Bidding, listing_id: int) -> Any:
    async with b.app.state.runtime.db.read() as session:
        return (await session.execute(auctions.select().where(auctions.c.listing_id == listing_id))).one()


async def sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - utcnow()).total_seconds()))


async def test_auctions_close_on_time_by_themselves(bidding_settings, test_keys) -> None:
    # No sweep during the test: the dramatiq timer alone closes them.
    async with running(bidding_settings(BIDDING_SWEEP_SECONDS=60), test_keys) as b:
        ends_at = utcnow() + timedelta(seconds=2.5)
        sold, unsold, single = [await b.create_listing(ends_at=ends_at) for _ in range(3)]
        assert (await b.bid(sold, 2, "10", username="alice")).status_code == 201
        assert (await b.bid(sold, 3, "11", username="bob")).status_code == 201
        assert (await b.bid(single, 4, "15", username="carol")).status_code == 201

        closed = {e.data["listing_id"]: e for e in await b.recorder.wait_for("auction.closed", count=3, within=8)}
        assert closed[sold].data | {"closed_at": None} == {
            "listing_id": sold,
            "seller_id": SELLER,
            "title": "A thing",
            "winner_id": 3,
            "winner_username": "bob",
            "final_price": "11.00",
            "bid_count": 2,
            "closed_at": None,
            "outcome": "sold",
            "reserve_met": None,
            "closed_by": "timer",
        }
        assert closed[unsold].data["outcome"] == "unsold"
        assert (closed[unsold].data["winner_id"], closed[unsold].data["final_price"]) == (None, None)
        assert closed[unsold].data["bid_count"] == 0 and closed[unsold].data["winner_username"] is None
        assert (closed[single].data["winner_id"], closed[single].data["final_price"]) == (4, "15.00")
        for listing_id, event in closed.items():
            state = await row(b, listing_id)
            assert state.closed_by == "timer"
            lateness = (state.closed_at - state.ends_at).total_seconds()
            assert 0 <= lateness < LATENESS, lateness
            # ...and watchers hear of it well within a second of the end.
            heard = (b.recorder.received_at[str(event.id)] - ends_at).total_seconds()
            assert heard < 1.0, heard
        late = await b.bid(sold, 5, "50")
        assert late.status_code == 409 and late.json()["code"] == "auction_closed"
        await asyncio.sleep(0.3)
        assert len(b.recorder.of("auction.closed")) == 3


async def test_a_bid_after_the_end_is_refused_before_the_close_runs(bidding_settings, test_keys) -> None:
    # Neither the worker nor the sweep runs: only the clock stops the bid.
    settings = bidding_settings(BIDDING_INPROCESS_WORKER=False, BIDDING_SWEEP_SECONDS=3600)
    async with running(settings, test_keys) as b:
        ends_at = utcnow() + timedelta(seconds=0.6)
        lid = await b.create_listing(ends_at=ends_at)
        assert (await b.bid(lid, 2, "10")).status_code == 201
        await sleep_until(ends_at + timedelta(milliseconds=20))
        refused = await b.bid(lid, 3, "100")
        assert refused.status_code == 409 and refused.json()["code"] == "auction_closed"
        assert (await b.auction(lid))["status"] == "active"  # not closed yet...
        assert await b.app.state.bidding.sweep() == 1  # ...until the sweep comes by
        event = (await b.recorder.wait_for("auction.closed", lid))[0]
        assert (event.data["winner_id"], event.data["final_price"]) == (2, "10.00")
        assert (await row(b, lid)).closed_by == "sweep"


async def test_exactly_one_close_when_timer_sweep_duplicates_and_seller_race(bidding_settings, test_keys) -> None:
    async with running(bidding_settings(BIDDING_SWEEP_SECONDS=3600), test_keys) as b:
        service = b.app.state.bidding
        ends_at = utcnow() + timedelta(seconds=1.2)
        raced, timed = await b.create_listing(ends_at=ends_at), await b.create_listing(ends_at=ends_at)
        for lid in (raced, timed):
            assert (await b.bid(lid, 2, "10", username="alice")).status_code == 201
            # Duplicated close messages, all due at the end.
            for _ in range(8):
                b.tasks.schedule(lid, ends_at)
        seller = Principal(SELLER, "seller")

        async def seller_close() -> int:
            response = await b.client.post(f"/api/listings/{raced}/close", headers=test_keys.auth(SELLER))
            return response.status_code

        await sleep_until(ends_at - timedelta(milliseconds=15))
        results = await asyncio.gather(
            *(seller_close() for _ in range(3)),
            *(service.sweep() for _ in range(3)),
            *(service.close_if_due(raced) for _ in range(3)),
            *(service.on_close_message(lid, ends_at.isoformat()) for lid in (raced, timed, raced, timed)),
            *(service.close_by_seller(raced, seller) for _ in range(2)),
            return_exceptions=True,
        )
        assert not [r for r in results if isinstance(r, BaseException) and getattr(r, "status", None) != 409]
        await b.wait_closed(raced)
        await b.wait_closed(timed)
        await asyncio.sleep(0.8)  # every duplicate has come and gone
        for _ in range(3):
            await service.sweep()
        for lid in (raced, timed):
            events = b.recorder.of("auction.closed", lid)
            assert len(events) == 1, events
            assert (events[0].data["winner_id"], events[0].data["final_price"]) == (2, "10.00")
            assert (await row(b, lid)).closed_by in {"timer", "sweep", "seller"}


async def test_soft_close_extends_the_end_and_the_close_follows(bidding_settings, test_keys) -> None:
    settings = bidding_settings(AUCTION_SOFT_CLOSE_SECONDS=2, BIDDING_SWEEP_SECONDS=60)
    async with running(settings, test_keys) as b:
        original_end = utcnow() + timedelta(seconds=1.0)
        lid = await b.create_listing(ends_at=original_end)
        far = await b.create_listing(ends_in=30)

        first = await b.bid(lid, 2, "10")  # inside the 2 s window: the end moves to now + 2 s
        assert first.status_code == 201
        first_end = at(first.json()["ends_at"])
        assert first_end > original_end
        assert abs((first_end - at(first.json()["placed_at"])).total_seconds() - 2) < 0.01

        await asyncio.sleep(0.5)
        second = await b.bid(lid, 3, "11")
        assert second.status_code == 201
        final_end = at(second.json()["ends_at"])
        assert final_end > first_end

        extended = await b.recorder.wait_for("auction.extended", lid, count=2)
        assert [e.data for e in extended] == [
            {"listing_id": lid, "ends_at": first.json()["ends_at"]},
            {"listing_id": lid, "ends_at": second.json()["ends_at"]},
        ]
        placed = await b.recorder.wait_for("bid.placed", lid, count=2)
        assert placed[1].data["ends_at"] == second.json()["ends_at"]

        # Outside the window nothing moves.
        calm = await b.bid(far, 2, "10")
        assert calm.status_code == 201
        assert (await b.auction(far))["ends_at"] == calm.json()["ends_at"]

        await sleep_until(original_end + timedelta(seconds=0.3))
        assert (await b.auction(lid))["status"] == "active"
        assert (await b.bid(lid, 2, "12")).status_code == 201  # still open: and it extends again
        state = await b.auction(lid)
        assert at(state["ends_at"]) > final_end
        closed = await b.recorder.wait_for("auction.closed", lid, within=6)
        assert len(closed) == 1 and closed[0].data["winner_id"] == 2
        state_row = await row(b, lid)
        assert state_row.closed_by == "timer"
        assert 0 <= (state_row.closed_at - state_row.ends_at).total_seconds() < LATENESS
        assert not b.recorder.of("auction.extended", far)


async def test_a_long_wait_goes_in_steps_below_the_cap(bidding_settings, test_keys) -> None:
    # A cap of 0.5 s stands for the 10 minutes that keep RabbitMQ's consumer timeout away.
    settings = bidding_settings(BIDDING_CLOSE_MAX_DELAY_SECONDS=0.5, BIDDING_SWEEP_SECONDS=60)
    async with running(settings, test_keys) as b:
        ends_at = utcnow() + timedelta(seconds=3.0)
        lid = await b.create_listing(ends_at=ends_at)
        assert (await b.bid(lid, 2, "10")).status_code == 201
        await b.recorder.wait_for("auction.closed", lid, within=8)
        state = await row(b, lid)
        assert state.closed_by == "timer"
        assert 0 <= (state.closed_at - state.ends_at).total_seconds() < LATENESS
        # 3 s in steps of at most 0.5 s: early arrivals sent themselves on (each step also takes the
        # worker a moment), then the last one closed it. The actor counts itself once its close returned.
        await eventually(lambda: _true(b.tasks.performed >= 4), within=2)
        assert b.tasks.sent >= 4, b.tasks.sent


async def test_pending_closes_survive_a_restart(bidding_settings, test_keys) -> None:
    settings = bidding_settings(BIDDING_SWEEP_SECONDS=60)
    async with running(settings, test_keys) as b:
        ends_at = utcnow() + timedelta(seconds=2.0)
        lid = await b.create_listing(ends_at=ends_at)
        assert (await b.bid(lid, 2, "10")).status_code == 201
    # Stopped before the end. The next start (no sweep to help) still closes it on time: the embedded
    # mode sends the closes of open auctions again, RabbitMQ kept the delayed message.
    async with running(settings, test_keys) as b:
        assert (await b.auction(lid))["status"] == "active"
        closed = await b.recorder.wait_for("auction.closed", lid, within=6)
        assert closed[0].data["winner_id"] == 2
        state = await row(b, lid)
        assert state.closed_by == "timer"
        assert 0 <= (state.closed_at - state.ends_at).total_seconds() < LATENESS
        await asyncio.sleep(0.3)
        assert len(b.recorder.of("auction.closed", lid)) == 1


async def test_a_burst_of_auctions_ending_together_closes_on_time(bidding_settings, test_keys) -> None:
    async with running(bidding_settings(BIDDING_SWEEP_SECONDS=60), test_keys) as b:
        ends_at = utcnow() + timedelta(seconds=3)
        listings = [new_listing_id() for _ in range(60)]
        await asyncio.gather(*(b.bus.publish(listing_created(lid, ends_at=ends_at)) for lid in listings))

        async def all_known() -> bool:
            async with b.app.state.runtime.db.read() as session:
                found = await session.execute(auctions.select().where(auctions.c.listing_id.in_(listings)))
                return len(found.all()) == len(listings)

        await eventually(all_known, within=10)
        assert utcnow() < ends_at, "the machine is too slow for this test's timing"
        closed = await b.recorder.wait_for("auction.closed", count=60, within=10)
        assert sorted(e.data["listing_id"] for e in closed) == sorted(listings)  # each once
        heard = [(b.recorder.received_at[str(e.id)] - ends_at).total_seconds() for e in closed]
        assert max(heard) < 1.5, max(heard)
        for listing_id in listings[:5]:
            state = await row(b, listing_id)
            assert state.closed_by == "timer"
            assert 0 <= (state.closed_at - state.ends_at).total_seconds() < LATENESS
        # The other 59 messages found their auctions closed by the first one's batch.
        await asyncio.sleep(0.3)
        assert len(b.recorder.of("auction.closed")) == 60
