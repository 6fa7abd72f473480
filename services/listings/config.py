from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "listings"

    #: Longest allowed ``duration_seconds`` (the shortest is ``AUCTION_MIN_DURATION_SECONDS``).
    auction_max_duration_seconds: int = Field(default=30 * 24 * 3600, ge=1, alias="AUCTION_MAX_DURATION_SECONDS")
    #: Listing images are re-encoded to at most this many pixels on their longer side.
    listing_image_max_side: int = Field(default=1600, ge=64, le=4000, alias="LISTING_IMAGE_MAX_SIDE")
