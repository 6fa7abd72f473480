"""The listings service's rules: creating, browsing, editing and deleting listings, watchlists, comments.

The live state of a listing (price, bids, leader, end time, status, winner) is the projection kept by
``events.py`` from the bidding service's events; nothing here asks the bidding service.

A listing is shown ``closed`` once ``auction.closed`` has arrived, and also as soon as its end time has
passed (the bidding service refuses bids from then on, and its close follows within moments); the
``status`` filter uses the same rule. Deleting, which cannot be undone, waits for the real close.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from services.listings import events
from services.listings.config import Settings
from services.listings.models import ACTIVE, CLOSED, Comment, Listing
from services.listings.repository import (
    CategoryRepository,
    CommentRepository,
    CommentRow,
    ListingFilter,
    ListingRepository,
    ListingRow,
    ProfileRepository,
    WatchRepository,
)
from services.listings.schemas import (
    MAX_ID,
    CategoryOut,
    CommentOut,
    CreateListing,
    ListingOut,
    PostComment,
    UpdateListing,
    UserOut,
    WatchOut,
    WinnerOut,
)
from shared.auth import Principal
from shared.errors import Forbidden, NotFound, ProblemError, Unauthorized
from shared.events import utcnow
from shared.images import ImageStore
from shared.money import from_cents, to_cents
from shared.pagination import Page, decode_cursor, encode_cursor

#: The bid increment when the seller sets none.
DEFAULT_INCREMENT_CENTS = 1
#: ``event_at`` of a profile row made from a token: any real ``user.*`` event is newer.
FROM_TOKEN = datetime(1970, 1, 1, tzinfo=UTC)

Sort = Literal["newest", "ending_soon"]


# ----- the rules, as plain functions -----
def min_next_bid(start_price: int, current_price: int, bid_count: int, increment: int) -> int:
    """The lowest acceptable next bid, in cents: the start price first, then the price plus the increment."""
    return start_price if bid_count == 0 else current_price + increment


def shown_status(status: str, ends_at: datetime, now: datetime) -> Literal["active", "closed"]:
    """Closed once the close arrived, or once the end time has passed (the close follows within moments)."""
    return "closed" if status == CLOSED or ends_at <= now else "active"


def reserve_met(reserve_price: int | None, current_price: int, bid_count: int) -> bool | None:
    if reserve_price is None:
        return None
    return bid_count > 0 and current_price >= reserve_price


def buy_now_available(
    buy_now_price: int | None, reserve_price: int | None, current_price: int, bid_count: int, active: bool
) -> bool:
    """Buy now is offered while active and until the first bid (or, with a reserve, until it is met)."""
    if buy_now_price is None or not active:
        return False
    if bid_count == 0:
        return True
    return reserve_price is not None and not reserve_met(reserve_price, current_price, bid_count)


def search_text(title: str, description: str) -> str:
    return f"{title}\n{description}".lower()


def invalid(field: str, message: str, where: str = "body") -> ProblemError:
    """A 422 shaped like the framework's validation errors, for rules checked in the service."""
    return ProblemError(
        422, "validation_error", f"invalid input: {field}", errors=[{"field": field, "in": where, "message": message}]
    )


def check_duration(seconds: int, settings: Settings) -> None:
    low, high = settings.auction_min_duration_seconds, settings.auction_max_duration_seconds
    if not low <= seconds <= high:
        raise invalid("duration_seconds", f"must be between {low} and {high} seconds")


def check_prices(start: Decimal, reserve: Decimal | None, buy_now: Decimal | None) -> None:
    if reserve is not None and reserve < start:
        raise invalid("reserve_price", "must not be below start_price")
    if buy_now is not None and buy_now < start:
        raise invalid("buy_now_price", "must not be below start_price")
    if buy_now is not None and reserve is not None and buy_now < reserve:
        raise invalid("buy_now_price", "must not be below reserve_price")


def parse_seller(value: str | None, viewer: Principal | None) -> int | None:
    """``seller_id``: an id, or ``me`` (which needs a caller)."""
    if value is None or value == "":
        return None
    if value == "me":
        if viewer is None:
            raise Unauthorized("seller_id=me needs authentication")
        return viewer.id
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_ID:
        raise invalid("seller_id", "must be a listing seller's id or 'me'", "query")
    return int(value)


def listing_cursor(sort: Sort, cursor: str | None) -> tuple[Any, ...] | None:
    """Decode a cursor of ``sort``: ``[id]`` newest first, ``[ends_at, id]`` ending soon."""
    if sort == "ending_soon":
        decoded = decode_cursor(cursor, str, int)
        if decoded is None:
            return None
        try:
            ends_at = datetime.fromisoformat(decoded[0])
        except ValueError:
            raise _bad_cursor() from None
        ends_at = ends_at.replace(tzinfo=UTC) if ends_at.tzinfo is None else ends_at.astimezone(UTC)
        return ends_at, _cursor_id(decoded[1])
    decoded = decode_cursor(cursor, int)
    return None if decoded is None else (_cursor_id(decoded[0]),)


def _cursor_id(value: int) -> int:
    if not 0 <= value <= MAX_ID:
        raise _bad_cursor()
    return value


def _bad_cursor() -> ProblemError:
    return ProblemError(422, "invalid_cursor", "the cursor is not one this API issued")


def listing_view(row: ListingRow, *, viewer_id: int | None, watched: bool, now: datetime) -> ListingOut:
    listing = row.listing
    status = shown_status(listing.status, listing.ends_at, now)
    winner = (
        WinnerOut(id=listing.winner_id, username=listing.winner_username or "")
        if listing.status == CLOSED and listing.winner_id is not None
        else None
    )
    offers_buy_now = buy_now_available(
        listing.buy_now_price, listing.reserve_price, listing.current_price, listing.bid_count, status == ACTIVE
    )
    is_seller = viewer_id is not None and viewer_id == listing.seller_id
    return ListingOut(
        id=listing.id,
        title=listing.title,
        description=listing.description,
        category=CategoryOut(id=listing.category_id, name=row.category_name),
        seller=UserOut(
            id=listing.seller_id,
            username=row.seller_username or "",
            avatar_url=row.seller_avatar_url or events.DEFAULT_AVATAR_URL,
        ),
        image_url=events.image_url(listing),
        start_price=from_cents(listing.start_price),
        current_price=from_cents(listing.current_price),
        bid_increment=from_cents(listing.bid_increment) if listing.bid_increment else None,
        bid_count=listing.bid_count,
        leader_id=listing.leader_id,
        min_next_bid=from_cents(
            listing.min_next_bid
            if listing.bid_count and listing.min_next_bid is not None
            else min_next_bid(listing.start_price, listing.current_price, listing.bid_count, listing.bid_increment)
        ),
        created_at=listing.created_at,
        ends_at=listing.ends_at,
        status=status,
        winner=winner,
        watched=watched,
        reserve_met=reserve_met(listing.reserve_price, listing.current_price, listing.bid_count),
        reserve_price=from_cents(listing.reserve_price) if is_seller and listing.reserve_price is not None else None,
        buy_now_price=from_cents(listing.buy_now_price) if offers_buy_now and listing.buy_now_price else None,
    )


def comment_view(row: CommentRow) -> CommentOut:
    comment = row.comment
    return CommentOut(
        id=comment.id,
        listing_id=comment.listing_id,
        author=UserOut(
            id=comment.author_id,
            username=row.username or comment.author_username,
            avatar_url=row.avatar_url or events.DEFAULT_AVATAR_URL,
        ),
        text=comment.text,
        created_at=comment.created_at,
    )


def _cents(amount: Decimal | None) -> int | None:
    return to_cents(amount) if amount is not None else None


def _token_name(principal: Principal) -> str:
    return principal.username or f"user{principal.id}"


@dataclass
class ListingsService:
    settings: Settings
    images: ImageStore

    # ----- reads -----
    async def categories(self, session: AsyncSession) -> Page[CategoryOut]:
        rows = await CategoryRepository(session).all()
        return Page(items=[CategoryOut(id=c.id, name=c.name) for c in rows], next_cursor=None)

    async def _row(self, session: AsyncSession, listing_id: int) -> ListingRow:
        row = await ListingRepository(session).row(listing_id) if 1 <= listing_id <= MAX_ID else None
        if row is None:
            raise NotFound("listing")
        return row

    async def _view(self, session: AsyncSession, row: ListingRow, viewer: Principal | None) -> ListingOut:
        watched = False
        if viewer is not None:
            watched = bool(await WatchRepository(session).watched_among(viewer.id, [row.listing.id]))
        return listing_view(row, viewer_id=viewer.id if viewer else None, watched=watched, now=utcnow())

    async def get(self, session: AsyncSession, listing_id: int, viewer: Principal | None) -> ListingOut:
        return await self._view(session, await self._row(session, listing_id), viewer)

    async def browse(
        self,
        session: AsyncSession,
        viewer: Principal | None,
        *,
        status: str | None = None,
        category_id: int | None = None,
        seller_id: str | None = None,
        watched: bool | None = None,
        won: bool | None = None,
        bidder: str | None = None,
        q: str | None = None,
        sort: Sort = "newest",
        cursor: str | None = None,
        limit: int = 20,
    ) -> Page[ListingOut]:
        def me(what: str) -> int:
            if viewer is None:
                raise Unauthorized(f"{what} needs authentication")
            return viewer.id

        text = (q or "").strip()
        filters = ListingFilter(
            now=utcnow(),
            status=status if status is not None else (ACTIVE if sort == "ending_soon" else None),
            category_id=category_id,
            seller_id=parse_seller(seller_id, viewer),
            watched_by=me("watched=true") if watched else None,
            won_by=me("won=true") if won else None,
            bidder_id=me("bidder=me") if bidder == "me" else None,
            text=text or None,
        )
        after = listing_cursor(sort, cursor)
        rows = await ListingRepository(session).search(
            filters, limit + 1, ending_soon=sort == "ending_soon", after=after
        )
        page = rows[:limit]
        watched_ids: set[int] = set()
        if viewer is not None:
            watched_ids = await WatchRepository(session).watched_among(viewer.id, [r.listing.id for r in page])
        items = [
            listing_view(
                r, viewer_id=viewer.id if viewer else None, watched=r.listing.id in watched_ids, now=filters.now
            )
            for r in page
        ]
        next_cursor = None
        if len(rows) > limit:
            last = page[-1].listing
            next_cursor = (
                encode_cursor(last.ends_at.isoformat(), last.id) if sort == "ending_soon" else encode_cursor(last.id)
            )
        return Page(items=items, next_cursor=next_cursor)

    # ----- changes -----
    async def create(self, session: AsyncSession, seller: Principal, body: CreateListing) -> ListingOut:
        check_duration(body.duration_seconds, self.settings)
        check_prices(body.start_price, body.reserve_price, body.buy_now_price)
        category = await CategoryRepository(session).get(body.category_id)
        if category is None:
            raise ProblemError(
                422,
                "unknown_category",
                "no such category",
                errors=[{"field": "category_id", "in": "body", "message": "no such category"}],
            )
        profiles = ProfileRepository(session)
        await profiles.insert_if_missing(seller.id, _token_name(seller), events.DEFAULT_AVATAR_URL, FROM_TOKEN)
        profile = await profiles.get(seller.id)
        seller_name = profile.username if profile else _token_name(seller)
        now = utcnow()
        description = body.description or ""
        start = to_cents(body.start_price)
        listing = Listing(
            seller_id=seller.id,
            category_id=category.id,
            title=body.title,
            description=description,
            search_text=search_text(body.title, description),
            image=None,
            start_price=start,
            # 0: the bidding service's price bands decide (AUCTION_INCREMENTS=banded).
            bid_increment=_cents(body.bid_increment)
            or (0 if self.settings.auction_increments == "banded" else DEFAULT_INCREMENT_CENTS),
            reserve_price=_cents(body.reserve_price),
            buy_now_price=_cents(body.buy_now_price),
            created_at=now,
            updated_at=now,
            current_price=start,
            bid_count=0,
            leader_id=None,
            ends_at=now + timedelta(seconds=body.duration_seconds),
            status=ACTIVE,
        )
        await ListingRepository(session).add(listing)
        await events.listing_created(session, listing, seller_name)
        row = ListingRow(listing, category.name, seller_name, profile.avatar_url if profile else None)
        return listing_view(row, viewer_id=seller.id, watched=False, now=now)

    async def owned(self, session: AsyncSession, principal: Principal, listing_id: int) -> Listing:
        """The listing, if it exists (404) and ``principal`` is its seller (403)."""
        listing = await ListingRepository(session).get(listing_id) if 1 <= listing_id <= MAX_ID else None
        if listing is None:
            raise NotFound("listing")
        if listing.seller_id != principal.id:
            raise Forbidden("only the seller can change this listing")
        return listing

    async def update(
        self, session: AsyncSession, principal: Principal, listing_id: int, body: UpdateListing
    ) -> ListingOut:
        listing = await self.owned(session, principal, listing_id)
        if "title" in body.model_fields_set and body.title is None:
            raise invalid("title", "must not be null")
        changed = False
        if body.title is not None and body.title != listing.title:
            listing.title = body.title
            changed = True
        if "description" in body.model_fields_set and (body.description or "") != listing.description:
            listing.description = body.description or ""
            changed = True
        if changed:
            listing.search_text = search_text(listing.title, listing.description)
            listing.updated_at = utcnow()
            await session.flush()
            await events.listing_updated(session, listing)
        return await self._view(session, await self._row(session, listing_id), principal)

    async def set_image(self, session: AsyncSession, listing: Listing, content: bytes) -> ListingOut:
        # A file is never removed here: a failed commit leaves an unused file, never a listing without its image.
        listing.image = self.images.save("listings", content)
        listing.updated_at = utcnow()
        await session.flush()
        await events.listing_updated(session, listing)
        seller = Principal(listing.seller_id, "")
        return await self._view(session, await self._row(session, listing.id), seller)

    async def delete(self, session: AsyncSession, principal: Principal, listing_id: int) -> None:
        listing = await self.owned(session, principal, listing_id)
        if listing.status != CLOSED:
            raise ProblemError(409, "auction_active", "a listing can be deleted only once its auction has closed")
        await events.listing_deleted(session, listing)
        await ListingRepository(session).delete(listing.id)

    async def watch(self, session: AsyncSession, principal: Principal, listing_id: int, on: bool) -> WatchOut:
        await self._row(session, listing_id)
        watches = WatchRepository(session)
        changed = (
            await watches.add(principal.id, listing_id, utcnow())
            if on
            else await watches.remove(principal.id, listing_id)
        )
        if changed:
            await events.listing_watched(session, listing_id, principal.id, on)
        return WatchOut(listing_id=listing_id, watched=on)

    async def comments(
        self, session: AsyncSession, listing_id: int, cursor: str | None, limit: int
    ) -> Page[CommentOut]:
        """Newest first."""
        await self._row(session, listing_id)
        decoded = decode_cursor(cursor, int)
        before = _cursor_id(decoded[0]) if decoded else None
        rows = await CommentRepository(session).page(listing_id, before, limit + 1)
        items = [comment_view(r) for r in rows[:limit]]
        return Page(items=items, next_cursor=encode_cursor(rows[limit - 1].comment.id) if len(rows) > limit else None)

    async def comment(self, session: AsyncSession, author: Principal, listing_id: int, body: PostComment) -> CommentOut:
        listing = (await self._row(session, listing_id)).listing
        now = utcnow()
        if shown_status(listing.status, listing.ends_at, now) != ACTIVE:
            raise ProblemError(409, "auction_closed", "comments are open only while the auction is active")
        profiles = ProfileRepository(session)
        await profiles.insert_if_missing(author.id, _token_name(author), events.DEFAULT_AVATAR_URL, FROM_TOKEN)
        profile = await profiles.get(author.id)
        name = profile.username if profile else _token_name(author)
        comment = Comment(
            listing_id=listing_id, author_id=author.id, author_username=name, text=body.text, created_at=now
        )
        await CommentRepository(session).add(comment)
        await events.comment_posted(session, comment, name)
        return comment_view(CommentRow(comment, name, profile.avatar_url if profile else None))
