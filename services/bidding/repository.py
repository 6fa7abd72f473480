"""All of the bidding service's SQL.

The two statements that matter most are single conditional UPDATEs: :meth:`AuctionRepository.accept_bid`
decides whether a bid is accepted and applies it in one step, :meth:`AuctionRepository.close` is the one
open-to-closed transition. Whatever runs concurrently (other bids, the timer, the sweep, the seller),
the database applies them one row version at a time, so no interleaving can break the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Row,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    insert,
    literal,
    or_,
    select,
    true,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.bidding.models import CLOSED, OPEN, Auction, Bid, IdempotencyKey, Watcher
from services.bidding.rules import Resolution
from shared.db import UtcDateTime

auctions = cast(Table, Auction.__table__)
bids = cast(Table, Bid.__table__)
idempotency_keys = cast(Table, IdempotencyKey.__table__)
watchers = cast(Table, Watcher.__table__)

#: A result row of any shape.
Record = Row[*tuple[Any, ...]]


def _time(value: datetime) -> Any:
    """A timestamp parameter typed as the columns are (stored in UTC on both dialects)."""
    return bindparam(None, value, type_=UtcDateTime())


def _last_bid_at(now: datetime) -> Any:
    """The auction's last bid time after a bid at ``now``: never backwards, so a bid accepted after another
    never carries an earlier time."""
    last = auctions.c.last_bid_at
    return case((or_(last.is_(None), last < _time(now)), _time(now)), else_=last)


#: What an accepting statement returns of the auction (see :class:`AcceptedBid`).
_ACCEPTED_COLUMNS = (
    auctions.c.listing_id,
    auctions.c.seller_id,
    auctions.c.current_cents,
    auctions.c.increment_cents,
    auctions.c.bid_count,
    auctions.c.previous_leader_id,
    auctions.c.ends_at,
    auctions.c.last_bid_at,
    auctions.c.reserve_cents,
    auctions.c.buy_now_cents,
)


@dataclass(frozen=True)
class AcceptedBid:
    """A bid the auction accepted, and the auction right after it."""

    bid_id: int
    listing_id: int
    seller_id: int
    current_cents: int
    increment_cents: int
    bid_count: int
    previous_leader_id: int | None
    ends_at: datetime
    last_bid_at: datetime
    reserve_cents: int | None
    buy_now_cents: int | None

    @classmethod
    def of(cls, row: Record, bid_id: int) -> AcceptedBid:
        values = row._asdict()
        values.pop("bid_id", None)
        return cls(bid_id=bid_id, **values)


def _insert_ignoring_conflicts(session: AsyncSession, table: Any, values: dict[str, Any]) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return pg_insert(table).values(values).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite_insert(table).values(values).on_conflict_do_nothing()
    return insert(table).values(values)  # pragma: no cover - only the two dialects above are deployed


class AuctionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ----- auctions -----
    async def create(self, values: dict[str, Any]) -> bool:
        """Insert an auction; False if the listing already has one."""
        result = await self.session.execute(_insert_ignoring_conflicts(self.session, auctions, values))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def get(self, listing_id: int) -> Record | None:
        return (await self.session.execute(select(auctions).where(auctions.c.listing_id == listing_id))).first()

    async def exists(self, listing_id: int) -> bool:
        found = await self.session.scalar(select(auctions.c.listing_id).where(auctions.c.listing_id == listing_id))
        return found is not None

    async def open_auctions(self) -> list[Record]:
        query = select(auctions.c.listing_id, auctions.c.ends_at).where(auctions.c.status == OPEN)
        return list((await self.session.execute(query)).all())

    async def accept_bid(
        self,
        listing_id: int,
        bidder_id: int,
        bidder_username: str,
        amount_cents: int,
        now: datetime,
        extend_to: datetime | None,
    ) -> AcceptedBid | None:
        """Accept the bid if, and only if, the rules allow it now, and record it; None when refused.

        The decision is one statement: the row is locked, the conditions are checked on its newest
        version and the new price, leader, count (and, in the soft-close window, end time) are written,
        or nothing happens. The returned row is the auction after it plus the new bid's ``bid_id``.
        On PostgreSQL the bid row is inserted by the same statement (a data-modifying CTE): one round
        trip less while the auction row is locked, which is what bounds bids per second on one listing.
        """
        c = auctions.c
        values: dict[str, Any] = {
            "current_cents": amount_cents,
            "bid_count": c.bid_count + 1,
            # Right-hand sides see the row before the update: this keeps the leader being outbid.
            "previous_leader_id": c.leader_id,
            "leader_id": bidder_id,
            "leader_username": bidder_username,
            "last_bid_at": _last_bid_at(now),
        }
        if extend_to is not None:
            values["ends_at"] = case((c.ends_at < _time(extend_to), _time(extend_to)), else_=c.ends_at)
        accept = (
            update(auctions)
            .where(
                c.listing_id == listing_id,
                c.status == OPEN,
                c.ends_at > _time(now),
                c.seller_id != bidder_id,
                # A maximum waiting to answer, or a banded increment: the locked path decides (apply_resolution).
                c.leader_max_cents.is_(None),
                c.increment_cents > 0,
                or_(
                    and_(c.bid_count == 0, c.start_cents <= amount_cents),
                    and_(c.bid_count > 0, c.current_cents + c.increment_cents <= amount_cents),
                ),
            )
            .values(values)
            .returning(*_ACCEPTED_COLUMNS)
        )
        if self.session.get_bind().dialect.name == "postgresql":
            accepted = accept.cte("accepted")
            record = (
                insert(bids)
                .from_select(
                    ["listing_id", "bidder_id", "bidder_username", "amount_cents", "placed_at"],
                    select(
                        accepted.c.listing_id,
                        literal(bidder_id, BigInteger),
                        literal(bidder_username, String),
                        literal(amount_cents, BigInteger),
                        accepted.c.last_bid_at,
                    ),
                )
                .returning(bids.c.id)
                .cte("recorded")
            )
            both = select(accepted, record.c.id.label("bid_id")).select_from(accepted.join(record, true()))
            found = (await self.session.execute(both)).first()
            return None if found is None else AcceptedBid.of(found, found.bid_id)
        row = (await self.session.execute(accept)).first()
        if row is None:
            return None
        bid_id = await self.insert_bid(listing_id, bidder_id, bidder_username, amount_cents, row.last_bid_at)
        return AcceptedBid.of(row, bid_id)

    async def lock(self, listing_id: int) -> Record | None:
        """The auction row, locked until the transaction ends (SQLite: its one writer already excludes others)."""
        query = select(auctions).where(auctions.c.listing_id == listing_id)
        if self.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        return (await self.session.execute(query)).first()

    async def apply_resolution(
        self,
        listing_id: int,
        resolution: Resolution,
        usernames: dict[int, str],
        previous_leader_id: int | None,
        now: datetime,
        extend_to: datetime | None,
    ) -> tuple[AcceptedBid, list[int]] | None:
        """Write what a bid request resolved to (see ``rules.resolve_bid``) on the auction row locked by
        :meth:`lock`: the new price, leader, private maximum and count, and one bid row per step.
        Returns the auction after it and the new bids' ids (in step order), or None if it was not open."""
        c = auctions.c
        values: dict[str, Any] = {
            "current_cents": resolution.current_cents,
            "bid_count": c.bid_count + len(resolution.steps),
            "leader_id": resolution.leader_id,
            "leader_max_cents": resolution.leader_max_cents,
        }
        if resolution.steps:  # a leader raising only their maximum places no bid: the previous leader stays
            values["previous_leader_id"] = previous_leader_id
        if resolution.leader_id in usernames:
            values["leader_username"] = usernames[resolution.leader_id]
        if resolution.steps:
            values["last_bid_at"] = _last_bid_at(now)
            if extend_to is not None:
                values["ends_at"] = case((c.ends_at < _time(extend_to), _time(extend_to)), else_=c.ends_at)
        stmt = (
            update(auctions)
            .where(c.listing_id == listing_id, c.status == OPEN, c.ends_at > _time(now))
            .values(values)
            .returning(*_ACCEPTED_COLUMNS)
        )
        row = (await self.session.execute(stmt)).first()
        if row is None:
            return None
        ids = [
            await self.insert_bid(
                listing_id,
                step.bidder_id,
                usernames.get(step.bidder_id, ""),
                step.amount_cents,
                row.last_bid_at,
                automatic=step.automatic,
            )
            for step in resolution.steps
        ]
        return AcceptedBid.of(row, ids[-1] if ids else 0), ids

    async def buy_now(
        self, listing_id: int, buyer_id: int, buyer_username: str, now: datetime
    ) -> tuple[Record, int] | None:
        """Buy it now: one conditional UPDATE that is the bid at the buy-now price and the close at once,
        allowed while open, before the end, not the seller's, and while no bid has reached the reserve
        (without a reserve: while there is no bid). Returns the closed auction and the bid's id, or None."""
        c = auctions.c
        stmt = (
            update(auctions)
            .where(
                c.listing_id == listing_id,
                c.status == OPEN,
                c.ends_at > _time(now),
                c.seller_id != buyer_id,
                c.buy_now_cents.is_not(None),
                or_(
                    c.bid_count == 0,
                    and_(c.reserve_cents.is_not(None), c.current_cents < c.reserve_cents),
                ),
            )
            .values(
                current_cents=c.buy_now_cents,
                bid_count=c.bid_count + 1,
                previous_leader_id=c.leader_id,
                leader_id=buyer_id,
                leader_username=buyer_username,
                leader_max_cents=None,
                last_bid_at=_last_bid_at(now),
                status=CLOSED,
                closed_at=_time(now),
                closed_by="buy_now",
                ends_at=_time(now),
            )
            .returning(*auctions.c)
        )
        row = (await self.session.execute(stmt)).first()
        if row is None:
            return None
        bid_id = await self.insert_bid(listing_id, buyer_id, buyer_username, row.current_cents, row.last_bid_at)
        return row, bid_id

    async def mark_ending_soon(self, now: datetime, lead: timedelta, limit: int) -> list[Record]:
        """Mark (once) the open auctions that end within ``lead`` and lasted longer than it; return them.
        Rows another transaction holds are skipped on PostgreSQL: the next sweep takes them."""
        c = auctions.c
        due = (
            select(c.listing_id)
            .where(
                c.status == OPEN,
                c.ending_soon_sent_at.is_(None),
                c.ends_at <= _time(now + lead),
                c.ends_at > _time(now),
            )
            .order_by(c.ends_at)
            .limit(limit)
        )
        if self.session.get_bind().dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        stmt = (
            update(auctions)
            .where(c.listing_id.in_(due.scalar_subquery()), c.ending_soon_sent_at.is_(None))
            .values(ending_soon_sent_at=_time(now))
            .returning(c.listing_id, c.title, c.ends_at, c.created_at, c.seller_id)
        )
        rows = list((await self.session.execute(stmt)).all())
        # Auctions shorter than the lead get no alert (marked all the same, so they are not looked at again).
        return [r for r in rows if r.ends_at - r.created_at > lead]

    async def alert_recipients(self, listing_id: int) -> list[int]:
        """Everyone who bid on or watches the listing."""
        bidders = select(bids.c.bidder_id.label("user_id")).where(bids.c.listing_id == listing_id)
        watching = select(watchers.c.user_id).where(watchers.c.listing_id == listing_id)
        query = union(bidders, watching)
        return sorted(int(r[0]) for r in (await self.session.execute(query)).all())

    async def watch(self, listing_id: int, user_id: int, on: bool) -> None:
        if on:
            values = {"listing_id": listing_id, "user_id": user_id}
            await self.session.execute(_insert_ignoring_conflicts(self.session, watchers, values))
        else:
            await self.session.execute(
                delete(watchers).where(watchers.c.listing_id == listing_id, watchers.c.user_id == user_id)
            )

    async def close(self, listing_id: int, now: datetime, *, by: str, seller_id: int | None = None) -> Record | None:
        """The open-to-closed transition: when due (``seller_id`` None), or by the seller at any time.

        Returns the closed auction, or None when it was not open (or not due, or not the seller's).
        """
        c = auctions.c
        conditions = [c.listing_id == listing_id, c.status == OPEN]
        values: dict[str, Any] = {"status": CLOSED, "closed_at": _time(now), "closed_by": by}
        if seller_id is None:
            conditions.append(c.ends_at <= _time(now))
        else:
            conditions.append(c.seller_id == seller_id)
            # Ended early: the auction's end is now.
            values["ends_at"] = case((c.ends_at > _time(now), _time(now)), else_=c.ends_at)
        stmt = update(auctions).where(*conditions).values(values).returning(*auctions.c)
        return (await self.session.execute(stmt)).first()

    async def close_overdue(self, now: datetime, limit: int, *, skip_locked: bool, by: str = "sweep") -> list[Record]:
        """Close up to ``limit`` open auctions whose end has passed; rows another transaction holds are skipped
        (so this never waits for a lock, and never deadlocks with another batch)."""
        c = auctions.c
        due = select(c.listing_id).where(c.status == OPEN, c.ends_at <= _time(now)).order_by(c.ends_at).limit(limit)
        if skip_locked:
            due = due.with_for_update(skip_locked=True)
        stmt = (
            update(auctions)
            .where(c.listing_id.in_(due.scalar_subquery()), c.status == OPEN, c.ends_at <= _time(now))
            .values(status=CLOSED, closed_at=_time(now), closed_by=by)
            .returning(*auctions.c)
        )
        return list((await self.session.execute(stmt)).all())

    # ----- bids -----
    async def insert_bid(
        self,
        listing_id: int,
        bidder_id: int,
        bidder_username: str,
        amount_cents: int,
        placed_at: datetime,
        *,
        automatic: bool = False,
    ) -> int:
        stmt = (
            insert(bids)
            .values(
                listing_id=listing_id,
                bidder_id=bidder_id,
                bidder_username=bidder_username,
                amount_cents=amount_cents,
                placed_at=placed_at,
                automatic=automatic,
            )
            .returning(bids.c.id)
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def history(self, listing_id: int, below_cents: int | None, limit: int) -> list[Record]:
        """A listing's bids, highest first (amounts are unique per listing)."""
        query = select(bids).where(bids.c.listing_id == listing_id)
        if below_cents is not None:
            query = query.where(bids.c.amount_cents < below_cents)
        query = query.order_by(bids.c.amount_cents.desc()).limit(limit)
        return list((await self.session.execute(query)).all())

    async def bids_of(self, bidder_id: int, before_id: int | None, limit: int) -> list[Record]:
        """A bidder's bids, newest first, with their auctions' state."""
        query = (
            select(
                bids,
                auctions.c.title,
                auctions.c.status,
                auctions.c.current_cents,
                auctions.c.leader_id,
            )
            .join(auctions, auctions.c.listing_id == bids.c.listing_id)
            .where(bids.c.bidder_id == bidder_id)
        )
        if before_id is not None:
            query = query.where(bids.c.id < before_id)
        query = query.order_by(bids.c.id.desc()).limit(limit)
        return list((await self.session.execute(query)).all())


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, user_id: int, key: str, fingerprint: str, now: datetime) -> bool:
        """Take the key for this request; False if a request with it already committed.

        On PostgreSQL a concurrent claim of the same key waits here until the first transaction ends.
        """
        values = {"user_id": user_id, "key": key, "fingerprint": fingerprint, "created_at": now}
        result = await self.session.execute(_insert_ignoring_conflicts(self.session, idempotency_keys, values))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def get(self, user_id: int, key: str) -> Record | None:
        query = select(idempotency_keys).where(idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key)
        return (await self.session.execute(query)).first()

    async def store(self, user_id: int, key: str, status_code: int, response: str) -> None:
        await self.session.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key)
            .values(status_code=status_code, response=response)
        )

    async def purge(self, before: datetime) -> int:
        result = await self.session.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < before))
        return int(result.rowcount)  # type: ignore[attr-defined]
