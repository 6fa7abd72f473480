"""All of the users service's SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.users.models import LoginFailure, User, UserStats


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
