"""What the gateway consumes: every domain event, turned into the contract's WebSocket pushes.

The gateway keeps no state of its own: each instance consumes from its own exclusive queue and pushes
to the sockets it holds. Derived private frames (``bid.outbid``, ``auction.won``, ...) get an id derived
from the domain event's, so the same fact always carries the same id.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from services.gateway.hub import Hub, encode_event, event_lag, events_in
from shared import events
from shared.events import Envelope

Push = tuple[str, str, dict[str, Any]]  # topic, event name, data


def _derived_id(envelope: Envelope, name: str) -> str:
    return str(uuid.uuid5(envelope.id, name))


#: Never pushed to sockets: a listing's reserve is the seller's secret (``reserve_met`` is public).
PRIVATE_LISTING_FIELDS = frozenset({"reserve_price"})


def _without_private(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in PRIVATE_LISTING_FIELDS}


def pushes(envelope: Envelope) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(topic, event, id, data) for each frame an event turns into."""
    data = envelope.data
    eid = str(envelope.id)
    kind = envelope.type
    if kind == events.BID_PLACED:
        listing = data["listing_id"]
        public = {k: v for k, v in data.items() if k not in ("previous_leader_id", "seller_id")}
        yield f"listing.{listing}", kind, eid, public
        yield "listings", kind, eid, public
        previous = data.get("previous_leader_id")
        if previous is not None and previous != data.get("bidder_id"):
            outbid = {"listing_id": listing, "amount": data["amount"], "bidder_username": data.get("bidder_username")}
            yield f"user.{previous}", "bid.outbid", _derived_id(envelope, "bid.outbid"), outbid
    elif kind == events.AUCTION_CLOSED:
        listing = data["listing_id"]
        yield f"listing.{listing}", kind, eid, data
        yield "listings", kind, eid, data
        winner, seller = data.get("winner_id"), data.get("seller_id")
        if winner is not None:
            yield f"user.{winner}", "auction.won", _derived_id(envelope, "auction.won"), data
            if seller is not None:
                yield f"user.{seller}", "auction.sold", _derived_id(envelope, "auction.sold"), data
        elif seller is not None:
            yield f"user.{seller}", "auction.unsold", _derived_id(envelope, "auction.unsold"), data
    elif kind in (events.AUCTION_EXTENDED, events.COMMENT_POSTED):
        yield f"listing.{data['listing_id']}", kind, eid, data
    elif kind in (events.LISTING_UPDATED, events.LISTING_DELETED):
        public = _without_private(data)
        yield f"listing.{data['listing_id']}", kind, eid, public
        yield "listings", kind, eid, public
    elif kind == events.LISTING_CREATED:
        yield "listings", kind, eid, _without_private(data)
    elif kind == events.AUCTION_ENDING_SOON:
        alert = {k: v for k, v in data.items() if k != "recipient_ids"}
        for user_id in data.get("recipient_ids") or ():
            yield f"user.{user_id}", kind, eid, alert
    elif kind == events.CHAT_MESSAGE_SENT:
        body = {"chat_id": data["chat_id"], "message": data["message"]}
        recipient, sender = data["recipient_id"], data["sender_id"]
        yield f"user.{recipient}", "chat.message", eid, body
        yield (
            f"user.{recipient}",
            "chat.unread",
            _derived_id(envelope, "chat.unread"),
            {"count": data["recipient_unread"]},
        )
        yield f"user.{sender}", "chat.message", eid, body
    elif kind == events.CHAT_READ:
        yield f"user.{data['user_id']}", "chat.unread", eid, {"count": data["unread"]}


def dispatcher(hub: Hub):  # type: ignore[no-untyped-def]
    async def dispatch(envelope: Envelope) -> None:
        events_in.labels(envelope.type).inc()
        for topic, name, event_id, data in pushes(envelope):
            hub.publish(topic, encode_event(topic, name, event_id, data), event_id)
        event_lag.observe(max(0.0, time.time() - envelope.occurred_at.timestamp()))

    return dispatch
