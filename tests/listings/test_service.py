"""Unit tests of the listings rules (no database, no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from services.listings.config import Settings
from services.listings.models import ACTIVE, CLOSED, Listing
from services.listings.repository import ListingRow, like_pattern
from services.listings.service import (
    buy_now_available,
    check_duration,
    check_prices,
    listing_cursor,
    listing_view,
    min_next_bid,
    parse_seller,
    reserve_met,
    search_text,
    shown_status,
)
from shared.auth import Principal
from shared.errors import ProblemError
from shared.pagination import encode_cursor

NOW = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)


def test_min_next_bid_is_the_start_price_then_price_plus_increment() -> None:
    assert min_next_bid(start_price=1000, current_price=1000, bid_count=0, increment=1) == 1000
    assert min_next_bid(start_price=1000, current_price=1000, bid_count=1, increment=1) == 1001
    assert min_next_bid(start_price=1000, current_price=2550, bid_count=4, increment=250) == 2800


def test_status_is_closed_after_the_close_or_the_end_time() -> None:
    assert shown_status(ACTIVE, NOW + timedelta(seconds=1), NOW) == "active"
    assert shown_status(ACTIVE, NOW, NOW) == "closed"
    assert shown_status(ACTIVE, NOW - timedelta(seconds=1), NOW) == "closed"
    assert shown_status(CLOSED, NOW + timedelta(days=1), NOW) == "closed"  # closed early by the seller


def test_reserve_and_buy_now_rules() -> None:
    assert reserve_met(None, 5000, 3) is None
    assert reserve_met(5000, 5000, 0) is False  # no bid, no reserve met even at the start price
    assert reserve_met(5000, 4999, 2) is False
    assert reserve_met(5000, 5000, 2) is True
    assert buy_now_available(None, None, 100, 0, True) is False
    assert buy_now_available(9000, None, 100, 0, True) is True
    assert buy_now_available(9000, None, 100, 0, False) is False
    assert buy_now_available(9000, None, 200, 1, True) is False  # gone with the first bid
    assert buy_now_available(9000, 5000, 200, 1, True) is True  # ... unless the reserve is not met yet
    assert buy_now_available(9000, 5000, 5000, 2, True) is False


def test_duration_is_bounded_by_the_settings(tmp_path: Path) -> None:
    settings = Settings(DATA_DIR=tmp_path)
    assert settings.auction_min_duration_seconds == 60
    check_duration(60, settings)
    check_duration(30 * 24 * 3600, settings)
    for seconds in (59, 30 * 24 * 3600 + 1):
        with pytest.raises(ProblemError) as caught:
            check_duration(seconds, settings)
        assert caught.value.status == 422
        assert caught.value.extra["errors"][0]["field"] == "duration_seconds"
    check_duration(5, Settings(DATA_DIR=tmp_path, AUCTION_MIN_DURATION_SECONDS=5))


def test_price_relations() -> None:
    check_prices(Decimal("10"), Decimal("10"), Decimal("10"))
    check_prices(Decimal("10"), None, None)
    for start, reserve, buy_now, field in (
        ("10", "9.99", None, "reserve_price"),
        ("10", None, "9.99", "buy_now_price"),
        ("10", "50", "49", "buy_now_price"),
    ):
        with pytest.raises(ProblemError) as caught:
            check_prices(Decimal(start), Decimal(reserve) if reserve else None, Decimal(buy_now) if buy_now else None)
        assert caught.value.extra["errors"][0]["field"] == field


def test_seller_filter() -> None:
    me = Principal(7, "me")
    assert parse_seller(None, None) is None
    assert parse_seller("", None) is None
    assert parse_seller("me", me) == 7
    assert parse_seller("42", None) == 42
    with pytest.raises(ProblemError) as caught:
        parse_seller("me", None)
    assert caught.value.status == 401
    for bad in ("abc", "-1", "0", "1.5", "٣", str(2**63)):
        with pytest.raises(ProblemError) as caught:
            parse_seller(bad, me)
        assert caught.value.status == 422, bad


def test_cursors_round_trip_and_refuse_tampering() -> None:
    assert listing_cursor("newest", None) is None
    assert listing_cursor("newest", encode_cursor(12)) == (12,)
    ends = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert listing_cursor("ending_soon", encode_cursor(ends.isoformat(), 3)) == (ends, 3)
    for sort, cursor in (
        ("newest", "%%%"),
        ("newest", encode_cursor(-5)),
        ("newest", encode_cursor(2**63)),
        ("newest", encode_cursor(True)),
        ("ending_soon", encode_cursor(12)),
        ("ending_soon", encode_cursor("yesterday", 1)),
    ):
        with pytest.raises(ProblemError) as caught:
            listing_cursor(sort, cursor)  # type: ignore[arg-type]
        assert caught.value.code == "invalid_cursor"


def test_like_pattern_takes_wildcards_literally() -> None:
    assert like_pattern("50%") == "%50\\%%"
    assert like_pattern("a_b") == "%a\\_b%"
    assert like_pattern("c:\\x") == "%c:\\\\x%"
    assert search_text("Red BIKE", "Ünïcode Text") == "red bike\nünïcode text"


def _listing(**overrides: object) -> Listing:
    values: dict[str, object] = {
        "id": 3,
        "seller_id": 1,
        "category_id": 2,
        "title": "T",
        "description": "",
        "search_text": "t\n",
        "image": None,
        "start_price": 1000,
        "bid_increment": 50,
        "reserve_price": 3000,
        "buy_now_price": 9000,
        "created_at": NOW - timedelta(hours=1),
        "updated_at": NOW - timedelta(hours=1),
        "current_price": 1000,
        "bid_count": 0,
        "leader_id": None,
        "ends_at": NOW + timedelta(hours=1),
        "status": ACTIVE,
        "closed_at": None,
        "winner_id": None,
        "winner_username": None,
    }
    return Listing(**(values | overrides))


def test_listing_view_formats_money_times_and_hides_the_reserve() -> None:
    row = ListingRow(_listing(current_price=2550, bid_count=2, leader_id=9), "Fashion", "ann", None)
    view = listing_view(row, viewer_id=None, watched=False, now=NOW)
    body = view.model_dump(mode="json")
    assert body["start_price"] == "10.00"
    assert body["current_price"] == "25.50"
    assert body["min_next_bid"] == "26.00"
    assert body["bid_increment"] == "0.50"
    assert body["ends_at"] == "2026-11-29T19:00:00.000Z"
    assert body["seller"] == {"id": 1, "username": "ann", "avatar_url": "/media/avatars/default.svg"}
    assert body["category"] == {"id": 2, "name": "Fashion"}
    assert body["reserve_met"] is False
    assert body["reserve_price"] is None
    assert body["buy_now_price"] == "90.00"  # reserve not met yet
    assert body["status"] == "active"
    assert body["winner"] is None
    seller_view = listing_view(row, viewer_id=1, watched=True, now=NOW).model_dump(mode="json")
    assert seller_view["reserve_price"] == "30.00"
    assert seller_view["watched"] is True


def test_listing_view_after_the_close() -> None:
    row = ListingRow(
        _listing(status=CLOSED, winner_id=9, winner_username="zed", current_price=4000, bid_count=3, leader_id=9),
        "Art",
        None,
        None,
    )
    body = listing_view(row, viewer_id=None, watched=False, now=NOW).model_dump(mode="json")
    assert body["status"] == "closed"
    assert body["winner"] == {"id": 9, "username": "zed"}
    assert body["buy_now_price"] is None
    assert body["reserve_met"] is True
    # Past its end time but not yet closed by the bidding service: closed, no winner yet.
    late = ListingRow(_listing(ends_at=NOW - timedelta(seconds=1), bid_count=1, leader_id=4), "Art", "a", None)
    body = listing_view(late, viewer_id=None, watched=False, now=NOW).model_dump(mode="json")
    assert (body["status"], body["winner"], body["leader_id"]) == ("closed", None, 4)
