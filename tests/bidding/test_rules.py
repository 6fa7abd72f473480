"""The rules on their own: amounts, the acceptance rule, and the SQL checked against a plain model."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.bidding.app import MIGRATIONS
from services.bidding.config import Settings
from services.bidding.models import OPEN
from services.bidding.repository import AuctionRepository
from services.bidding.schemas import BidRequest
from services.bidding.service import BiddingService, min_next_bid_cents, rejection
from services.bidding.tasks import setup_broker
from shared.auth import Principal
from shared.db import Database, prepare_database
from shared.events import utcnow
from shared.money import to_cents

cents_amounts = st.integers(min_value=1, max_value=100_000_000_000)


def as_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


@given(cents_amounts)
def test_an_amount_as_text_or_number_is_the_same_cents(cents: int) -> None:
    assert to_cents(BidRequest(amount=as_text(cents)).amount) == cents
    assert to_cents(BidRequest(amount=Decimal(cents) / 100).amount) == cents
    if cents < 10**15:  # a float carries two decimals exactly enough at this size
        assert to_cents(BidRequest(amount=cents / 100).amount) == cents
    if cents % 100 == 0:
        assert to_cents(BidRequest(amount=cents // 100).amount) == cents


@given(st.integers(min_value=1, max_value=10**9 * 100 - 1), st.integers(min_value=0, max_value=9))
def test_more_decimals_round_half_up_to_cents(cents: int, third: int) -> None:
    amount = BidRequest(amount=f"{as_text(cents)}{third}").amount
    assert to_cents(amount) == cents + (1 if third >= 5 else 0)


BAD_AMOUNTS = [
    None,
    True,
    False,
    "",
    "  ",
    "abc",
    "12,50",
    "1e400",
    "-1e400",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    float("nan"),
    float("inf"),
    float("-inf"),
    "-5",
    -5,
    0,
    "0",
    "0.004",
    "1000000000.01",
    10**12,
    "9" * 50,
    [1],
    ["10.00"],
    {"value": 10},
]


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
def test_bad_amounts_are_refused(amount: object) -> None:
    with pytest.raises(ValidationError):
        BidRequest(amount=amount)  # type: ignore[arg-type]


@given(st.text(max_size=30).filter(lambda s: not s.strip().replace(".", "", 1).replace("-", "", 1).isdigit()))
def test_any_text_that_is_not_a_number_is_refused(text: str) -> None:
    try:
        amount = BidRequest(amount=text).amount
    except ValidationError:
        return
    # Only numeric spellings Decimal accepts get here (exponents, "+1", digits in other scripts...).
    assert amount.is_finite() and Decimal("0.01") <= amount <= Decimal(10**9)


def test_the_limit_itself_is_accepted() -> None:
    assert to_cents(BidRequest(amount="1000000000").amount) == 10**11
    assert to_cents(BidRequest(amount="0.005").amount) == 1


@given(
    bid_count=st.integers(min_value=0, max_value=1000),
    start=st.integers(min_value=1, max_value=10**6),
    current=st.integers(min_value=1, max_value=10**8),
    increment=st.integers(min_value=1, max_value=10**4),
)
def test_min_next_bid(bid_count: int, start: int, current: int, increment: int) -> None:
    expected = start if bid_count == 0 else current + increment
    got = min_next_bid_cents(bid_count=bid_count, start_cents=start, current_cents=current, increment_cents=increment)
    assert got == expected
    now = utcnow()
    later = now + timedelta(seconds=1)
    assert rejection(open_=True, ends_at=later, now=now, seller=False, amount_cents=got, min_next_cents=got) is None
    assert rejection(open_=True, ends_at=later, now=now, seller=False, amount_cents=got - 1, min_next_cents=got) == (
        409,
        "bid_too_low",
    )
    assert rejection(open_=True, ends_at=now, now=now, seller=False, amount_cents=got, min_next_cents=got) == (
        409,
        "auction_closed",
    )
    assert rejection(open_=False, ends_at=later, now=now, seller=True, amount_cents=got, min_next_cents=got)[1] == (
        "auction_closed"
    )
    assert rejection(open_=True, ends_at=later, now=now, seller=True, amount_cents=got, min_next_cents=got) == (
        403,
        "own_listing",
    )


# ----- the SQL against the model -----
SELLER = 1


@dataclass
class Model:
    start: int
    increment: int
    current: int
    bid_count: int = 0
    leader: int | None = None

    def offer(self, bidder: int, amount: int) -> tuple[int, str] | None:
        now = utcnow()
        min_next = min_next_bid_cents(
            bid_count=self.bid_count, start_cents=self.start, current_cents=self.current, increment_cents=self.increment
        )
        refused = rejection(
            open_=True,
            ends_at=now + timedelta(hours=1),
            now=now,
            seller=bidder == SELLER,
            amount_cents=amount,
            min_next_cents=min_next,
        )
        if refused is None:
            self.current, self.bid_count, self.leader = amount, self.bid_count + 1, bidder
        return refused


@pytest.fixture(scope="module")
def sqlite_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(DATA_DIR=tmp_path_factory.mktemp("rules"), LOG_JSON=False)  # type: ignore[call-arg]

    async def migrate() -> None:
        db = await prepare_database(settings, MIGRATIONS)
        await db.dispose()

    asyncio.run(migrate())
    return settings


_next_listing = iter(range(1, 10**9))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.integers(min_value=1, max_value=2_000),
    increment=st.integers(min_value=1, max_value=300),
    offers=st.lists(
        st.tuples(st.integers(min_value=1, max_value=4), st.integers(min_value=1, max_value=5_000)), max_size=25
    ),
)
def test_the_conditional_update_decides_like_the_rules(
    sqlite_settings: Settings, start: int, increment: int, offers: list[tuple[int, int]]
) -> None:
    """Any sequence of offers: the database accepts and refuses exactly what the rules say."""
    listing_id = next(_next_listing)

    async def run() -> None:
        db = Database(_url(sqlite_settings))
        tasks = setup_broker(sqlite_settings)
        service = BiddingService(sqlite_settings, db, tasks)
        try:
            async with db.transaction() as session:
                await AuctionRepository(session).create(
                    {
                        "listing_id": listing_id,
                        "seller_id": SELLER,
                        "title": "t",
                        "start_cents": start,
                        "increment_cents": increment,
                        "current_cents": start,
                        "bid_count": 0,
                        "status": OPEN,
                        "created_at": utcnow(),
                        "ends_at": utcnow() + timedelta(hours=1),
                    }
                )
            model = Model(start, increment, start)
            accepted: list[int] = []
            for bidder, amount in offers:
                expected = model.offer(bidder, amount)
                outcome = await service.place_bid(
                    listing_id, Principal(bidder, f"u{bidder}"), BidRequest(amount=as_text(amount)), None
                )
                if expected is None:
                    assert outcome.status == 201, outcome.body
                    assert outcome.body["current_price"] == as_text(amount)
                    accepted.append(amount)
                else:
                    assert (outcome.status, outcome.body["code"]) == expected
                    if expected[1] == "bid_too_low":
                        assert outcome.body["min_next_bid"] == as_text(
                            start if model.bid_count == 0 else model.current + increment
                        )
            assert accepted == sorted(set(accepted))
            state = await service.auction(listing_id)
            assert state.bid_count == model.bid_count
            assert to_cents(state.current_price) == model.current
            assert state.leader_id == model.leader
        finally:
            tasks.close()
            await db.dispose()

    asyncio.run(run())


def _url(settings: Settings) -> object:
    from shared.db import service_database_url

    return service_database_url(settings)


def test_settings_cap_the_close_delay_below_rabbitmqs_consumer_timeout(tmp_path: Path) -> None:
    settings = Settings(DATA_DIR=tmp_path)  # type: ignore[call-arg]
    assert settings.close_max_delay_seconds * 1000 < 30 * 60 * 1000 / 2
    with pytest.raises(ValidationError):
        Settings(DATA_DIR=tmp_path, BIDDING_CLOSE_MAX_DELAY_SECONDS=3600)  # type: ignore[call-arg]
