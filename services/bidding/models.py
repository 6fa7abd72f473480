"""The bidding service's tables: one auction row per listing, its bids, and remembered idempotency keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import IdType, UtcDateTime

OPEN = "open"
CLOSED = "closed"


class Base(DeclarativeBase):
    pass


class Auction(Base):
    """The auction of one listing, kept from ``listing.created``; money in integer cents."""

    __tablename__ = "auctions"
    __table_args__ = (
        # The sweep's and the close's lookup: open auctions by end time.
        Index("ix_auctions_open_ends_at", "ends_at", postgresql_where=text("status = 'open'")),
        # The sweep's lookup of auctions whose ending-soon alert is due.
        Index(
            "ix_auctions_ending_soon_due",
            "ends_at",
            postgresql_where=text("status = 'open' AND ending_soon_sent_at IS NULL"),
            sqlite_where=text("status = 'open' AND ending_soon_sent_at IS NULL"),
        ),
    )

    listing_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    seller_id: Mapped[int] = mapped_column(BigInteger)
    seller_username: Mapped[str] = mapped_column(String(64), default="")
    title: Mapped[str] = mapped_column(String(200))
    start_cents: Mapped[int] = mapped_column(BigInteger)
    increment_cents: Mapped[int] = mapped_column(BigInteger)
    reserve_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    buy_now_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: The start price until the first bid, then the highest accepted bid.
    current_cents: Mapped[int] = mapped_column(BigInteger)
    bid_count: Mapped[int] = mapped_column(Integer, default=0)
    leader_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    leader_username: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The leader's private maximum (proxy bidding); None when it is no more than the current price.
    #: Never shown to anyone else.
    leader_max_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: The leader before the last accepted bid (set by the same statement that accepts it).
    previous_leader_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: Time of the last accepted bid; never decreases, so bid times follow acceptance order.
    last_bid_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    #: ``timer`` (the dramatiq actor), ``sweep``, ``seller`` or ``buy_now``.
    closed_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: When ``auction.ending_soon`` went out (once per auction).
    ending_soon_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Bid(Base):
    __tablename__ = "bids"
    __table_args__ = (
        # The database itself refuses two accepted bids of one listing with the same amount; it also
        # serves the history (highest first).
        UniqueConstraint("listing_id", "amount_cents", name="uq_bids_listing_amount"),
        Index("ix_bids_bidder", "bidder_id", "id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    listing_id: Mapped[int] = mapped_column(IdType, ForeignKey("auctions.listing_id", ondelete="CASCADE"))
    bidder_id: Mapped[int] = mapped_column(BigInteger)
    bidder_username: Mapped[str] = mapped_column(String(64), default="")
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: Placed by the system for a bidder's maximum (proxy bidding), not by a request of theirs.
    automatic: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Watcher(Base):
    """Who watches which listing (from the listings service's ``listing.watched``/``listing.unwatched``):
    the recipients, with the bidders, of ``auction.ending_soon``."""

    __tablename__ = "watchers"

    listing_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class IdempotencyKey(Base):
    """The first result of a request made with an ``Idempotency-Key``, per user."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: What the request asked for; the same key with a different request is refused.
    fingerprint: Mapped[str] = mapped_column(String(255))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
