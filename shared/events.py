"""The event envelope and the catalogue of domain event names.

Events are past-tense facts that carry ids and values, never object graphs. The JSON Schema of each
event's ``data`` lives in ``shared/event_schemas/<name>.json``; ``docs/asyncapi.yaml`` lists them all.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

SCHEMA_DIR = Path(__file__).parent / "event_schemas"

# The contract's catalogue (routing key = event name).
USER_REGISTERED = "user.registered"
USER_UPDATED = "user.updated"
LISTING_CREATED = "listing.created"
LISTING_UPDATED = "listing.updated"
LISTING_DELETED = "listing.deleted"
COMMENT_POSTED = "comment.posted"
BID_PLACED = "bid.placed"
AUCTION_EXTENDED = "auction.extended"
AUCTION_CLOSED = "auction.closed"
CHAT_MESSAGE_SENT = "chat.message_sent"
CHAT_READ = "chat.read"
# Additions (the contract's "Auction formats" and what they need).
AUCTION_ENDING_SOON = "auction.ending_soon"
LISTING_WATCHED = "listing.watched"
LISTING_UNWATCHED = "listing.unwatched"

CATALOGUE: tuple[str, ...] = (
    USER_REGISTERED,
    USER_UPDATED,
    LISTING_CREATED,
    LISTING_UPDATED,
    LISTING_DELETED,
    COMMENT_POSTED,
    BID_PLACED,
    AUCTION_EXTENDED,
    AUCTION_CLOSED,
    CHAT_MESSAGE_SENT,
    CHAT_READ,
    AUCTION_ENDING_SOON,
    LISTING_WATCHED,
    LISTING_UNWATCHED,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds and a ``Z``: ``2026-11-29T18:44:29.123Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Envelope(BaseModel):
    """What travels on the bus: ``{id, type, version, occurred_at, producer, data}``."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int = 1
    occurred_at: datetime = Field(default_factory=utcnow)
    producer: str
    data: dict[str, Any]
    #: Correlation id of the request that caused the event, carried on to its consumers' logs.
    correlation_id: str | None = None

    def to_json(self) -> bytes:
        body = {
            "id": str(self.id),
            "type": self.type,
            "version": self.version,
            "occurred_at": format_time(self.occurred_at),
            "producer": self.producer,
            "data": self.data,
            "correlation_id": self.correlation_id,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        return cls.model_validate_json(raw)


@cache
def data_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of ``data`` for a catalogued event."""
    return json.loads((SCHEMA_DIR / f"{event_type}.json").read_text())  # type: ignore[no-any-return]


def validation_enabled() -> bool:
    """``EVENTS_VALIDATE=1`` checks every recorded event against its schema (the test suite turns it on)."""
    return os.environ.get("EVENTS_VALIDATE") == "1"


def validate_data(event_type: str, data: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``data`` does not match the event's schema."""
    import jsonschema

    jsonschema.validate(data, data_schema(event_type))
