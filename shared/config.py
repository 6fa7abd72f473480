"""Settings common to every service, read from the environment (pydantic-settings).

Each service subclasses :class:`ServiceSettings` with its own fields; one ``Settings`` per service.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    #: The service's name: its database name suffix, its queue name, the ``producer`` of its events.
    service_name: ClassVar[str] = "service"

    # Where the data lives. Unset: the embedded default (SQLite under DATA_DIR).
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    #: Each service creates and migrates its own database named ``<prefix>_<service>`` on DATABASE_URL's server.
    database_prefix: str = Field(default="auction", alias="DATABASE_PREFIX")
    database_pool_size: int = Field(default=10, alias="DATABASE_POOL_SIZE")
    # Where the events go. Unset: the in-process bus.
    amqp_url: str | None = Field(default=None, alias="AMQP_URL")
    events_exchange: str = Field(default="auction.events", alias="EVENTS_EXCHANGE")
    #: Prefix of every queue this deployment declares (tests isolate runs with it).
    queue_prefix: str = Field(default="", alias="QUEUE_PREFIX")

    data_dir: Path = Field(default=Path(".data"), alias="DATA_DIR")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    log_json: bool = Field(default=True, alias="LOG_JSON")

    # Tokens: issued by the users service, verified everywhere with the published key set.
    jwt_issuer: str = Field(default="auction-users", alias="JWT_ISSUER")
    jwt_audience: str = Field(default="auction", alias="JWT_AUDIENCE")
    jwks_url: str = Field(default="http://127.0.0.1:8001/api/auth/jwks.json", alias="JWKS_URL")

    # Auction rules shared by listings and bidding.
    auction_min_duration_seconds: int = Field(default=60, ge=1, alias="AUCTION_MIN_DURATION_SECONDS")
    auction_soft_close_seconds: int = Field(default=0, ge=0, alias="AUCTION_SOFT_CLOSE_SECONDS")

    #: How often the outbox relay looks for events committed by another process (seconds).
    outbox_poll_seconds: float = Field(default=0.5, gt=0, alias="OUTBOX_POLL_SECONDS")

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    def queue_name(self, name: str | None = None) -> str:
        return f"{self.queue_prefix}{name or self.service_name}"
