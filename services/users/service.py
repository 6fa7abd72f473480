"""The users service's rules: registration, login with throttling, tokens, profiles, avatars."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.users import events
from services.users.config import Settings
from services.users.models import Feedback, User
from services.users.repository import FeedbackRepository, LoginFailureRepository, SaleRepository, UserRepository
from services.users.schemas import (
    RECENT_FEEDBACK,
    FeedbackLeft,
    FeedbackRequest,
    FeedbackSummary,
    Me,
    PublicUser,
    ReceivedFeedback,
    RegisterRequest,
    Stats,
    TokenPair,
    UserCard,
    UserRef,
)
from services.users.security import PasswordHashing, TokenIssuer
from shared.auth import InvalidTokenError, TokenVerifier
from shared.errors import NotFound, ProblemError
from shared.events import utcnow
from shared.images import ImageStore
from shared.pagination import Page, decode_cursor, encode_cursor


@dataclass
class UsersService:
    settings: Settings
    passwords: PasswordHashing
    tokens: TokenIssuer
    verifier: TokenVerifier
    images: ImageStore

    # ----- views -----
    async def _stats(self, session: AsyncSession, user: User) -> Stats:
        row = await UserRepository(session).stats(user.id)
        return Stats(listings=max(row.listings, 0), won=row.won, bids=row.bids) if row else Stats()

    async def _received(self, session: AsyncSession, rows: list[Feedback]) -> list[ReceivedFeedback]:
        names = await UserRepository(session).usernames(row.from_user_id for row in rows)
        titles = await SaleRepository(session).titles(row.listing_id for row in rows)
        return [
            ReceivedFeedback(
                id=row.id,
                rating=row.rating,
                comment=row.comment,
                from_user=UserRef(id=row.from_user_id, username=names.get(row.from_user_id, "")),
                listing_id=row.listing_id,
                listing_title=titles.get(row.listing_id, ""),
                created_at=row.created_at,
            )
            for row in rows
        ]

    async def _feedback_summary(self, session: AsyncSession, user: User) -> FeedbackSummary:
        feedback = FeedbackRepository(session)
        counts = await feedback.counts_for(user.id)
        recent = await feedback.received(user.id, None, RECENT_FEEDBACK)
        return FeedbackSummary(
            score=counts[1] - counts[-1],
            positive=counts[1],
            neutral=counts[0],
            negative=counts[-1],
            recent=await self._received(session, recent),
        )

    async def me(self, session: AsyncSession, user: User) -> Me:
        return Me(
            id=user.id,
            username=user.username,
            email=user.email,
            avatar_url=events.avatar_url(user),
            created_at=user.created_at,
            stats=await self._stats(session, user),
            feedback=await self._feedback_summary(session, user),
        )

    async def public(self, session: AsyncSession, user_id: int) -> PublicUser:
        user = await UserRepository(session).get(user_id)
        if user is None:
            raise NotFound("user")
        return PublicUser(
            id=user.id,
            username=user.username,
            avatar_url=events.avatar_url(user),
            created_at=user.created_at,
            stats=await self._stats(session, user),
            feedback=await self._feedback_summary(session, user),
        )

    async def received_feedback(
        self, session: AsyncSession, user_id: int, cursor: str | None, limit: int
    ) -> Page[ReceivedFeedback]:
        if await UserRepository(session).get(user_id) is None:
            raise NotFound("user")
        before = decode_cursor(cursor, int)
        rows = await FeedbackRepository(session).received(user_id, before[0] if before else None, limit + 1)
        items = await self._received(session, rows[:limit])
        return Page(items=items, next_cursor=encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)

    async def current(self, session: AsyncSession, user_id: int) -> User:
        user = await UserRepository(session).get(user_id)
        if user is None:  # a valid token for an account that no longer exists
            raise ProblemError(401, "invalid_token", "the account no longer exists")
        return user

    async def search(self, session: AsyncSession, query: str, cursor: str | None, limit: int) -> Page[UserCard]:
        after = decode_cursor(cursor, int)
        rows = await UserRepository(session).search(query.strip(), after[0] if after else None, limit + 1)
        items = [UserCard(id=u.id, username=u.username, avatar_url=events.avatar_url(u)) for u in rows[:limit]]
        return Page(items=items, next_cursor=encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)

    # ----- changes -----
    async def register(self, session: AsyncSession, request: RegisterRequest) -> Me:
        users = UserRepository(session)
        if await users.username_taken(request.username):
            raise ProblemError(409, "username_taken", "that username is taken")
        if await users.email_taken(request.email):
            raise ProblemError(409, "email_taken", "that email is already registered")
        now = utcnow()
        user = User(
            username=request.username,
            username_key=request.username.lower(),
            email=request.email.lower(),
            password_hash=await self.passwords.hash(request.password),
            avatar=None,
            created_at=now,
            updated_at=now,
        )
        try:
            async with session.begin_nested():
                await users.add(user)
        except IntegrityError:  # a concurrent registration took the name or the address first
            if await users.username_taken(request.username):
                raise ProblemError(409, "username_taken", "that username is taken") from None
            raise ProblemError(409, "email_taken", "that email is already registered") from None
        await events.user_registered(session, user)
        return await self.me(session, user)

    async def login(self, session: AsyncSession, login: str, password: str, address: str) -> TokenPair | ProblemError:
        """Tokens, or the problem to answer with; failures are recorded, so the caller commits either way."""
        failures = LoginFailureRepository(session)
        now = utcnow()
        since = now - timedelta(seconds=self.settings.login_failure_window_seconds)
        key = login.lower()[:64]
        if (
            await failures.count_for_account(key, since) >= self.settings.login_max_failures_per_account
            or await failures.count_for_address(address, since) >= self.settings.login_max_failures_per_address
        ):
            return ProblemError(
                429,
                "too_many_attempts",
                "too many failed logins; try again later",
                retry_after=self.settings.login_failure_window_seconds,
            )
        user = await UserRepository(session).by_login(login)
        ok = await self.passwords.verify(user.password_hash if user else None, password)
        if user is None or not ok:
            await failures.record(key, address, now)
            return ProblemError(401, "invalid_credentials", "wrong username or password")
        await failures.clear_account(key)
        return await self._tokens(session, user)

    async def refresh(self, session: AsyncSession, refresh_token: str) -> TokenPair:
        try:
            claims = await self.verifier.verify(refresh_token, token_type="refresh")
        except InvalidTokenError as exc:
            raise ProblemError(401, "invalid_token", str(exc)) from exc
        user = await self.current(session, int(claims["sub"]))
        return await self._tokens(session, user)

    async def _tokens(self, session: AsyncSession, user: User) -> TokenPair:
        return TokenPair(
            access_token=self.tokens.access(user.id, user.username),
            refresh_token=self.tokens.refresh(user.id, user.username),
            expires_in=self.settings.access_token_seconds,
            user=await self.me(session, user),
        )

    async def set_avatar(self, session: AsyncSession, user: User, content: bytes) -> str:
        # Files are never overwritten or removed here: a failed commit leaves an unused file behind,
        # never a profile pointing at nothing.
        user.avatar = self.images.save("avatars", content)
        user.updated_at = utcnow()
        await session.flush()
        await events.user_updated(session, user)
        return events.avatar_url(user)

    async def leave_feedback(
        self, session: AsyncSession, listing_id: int, author: User, request: FeedbackRequest
    ) -> FeedbackLeft:
        """The winner rates the seller, or the seller the winner: once each, only after a sale."""
        sale = await SaleRepository(session).get(listing_id)
        if sale is None:
            # Not closed yet, closed unsold, or no such listing: this service cannot tell them apart.
            raise ProblemError(409, "not_sold", "feedback is possible only after the auction ended in a sale")
        if author.id == sale.winner_id:
            subject_id = sale.seller_id
        elif author.id == sale.seller_id:
            subject_id = sale.winner_id
        else:
            raise ProblemError(403, "not_a_party", "only the seller and the winner may leave feedback on this sale")
        feedback = FeedbackRepository(session)
        if await feedback.exists(listing_id, author.id):
            raise _feedback_exists()
        comment = (request.comment or "").strip() or None
        row = Feedback(
            listing_id=listing_id,
            from_user_id=author.id,
            to_user_id=subject_id,
            rating=request.rating,
            comment=comment,
            created_at=utcnow(),
        )
        try:
            async with session.begin_nested():
                await feedback.add(row)
        except IntegrityError:  # a simultaneous post by the same party landed first
            raise _feedback_exists() from None
        names = await UserRepository(session).usernames([author.id, subject_id])
        return FeedbackLeft(
            id=row.id,
            listing_id=listing_id,
            rating=row.rating,
            comment=row.comment,
            created_at=row.created_at,
            from_user=UserRef(id=author.id, username=author.username),
            to_user=UserRef(id=subject_id, username=names.get(subject_id, "")),
        )


def _feedback_exists() -> ProblemError:
    return ProblemError(409, "feedback_exists", "you already left feedback on this sale")
