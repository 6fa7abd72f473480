from __future__ import annotations

from typing import ClassVar

from pydantic import Field

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
    #: Largest request body proxied (uploads included), in bytes.
    max_body_bytes: int = Field(default=6 * 1024 * 1024, alias="MAX_BODY_BYTES")

    #: Comma-separated Origins allowed to open /ws besides the gateway's own host. "*" allows any.
    allowed_origins: str = Field(default="", alias="GATEWAY_ALLOWED_ORIGINS")
    #: Frames queued for one socket before it counts as too slow and is dropped (close 1013).
    ws_queue_size: int = Field(default=512, ge=8, alias="WS_QUEUE_SIZE")
    ws_max_frame_bytes: int = Field(default=16 * 1024, alias="WS_MAX_FRAME_BYTES")
    ws_max_subscriptions: int = Field(default=500, alias="WS_MAX_SUBSCRIPTIONS")
    #: Client frames per second allowed per socket (burst of twice that).
    ws_frames_per_second: float = Field(default=20.0, gt=0, alias="WS_FRAMES_PER_SECOND")

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
