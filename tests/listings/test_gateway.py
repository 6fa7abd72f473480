"""Every listings call through the gateway (the one public origin), in both modes.

The gateway runs the listings app's lifespan and reaches it in-process, as in the embedded default;
in postgres mode both also use real PostgreSQL and RabbitMQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from services.gateway.app import create_app as create_gateway
from services.gateway.config import Settings as GatewaySettings
from services.listings.app import create_app
from services.listings.config import Settings
from shared.bus import Bus, InProcessBus
from shared.events import Envelope
from tests.conftest import serve
from tests.listings.support import drop_broker_objects, eventually
from tests.support.tokens import TestKeys


@pytest.fixture
async def public(
    mode: str, make_settings: Callable[..., Any], test_keys: TestKeys
) -> AsyncIterator[tuple[httpx.AsyncClient, Bus]]:
    """A client of the gateway, and the bus the listings service listens on."""
    real = mode == "postgres"
    listings_settings = make_settings(Settings, real=real, AUCTION_MIN_DURATION_SECONDS=1)
    gateway_settings = make_settings(GatewaySettings, real=real)
    shared_bus: InProcessBus | None = None
    if not real:
        shared_bus = InProcessBus()
        await shared_bus.start()
    listings = create_app(listings_settings, bus=shared_bus, jwks=test_keys.source)
    gateway = create_gateway(gateway_settings, bus=shared_bus, jwks=test_keys.source, services={"listings": listings})
    try:
        async with serve(gateway) as client:
            yield client, listings.state.runtime.bus
    finally:
        if shared_bus is not None:
            await shared_bus.close()
        else:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(drop_broker_objects(listings_settings), timeout=10)


async def test_every_listings_call_through_the_gateway(
    public: tuple[httpx.AsyncClient, Bus], test_keys: TestKeys
) -> None:
    http, bus = public
    seller, buyer = test_keys.auth(1, "seller"), test_keys.auth(2, "buyer")

    categories = await http.get("/api/categories")
    assert categories.status_code == 200
    assert len(categories.json()["items"]) == 10

    created = await http.post(
        "/api/listings",
        json={"title": "Gateway lamp", "category_id": 3, "start_price": "4.5", "duration_seconds": 600},
        headers=seller,
    )
    assert created.status_code == 201, created.text
    listing = created.json()
    url = f"/api/listings/{listing['id']}"
    assert listing["start_price"] == "4.50"
    assert "X-Server-Time" in created.headers

    shown = await http.get(url, headers=buyer)
    assert shown.status_code == 200
    assert shown.json()["title"] == "Gateway lamp"
    missing = await http.get("/api/listings/99999999")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")

    bad = await http.post("/api/listings", json={"title": "x", "category_id": 3}, headers=seller)
    assert bad.status_code == 422
    assert (await http.post("/api/listings", json={})).status_code == 401

    edited = await http.patch(url, json={"description": "bright"}, headers=seller)
    assert edited.status_code == 200
    assert edited.json()["description"] == "bright"
    assert (await http.patch(url, json={"title": "mine"}, headers=buyer)).status_code == 403

    picture = io.BytesIO()
    Image.new("RGB", (20, 10), (0, 90, 200)).save(picture, format="PNG")
    uploaded = await http.put(
        f"{url}/image", files={"file": ("lamp.png", picture.getvalue(), "image/png")}, headers=seller
    )
    assert uploaded.status_code == 200, uploaded.text
    image = await http.get(uploaded.json()["image_url"])
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"

    assert (await http.put(f"{url}/watch", headers=buyer)).json() == {"listing_id": listing["id"], "watched": True}
    watched = await http.get("/api/listings", params={"watched": "true"}, headers=buyer)
    assert [item["id"] for item in watched.json()["items"]] == [listing["id"]]
    assert (await http.delete(f"{url}/watch", headers=buyer)).json()["watched"] is False

    comment = await http.post(f"{url}/comments", json={"text": "Still for sale?"}, headers=buyer)
    assert comment.status_code == 201, comment.text
    comments = (await http.get(f"{url}/comments")).json()
    assert [c["text"] for c in comments["items"]] == ["Still for sale?"]

    browse = await http.get("/api/listings", params={"q": "LAMP", "status": "active", "category_id": 3})
    assert [item["id"] for item in browse.json()["items"]] == [listing["id"]]
    assert (await http.get("/api/listings", params={"seller_id": "me"})).status_code == 401

    assert (await http.delete(url, headers=seller)).status_code == 409
    await bus.publish(
        Envelope(
            type="auction.closed",
            producer="bidding",
            data={
                "listing_id": listing["id"],
                "seller_id": 1,
                "title": "Gateway lamp",
                "winner_id": None,
                "winner_username": None,
                "final_price": None,
                "bid_count": 0,
                "closed_at": "2026-11-29T18:00:00.000Z",
            },
        )
    )

    async def closed() -> bool:
        return bool((await http.get(url)).json()["status"] == "closed")

    await eventually(closed)
    assert (await http.delete(url, headers=seller)).status_code == 204
    assert (await http.get(url)).status_code == 404
