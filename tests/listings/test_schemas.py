"""Unit tests of the request models: types, ranges and money."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from services.listings.schemas import CreateListing, PostComment, UpdateListing

BASE: dict[str, Any] = {"title": "Bike", "category_id": 1, "start_price": "5", "duration_seconds": 60}


def test_money_accepts_strings_and_numbers_rounded_to_cents() -> None:
    assert CreateListing.model_validate(BASE | {"start_price": 12.5}).start_price == Decimal("12.50")
    assert CreateListing.model_validate(BASE | {"start_price": "0.005"}).start_price == Decimal("0.01")
    assert CreateListing.model_validate(BASE | {"start_price": 1000000}).start_price == Decimal("1000000.00")
    assert CreateListing.model_validate(BASE | {"start_price": " 7.129 "}).start_price == Decimal("7.13")
    body = CreateListing.model_validate(BASE | {"bid_increment": "0.1"})
    assert body.bid_increment == Decimal("0.10")
    assert body.description is None
    assert body.reserve_price is None


@pytest.mark.parametrize(
    "value", [0, "0.004", -1, "1000000.01", "abc", "", None, True, [1], {"a": 1}, "NaN", "-Infinity", "1e999"]
)
def test_bad_money(value: Any) -> None:
    with pytest.raises(ValidationError):
        CreateListing.model_validate(BASE | {"start_price": value})


def test_title_is_stripped_and_bounded() -> None:
    assert CreateListing.model_validate(BASE | {"title": "  Bike \n"}).title == "Bike"
    assert CreateListing.model_validate(BASE | {"title": "x" * 80}).title == "x" * 80
    for title in ("", "   ", "x" * 81, 5, None):
        with pytest.raises(ValidationError):
            CreateListing.model_validate(BASE | {"title": title})


@pytest.mark.parametrize("duration", ["60", 60.0, 60.5, True, None, "abc", 0, -1])
def test_duration_must_be_a_positive_integer(duration: Any) -> None:
    with pytest.raises(ValidationError):
        CreateListing.model_validate(BASE | {"duration_seconds": duration})


def test_description_and_ids() -> None:
    assert CreateListing.model_validate(BASE | {"description": "d" * 2000}).description == "d" * 2000
    for bad in ({"description": "d" * 2001}, {"category_id": "1"}, {"category_id": 0}, {"category_id": 2**63}):
        with pytest.raises(ValidationError):
            CreateListing.model_validate(BASE | bad)


def test_update_and_comment() -> None:
    assert UpdateListing.model_validate({}).model_fields_set == set()
    assert UpdateListing.model_validate({"description": None}).model_fields_set == {"description"}
    assert UpdateListing.model_validate({"title": " New "}).title == "New"
    assert PostComment.model_validate({"text": " hi "}).text == " hi "  # stored as typed
    assert PostComment.model_validate({"text": "x" * 500}).text == "x" * 500
    for text in ("", "  ", "x" * 501, 1, None):
        with pytest.raises(ValidationError):
            PostComment.model_validate({"text": text})
