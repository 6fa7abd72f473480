"""All of the chat service's SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.chat.models import Chat, ChatMember, ChatUser, Message


@dataclass(frozen=True)
class ChatRow:
    """One chat as one member sees it."""

    chat: Chat
    peer: ChatUser
    last_message: Message | None
    unread: int


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert(self) -> Any:
        dialect = self.session.get_bind().dialect.name
        return (pg_insert if dialect == "postgresql" else sqlite_insert)(ChatUser)

    async def get(self, user_id: int) -> ChatUser | None:
        return await self.session.get(ChatUser, user_id)

    async def exists(self, user_id: int) -> bool:
        return (await self.session.scalar(select(ChatUser.id).where(ChatUser.id == user_id))) is not None

    async def apply_profile(self, user_id: int, username: str, avatar_url: str, at: datetime) -> None:
        """Insert or update a profile from an event, unless the row already holds a newer one."""
        stmt = self._insert().values(id=user_id, username=username, avatar_url=avatar_url, profile_at=at)
        stmt = stmt.on_conflict_do_update(
            index_elements=[ChatUser.id],
            set_={"username": stmt.excluded.username, "avatar_url": stmt.excluded.avatar_url, "profile_at": at},
            where=or_(ChatUser.profile_at.is_(None), ChatUser.profile_at <= at),
        )
        await self.session.execute(stmt)

    async def ensure(self, user_id: int, username: str, avatar_url: str) -> None:
        """A provisional row when the user has none yet; an existing row is left as it is."""
        stmt = self._insert().values(id=user_id, username=username, avatar_url=avatar_url, profile_at=None)
        await self.session.execute(stmt.on_conflict_do_nothing(index_elements=[ChatUser.id]))

    async def lock(self, user_id: int) -> None:
        """Serialise the changes to one user's unread total (sends to them, their reads).

        ``FOR NO KEY UPDATE`` does not block the foreign-key checks of other transactions, so two users
        writing to each other at once cannot deadlock. SQLite has one writer at a time anyway.
        """
        await self.session.execute(select(ChatUser.id).where(ChatUser.id == user_id).with_for_update(key_share=True))


class ChatRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, chat_id: int) -> Chat | None:
        return await self.session.get(Chat, chat_id)

    async def by_pair(self, user_low: int, user_high: int) -> Chat | None:
        return await self.session.scalar(select(Chat).where(Chat.user_low == user_low, Chat.user_high == user_high))

    async def add(self, chat: Chat) -> Chat:
        """Insert a chat and its two members (raises IntegrityError when the pair already has one)."""
        self.session.add(chat)
        await self.session.flush()
        self.session.add_all(
            [
                ChatMember(chat_id=chat.id, user_id=chat.user_low, peer_id=chat.user_high, last_read_message_id=0),
                ChatMember(chat_id=chat.id, user_id=chat.user_high, peer_id=chat.user_low, last_read_message_id=0),
            ]
        )
        await self.session.flush()
        return chat

    async def member(self, chat_id: int, user_id: int) -> ChatMember | None:
        return await self.session.get(ChatMember, (chat_id, user_id))

    async def touch(self, chat_id: int, message_id: int, at: datetime) -> None:
        await self.session.execute(
            update(Chat).where(Chat.id == chat_id).values(last_message_id=message_id, last_activity_at=at)
        )

    async def mark_read(self, chat_id: int, user_id: int, up_to: int) -> None:
        await self.session.execute(
            update(ChatMember)
            .where(ChatMember.chat_id == chat_id, ChatMember.user_id == user_id)
            .where(ChatMember.last_read_message_id < up_to)
            .values(last_read_message_id=up_to)
        )

    def _unread_in_chat(self) -> Any:
        """Correlated count of a member's unread messages in ``ChatMember``'s chat."""
        return (
            select(func.count(Message.id))
            .where(
                Message.chat_id == ChatMember.chat_id,
                Message.id > ChatMember.last_read_message_id,
                Message.sender_id != ChatMember.user_id,
            )
            .correlate(ChatMember)
            .scalar_subquery()
        )

    async def total_unread(self, user_id: int) -> int:
        stmt = (
            select(func.count(Message.id))
            .select_from(ChatMember)
            .join(Message, Message.chat_id == ChatMember.chat_id)
            .where(
                ChatMember.user_id == user_id,
                Message.id > ChatMember.last_read_message_id,
                Message.sender_id != user_id,
            )
        )
        return int(await self.session.scalar(stmt) or 0)

    async def rows_for(
        self, user_id: int, *, after: tuple[datetime, int] | None = None, chat_id: int | None = None, limit: int = 1
    ) -> list[ChatRow]:
        """The member's chats, most recent activity first (``after``: the last key of the previous page)."""
        peer = aliased(ChatUser)
        last = aliased(Message)
        stmt = (
            select(Chat, peer, last, self._unread_in_chat().label("unread"))
            .select_from(ChatMember)
            .join(Chat, Chat.id == ChatMember.chat_id)
            .join(peer, peer.id == ChatMember.peer_id)
            .outerjoin(last, last.id == Chat.last_message_id)
            .where(ChatMember.user_id == user_id)
            .order_by(Chat.last_activity_at.desc(), Chat.id.desc())
            .limit(limit)
        )
        if chat_id is not None:
            stmt = stmt.where(Chat.id == chat_id)
        if after is not None:
            at, last_id = after
            stmt = stmt.where(or_(Chat.last_activity_at < at, and_(Chat.last_activity_at == at, Chat.id < last_id)))
        rows = (await self.session.execute(stmt)).all()
        return [ChatRow(chat=c, peer=p, last_message=m, unread=int(u or 0)) for c, p, m, u in rows]


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, message: Message) -> Message:
        self.session.add(message)
        await self.session.flush()
        return message

    async def by_idempotency_key(self, sender_id: int, key: str) -> Message | None:
        return await self.session.scalar(
            select(Message).where(Message.sender_id == sender_id, Message.idempotency_key == key)
        )

    async def by_system_key(self, key: str) -> Message | None:
        return await self.session.scalar(select(Message).where(Message.system_key == key))

    async def latest_id(self, chat_id: int) -> int:
        return int(await self.session.scalar(select(func.max(Message.id)).where(Message.chat_id == chat_id)) or 0)

    async def page(self, chat_id: int, before_id: int | None, limit: int) -> list[Message]:
        stmt = select(Message).where(Message.chat_id == chat_id).order_by(Message.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(Message.id < before_id)
        return list((await self.session.scalars(stmt)).all())

    async def count(self, chat_id: int) -> int:
        return int(await self.session.scalar(select(func.count(Message.id)).where(Message.chat_id == chat_id)) or 0)
