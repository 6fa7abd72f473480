"""Request and response bodies of the bidding API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

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
    """``{amount}``: a decimal string or number, rounded to cents, positive, finite, at most 1,000,000,000."""

    model_config = ConfigDict(extra="ignore")

    amount: Amount
    #: Proxy bidding (the contract's auction-format addition); answered with 422 ``not_supported`` for now.
    max_amount: Amount | None = None


class BidPlaced(BaseModel):
    """201 answer of ``POST /api/listings/{id}/bids``."""

    id: int
    listing_id: int
    bidder_id: int
    amount: MoneyOut
    placed_at: Timestamp
    current_price: MoneyOut
    ends_at: Timestamp
    bid_count: int
    min_next_bid: MoneyOut


class BidView(BaseModel):
    """One bid of a listing's history."""

    id: int
    listing_id: int
    bidder_id: int
    bidder_username: str
    amount: MoneyOut
    placed_at: Timestamp


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
    bid_increment: MoneyOut
    current_price: MoneyOut
    min_next_bid: MoneyOut
    bid_count: int
    leader_id: int | None
    ends_at: Timestamp
    closed_at: Timestamp | None
    winner_id: int | None
    winner_username: str | None
    final_price: MoneyOut | None
