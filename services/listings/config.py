from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shared.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "listings"

    #: Longest allowed ``duration_seconds`` (the shortest is ``AUCTION_MIN_DURATION_SECONDS``).
    auction_max_duration_seconds: int = Field(default=30 * 24 * 3600, ge=1, alias="AUCTION_MAX_DURATION_SECONDS")
    #: The increment of a listing whose seller sets none: ``fixed`` (0.01, the contract's default) or
    #: ``banded`` (steps that grow with the price, decided by the bidding service's table).
    auction_increments: Literal["fixed", "banded"] = Field(default="fixed", alias="AUCTION_INCREMENTS")
    #: Listing images are re-encoded to at most this many pixels on their longer side.
    listing_image_max_side: int = Field(default=1600, ge=64, le=4000, alias="LISTING_IMAGE_MAX_SIDE")
