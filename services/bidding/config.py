from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "bidding"

    #: The longest single delay of a close message. RabbitMQ takes back a message a consumer holds
    #: unacknowledged longer than its consumer timeout (30 min by default) and dramatiq holds delayed
    #: messages unacknowledged until due, so a close further away hops there in steps of at most this.
    close_max_delay_seconds: float = Field(default=600, gt=0, le=1500, alias="BIDDING_CLOSE_MAX_DELAY_SECONDS")
    #: How often the sweep closes overdue open auctions (the backstop of the timed close).
    sweep_seconds: float = Field(default=1.0, gt=0, alias="BIDDING_SWEEP_SECONDS")
    sweep_batch: int = Field(default=200, ge=1, le=10_000, alias="BIDDING_SWEEP_BATCH")
    #: dramatiq worker threads and idle wake-up (ms): the wake-up bounds how late a delayed message moves.
    worker_threads: int = Field(default=8, ge=1, le=256, alias="BIDDING_WORKER_THREADS")
    worker_timeout_ms: int = Field(default=100, ge=10, le=1000, alias="BIDDING_WORKER_TIMEOUT_MS")
    #: Run the dramatiq worker inside the API process. Unset: only in the embedded mode (no AMQP_URL);
    #: the distributed mode runs ``python -m services.bidding.worker`` instead.
    inprocess_worker: bool | None = Field(default=None, alias="BIDDING_INPROCESS_WORKER")
    #: A bid may arrive just before ``listing.created`` has been applied: wait this long before a 404.
    unknown_listing_wait_seconds: float = Field(default=3.0, ge=0, le=30, alias="BIDDING_UNKNOWN_LISTING_WAIT_SECONDS")
    #: Events the outbox relay publishes at once, their confirms awaited together (a burst of closes).
    outbox_in_flight: int = Field(default=200, ge=1, le=1000, alias="BIDDING_OUTBOX_IN_FLIGHT")
    #: ``auction.ending_soon`` goes to bidders and watchers this long before the end (0: never).
    ending_soon_seconds: float = Field(default=300, ge=0, alias="AUCTION_ENDING_SOON_SECONDS")
    #: How long an ``Idempotency-Key`` is remembered.
    idempotency_ttl_seconds: int = Field(default=86_400, ge=60, alias="BIDDING_IDEMPOTENCY_TTL_SECONDS")

    @property
    def close_queue(self) -> str:
        """The dramatiq queue of close messages (prefixed, so parallel deployments and tests never share)."""
        return self.queue_name("bidding.close")

    @property
    def runs_worker_in_process(self) -> bool:
        if self.inprocess_worker is not None:
            return self.inprocess_worker
        return self.amqp_url is None
