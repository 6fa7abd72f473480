"""What the users service publishes and what it consumes.

Publishes ``user.registered`` and ``user.updated``. Consumes ``listing.created``, ``listing.deleted``,
``bid.placed`` and ``auction.closed`` to keep each profile's stats (listings, won, bids).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.users.models import User
from services.users.repository import UserRepository
from shared import events
from shared.events import Envelope, format_time
from shared.inbox import SessionHandler
from shared.outbox import record_event

PRODUCER = "users"


def avatar_url(user: User) -> str:
    return f"/media/{user.avatar}" if user.avatar else "/media/avatars/default.svg"


async def user_registered(session: AsyncSession, user: User) -> None:
    await record_event(
        session,
        PRODUCER,
        events.USER_REGISTERED,
        {
            "user_id": user.id,
            "username": user.username,
            "avatar_url": avatar_url(user),
            "created_at": format_time(user.created_at),
        },
    )


async def user_updated(session: AsyncSession, user: User) -> None:
    await record_event(
        session,
        PRODUCER,
        events.USER_UPDATED,
        {"user_id": user.id, "username": user.username, "avatar_url": avatar_url(user)},
    )


async def _listing_created(session: AsyncSession, event: Envelope) -> None:
    await UserRepository(session).bump_stats(int(event.data["seller_id"]), listings=1)


async def _listing_deleted(session: AsyncSession, event: Envelope) -> None:
    if "seller_id" in event.data:
        await UserRepository(session).bump_stats(int(event.data["seller_id"]), listings=-1)


async def _bid_placed(session: AsyncSession, event: Envelope) -> None:
    await UserRepository(session).bump_stats(int(event.data["bidder_id"]), bids=1)


async def _auction_closed(session: AsyncSession, event: Envelope) -> None:
    winner = event.data.get("winner_id")
    if winner is not None:
        await UserRepository(session).bump_stats(int(winner), won=1)


CONSUMED: dict[str, SessionHandler] = {
    events.LISTING_CREATED: _listing_created,
    events.LISTING_DELETED: _listing_deleted,
    events.BID_PLACED: _bid_placed,
    events.AUCTION_CLOSED: _auction_closed,
}
