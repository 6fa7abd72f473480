"""The listings service's tables.

Money is stored as integer cents (``BigInteger``), never as floats. ``status``, ``current_price``,
``bid_count``, ``leader_id``, ``ends_at`` (after extensions) and the winner are a projection of the
bidding service's events; ``user_profiles`` is a projection of the users service's events.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import IdType, UtcDateTime

ACTIVE = "active"
CLOSED = "closed"


class Base(DeclarativeBase):
    pass


class Category(Base):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class UserProfile(Base):
    """Who a user is, as far as listings need to show it (from ``user.registered`` / ``user.updated``)."""

    __tablename__ = "user_profiles"

    user_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    username: Mapped[str] = mapped_column(String(64))
    avatar_url: Mapped[str] = mapped_column(String(255))
    #: ``occurred_at`` of the event this row reflects: an older event never overwrites a newer one.
    event_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Listing(Base):
    __tablename__ = "listings"
    __table_args__ = (
        Index("ix_listings_status_ends_at", "status", "ends_at"),
        Index("ix_listings_seller", "seller_id", "id"),
        Index("ix_listings_category", "category_id", "id"),
        Index("ix_listings_winner", "winner_id"),
        # Ids are never reused (SQLite reuses the highest deleted rowid otherwise): other services keep
        # records under a listing's id (bidding's auction, users' sales), and a new listing must not
        # inherit a deleted one's.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    seller_id: Mapped[int] = mapped_column(IdType)
    category_id: Mapped[int] = mapped_column(IdType, ForeignKey("categories.id"))
    title: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(Text)
    #: Lower-cased title and description, for the ``q`` filter (the same on PostgreSQL and SQLite).
    search_text: Mapped[str] = mapped_column(Text)
    #: Path under the media root (``listings/<name>.jpg``), or none.
    image: Mapped[str | None] = mapped_column(String(255), nullable=True)
    start_price: Mapped[int] = mapped_column(BigInteger)
    bid_increment: Mapped[int] = mapped_column(BigInteger)
    reserve_price: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    buy_now_price: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    # The projection of the bidding service's events.
    current_price: Mapped[int] = mapped_column(BigInteger)
    #: The bidding service's next acceptable bid after the latest bid shown (it owns the increments).
    min_next_bid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    bid_count: Mapped[int] = mapped_column(Integer, default=0)
    leader_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    winner_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    winner_username: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ListingBidder(Base):
    """Who has bid on what (from ``bid.placed``), for the ``bidder=me`` filter."""

    __tablename__ = "listing_bidders"
    __table_args__ = (Index("ix_listing_bidders_bidder", "bidder_id", "listing_id"),)

    listing_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    bidder_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)


class Watch(Base):
    __tablename__ = "watches"
    __table_args__ = (Index("ix_watches_listing", "listing_id"),)

    user_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    listing_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_listing", "listing_id", "id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    listing_id: Mapped[int] = mapped_column(IdType, ForeignKey("listings.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(IdType)
    #: The author's name when posting (the profile projection, when present, is newer and wins).
    author_username: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
