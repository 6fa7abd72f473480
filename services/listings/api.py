"""Thin HTTP routers of the listings service."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse

from services.listings.schemas import (
    MAX_ID,
    CategoryOut,
    CommentOut,
    CreateListing,
    ListingOut,
    PostComment,
    UpdateListing,
    WatchOut,
)
from services.listings.service import ListingsService, Sort
from shared.auth import CurrentUser, MaybeUser
from shared.images import process_upload
from shared.pagination import Cursor, Limit, Page
from shared.runtime import ReadSession, WriteSession

router = APIRouter()


def listings_service(request: Request) -> ListingsService:
    return request.app.state.listings  # type: ignore[no-any-return]


Service = Annotated[ListingsService, Depends(listings_service)]
SortParam = Annotated[Sort, Query(description="`newest` first, or `ending_soon` (active ones unless `status` says)")]


@router.get("/api/categories", response_model=Page[CategoryOut])
async def categories(session: ReadSession, listings: Service) -> Page[CategoryOut]:
    return await listings.categories(session)


@router.post("/api/listings", status_code=201, response_model=ListingOut)
async def create(body: CreateListing, principal: CurrentUser, session: WriteSession, listings: Service) -> ListingOut:
    return await listings.create(session, principal, body)


@router.get("/api/listings", response_model=Page[ListingOut])
async def browse(
    session: ReadSession,
    listings: Service,
    viewer: MaybeUser,
    status: Literal["active", "closed"] | None = None,
    category_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    seller_id: Annotated[str | None, Query(max_length=32, description="a user id, or `me`")] = None,
    watched: bool | None = None,
    won: bool | None = None,
    bidder: Literal["me"] | None = None,
    q: Annotated[
        str | None, Query(max_length=200, pattern=r"^[^\x00]*$", description="text in the title or description")
    ] = None,
    sort: SortParam = "newest",
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Page[ListingOut]:
    return await listings.browse(
        session,
        viewer,
        status=status,
        category_id=category_id,
        seller_id=seller_id,
        watched=watched,
        won=won,
        bidder=bidder,
        q=q,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )


@router.get("/api/listings/{listing_id}", response_model=ListingOut)
async def detail(listing_id: int, viewer: MaybeUser, session: ReadSession, listings: Service) -> ListingOut:
    return await listings.get(session, listing_id, viewer)


@router.patch("/api/listings/{listing_id}", response_model=ListingOut)
async def edit(
    listing_id: int, body: UpdateListing, principal: CurrentUser, session: WriteSession, listings: Service
) -> ListingOut:
    return await listings.update(session, principal, listing_id, body)


@router.delete("/api/listings/{listing_id}", status_code=204, response_class=Response)
async def delete(listing_id: int, principal: CurrentUser, session: WriteSession, listings: Service) -> Response:
    await listings.delete(session, principal, listing_id)
    return Response(status_code=204)


@router.put("/api/listings/{listing_id}/image", response_model=ListingOut)
async def set_image(
    listing_id: int,
    principal: CurrentUser,
    session: WriteSession,
    listings: Service,
    file: Annotated[UploadFile, File()],
) -> ListingOut:
    listing = await listings.owned(session, principal, listing_id)
    content = await process_upload(file, max_side=listings.settings.listing_image_max_side)
    return await listings.set_image(session, listing, content)


@router.put("/api/listings/{listing_id}/watch", response_model=WatchOut)
async def watch(listing_id: int, principal: CurrentUser, session: WriteSession, listings: Service) -> WatchOut:
    return await listings.watch(session, principal, listing_id, True)


@router.delete("/api/listings/{listing_id}/watch", response_model=WatchOut)
async def unwatch(listing_id: int, principal: CurrentUser, session: WriteSession, listings: Service) -> WatchOut:
    return await listings.watch(session, principal, listing_id, False)


@router.get("/api/listings/{listing_id}/comments", response_model=Page[CommentOut])
async def comments(
    listing_id: int, session: ReadSession, listings: Service, limit: Limit = 20, cursor: Cursor = None
) -> Page[CommentOut]:
    return await listings.comments(session, listing_id, cursor, limit)


@router.post("/api/listings/{listing_id}/comments", status_code=201, response_model=CommentOut)
async def post_comment(
    listing_id: int, body: PostComment, principal: CurrentUser, session: WriteSession, listings: Service
) -> CommentOut:
    return await listings.comment(session, principal, listing_id, body)


@router.get("/media/listings/{name}", include_in_schema=False)
async def image_file(name: str, listings: Service) -> FileResponse:
    return FileResponse(
        listings.images.path_of("listings", name),
        media_type="image/jpeg",
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )
