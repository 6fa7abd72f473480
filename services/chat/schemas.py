"""Request and response bodies of the chat API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer

#: Ids are integers that fit a BIGINT: anything larger is unknown input (422), never a database error.
MAX_ID = 2**63 - 1
MAX_TEXT = 1000

Id = Annotated[int, Field(ge=1, le=MAX_ID)]

Timestamp = Annotated[
    datetime, PlainSerializer(lambda d: d.isoformat(timespec="milliseconds").replace("+00:00", "Z"), return_type=str)
]


def clean_text(value: str) -> str:
    """A message's text: surrounding whitespace dropped, 1-1000 characters left, storable everywhere."""
    text = value.strip()
    if not text:
        raise ValueError("must not be empty or only whitespace")
    if len(text) > MAX_TEXT:
        raise ValueError(f"must be at most {MAX_TEXT} characters")
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return text


#: The raw bound only keeps absurd bodies out; the 1-1000 rule applies to the text without its surrounding whitespace.
MessageText = Annotated[str, Field(min_length=1, max_length=4 * MAX_TEXT), AfterValidator(clean_text)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class StartChat(StrictModel):
    user_id: Id


class SendMessage(StrictModel):
    text: MessageText


class UserCard(BaseModel):
    id: int
    username: str
    avatar_url: str


class MessageOut(BaseModel):
    id: int
    chat_id: int
    sender_id: int
    text: str
    created_at: Timestamp


class LastMessage(BaseModel):
    id: int
    sender_id: int
    text: str
    created_at: Timestamp


class ChatOut(BaseModel):
    id: int
    peer: UserCard
    last_message: LastMessage | None
    #: Unread messages from the peer in this chat.
    unread: int
    created_at: Timestamp


class UnreadCount(BaseModel):
    count: int


class ReadResult(BaseModel):
    chat_id: int
    #: The reader's total unread over all chats after reading this one.
    unread: int
