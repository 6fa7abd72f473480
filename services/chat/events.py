"""What the chat service publishes and what it consumes.

Publishes ``chat.message_sent`` (with the recipient's total unread after the message) and ``chat.read``
(with the reader's total unread after reading). Consumes ``user.registered`` / ``user.updated`` to keep its
own copy of the users it shows, and ``auction.closed`` to send the winner's message.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.chat.models import Message
from shared import events
from shared.events import Envelope, format_time
from shared.inbox import SessionHandler
from shared.outbox import record_event

PRODUCER = "chat"


def message_data(message: Message) -> dict[str, object]:
    return {
        "id": message.id,
        "chat_id": message.chat_id,
        "sender_id": message.sender_id,
        "text": message.text,
        "created_at": format_time(message.created_at),
    }


async def message_sent(session: AsyncSession, message: Message, recipient_id: int, recipient_unread: int) -> None:
    await record_event(
        session,
        PRODUCER,
        events.CHAT_MESSAGE_SENT,
        {
            "chat_id": message.chat_id,
            "sender_id": message.sender_id,
            "recipient_id": recipient_id,
            "message": message_data(message),
            "recipient_unread": recipient_unread,
        },
    )


async def chat_read(session: AsyncSession, chat_id: int, user_id: int, unread: int) -> None:
    await record_event(session, PRODUCER, events.CHAT_READ, {"chat_id": chat_id, "user_id": user_id, "unread": unread})


# The handlers reach the rules through the service module, imported when first called: the service
# imports this module for its publishers.


async def _user_profile(session: AsyncSession, event: Envelope) -> None:
    from services.chat.service import ChatService

    await ChatService().apply_profile(session, event)


async def _auction_closed(session: AsyncSession, event: Envelope) -> None:
    from services.chat.service import ChatService

    await ChatService().deliver_winner_message(session, event)


CONSUMED: dict[str, SessionHandler] = {
    events.USER_REGISTERED: _user_profile,
    events.USER_UPDATED: _user_profile,
    events.AUCTION_CLOSED: _auction_closed,
}
