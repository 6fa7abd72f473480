"""All of the users service's SQL."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.users.models import Feedback, LoginFailure, Sale, User, UserStats


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        self.session.add(UserStats(user_id=user.id, listings=0, won=0, bids=0))
        await self.session.flush()
        return user

    async def get(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

    async def by_username(self, username: str) -> User | None:
        return await self.session.scalar(select(User).where(User.username_key == username.lower()))

    async def by_login(self, login: str) -> User | None:
        key = login.lower()
        return await self.session.scalar(select(User).where(or_(User.username_key == key, User.email == key)))

    async def usernames(self, user_ids: Iterable[int]) -> dict[int, str]:
        wanted = set(user_ids)
        if not wanted:
            return {}
        rows = await self.session.execute(select(User.id, User.username).where(User.id.in_(wanted)))
        return {row.id: row.username for row in rows}

    async def username_taken(self, username: str) -> bool:
        return await self.by_username(username) is not None

    async def email_taken(self, email: str) -> bool:
        return (await self.session.scalar(select(User.id).where(User.email == email.lower()))) is not None

    async def search(self, query: str, after_id: int | None, limit: int) -> list[User]:
        stmt = select(User).order_by(User.id).limit(limit)
        if query:
            escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(User.username_key.like(f"%{escaped}%", escape="\\"))
        if after_id is not None:
            stmt = stmt.where(User.id > after_id)
        return list((await self.session.scalars(stmt)).all())

    async def stats(self, user_id: int) -> UserStats | None:
        return await self.session.get(UserStats, user_id)

    async def bump_stats(self, user_id: int, *, listings: int = 0, won: int = 0, bids: int = 0) -> None:
        await self.session.execute(
            update(UserStats)
            .where(UserStats.user_id == user_id)
            .values(
                listings=UserStats.listings + listings,
                won=UserStats.won + won,
                bids=UserStats.bids + bids,
            )
        )


class LoginFailureRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, username_key: str, address: str, at: datetime) -> None:
        self.session.add(LoginFailure(username_key=username_key, address=address, at=at))
        await self.session.flush()

    async def count_for_account(self, username_key: str, since: datetime) -> int:
        stmt = select(func.count()).where(LoginFailure.username_key == username_key, LoginFailure.at >= since)
        return int(await self.session.scalar(stmt) or 0)

    async def count_for_address(self, address: str, since: datetime) -> int:
        stmt = select(func.count()).where(LoginFailure.address == address, LoginFailure.at >= since)
        return int(await self.session.scalar(stmt) or 0)

    async def clear_account(self, username_key: str) -> None:
        await self.session.execute(delete(LoginFailure).where(LoginFailure.username_key == username_key))

    async def purge(self, before: datetime) -> None:
        await self.session.execute(delete(LoginFailure).where(LoginFailure.at < before))


class SaleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, sale: Sale) -> bool:
        """Insert the sale unless that listing's sale is already known; True if it was new."""
        values = {
            "listing_id": sale.listing_id,
            "seller_id": sale.seller_id,
            "winner_id": sale.winner_id,
            "title": sale.title,
            "final_price": sale.final_price,
            "closed_at": sale.closed_at,
        }
        dialect = self.session.get_bind().dialect.name
        stmt: Any
        if dialect == "postgresql":
            stmt = pg_insert(Sale).values(values).on_conflict_do_nothing(index_elements=["listing_id"])
        elif dialect == "sqlite":
            stmt = sqlite_insert(Sale).values(values).on_conflict_do_nothing(index_elements=["listing_id"])
        else:  # pragma: no cover - only the two dialects above are deployed
            stmt = insert(Sale).values(values)
        result: CursorResult[Any] = await self.session.execute(stmt)  # type: ignore[assignment]
        return bool(result.rowcount)

    async def get(self, listing_id: int) -> Sale | None:
        return await self.session.get(Sale, listing_id)

    async def titles(self, listing_ids: Iterable[int]) -> dict[int, str]:
        wanted = set(listing_ids)
        if not wanted:
            return {}
        rows = await self.session.execute(select(Sale.listing_id, Sale.title).where(Sale.listing_id.in_(wanted)))
        return {row.listing_id: row.title for row in rows}


class FeedbackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, feedback: Feedback) -> Feedback:
        """Flushes, so a second rating by the same party fails here (unique constraint)."""
        self.session.add(feedback)
        await self.session.flush()
        return feedback

    async def exists(self, listing_id: int, from_user_id: int) -> bool:
        stmt = select(Feedback.id).where(Feedback.listing_id == listing_id, Feedback.from_user_id == from_user_id)
        return (await self.session.scalar(stmt)) is not None

    async def counts_for(self, to_user_id: int) -> dict[int, int]:
        """Received ratings by value: ``{-1: n, 0: n, 1: n}`` (missing values are zero)."""
        stmt = select(Feedback.rating, func.count()).where(Feedback.to_user_id == to_user_id).group_by(Feedback.rating)
        counts = {-1: 0, 0: 0, 1: 0}
        for rating, count in await self.session.execute(stmt):
            counts[int(rating)] = int(count)
        return counts

    async def received(self, to_user_id: int, before_id: int | None, limit: int) -> list[Feedback]:
        """Newest first (ids grow with time)."""
        stmt = select(Feedback).where(Feedback.to_user_id == to_user_id).order_by(Feedback.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(Feedback.id < before_id)
        return list((await self.session.scalars(stmt)).all())
