"""The bidding service's rules: bids, closes, history (no HTTP objects here).

A bid is accepted by one conditional UPDATE of the auction row (see ``AuctionRepository.accept_bid``)
in the same transaction as the bid row and its outbox event; the close is one conditional UPDATE too.
The pure functions at the top state the rules the SQL implements; the tests check one against the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, overload

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.bidding import events
from services.bidding.config import Settings
from services.bidding.models import OPEN
from services.bidding.repository import AcceptedBid, AuctionRepository, IdempotencyRepository
from services.bidding.rules import (
    AuctionState,
    Step,
    TooLow,
    buy_now_available,
    min_next_bid_cents,
    next_bid_after,
    rejection,
    reserve_met,
    resolve_bid,
    sold,
)
from services.bidding.schemas import AuctionView, BidPlaced, BidRequest, BidView, MyBid
from services.bidding.tasks import CloseTasks, close_messages
from shared.auth import Principal
from shared.db import Database
from shared.errors import NotFound, ProblemError, problem_body
from shared.events import utcnow
from shared.money import from_cents, to_cents
from shared.outbox import OutboxRelay
from shared.pagination import Page, decode_cursor, encode_cursor

log = logging.getLogger(__name__)

#: A close message that arrives less than this before the end waits in place instead of sending itself again.
WAIT_IN_PLACE_SECONDS = 0.25
#: How often to look again for an auction that is not known yet.
UNKNOWN_POLL_SECONDS = 0.05


# The rules live in rules.py (no I/O); these names are part of this module's surface too.
__all__ = ["BiddingService", "min_next_bid_cents", "rejection"]


def public_status(status: str) -> Literal["active", "closed"]:
    return "active" if status == OPEN else "closed"


class _UnknownAuctionError(Exception):
    """The listing has no auction here (yet): the transaction is rolled back before waiting."""


@dataclass
class Outcome:
    """An answer to a bid: the status and JSON body, replayed as such for a repeated Idempotency-Key."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def _problem(status: int, code: str, detail: str, **extra: Any) -> Outcome:
    return Outcome(status, problem_body(status, code, detail, **extra))


def auction_view(row: Row[Any]) -> AuctionView:
    won = row.status != OPEN and sold(row.reserve_cents, row.current_cents, row.bid_count)
    return AuctionView(
        listing_id=row.listing_id,
        seller_id=row.seller_id,
        title=row.title,
        status=public_status(row.status),
        start_price=from_cents(row.start_cents),
        bid_increment=from_cents(row.increment_cents) if row.increment_cents else None,
        current_price=from_cents(row.current_cents),
        min_next_bid=from_cents(rules_state(row).min_next_cents),
        bid_count=row.bid_count,
        leader_id=row.leader_id,
        ends_at=row.ends_at,
        closed_at=row.closed_at,
        winner_id=row.leader_id if won else None,
        winner_username=row.leader_username if won else None,
        final_price=from_cents(row.current_cents) if won else None,
        reserve_met=reserve_met(row.reserve_cents, row.current_cents, row.bid_count),
        buy_now_price=from_cents(row.buy_now_cents) if _buy_now_open(row) else None,
    )


def _buy_now_open(row: Any) -> bool:
    return buy_now_available(
        buy_now_cents=row.buy_now_cents,
        reserve_cents=row.reserve_cents,
        current_cents=row.current_cents,
        bid_count=row.bid_count,
        open_=row.status == OPEN,
    )


def rules_state(row: Any) -> AuctionState:
    return AuctionState(
        start_cents=row.start_cents,
        current_cents=row.current_cents,
        increment_cents=row.increment_cents,
        bid_count=row.bid_count,
        leader_id=row.leader_id,
        leader_max_cents=row.leader_max_cents,
        reserve_cents=row.reserve_cents,
    )


@dataclass
class BiddingService:
    settings: Settings
    db: Database
    tasks: CloseTasks
    #: Publishes what a close committed right away (the worker process has its own relay).
    relay: OutboxRelay | None = None
    _last_purge: float = field(default=0.0, init=False)
    #: Auctions this process closed lately: their remaining close messages (a burst of auctions ending
    #: together is closed in batches) are dropped without a database round trip.
    _closed_here: dict[int, float] = field(default_factory=dict, init=False)
    _closing: asyncio.Future[int] | None = field(default=None, init=False)

    def _remember_closed(self, rows: list[Row[Any]]) -> None:
        now = time.monotonic()
        if len(self._closed_here) > 50_000:
            self._closed_here = {k: t for k, t in self._closed_here.items() if now - t < 600}
        for row in rows:
            self._closed_here[row.listing_id] = now

    # ----- bids -----
    async def place_bid(
        self, listing_id: int, principal: Principal, request: BidRequest, idempotency_key: str | None
    ) -> Outcome:
        amount_cents = to_cents(request.amount) if request.amount is not None else None
        max_cents = to_cents(request.max_amount) if request.max_amount is not None else None
        deadline = time.monotonic() + self.settings.unknown_listing_wait_seconds
        while True:
            try:
                async with self.db.transaction() as session:
                    return await self._place_bid(
                        session, listing_id, principal, amount_cents, max_cents, idempotency_key
                    )
            except _UnknownAuctionError:
                pass
            # Outside the transaction (SQLite's writer lock is free): listing.created may be on its way.
            if not await self._wait_for_auction(listing_id, deadline):
                raise NotFound("listing")

    async def _place_bid(
        self,
        session: AsyncSession,
        listing_id: int,
        principal: Principal,
        amount_cents: int | None,
        max_cents: int | None,
        key: str | None,
    ) -> Outcome:
        now = utcnow()
        keys = IdempotencyRepository(session)
        if key is not None:
            fingerprint = f"bid:{listing_id}:{amount_cents}" + (f":max:{max_cents}" if max_cents is not None else "")
            if not await keys.claim(principal.id, key, fingerprint, now):
                return await self._replay(keys, principal.id, key, fingerprint)
        window = self.settings.auction_soft_close_seconds
        extend_to = now + timedelta(seconds=window) if window > 0 else None
        repo = AuctionRepository(session)
        username = principal.username[:64]
        outcome: Outcome | None = None
        if max_cents is None and amount_cents is not None:
            # A plain read first (no lock): a bid the last committed state already refuses is answered
            # without queueing for the auction row's lock. Prices only rise and an auction never reopens,
            # so such a bid would be refused under the lock too.
            outcome = await self._refusal(repo, listing_id, principal, amount_cents, now, only_if_refused=True)
            if outcome is None:
                # The common case, decided by one conditional UPDATE (no maximum waiting to answer it).
                accepted = await repo.accept_bid(listing_id, principal.id, username, amount_cents, now, extend_to)
                if accepted is not None:
                    outcome = await self._accepted(
                        session,
                        principal,
                        accepted,
                        [Step(principal.id, amount_cents, False, accepted.previous_leader_id)],
                        [accepted.bid_id],
                        leader_id=principal.id,
                        leader_max_cents=None,
                        extend_to=extend_to,
                    )
        if outcome is None:
            outcome = await self._resolve_locked(
                session, repo, listing_id, principal, amount_cents, max_cents, now, extend_to
            )
        if key is not None:
            await keys.store(principal.id, key, outcome.status, json.dumps(outcome.body))
        return outcome

    async def _resolve_locked(
        self,
        session: AsyncSession,
        repo: AuctionRepository,
        listing_id: int,
        principal: Principal,
        amount_cents: int | None,
        max_cents: int | None,
        now: datetime,
        extend_to: datetime | None,
    ) -> Outcome:
        """Decide the bid under the auction row's lock: proxy bidding, banded increments, and plain bids
        that lost the conditional UPDATE's race (they may still be acceptable, or get the newest reason)."""
        state = await repo.lock(listing_id)
        if state is None:
            raise _UnknownAuctionError
        before = rules_state(state)
        reason = rejection(
            open_=state.status == OPEN,
            ends_at=state.ends_at,
            now=now,
            seller=state.seller_id == principal.id,
            amount_cents=before.min_next_cents,
            min_next_cents=before.min_next_cents,
        )
        if reason is not None:
            return self._refused(reason, state, before.min_next_cents)
        resolution = resolve_bid(before, principal.id, amount_cents, max_cents)
        if isinstance(resolution, TooLow):
            return self._refused((409, "bid_too_low"), state, resolution.min_next_cents)
        usernames = {principal.id: principal.username[:64]}
        if state.leader_id is not None and state.leader_id != principal.id:
            usernames[state.leader_id] = state.leader_username or ""
        applied = await repo.apply_resolution(listing_id, resolution, usernames, state.leader_id, now, extend_to)
        if applied is None:  # pragma: no cover - the row is locked and was open before the end
            return self._refused((409, "auction_closed"), state, before.min_next_cents)
        accepted, ids = applied
        return await self._accepted(
            session,
            principal,
            accepted,
            list(resolution.steps),
            ids,
            leader_id=resolution.leader_id,
            leader_max_cents=resolution.leader_max_cents,
            extend_to=extend_to,
            usernames=usernames,
            bid_count_before=state.bid_count,
        )

    async def _accepted(
        self,
        session: AsyncSession,
        principal: Principal,
        accepted: AcceptedBid,
        steps: list[Step],
        ids: list[int],
        *,
        leader_id: int,
        leader_max_cents: int | None,
        extend_to: datetime | None,
        usernames: dict[int, str] | None = None,
        bid_count_before: int | None = None,
    ) -> Outcome:
        """Record the events of accepted bids (one ``bid.placed`` per step) and answer the request."""
        names = usernames or {principal.id: principal.username[:64]}
        count = accepted.bid_count - len(steps) if bid_count_before is None else bid_count_before
        for step, bid_id in zip(steps, ids, strict=True):
            count += 1
            await events.bid_placed(
                session,
                listing_id=accepted.listing_id,
                bid_id=bid_id,
                amount_cents=step.amount_cents,
                bidder_id=step.bidder_id,
                bidder_username=names.get(step.bidder_id, ""),
                bid_count=count,
                ends_at=accepted.ends_at,
                placed_at=accepted.last_bid_at,
                previous_leader_id=step.outbid_id,
                seller_id=accepted.seller_id,
                automatic=step.automatic,
                reserve_met=reserve_met(accepted.reserve_cents, step.amount_cents, count),
                buy_now_available=buy_now_available(
                    buy_now_cents=accepted.buy_now_cents,
                    reserve_cents=accepted.reserve_cents,
                    current_cents=step.amount_cents,
                    bid_count=count,
                    open_=True,
                ),
                min_next_bid_cents=next_bid_after(step.amount_cents, accepted.increment_cents),
            )
        if steps and extend_to is not None and accepted.ends_at == extend_to:
            # The pending close message follows the new end when it arrives (see tasks.py).
            await events.auction_extended(session, accepted.listing_id, accepted.ends_at)
        own = _own_bid(steps, ids, principal.id)
        leading = leader_id == principal.id
        placed = BidPlaced(
            id=own[1] if own else None,
            listing_id=accepted.listing_id,
            bidder_id=principal.id,
            amount=from_cents(own[0].amount_cents) if own else None,
            placed_at=accepted.last_bid_at,
            current_price=from_cents(accepted.current_cents),
            ends_at=accepted.ends_at,
            bid_count=accepted.bid_count,
            # An accepted request leaves a leader: the next bid must beat the current price.
            min_next_bid=from_cents(next_bid_after(accepted.current_cents, accepted.increment_cents)),
            leading=leading,
            max_amount=from_cents(leader_max_cents) if leading and leader_max_cents is not None else None,
            reserve_met=reserve_met(accepted.reserve_cents, accepted.current_cents, accepted.bid_count),
        )
        # 200: a leader only raised their own maximum (no new bid).
        return Outcome(201 if steps else 200, placed.model_dump(mode="json"))

    def _refused(self, reason: tuple[int, str], state: Any, min_next: int) -> Outcome:
        status, code = reason
        if code == "auction_closed":
            return _problem(status, code, "the auction has ended")
        if code == "own_listing":
            return _problem(status, code, "you cannot bid on your own listing")
        return _problem(
            status,
            code,
            f"the bid must be at least {from_cents(min_next):.2f}",
            min_next_bid=f"{from_cents(min_next):.2f}",
            current_price=f"{from_cents(state.current_cents):.2f}",
        )

    @overload
    async def _refusal(
        self, repo: AuctionRepository, listing_id: int, principal: Principal, amount_cents: int, now: datetime
    ) -> Outcome: ...

    @overload
    async def _refusal(
        self,
        repo: AuctionRepository,
        listing_id: int,
        principal: Principal,
        amount_cents: int,
        now: datetime,
        *,
        only_if_refused: bool,
    ) -> Outcome | None: ...

    async def _refusal(
        self,
        repo: AuctionRepository,
        listing_id: int,
        principal: Principal,
        amount_cents: int,
        now: datetime,
        *,
        only_if_refused: bool = False,
    ) -> Outcome | None:
        """Why the newest committed state refuses the bid. ``only_if_refused``: None when it does not;
        otherwise the answer after the conditional update changed nothing (a concurrent bid won)."""
        state = await repo.get(listing_id)
        if state is None:
            raise _UnknownAuctionError
        min_next = rules_state(state).min_next_cents
        reason = rejection(
            open_=state.status == OPEN,
            ends_at=state.ends_at,
            now=now,
            seller=state.seller_id == principal.id,
            amount_cents=amount_cents,
            min_next_cents=min_next,
        )
        if reason is None and only_if_refused:
            return None
        return self._refused(reason or (409, "bid_too_low"), state, min_next)  # None: a concurrent bid won

    async def _replay(self, keys: IdempotencyRepository, user_id: int, key: str, fingerprint: str) -> Outcome:
        stored = await keys.get(user_id, key)
        if stored is None or stored.status_code is None or stored.response is None:
            # Only possible if the key expired between the two statements: let the client retry.
            return _problem(409, "idempotency_key_in_use", "a request with this Idempotency-Key is in progress")
        if stored.fingerprint != fingerprint:
            return _problem(422, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
        return Outcome(stored.status_code, json.loads(stored.response), replayed=True)

    async def _wait_for_auction(self, listing_id: int, deadline: float) -> bool:
        while True:
            async with self.db.read() as session:
                if await AuctionRepository(session).exists(listing_id):
                    return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(UNKNOWN_POLL_SECONDS)

    async def _auction(self, session: AsyncSession, listing_id: int) -> Row[Any]:
        row = await AuctionRepository(session).get(listing_id)
        if row is None:
            raise NotFound("listing")
        return row

    async def _known(self, listing_id: int) -> None:
        deadline = time.monotonic() + self.settings.unknown_listing_wait_seconds
        if not await self._wait_for_auction(listing_id, deadline):
            raise NotFound("listing")

    # ----- reads -----
    async def auction(self, listing_id: int) -> AuctionView:
        await self._known(listing_id)
        async with self.db.read() as session:
            return auction_view(await self._auction(session, listing_id))

    async def history(self, listing_id: int, cursor: str | None, limit: int) -> Page[BidView]:
        after = decode_cursor(cursor, int)
        await self._known(listing_id)
        async with self.db.read() as session:
            rows = await AuctionRepository(session).history(listing_id, after[0] if after else None, limit + 1)
        items = [BidView(**_bid_fields(r)) for r in rows[:limit]]
        next_cursor = encode_cursor(rows[limit - 1].amount_cents) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    async def bids_of(self, principal: Principal, cursor: str | None, limit: int) -> Page[MyBid]:
        after = decode_cursor(cursor, int)
        async with self.db.read() as session:
            rows = await AuctionRepository(session).bids_of(principal.id, after[0] if after else None, limit + 1)
        items = [
            MyBid(
                **_bid_fields(r),
                title=r.title,
                status=public_status(r.status),
                current_price=from_cents(r.current_cents),
                leading=r.leader_id == principal.id,
            )
            for r in rows[:limit]
        ]
        return Page(items=items, next_cursor=encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)

    # ----- closes -----
    async def close_by_seller(self, listing_id: int, principal: Principal) -> AuctionView:
        await self._known(listing_id)
        async with self.db.transaction() as session:
            repo = AuctionRepository(session)
            closed = await repo.close(listing_id, utcnow(), by="seller", seller_id=principal.id)
            if closed is not None:
                await events.auction_closed(session, closed)
                self._remember_closed([closed])
                return auction_view(closed)
            state = await self._auction(session, listing_id)
            if state.seller_id != principal.id:
                raise ProblemError(403, "forbidden", "only the seller can end this auction")
            raise ProblemError(409, "auction_closed", "the auction has already ended")

    async def buy_now(self, listing_id: int, principal: Principal) -> AuctionView:
        """Buy it now: the bid at the buy-now price and the close, in one conditional UPDATE that races
        bids and the other closes like any of them, so exactly one outcome wins."""
        await self._known(listing_id)
        username = principal.username[:64]
        async with self.db.transaction() as session:
            repo = AuctionRepository(session)
            bought = await repo.buy_now(listing_id, principal.id, username, utcnow())
            if bought is not None:
                row, bid_id = bought
                await events.bid_placed(
                    session,
                    listing_id=listing_id,
                    bid_id=bid_id,
                    amount_cents=row.current_cents,
                    bidder_id=principal.id,
                    bidder_username=username,
                    bid_count=row.bid_count,
                    ends_at=row.ends_at,
                    placed_at=row.last_bid_at,
                    previous_leader_id=row.previous_leader_id,
                    seller_id=row.seller_id,
                    automatic=False,
                    reserve_met=reserve_met(row.reserve_cents, row.current_cents, row.bid_count),
                    buy_now_available=False,
                    min_next_bid_cents=None,
                )
                await events.auction_closed(session, row)
                self._remember_closed([row])
                return auction_view(row)
            state = await self._auction(session, listing_id)
        if state.seller_id == principal.id:
            raise ProblemError(403, "own_listing", "you cannot buy your own listing")
        if state.buy_now_cents is None:
            detail = "this listing has no buy-now price"
        elif state.status != OPEN or state.ends_at <= utcnow():
            detail = "the auction has ended"
        else:
            detail = "buying now ended with a bid that reached the reserve (or, without a reserve, the first bid)"
        raise ProblemError(409, "buy_now_unavailable", detail)

    async def alert_ending_soon(self) -> int:
        """Send ``auction.ending_soon`` (once per auction) to the bidders and watchers of every open auction
        that ends within ``AUCTION_ENDING_SOON_SECONDS`` (auctions shorter than that get none)."""
        lead = self.settings.ending_soon_seconds
        if lead <= 0:
            return 0
        async with self.db.transaction() as session:
            repo = AuctionRepository(session)
            due = await repo.mark_ending_soon(utcnow(), timedelta(seconds=lead), self.settings.sweep_batch)
            for row in due:
                await events.auction_ending_soon(session, row, await repo.alert_recipients(row.listing_id))
        return len(due)

    async def close_if_due(self, listing_id: int) -> bool:
        """The timed close: close the auction if it is open and its end has passed; True if this did.

        Auctions often end together, so a due message does not close its auction alone: it joins (or
        starts) this process's one batch close of every overdue auction (rows locked elsewhere
        skipped), and a burst of a thousand messages costs a handful of transactions. If its auction was
        not in a batch (locked by a bid at that moment, say), it is closed on its own, in a transaction
        that holds no other row, waiting for the lock if needed.
        """
        for _ in range(3):
            if listing_id in self._closed_here:
                return True
            await self._close_overdue_coalesced("timer")
        if listing_id in self._closed_here:
            return True
        async with self.db.transaction() as session:
            closed = await AuctionRepository(session).close(listing_id, utcnow(), by="timer")
            if closed is not None:
                await events.auction_closed(session, closed)
        if closed is not None:
            self._remember_closed([closed])
        return closed is not None

    async def _close_overdue_coalesced(self, by: str) -> int:
        """Run (or wait for the running) batch close of this process; how many it closed."""
        if self._closing is None or self._closing.done():
            self._closing = asyncio.ensure_future(self._close_overdue(by))
        return await asyncio.shield(self._closing)

    async def _close_overdue(self, by: str) -> int:
        """Close every overdue open auction, a batch per transaction."""
        closed = 0
        while True:
            async with self.db.transaction() as session:
                rows = await AuctionRepository(session).close_overdue(
                    utcnow(), self.settings.sweep_batch, skip_locked=self.db.is_postgres, by=by
                )
                await events.auctions_closed(session, rows)
            self._remember_closed(rows)
            closed += len(rows)
            if len(rows) < self.settings.sweep_batch:
                return closed

    async def on_close_message(self, listing_id: int, due_at: str) -> None:
        """What a ``close_auction`` message does: close if due, else follow the auction's current end."""
        if listing_id in self._closed_here:
            close_messages.labels("already_closed").inc()
            return
        for _ in range(5):
            async with self.db.read() as session:
                state = await AuctionRepository(session).get(listing_id)
            if state is None or state.status != OPEN:
                outcome = "gone" if state is None else "already_closed"
                break
            remaining = (state.ends_at - utcnow()).total_seconds()
            if remaining > WAIT_IN_PLACE_SECONDS:
                # Early: a capped step of a long wait, or the auction was extended. Send it on.
                self.tasks.schedule(listing_id, state.ends_at)
                outcome = "rescheduled"
                break
            if remaining > 0:
                await asyncio.sleep(remaining)
            if await self.close_if_due(listing_id):
                outcome = "closed"
                break
            # Not closed: someone else did, or a bid extended it meanwhile. Look again.
        else:
            outcome = "gave_up"
            self.tasks.schedule(listing_id, utcnow())
        log.debug("close message for listing %s (due %s): %s", listing_id, due_at, outcome)
        close_messages.labels(outcome).inc()

    async def sweep(self) -> int:
        """Close every overdue open auction (the backstop of the timed close); return how many closed."""
        return await self._close_overdue_coalesced("sweep")

    async def drain(self) -> None:
        """Let a batch close in progress finish (at shutdown, before the database goes away)."""
        if self._closing is not None and not self._closing.done():
            with contextlib.suppress(Exception):
                await self._closing

    async def run_sweeper(self) -> None:
        """Sweep every ``BIDDING_SWEEP_SECONDS``; now and then, forget expired idempotency keys and sent events."""
        while True:
            try:
                swept = await self.sweep()
                if swept:
                    log.info("sweep closed %d overdue auction(s)", swept)
                await self.alert_ending_soon()
                await self._purge()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database unreachable: try again next round
                log.warning("sweep failed: %s", exc)
            await asyncio.sleep(self.settings.sweep_seconds)

    async def _purge(self) -> None:
        if time.monotonic() - self._last_purge < 600:
            return
        self._last_purge = time.monotonic()
        async with self.db.transaction() as session:
            before = utcnow() - timedelta(seconds=self.settings.idempotency_ttl_seconds)
            await IdempotencyRepository(session).purge(before)
        if self.relay is not None:
            await self.relay.purge()

    async def schedule_open_auctions(self) -> int:
        """Send a close message for every open auction (after a start with an in-memory broker)."""
        async with self.db.read() as session:
            rows = await AuctionRepository(session).open_auctions()
        for row in rows:
            self.tasks.schedule(row.listing_id, row.ends_at)
        return len(rows)


def _own_bid(steps: list[Step], ids: list[int], user_id: int) -> tuple[Step, int] | None:
    """The bid a request placed for its caller (with its id): their own last step, else an automatic one
    of theirs (a maximum lifted to the reserve), else none (an earlier equal maximum answered at once)."""
    mine = [(step, bid_id) for step, bid_id in zip(steps, ids, strict=True) if step.bidder_id == user_id]
    placed = [pair for pair in mine if not pair[0].automatic] or mine
    return placed[-1] if placed else None


def _bid_fields(row: Any) -> dict[str, Any]:
    """The fields every view of a bid shows, from a bid row."""
    return {
        "id": row.id,
        "listing_id": row.listing_id,
        "bidder_id": row.bidder_id,
        "bidder_username": row.bidder_username,
        "amount": from_cents(row.amount_cents),
        "placed_at": row.placed_at,
        "automatic": bool(row.automatic),
    }
