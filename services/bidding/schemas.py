"""Request and response bodies of the bidding API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, model_validator

from shared.events import format_time
from shared.money import MoneyOut, parse_amount

Timestamp = Annotated[datetime, PlainSerializer(format_time, return_type=str)]


def _amount(value: Any) -> Decimal:
    try:
        return parse_amount(value)
    except ArithmeticError:
        # shared.money lets decimal.InvalidOperation through for huge negative numbers ("-1e400"):
        # still an invalid amount, never a 500.
        raise ValueError("must be a positive decimal number") from None


#: Money in a request: a string or number, rounded half-up to cents, finite, positive, at most 1,000,000,000.
Amount = Annotated[Decimal, BeforeValidator(_amount)]


class BidRequest(BaseModel):
    """``{amount}``, ``{max_amount}`` or both: decimal strings or numbers, rounded to cents, positive, finite,
    at most 1,000,000,000. ``max_amount`` (proxy bidding): the system bids for you only as much as needed to
    lead, up to it; it is never shown to anyone else. With both, ``amount`` <= ``max_amount``."""

    model_config = ConfigDict(extra="ignore")

    amount: Amount | None = None
    max_amount: Amount | None = None

    @model_validator(mode="after")
    def _amount_or_maximum(self) -> BidRequest:
        if self.amount is None and self.max_amount is None:
            raise ValueError("give amount, max_amount or both")
        if self.amount is not None and self.max_amount is not None and self.max_amount < self.amount:
            raise ValueError("max_amount must not be below amount")
        return self


class BidPlaced(BaseModel):
    """201 answer of ``POST /api/listings/{id}/bids`` (200 when a leader only raised their maximum).

    ``id``/``amount``: the bid placed for you (null in the one case an earlier equal maximum answered
    at once, leaving no room for a bid of yours below it). ``leading``: whether you lead now (a maximum
    of someone else may have answered your bid at once). ``max_amount``: your own standing maximum.
    """

    id: int | None
    listing_id: int
    bidder_id: int
    amount: MoneyOut | None
    placed_at: Timestamp
    current_price: MoneyOut
    ends_at: Timestamp
    bid_count: int
    min_next_bid: MoneyOut
    leading: bool = True
    max_amount: MoneyOut | None = None
    reserve_met: bool | None = None


class BidView(BaseModel):
    """One bid of a listing's history."""

    id: int
    listing_id: int
    bidder_id: int
    bidder_username: str
    amount: MoneyOut
    placed_at: Timestamp
    #: Placed by the system for the bidder's maximum (proxy bidding).
    automatic: bool = False


class MyBid(BidView):
    """One of the caller's own bids, with where the auction stands now."""

    title: str
    status: Literal["active", "closed"]
    current_price: MoneyOut
    leading: bool


class AuctionView(BaseModel):
    """The bidding state of a listing."""

    listing_id: int
    seller_id: int
    title: str
    status: Literal["active", "closed"]
    start_price: MoneyOut
    #: null: the price bands apply.
    bid_increment: MoneyOut | None
    current_price: MoneyOut
    min_next_bid: MoneyOut
    bid_count: int
    leader_id: int | None
    ends_at: Timestamp
    closed_at: Timestamp | None
    winner_id: int | None
    winner_username: str | None
    final_price: MoneyOut | None
    #: null without a reserve (the reserve itself is never shown).
    reserve_met: bool | None = None
    #: Offered while buying now is allowed.
    buy_now_price: MoneyOut | None = None
