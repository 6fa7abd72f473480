"""The chat service's rules: one chat per pair, members only, idempotent sends, true unread totals,
and exactly one winner's message per closed auction."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.chat import events
from services.chat.models import Chat, ChatMember, Message
from services.chat.repository import ChatRepository, ChatRow, MessageRepository, UserRepository
from services.chat.schemas import MAX_TEXT, ChatOut, LastMessage, MessageOut, ReadResult, UnreadCount, UserCard
from shared.auth import Principal
from shared.errors import NotFound, ProblemError
from shared.events import Envelope, utcnow
from shared.pagination import Page, decode_cursor, encode_cursor

log = logging.getLogger(__name__)

#: The users service's default avatar, shown until a user's profile event says otherwise.
DEFAULT_AVATAR_URL = "/media/avatars/default.svg"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


# ----- pure rules -----
def pair(user_a: int, user_b: int) -> tuple[int, int]:
    """The stored (low, high) form of a conversation's two users; a chat with oneself is refused."""
    if user_a == user_b:
        raise ProblemError(422, "self_chat", "you cannot start a conversation with yourself")
    return (user_a, user_b) if user_a < user_b else (user_b, user_a)


def winner_text(listing_id: int, title: str, final_price: str | None) -> str:
    """The seller's automatic message to the winner, linking the listing."""
    price = f" for {final_price}" if final_price else ""
    link = f" /listings/{listing_id}"
    text = f'Congratulations, you won "{title}"{price}!'
    return text[: MAX_TEXT - len(link)] + link


def winner_key(listing_id: int) -> str:
    """The unique key of a listing's winner message: one per listing, whichever event delivers it."""
    return f"auction-closed:{listing_id}"


def activity_cursor(at: datetime, chat_id: int) -> str:
    return encode_cursor((at - _EPOCH) // _MICROSECOND, chat_id)


def decode_activity_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    key = decode_cursor(cursor, int, int)
    if key is None:
        return None
    micros, chat_id = key
    try:
        return _EPOCH + micros * _MICROSECOND, chat_id
    except OverflowError:
        raise ProblemError(422, "invalid_cursor", "the cursor is not one this API issued") from None


def _event_int(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"event field {name} is not an integer: {value!r}")
    return value


def _event_str(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise ValueError(f"event field {name} is not a string: {value!r}")
    return value[:limit]


# ----- views -----
def message_out(message: Message) -> MessageOut:
    return MessageOut(
        id=message.id,
        chat_id=message.chat_id,
        sender_id=message.sender_id,
        text=message.text,
        created_at=message.created_at,
    )


def chat_out(row: ChatRow) -> ChatOut:
    last = row.last_message
    return ChatOut(
        id=row.chat.id,
        peer=UserCard(id=row.peer.id, username=row.peer.username, avatar_url=row.peer.avatar_url),
        last_message=(
            LastMessage(id=last.id, sender_id=last.sender_id, text=last.text, created_at=last.created_at)
            if last is not None
            else None
        ),
        unread=row.unread,
        created_at=row.chat.created_at,
    )


@dataclass
class ChatService:
    """Stateless rules over a caller's session; the caller owns the transaction."""

    default_avatar_url: str = DEFAULT_AVATAR_URL

    # ----- reads -----
    async def list_chats(self, session: AsyncSession, user_id: int, cursor: str | None, limit: int) -> Page[ChatOut]:
        after = decode_activity_cursor(cursor)
        rows = await ChatRepository(session).rows_for(user_id, after=after, limit=limit + 1)
        items = [chat_out(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1].chat
            next_cursor = activity_cursor(last.last_activity_at, last.id)
        return Page(items=items, next_cursor=next_cursor)

    async def chat(self, session: AsyncSession, user_id: int, chat_id: int) -> ChatOut:
        await self._membership(session, chat_id, user_id)
        return await self._view(session, user_id, chat_id)

    async def messages(
        self, session: AsyncSession, user_id: int, chat_id: int, cursor: str | None, limit: int
    ) -> Page[MessageOut]:
        await self._membership(session, chat_id, user_id)
        before = decode_cursor(cursor, int)
        rows = await MessageRepository(session).page(chat_id, before[0] if before else None, limit + 1)
        items = [message_out(m) for m in rows[:limit]]
        return Page(items=items, next_cursor=encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)

    async def unread(self, session: AsyncSession, user_id: int) -> UnreadCount:
        return UnreadCount(count=await ChatRepository(session).total_unread(user_id))

    # ----- changes -----
    async def start(self, session: AsyncSession, caller: Principal, peer_id: int) -> tuple[ChatOut, bool]:
        """The pair's chat and whether this call created it."""
        pair(caller.id, peer_id)
        users = UserRepository(session)
        if not await users.exists(peer_id):
            raise NotFound("user")
        # The caller's own registration event may not have arrived yet: the token vouches for them.
        await users.ensure(caller.id, caller.username or f"user{caller.id}", self.default_avatar_url)
        chat, created = await self._get_or_create(session, caller.id, peer_id)
        return await self._view(session, caller.id, chat.id), created

    async def send(
        self, session: AsyncSession, user_id: int, chat_id: int, text: str, idempotency_key: str | None = None
    ) -> MessageOut:
        _, member = await self._membership(session, chat_id, user_id)
        messages = MessageRepository(session)
        # Everything that changes the recipient's total goes one at a time, so each event carries the true one.
        await UserRepository(session).lock(member.peer_id)
        if idempotency_key is not None:
            first = await messages.by_idempotency_key(user_id, idempotency_key)
            if first is not None:
                return self._replay(first, chat_id, text)
        message = Message(
            chat_id=chat_id, sender_id=user_id, text=text, created_at=utcnow(), idempotency_key=idempotency_key
        )
        try:
            async with session.begin_nested():
                await messages.add(message)
        except IntegrityError:
            first = await messages.by_idempotency_key(user_id, idempotency_key) if idempotency_key else None
            if first is None:
                raise
            return self._replay(first, chat_id, text)
        await self._delivered(session, message, member.peer_id)
        return message_out(message)

    async def mark_read(self, session: AsyncSession, user_id: int, chat_id: int) -> ReadResult:
        await self._membership(session, chat_id, user_id)
        await UserRepository(session).lock(user_id)
        latest = await MessageRepository(session).latest_id(chat_id)
        chats = ChatRepository(session)
        await chats.mark_read(chat_id, user_id, latest)
        total = await chats.total_unread(user_id)
        await events.chat_read(session, chat_id, user_id, total)
        return ReadResult(chat_id=chat_id, unread=total)

    # ----- consumed events -----
    async def apply_profile(self, session: AsyncSession, event: Envelope) -> None:
        """``user.registered`` / ``user.updated``: keep the newest profile of each user."""
        data = event.data
        await UserRepository(session).apply_profile(
            _event_int(data, "user_id"),
            _event_str(data, "username", 64),
            _event_str(data, "avatar_url", 512),
            event.occurred_at,
        )

    async def deliver_winner_message(self, session: AsyncSession, event: Envelope) -> None:
        """``auction.closed`` with a winner: one message from the seller to the winner, ever, per listing."""
        data = event.data
        if data.get("winner_id") is None:
            return
        listing_id = _event_int(data, "listing_id")
        seller_id = _event_int(data, "seller_id")
        winner_id = _event_int(data, "winner_id")
        if seller_id == winner_id:
            log.warning(
                "auction.closed %s names the seller as the winner of listing %s; no message", event.id, listing_id
            )
            return
        key = winner_key(listing_id)
        messages = MessageRepository(session)
        if await messages.by_system_key(key) is not None:
            log.info("listing %s already has its winner message", listing_id)
            return
        title = _event_str(data, "title", 200)
        price = data.get("final_price")
        users = UserRepository(session)
        # Profiles come from the users service's events; until they arrive, provisional rows stand in.
        await users.ensure(seller_id, f"user{seller_id}", self.default_avatar_url)
        winner_name = data.get("winner_username")
        winner_name = winner_name[:64] if isinstance(winner_name, str) and winner_name else f"user{winner_id}"
        await users.ensure(winner_id, winner_name, self.default_avatar_url)
        chat, _ = await self._get_or_create(session, seller_id, winner_id)
        await users.lock(winner_id)
        message = Message(
            chat_id=chat.id,
            sender_id=seller_id,
            text=winner_text(listing_id, title, str(price) if price is not None else None),
            created_at=utcnow(),
            system_key=key,
        )
        try:
            async with session.begin_nested():
                await messages.add(message)
        except IntegrityError:  # a concurrent consumer of another delivery wrote it first
            if await messages.by_system_key(key) is None:
                raise
            return
        await self._delivered(session, message, winner_id)

    # ----- helpers -----
    async def _membership(self, session: AsyncSession, chat_id: int, user_id: int) -> tuple[Chat, ChatMember]:
        chats = ChatRepository(session)
        chat = await chats.get(chat_id)
        if chat is None:
            raise NotFound("chat")
        member = await chats.member(chat_id, user_id)
        if member is None:
            raise ProblemError(403, "forbidden", "you are not a member of this chat")
        return chat, member

    async def _view(self, session: AsyncSession, user_id: int, chat_id: int) -> ChatOut:
        rows = await ChatRepository(session).rows_for(user_id, chat_id=chat_id)
        if not rows:  # pragma: no cover - callers checked membership in this transaction
            raise NotFound("chat")
        return chat_out(rows[0])

    async def _get_or_create(self, session: AsyncSession, user_a: int, user_b: int) -> tuple[Chat, bool]:
        low, high = pair(user_a, user_b)
        chats = ChatRepository(session)
        existing = await chats.by_pair(low, high)
        if existing is not None:
            return existing, False
        now = utcnow()
        chat = Chat(user_low=low, user_high=high, created_at=now, last_activity_at=now, last_message_id=None)
        try:
            async with session.begin_nested():
                await chats.add(chat)
        except IntegrityError:  # the other side started it at the same moment: theirs is the chat
            existing = await chats.by_pair(low, high)
            if existing is None:
                raise
            return existing, False
        return chat, True

    async def _delivered(self, session: AsyncSession, message: Message, recipient_id: int) -> None:
        """After a message is stored: the chat's activity, and the event with the recipient's new total."""
        chats = ChatRepository(session)
        await chats.touch(message.chat_id, message.id, message.created_at)
        total = await chats.total_unread(recipient_id)
        await events.message_sent(session, message, recipient_id, total)

    @staticmethod
    def _replay(first: Message, chat_id: int, text: str) -> MessageOut:
        """The first result for a repeated Idempotency-Key; a different request under the same key is refused."""
        if first.chat_id != chat_id or first.text != text:
            raise ProblemError(
                422, "idempotency_key_reused", "this Idempotency-Key was already used for a different message"
            )
        return message_out(first)
