from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import IdType, UtcDateTime


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(32))
    #: Lower-cased username: names are unique whatever their case.
    username_key: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    avatar: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class UserStats(Base):
    """Counters kept from other services' events (listings created, auctions won, bids placed)."""

    __tablename__ = "user_stats"

    user_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    listings: Mapped[int] = mapped_column(Integer, default=0)
    won: Mapped[int] = mapped_column(Integer, default=0)
    bids: Mapped[int] = mapped_column(Integer, default=0)


class LoginFailure(Base):
    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_account", "username_key", "at"),
        Index("ix_login_failures_address", "address", "at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    username_key: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class Sale(Base):
    """An auction that closed with a winner, learnt from ``auction.closed``: what makes feedback possible."""

    __tablename__ = "sales"

    listing_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    seller_id: Mapped[int] = mapped_column(IdType)
    winner_id: Mapped[int] = mapped_column(IdType)
    title: Mapped[str] = mapped_column(String(200), default="")
    #: Integer cents; null only if the event did not carry a price.
    final_price: Mapped[int | None] = mapped_column(IdType, nullable=True)
    closed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Feedback(Base):
    """One party's rating of the other after a sale; each party rates once per listing."""

    __tablename__ = "feedback"
    __table_args__ = (
        # The once-per-party rule holds under concurrency because the database enforces it.
        UniqueConstraint("listing_id", "from_user_id", name="uq_feedback_listing_from"),
        CheckConstraint("rating IN (-1, 0, 1)", name="ck_feedback_rating"),
        Index("ix_feedback_to_user", "to_user_id", "id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    listing_id: Mapped[int] = mapped_column(IdType, ForeignKey("sales.listing_id", ondelete="CASCADE"))
    from_user_id: Mapped[int] = mapped_column(IdType)
    to_user_id: Mapped[int] = mapped_column(IdType)
    rating: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
