"""All of the listings service's SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.listings.models import ACTIVE, CLOSED, Category, Comment, Listing, ListingBidder, UserProfile, Watch


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE's wildcards (and the escape character) taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _insert(session: AsyncSession, model: type[Any]) -> Any:
    """An INSERT that knows ON CONFLICT, for the two dialects the service runs on."""
    bind = session.get_bind()
    return pg_insert(model) if bind.dialect.name == "postgresql" else sqlite_insert(model)


@dataclass(frozen=True)
class ListingRow:
    listing: Listing
    category_name: str
    seller_username: str | None
    seller_avatar_url: str | None


@dataclass(frozen=True)
class ListingFilter:
    """What ``GET /api/listings`` selects; ``viewer_id`` is required for the personal filters."""

    now: datetime
    status: str | None = None
    category_id: int | None = None
    seller_id: int | None = None
    watched_by: int | None = None
    won_by: int | None = None
    bidder_id: int | None = None
    text: str | None = None


@dataclass(frozen=True)
class CommentRow:
    comment: Comment
    username: str | None
    avatar_url: str | None


def is_active_clause(now: datetime) -> ColumnElement[bool]:
    """Active: not closed by the bidding service, and its end time has not passed."""
    return and_(Listing.status == ACTIVE, Listing.ends_at > now)


def is_closed_clause(now: datetime) -> ColumnElement[bool]:
    return or_(Listing.status == CLOSED, Listing.ends_at <= now)


class CategoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> list[Category]:
        return list((await self.session.scalars(select(Category).order_by(Category.id))).all())

    async def get(self, category_id: int) -> Category | None:
        return await self.session.get(Category, category_id)


class ProfileRepository:
    """The local projection of users (name and avatar), never the users service's tables."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int) -> UserProfile | None:
        return await self.session.get(UserProfile, user_id)

    async def upsert(self, user_id: int, username: str, avatar_url: str, event_at: datetime) -> None:
        """Insert or overwrite, unless the stored row comes from a newer event."""
        stmt = _insert(self.session, UserProfile).values(
            user_id=user_id, username=username, avatar_url=avatar_url, event_at=event_at
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[UserProfile.user_id],
            set_={"username": username, "avatar_url": avatar_url, "event_at": event_at},
            where=UserProfile.event_at < event_at,
        )
        await self.session.execute(stmt)

    async def insert_if_missing(self, user_id: int, username: str, avatar_url: str, event_at: datetime) -> None:
        stmt = _insert(self.session, UserProfile).values(
            user_id=user_id, username=username, avatar_url=avatar_url, event_at=event_at
        )
        await self.session.execute(stmt.on_conflict_do_nothing(index_elements=[UserProfile.user_id]))


class ListingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ----- reads -----
    def _rows(self) -> Select[Listing, str, str, str]:
        return (
            select(Listing, Category.name, UserProfile.username, UserProfile.avatar_url)
            .join(Category, Category.id == Listing.category_id)
            .outerjoin(UserProfile, UserProfile.user_id == Listing.seller_id)
        )

    async def get(self, listing_id: int) -> Listing | None:
        return await self.session.get(Listing, listing_id)

    async def row(self, listing_id: int) -> ListingRow | None:
        result = (await self.session.execute(self._rows().where(Listing.id == listing_id))).first()
        return ListingRow(result[0], result[1], result[2], result[3]) if result else None

    async def search(
        self,
        filters: ListingFilter,
        limit: int,
        *,
        ending_soon: bool = False,
        after: tuple[Any, ...] | None = None,
    ) -> list[ListingRow]:
        """Newest first (by id), or by end time then id when ``ending_soon``; keyset pagination after ``after``."""
        stmt = self._rows().where(*self._conditions(filters)).limit(limit)
        if ending_soon:
            stmt = stmt.order_by(Listing.ends_at.asc(), Listing.id.asc())
            if after is not None:
                after_ends, after_id = after
                stmt = stmt.where(
                    or_(Listing.ends_at > after_ends, and_(Listing.ends_at == after_ends, Listing.id > after_id))
                )
        else:
            stmt = stmt.order_by(Listing.id.desc())
            if after is not None:
                stmt = stmt.where(Listing.id < after[0])
        return [ListingRow(r[0], r[1], r[2], r[3]) for r in (await self.session.execute(stmt)).all()]

    def _conditions(self, f: ListingFilter) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if f.status == ACTIVE:
            conditions.append(is_active_clause(f.now))
        elif f.status == CLOSED:
            conditions.append(is_closed_clause(f.now))
        if f.category_id is not None:
            conditions.append(Listing.category_id == f.category_id)
        if f.seller_id is not None:
            conditions.append(Listing.seller_id == f.seller_id)
        if f.watched_by is not None:
            conditions.append(exists().where(Watch.listing_id == Listing.id, Watch.user_id == f.watched_by))
        if f.won_by is not None:
            conditions.append(and_(Listing.status == CLOSED, Listing.winner_id == f.won_by))
        if f.bidder_id is not None:
            conditions.append(
                exists().where(ListingBidder.listing_id == Listing.id, ListingBidder.bidder_id == f.bidder_id)
            )
        if f.text:
            conditions.append(Listing.search_text.like(like_pattern(f.text.lower()), escape="\\"))
        return conditions

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(Listing)) or 0)

    # ----- changes -----
    async def add(self, listing: Listing) -> Listing:
        self.session.add(listing)
        await self.session.flush()
        return listing

    async def delete(self, listing_id: int) -> None:
        # Comments, watches and bidders go with it (ON DELETE CASCADE).
        await self.session.execute(delete(Listing).where(Listing.id == listing_id))

    # ----- the projection of the bidding service's events; each one only moves forward -----
    async def apply_bid(
        self, listing_id: int, amount: int, bid_count: int, bidder_id: int, min_next_bid: int | None = None
    ) -> bool:
        """Take a bid if it is newer than what is shown (a higher bid count); False for a stale one."""
        result = await self.session.execute(
            update(Listing)
            .where(Listing.id == listing_id, Listing.bid_count < bid_count, Listing.current_price <= amount)
            .values(current_price=amount, bid_count=bid_count, leader_id=bidder_id, min_next_bid=min_next_bid)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def extend(self, listing_id: int, ends_at: datetime) -> bool:
        """Move the end time later, never earlier, and never once closed."""
        result = await self.session.execute(
            update(Listing)
            .where(Listing.id == listing_id, Listing.status == ACTIVE, Listing.ends_at < ends_at)
            .values(ends_at=ends_at)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def close(
        self,
        listing_id: int,
        *,
        closed_at: datetime,
        winner_id: int | None,
        winner_username: str | None,
        final_price: int | None,
        bid_count: int,
    ) -> bool:
        result = await self.session.execute(
            update(Listing)
            .where(Listing.id == listing_id, Listing.status == ACTIVE)
            .values(status=CLOSED, closed_at=closed_at, winner_id=winner_id, winner_username=winner_username)
            .execution_options(synchronize_session=False)
        )
        if final_price is not None:
            # The close is the final word on the price, unless the projection already shows as much.
            await self.session.execute(
                update(Listing)
                .where(Listing.id == listing_id, Listing.bid_count <= bid_count, Listing.current_price <= final_price)
                .values(current_price=final_price, bid_count=bid_count, leader_id=winner_id)
                .execution_options(synchronize_session=False)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def add_bidder(self, listing_id: int, bidder_id: int) -> None:
        stmt = _insert(self.session, ListingBidder).values(listing_id=listing_id, bidder_id=bidder_id)
        await self.session.execute(stmt.on_conflict_do_nothing(index_elements=["listing_id", "bidder_id"]))


class WatchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, user_id: int, listing_id: int, at: datetime) -> bool:
        """True if the listing was not watched yet."""
        stmt = _insert(self.session, Watch).values(user_id=user_id, listing_id=listing_id, created_at=at)
        result = await self.session.execute(stmt.on_conflict_do_nothing(index_elements=["user_id", "listing_id"]))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def remove(self, user_id: int, listing_id: int) -> bool:
        """True if the listing was watched."""
        result = await self.session.execute(
            delete(Watch).where(Watch.user_id == user_id, Watch.listing_id == listing_id)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def watched_among(self, user_id: int, listing_ids: list[int]) -> set[int]:
        if not listing_ids:
            return set()
        stmt = select(Watch.listing_id).where(Watch.user_id == user_id, Watch.listing_id.in_(listing_ids))
        return set((await self.session.scalars(stmt)).all())


class CommentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, comment: Comment) -> Comment:
        self.session.add(comment)
        await self.session.flush()
        return comment

    async def page(self, listing_id: int, before_id: int | None, limit: int) -> list[CommentRow]:
        """Newest first."""
        stmt = (
            select(Comment, UserProfile.username, UserProfile.avatar_url)
            .outerjoin(UserProfile, UserProfile.user_id == Comment.author_id)
            .where(Comment.listing_id == listing_id)
            .order_by(Comment.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            stmt = stmt.where(Comment.id < before_id)
        return [CommentRow(*row) for row in (await self.session.execute(stmt)).all()]
