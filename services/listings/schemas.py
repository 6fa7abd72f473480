"""Request and response models of the listings service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, StringConstraints

from shared.events import format_time
from shared.money import MoneyOut, parse_amount

#: Largest id the database can hold (BIGINT); anything above cannot exist.
MAX_ID = 2**63 - 1
#: Largest price accepted for a start price, an increment, a reserve or a buy-now price.
MAX_PRICE = Decimal("1000000")
TITLE_MAX = 80
DESCRIPTION_MAX = 2000
COMMENT_MAX = 500

Timestamp = Annotated[datetime, PlainSerializer(format_time, return_type=str)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _storable(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refused here as bad input (422), not by the database (500).
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _price(value: Any) -> Decimal:
    return parse_amount(value, MAX_PRICE)


#: Money in a request: a string or a number, rounded to cents, 0.01 .. 1,000,000.
PriceIn = Annotated[Decimal, BeforeValidator(_price)]
Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX), AfterValidator(_storable)
]
Description = Annotated[str, Field(max_length=DESCRIPTION_MAX), AfterValidator(_storable)]
CommentText = Annotated[
    str, Field(min_length=1, max_length=COMMENT_MAX), AfterValidator(_not_blank), AfterValidator(_storable)
]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class StrictModel(BaseModel):
    #: Strict: ``"60"`` is not an integer and ``1`` is not a string; unknown fields are ignored.
    model_config = ConfigDict(extra="ignore", strict=True)


class CreateListing(StrictModel):
    title: Title
    category_id: Id
    start_price: PriceIn
    #: Checked against ``AUCTION_MIN_DURATION_SECONDS`` and the maximum by the service.
    duration_seconds: Annotated[int, Field(ge=1, le=10 * 365 * 24 * 3600)]
    description: Description | None = None
    bid_increment: PriceIn | None = None
    reserve_price: PriceIn | None = None
    buy_now_price: PriceIn | None = None


class UpdateListing(StrictModel):
    """Only the fields sent change; ``title`` cannot be null, a null ``description`` clears it."""

    title: Title | None = None
    description: Description | None = None


class PostComment(StrictModel):
    text: CommentText


class CategoryOut(BaseModel):
    id: int
    name: str


class UserOut(BaseModel):
    id: int
    username: str
    avatar_url: str


class WinnerOut(BaseModel):
    id: int
    username: str


class ListingOut(BaseModel):
    id: int
    title: str
    description: str
    category: CategoryOut
    seller: UserOut
    image_url: str | None
    start_price: MoneyOut
    current_price: MoneyOut
    #: null: the price-banded increments apply (``min_next_bid`` always tells the next acceptable bid).
    bid_increment: MoneyOut | None
    bid_count: int
    leader_id: int | None
    min_next_bid: MoneyOut
    created_at: Timestamp
    ends_at: Timestamp
    status: Literal["active", "closed"]
    winner: WinnerOut | None
    watched: bool
    #: Whether the highest bid reaches the reserve; null when the listing has no reserve.
    reserve_met: bool | None
    #: Shown only to the seller (never to others); null otherwise.
    reserve_price: MoneyOut | None
    #: Present while buying now is allowed: active, and no bid yet (or the reserve not yet met).
    buy_now_price: MoneyOut | None


class WatchOut(BaseModel):
    listing_id: int
    watched: bool


class CommentOut(BaseModel):
    id: int
    listing_id: int
    author: UserOut
    text: str
    created_at: Timestamp
