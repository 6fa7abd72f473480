from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field, field_validator

from services.gateway.limits import Rate, parse_rate
from shared.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "gateway"

    gateway_port: int = Field(default=8000, alias="GATEWAY_PORT")
    users_url: str = Field(default="http://127.0.0.1:8001", alias="USERS_URL")
    listings_url: str = Field(default="http://127.0.0.1:8002", alias="LISTINGS_URL")
    bidding_url: str = Field(default="http://127.0.0.1:8003", alias="BIDDING_URL")
    chat_url: str = Field(default="http://127.0.0.1:8004", alias="CHAT_URL")
    #: Seconds an upstream call may take before the caller gets a 504 problem.
    upstream_timeout: float = Field(default=15.0, gt=0, alias="UPSTREAM_TIMEOUT_SECONDS")
    #: Largest request body proxied (uploads included), in bytes: a bit above the 5 MiB upload limit.
    max_body_bytes: int = Field(
        default=6 * 1024 * 1024, gt=0, validation_alias=AliasChoices("GATEWAY_MAX_BODY_BYTES", "MAX_BODY_BYTES")
    )
    #: Per-user rates ("<count>/<period>[ burst <n>]", "off"): see services/gateway/limits.py.
    #: The bursts are generous (a script that fires a few hundred requests at once is a client too);
    #: the sustained rates are what stop a flood.
    rate_limit_bids: str = Field(default="50/1s burst 300", alias="RATE_LIMIT_BIDS")
    rate_limit_comments: str = Field(default="20/1s burst 200", alias="RATE_LIMIT_COMMENTS")
    rate_limit_messages: str = Field(default="20/1s burst 200", alias="RATE_LIMIT_MESSAGES")

    #: Comma-separated Origins allowed to open /ws besides the gateway's own host. "*" allows any.
    allowed_origins: str = Field(default="", alias="GATEWAY_ALLOWED_ORIGINS")
    #: Frames queued for one socket before it counts as too slow and is dropped (close 1013).
    ws_queue_size: int = Field(default=512, ge=8, alias="WS_QUEUE_SIZE")
    #: Largest client frame handled: bigger ones get a ``frame_too_large`` error; the server's WebSocket
    #: layer closes the socket with 1009 on frames above four times this (``uvicorn_options``).
    ws_max_frame_bytes: int = Field(default=16 * 1024, ge=1024, alias="WS_MAX_FRAME_BYTES")
    ws_max_subscriptions: int = Field(default=500, alias="WS_MAX_SUBSCRIPTIONS")
    #: Client frames per second allowed per socket (after a burst of ``WS_FRAMES_BURST``); frames beyond it get a
    #: ``rate_limited`` error. A browser tab sends a few frames a minute (auth, subscriptions, pings).
    ws_frames_per_second: float = Field(default=20.0, gt=0, alias="WS_FRAMES_PER_SECOND")
    #: Frames a socket may send at once (subscribing to a page of topics, say) before the rate applies.
    ws_frames_burst: float = Field(default=200.0, gt=0, alias="WS_FRAMES_BURST")
    #: Refused frames tolerated within 10 s before a flooding socket is closed (1008).
    ws_flood_strikes: int = Field(default=100, ge=1, alias="WS_FLOOD_STRIKES")

    @field_validator("rate_limit_bids", "rate_limit_comments", "rate_limit_messages")
    @classmethod
    def _valid_rate(cls, spec: str) -> str:
        parse_rate(spec)  # fails at start-up, not on the first bid
        return spec

    @property
    def rate_limits(self) -> dict[str, Rate | None]:
        return {
            "bids": parse_rate(self.rate_limit_bids),
            "comments": parse_rate(self.rate_limit_comments),
            "messages": parse_rate(self.rate_limit_messages),
        }

    @property
    def upstreams(self) -> dict[str, str]:
        return {
            "users": self.users_url,
            "listings": self.listings_url,
            "bidding": self.bidding_url,
            "chat": self.chat_url,
        }

    @property
    def origin_allow_list(self) -> set[str]:
        return {o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()}
