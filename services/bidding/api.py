"""Thin HTTP routers of the bidding service."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse

from services.bidding.schemas import AuctionView, BidPlaced, BidRequest, BidView, MyBid
from services.bidding.service import BiddingService
from shared.auth import CurrentUser
from shared.errors import PROBLEM_MEDIA_TYPE
from shared.pagination import Cursor, Limit, Page

router = APIRouter()

#: Ids are 64-bit: a larger one is a 422, never a database error.
ListingId = Annotated[int, Path(ge=1, le=2**63 - 1)]
IdempotencyKey = Annotated[
    str | None,
    Header(min_length=1, max_length=255, description="the same key from the same user returns the first result"),
]

_PROBLEMS: dict[int | str, dict[str, object]] = {
    401: {"description": "no or invalid token"},
    403: {"description": "`own_listing` (or `forbidden`)"},
    404: {"description": "`not_found`: unknown listing"},
    409: {"description": "`bid_too_low` (with `min_next_bid`) or `auction_closed`"},
    200: {"description": "a leader raised only their own maximum: no new bid"},
    422: {"description": "invalid input"},
}


def bidding_service(request: Request) -> BiddingService:
    return request.app.state.bidding  # type: ignore[no-any-return]


Service = Annotated[BiddingService, Depends(bidding_service)]


@router.post("/api/listings/{listing_id}/bids", status_code=201, response_model=BidPlaced, responses=_PROBLEMS)
async def place_bid(
    listing_id: ListingId,
    body: BidRequest,
    principal: CurrentUser,
    bidding: Service,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    outcome = await bidding.place_bid(listing_id, principal, body, idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    media = PROBLEM_MEDIA_TYPE if outcome.status >= 400 else "application/json"
    return JSONResponse(outcome.body, status_code=outcome.status, media_type=media, headers=headers)


@router.get("/api/listings/{listing_id}/bids", response_model=Page[BidView], responses={404: {}})
async def bid_history(
    listing_id: ListingId, bidding: Service, limit: Limit = 20, cursor: Cursor = None
) -> Page[BidView]:
    return await bidding.history(listing_id, cursor, limit)


@router.post("/api/listings/{listing_id}/close", response_model=AuctionView, responses=_PROBLEMS)
async def close_auction(listing_id: ListingId, principal: CurrentUser, bidding: Service) -> AuctionView:
    return await bidding.close_by_seller(listing_id, principal)


@router.post(
    "/api/listings/{listing_id}/buy",
    response_model=AuctionView,
    responses={**_PROBLEMS, 409: {"description": "`buy_now_unavailable`"}},
)
async def buy_now(listing_id: ListingId, principal: CurrentUser, bidding: Service) -> AuctionView:
    """Buy it now at the listing's buy-now price: ends the auction at once with you as the winner."""
    return await bidding.buy_now(listing_id, principal)


@router.get("/api/listings/{listing_id}/auction", response_model=AuctionView, responses={404: {}})
async def auction_state(listing_id: ListingId, bidding: Service) -> AuctionView:
    return await bidding.auction(listing_id)


@router.get("/api/bids", response_model=Page[MyBid], responses={401: {}})
async def my_bids(
    principal: CurrentUser,
    bidding: Service,
    bidder: Annotated[Literal["me"], Query(description="only `me`: your own bids")] = "me",
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Page[MyBid]:
    return await bidding.bids_of(principal, cursor, limit)
