"""Events in and out of the listings service, in both modes (in postgres mode through real RabbitMQ).

In: ``bid.placed``, ``auction.extended``, ``auction.closed``, ``user.registered`` / ``user.updated``, also
duplicated (same event id) and out of order. A queue delivers in order, so once a later marker event shows,
every earlier one has been handled: the tests assert on the view after such a marker.
Out: ``listing.created``, ``listing.updated``, ``listing.deleted``, ``comment.posted`` with the catalogue's fields.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from PIL import Image

from tests.listings.support import Feed, create_listing, eventually, get_listing, ids
from tests.support.tokens import TestKeys


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bid(listing: dict[str, Any], count: int, amount: str, bidder: int, ends_at: str | None = None) -> dict[str, Any]:
    return {
        "listing_id": listing["id"],
        "bid_id": 1000 + count,
        "amount": amount,
        "bidder_id": bidder,
        "bidder_username": f"user{bidder}",
        "bid_count": count,
        "ends_at": ends_at or listing["ends_at"],
        "placed_at": rfc3339(datetime.now(UTC)),
        "previous_leader_id": None,
        "seller_id": listing["seller"]["id"],
    }


def closed(listing: dict[str, Any], winner: int | None, price: str | None, count: int) -> dict[str, Any]:
    return {
        "listing_id": listing["id"],
        "seller_id": listing["seller"]["id"],
        "title": listing["title"],
        "winner_id": winner,
        "winner_username": f"user{winner}" if winner else None,
        "final_price": price,
        "bid_count": count,
        "closed_at": rfc3339(datetime.now(UTC)),
    }


async def marker(feed: Feed, client: httpx.AsyncClient, user_id: int) -> None:
    """Publish a ``user.updated`` and wait until it shows: everything published before it has been handled."""
    name = f"marker{datetime.now(UTC).timestamp():.6f}".replace(".", "")
    await feed.publish("user.updated", {"user_id": user_id, "username": name, "avatar_url": "/m.jpg"}, producer="users")

    async def shown() -> bool:
        items = (await client.get("/api/listings", params={"seller_id": user_id, "limit": 1})).json()["items"]
        return bool(items) and items[0]["seller"]["username"] == name

    await eventually(shown)


async def test_bids_project_once_and_never_backwards(
    client: httpx.AsyncClient, test_keys: TestKeys, feed: Feed
) -> None:
    listing = await create_listing(client, test_keys, 1, start_price="10.00", bid_increment="2.00")
    other = await create_listing(client, test_keys, 1)
    first = await feed.publish("bid.placed", bid(listing, 1, "10.00", bidder=21))

    async def price_is(amount: str, count: int) -> dict[str, Any]:
        shown = await get_listing(client, listing["id"])
        assert (shown["current_price"], shown["bid_count"]) == (amount, count)
        return shown

    shown = await eventually(lambda: price_is("10.00", 1))
    assert shown["leader_id"] == 21
    assert shown["min_next_bid"] == "12.00"

    later_end = rfc3339(datetime.now(UTC) + timedelta(hours=2))
    second = await feed.publish("bid.placed", bid(listing, 2, "15.50", bidder=22, ends_at=later_end))
    await feed.resend(first)  # a duplicate of an old event
    await feed.resend(second)  # a duplicate of the newest
    # An old bid arriving late under a new event id (out of order): it must not lower anything.
    await feed.publish("bid.placed", bid(listing, 1, "10.00", bidder=21))
    await marker(feed, client, 1)
    shown = await price_is("15.50", 2)
    assert shown["leader_id"] == 22
    assert shown["min_next_bid"] == "17.50"
    assert shown["ends_at"] == later_end  # soft close carried by the bid
    assert shown["status"] == "active"
    assert (await get_listing(client, other["id"]))["bid_count"] == 0

    # Extensions only move the end later.
    earlier = rfc3339(datetime.now(UTC) + timedelta(minutes=30))
    latest = rfc3339(datetime.now(UTC) + timedelta(hours=3))
    await feed.publish("auction.extended", {"listing_id": listing["id"], "ends_at": latest})
    await feed.publish("auction.extended", {"listing_id": listing["id"], "ends_at": earlier})
    await marker(feed, client, 1)
    assert (await get_listing(client, listing["id"]))["ends_at"] == latest

    # bidder=me: the listings the caller has bid on.
    assert await ids(client, {"bidder": "me"}, test_keys.auth(21)) == [listing["id"]]
    assert await ids(client, {"bidder": "me"}, test_keys.auth(22)) == [listing["id"]]
    assert await ids(client, {"bidder": "me"}, test_keys.auth(23)) == []

    # Events about listings that do not exist (deleted, or never here) are ignored, not retried forever.
    await feed.publish("bid.placed", bid({**listing, "id": 987654}, 1, "10.00", bidder=21))
    await feed.publish("auction.closed", closed({**listing, "id": 987654}, None, None, 0))
    await marker(feed, client, 1)


async def test_close_projects_winner_even_out_of_order(
    client: httpx.AsyncClient, test_keys: TestKeys, feed: Feed
) -> None:
    listing = await create_listing(client, test_keys, 1, start_price="5.00")
    unsold = await create_listing(client, test_keys, 1)
    watcher = test_keys.auth(31)
    # The close (with the final figures) arrives before the last bid.placed does, and twice.
    await feed.publish("bid.placed", bid(listing, 1, "5.00", bidder=31))
    close = await feed.publish("auction.closed", closed(listing, 32, "9.00", 2))
    await feed.resend(close)
    await feed.publish("bid.placed", bid(listing, 2, "9.00", bidder=32))
    await feed.publish("bid.placed", bid(listing, 1, "5.00", bidder=31))
    later = rfc3339(datetime.now(UTC) + timedelta(days=2))
    await feed.publish("auction.extended", {"listing_id": listing["id"], "ends_at": later})
    await feed.publish("auction.closed", closed(unsold, None, None, 0))
    await marker(feed, client, 1)

    shown = await get_listing(client, listing["id"], watcher)
    assert shown["status"] == "closed"
    assert shown["winner"] == {"id": 32, "username": "user32"}
    assert (shown["current_price"], shown["bid_count"], shown["leader_id"]) == ("9.00", 2, 32)
    assert shown["ends_at"] == listing["ends_at"]  # no extension once closed
    nobody = await get_listing(client, unsold["id"])
    assert (nobody["status"], nobody["winner"], nobody["bid_count"], nobody["current_price"]) == (
        "closed",
        None,
        0,
        "10.00",
    )
    assert await ids(client, {"won": "true"}, test_keys.auth(32)) == [listing["id"]]
    assert await ids(client, {"won": "true"}, test_keys.auth(31)) == []
    assert await ids(client, {"won": "true", "status": "closed", "bidder": "me"}, test_keys.auth(32)) == [listing["id"]]
    assert await ids(client, {"status": "closed"}) == [unsold["id"], listing["id"]]
    assert await ids(client, {"status": "active"}) == []


async def test_profiles_follow_user_events(client: httpx.AsyncClient, test_keys: TestKeys, feed: Feed) -> None:
    listing = await create_listing(client, test_keys, 41, "token-name")
    assert listing["seller"]["username"] == "token-name"
    now = datetime.now(UTC)
    await feed.publish(
        "user.updated",
        {"user_id": 41, "username": "renamed", "avatar_url": "/media/avatars/new.jpg"},
        occurred_at=now,
        producer="users",
    )
    # The registration, older, arrives after the update: it must not undo it.
    await feed.publish(
        "user.registered",
        {
            "user_id": 41,
            "username": "token-name",
            "avatar_url": "/media/avatars/default.svg",
            "created_at": rfc3339(now - timedelta(days=1)),
        },
        occurred_at=now - timedelta(days=1),
        producer="users",
    )
    await create_listing(client, test_keys, 1)
    await marker(feed, client, 1)  # a different user: its own listing shows the marker
    seller = (await get_listing(client, listing["id"]))["seller"]
    assert seller == {"id": 41, "username": "renamed", "avatar_url": "/media/avatars/new.jpg"}
    comment = await client.post(
        f"/api/listings/{listing['id']}/comments", json={"text": "mine"}, headers=test_keys.auth(41, "token-name")
    )
    assert comment.json()["author"] == {"id": 41, "username": "renamed", "avatar_url": "/media/avatars/new.jpg"}


async def test_published_events_carry_the_catalogue_fields(
    client: httpx.AsyncClient, test_keys: TestKeys, feed: Feed
) -> None:
    listing = await create_listing(
        client, test_keys, 51, "sam", title="Lamp", category_id=3, start_price=7, bid_increment="0.25"
    )
    created = await feed.wait_for("listing.created", lambda d: d["listing_id"] == listing["id"])
    assert created.producer == "listings"
    assert created.data == {
        "listing_id": listing["id"],
        "seller_id": 51,
        "seller_username": "sam",
        "title": "Lamp",
        "category_id": 3,
        "start_price": "7.00",
        "bid_increment": "0.25",
        "image_url": None,
        "created_at": listing["created_at"],
        "ends_at": listing["ends_at"],
        "reserve_price": None,
        "buy_now_price": None,
    }

    url = f"/api/listings/{listing['id']}"
    await client.patch(url, json={"title": "Lamp 2", "description": "bright"}, headers=test_keys.auth(51))
    updated = await feed.wait_for("listing.updated", lambda d: d["listing_id"] == listing["id"])
    assert updated.data == {"listing_id": listing["id"], "title": "Lamp 2", "description": "bright", "image_url": None}

    picture = io.BytesIO()
    Image.new("RGB", (8, 8)).save(picture, format="PNG")
    response = await client.put(
        f"{url}/image", files={"file": ("p.png", picture.getvalue(), "image/png")}, headers=test_keys.auth(51)
    )
    image_url = response.json()["image_url"]
    await feed.wait_for("listing.updated", lambda d: d["image_url"] == image_url)

    comment = (
        await client.post(f"{url}/comments", json={"text": "Is it <b>bright</b>?"}, headers=test_keys.auth(52, "kim"))
    ).json()
    posted = await feed.wait_for("comment.posted")
    assert posted.data == {
        "listing_id": listing["id"],
        "comment_id": comment["id"],
        "author_id": 52,
        "author_username": "kim",
        "text": "Is it <b>bright</b>?",
        "created_at": comment["created_at"],
    }

    # A failed change publishes nothing.
    await client.patch(url, json={"title": ""}, headers=test_keys.auth(51))
    await client.delete(url, headers=test_keys.auth(51))  # 409: still active
    await feed.publish("auction.closed", closed(listing, None, None, 0))

    async def is_closed() -> bool:
        return bool((await get_listing(client, listing["id"]))["status"] == "closed")

    await eventually(is_closed)
    assert (await client.delete(url, headers=test_keys.auth(51))).status_code == 204
    deleted = await feed.wait_for("listing.deleted")
    assert deleted.data == {"listing_id": listing["id"], "seller_id": 51}
    assert len(feed.of_type("listing.updated")) == 2
    assert len(feed.of_type("listing.deleted")) == 1
    assert len(feed.of_type("listing.created")) == 1


async def test_min_next_bid_is_the_bidding_services_and_banded_listings_say_so(
    client: httpx.AsyncClient, test_keys: TestKeys, feed: Feed, app: Any
) -> None:
    # The bidding service owns the increments: its next acceptable bid is shown as it says.
    listing = await create_listing(client, test_keys, 1, start_price="3.00", bid_increment="1.00")
    await feed.publish("bid.placed", bid(listing, 1, "3.00", bidder=21) | {"min_next_bid": "3.25"})

    async def shows_it() -> bool:
        return (await get_listing(client, listing["id"]))["min_next_bid"] == "3.25"

    await eventually(shows_it)
    # With AUCTION_INCREMENTS=banded, a listing without its own increment has none (the bands apply).
    app.state.listings.settings.auction_increments = "banded"
    banded = await create_listing(client, test_keys, 1, start_price="3.00")
    assert banded["bid_increment"] is None and banded["min_next_bid"] == "3.00"
    created = await feed.wait_for("listing.created", lambda data: data["listing_id"] == banded["id"])
    assert created.data["bid_increment"] is None
    app.state.listings.settings.auction_increments = "fixed"
    fixed = await create_listing(client, test_keys, 1, start_price="3.00")
    assert fixed["bid_increment"] == "0.01"
