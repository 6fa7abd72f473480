"""The chat service's tables: a projection of users, chats (one per unordered pair), members, messages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import IdType, UtcDateTime

#: A foreign user id: BIGINT everywhere (not a rowid alias on SQLite, it is never generated here).
ForeignId = BigInteger()


class Base(DeclarativeBase):
    pass


class ChatUser(Base):
    """What chat knows about a user, kept from ``user.registered`` / ``user.updated``.

    ``profile_at`` is the ``occurred_at`` of the event the row was last written from: an older event
    arriving late never overwrites a newer profile. It is null for a provisional row (made from a token
    or an ``auction.closed`` before the user's own event arrived), which any profile event overwrites.
    """

    __tablename__ = "chat_users"

    id: Mapped[int] = mapped_column(ForeignId, primary_key=True, autoincrement=False)
    username: Mapped[str] = mapped_column(String(64))
    avatar_url: Mapped[str] = mapped_column(String(512))
    profile_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Chat(Base):
    """A one-to-one conversation; the pair is stored ordered, so one chat per unordered pair."""

    __tablename__ = "chats"
    __table_args__ = (
        UniqueConstraint("user_low", "user_high", name="uq_chats_pair"),
        CheckConstraint("user_low < user_high", name="ck_chats_pair_ordered"),
        Index("ix_chats_activity", "last_activity_at", "id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    user_low: Mapped[int] = mapped_column(ForeignId, ForeignKey("chat_users.id"))
    user_high: Mapped[int] = mapped_column(ForeignId, ForeignKey("chat_users.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: The newest message's time (the creation time while there is none): the order of chat lists.
    last_activity_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_message_id: Mapped[int | None] = mapped_column(ForeignId, nullable=True)


class ChatMember(Base):
    """One row per member of a chat: who the peer is and how far this member has read."""

    __tablename__ = "chat_members"
    __table_args__ = (Index("ix_chat_members_user", "user_id", "chat_id"),)

    chat_id: Mapped[int] = mapped_column(IdType, ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignId, ForeignKey("chat_users.id"), primary_key=True)
    peer_id: Mapped[int] = mapped_column(ForeignId, ForeignKey("chat_users.id"))
    #: Every message with a greater id that the peer sent is unread (0: nothing read yet).
    last_read_message_id: Mapped[int] = mapped_column(ForeignId, default=0)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_chat", "chat_id", "id"),
        # The same Idempotency-Key from the same user is one message, whatever races.
        UniqueConstraint("sender_id", "idempotency_key", name="uq_messages_idempotency"),
        # Messages the service writes itself (the auction winner's) carry a key that makes them unique.
        UniqueConstraint("system_key", name="uq_messages_system_key"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(IdType, ForeignKey("chats.id", ondelete="CASCADE"))
    sender_id: Mapped[int] = mapped_column(ForeignId)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    system_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
