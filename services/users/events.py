"""What the users service publishes and what it consumes.

Publishes ``user.registered`` and ``user.updated``. Consumes ``listing.created``, ``listing.deleted``,
``bid.placed`` and ``auction.closed`` to keep each profile's stats (listings, won, bids); a closed auction
with a winner is also kept as a sale, which is what lets its two parties leave feedback.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from services.users.models import Sale, User
from services.users.repository import SaleRepository, UserRepository
from shared import events
from shared.events import Envelope, format_time
from shared.inbox import SessionHandler
from shared.money import to_cents
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
    data = event.data
    winner = data.get("winner_id")
    if winner is None:  # closed unsold: nothing to rate
        return
    price = data.get("final_price")
    sale = Sale(
        listing_id=int(data["listing_id"]),
        seller_id=int(data["seller_id"]),
        winner_id=int(winner),
        title=str(data.get("title") or "")[:200],
        final_price=to_cents(Decimal(price)) if price is not None else None,
        closed_at=datetime.fromisoformat(data["closed_at"]) if data.get("closed_at") else event.occurred_at,
    )
    # Keyed by listing: a second close of the same listing (even under another event id) counts once.
    if await SaleRepository(session).record(sale):
        await UserRepository(session).bump_stats(int(winner), won=1)


CONSUMED: dict[str, SessionHandler] = {
    events.LISTING_CREATED: _listing_created,
    events.LISTING_DELETED: _listing_deleted,
    events.BID_PLACED: _bid_placed,
    events.AUCTION_CLOSED: _auction_closed,
}
