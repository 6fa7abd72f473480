from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer

USERNAME_RE = re.compile(r"^[A-Za-z0-9._-]{3,32}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")

Timestamp = Annotated[
    datetime, PlainSerializer(lambda d: d.isoformat(timespec="milliseconds").replace("+00:00", "Z"), return_type=str)
]


def _username(value: str) -> str:
    if not USERNAME_RE.fullmatch(value):
        raise ValueError("3-32 letters, digits, '-', '.' or '_'")
    return value


def _email(value: str) -> str:
    value = value.strip()
    if len(value) > 254 or not EMAIL_RE.fullmatch(value) or "\x00" in value:
        raise ValueError("not a valid email address")
    return value


def _storable(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refused here as bad input (422), not by the database (500).
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Username = Annotated[str, Field(min_length=3, max_length=32), AfterValidator(_username)]
Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]
# The upper bound keeps a hash request from being a denial of service.
Password = Annotated[str, Field(min_length=8, max_length=256)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False, strict=True)


class RegisterRequest(StrictModel):
    username: Username
    email: Email
    password: Password


class LoginRequest(StrictModel):
    username: Annotated[str, Field(min_length=1, max_length=254), AfterValidator(_storable)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class RefreshRequest(StrictModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=4096)]


class Stats(BaseModel):
    listings: int = 0
    won: int = 0
    bids: int = 0


#: The comment that goes with a rating: short, optional.
FEEDBACK_COMMENT_MAX = 500
#: How many of the latest received ratings a profile shows.
RECENT_FEEDBACK = 5

# Strict int: ``true`` or ``1.0`` are not ratings.
Rating = Annotated[int, Field(strict=True, ge=-1, le=1, json_schema_extra={"enum": [-1, 0, 1]})]


class FeedbackRequest(StrictModel):
    rating: Rating
    comment: Annotated[str, Field(max_length=FEEDBACK_COMMENT_MAX), AfterValidator(_storable)] | None = None


class UserRef(BaseModel):
    id: int
    username: str


class FeedbackLeft(BaseModel):
    """The answer to leaving feedback: who rated whom, for which sale."""

    id: int
    listing_id: int
    rating: int
    comment: str | None
    created_at: Timestamp
    from_user: UserRef
    to_user: UserRef


class ReceivedFeedback(BaseModel):
    """One rating a user received, as their profile lists it."""

    id: int
    rating: int
    comment: str | None
    from_user: UserRef
    listing_id: int
    #: the listing's title when it sold
    listing_title: str
    created_at: Timestamp


class FeedbackSummary(BaseModel):
    #: positives minus negatives
    score: int = 0
    positive: int = 0
    neutral: int = 0
    negative: int = 0
    #: the latest received, newest first
    recent: list[ReceivedFeedback] = Field(default_factory=list)


class PublicUser(BaseModel):
    id: int
    username: str
    avatar_url: str
    created_at: Timestamp
    stats: Stats
    feedback: FeedbackSummary = Field(default_factory=FeedbackSummary)


class Me(PublicUser):
    email: str


class UserCard(BaseModel):
    id: int
    username: str
    avatar_url: str


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user: Me


class AvatarResponse(BaseModel):
    avatar_url: str
