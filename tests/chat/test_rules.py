"""Unit tests of the chat rules that need no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.chat.schemas import MAX_TEXT, SendMessage, StartChat
from services.chat.service import (
    activity_cursor,
    decode_activity_cursor,
    pair,
    winner_key,
    winner_text,
)
from shared.errors import ProblemError
from shared.pagination import encode_cursor


def test_pair_is_unordered() -> None:
    assert pair(7, 3) == (3, 7)
    assert pair(3, 7) == (3, 7)


def test_pair_refuses_oneself() -> None:
    with pytest.raises(ProblemError) as caught:
        pair(5, 5)
    assert (caught.value.status, caught.value.code) == (422, "self_chat")


def test_winner_text_links_the_listing() -> None:
    text = winner_text(42, "Harry Potter box set", "156.36")
    assert text == 'Congratulations, you won "Harry Potter box set" for 156.36! /listings/42'


def test_winner_text_stays_within_the_limit_and_keeps_the_link() -> None:
    text = winner_text(9, "x" * 5000, "1.00")
    assert len(text) <= MAX_TEXT
    assert text.endswith(" /listings/9")


def test_winner_key_is_per_listing() -> None:
    assert winner_key(1) != winner_key(2)
    assert winner_key(1) == winner_key(1)


def test_activity_cursor_round_trips_to_the_microsecond() -> None:
    moment = datetime(2026, 11, 29, 18, 44, 29, 123456, tzinfo=UTC)
    assert decode_activity_cursor(activity_cursor(moment, 17)) == (moment, 17)
    assert decode_activity_cursor(None) is None


@pytest.mark.parametrize("cursor", ["%%%", encode_cursor("a", 1), encode_cursor(1), encode_cursor(10**30, 1)])
def test_foreign_cursors_are_a_problem_not_a_crash(cursor: str) -> None:
    with pytest.raises(ProblemError) as caught:
        decode_activity_cursor(cursor)
    assert (caught.value.status, caught.value.code) == (422, "invalid_cursor")


@pytest.mark.parametrize(
    "text", ["hi", "x" * MAX_TEXT, f"  {'y' * MAX_TEXT}\n", "  padded  ", "multi\nline", "émoji 🎉"]
)
def test_message_text_accepted(text: str) -> None:
    assert SendMessage.model_validate({"text": text}).text == text.strip()


@pytest.mark.parametrize(
    "body",
    [
        {"text": ""},
        {"text": "   \n\t "},
        {"text": "x" * (MAX_TEXT + 1)},
        {"text": " " * 5000},
        {"text": 5},
        {"text": None},
        {},
        {"text": "a\x00b"},
    ],
)
def test_message_text_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SendMessage.model_validate(body)


@pytest.mark.parametrize(
    "body", [{"user_id": "2"}, {"user_id": 0}, {"user_id": -1}, {"user_id": True}, {"user_id": 2**63}, {}]
)
def test_start_chat_needs_a_real_id(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        StartChat.model_validate(body)
