"""Cursor pagination: ``?limit=`` (default 20, max 100) and an opaque ``?cursor=``.

A cursor is the last item's sort key, JSON in URL-safe base64. One that does not decode to the
expected shape is answered with a 422 problem (``invalid_cursor``), never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from shared.errors import ProblemError

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=100, description="page size")]
Cursor = Annotated[str | None, Query(max_length=512, description="from a previous page's next_cursor")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *types: type) -> tuple[Any, ...] | None:
    """Decode a cursor made of values of ``types`` (in order); ``None`` for the first page."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ProblemError(422, "invalid_cursor", "the cursor is not one this API issued") from None
    if not isinstance(values, list) or len(values) != len(types):
        raise ProblemError(422, "invalid_cursor", "the cursor is not one this API issued")
    out = []
    for value, kind in zip(values, types, strict=True):
        if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
            raise ProblemError(422, "invalid_cursor", "the cursor is not one this API issued")
        if kind is str and not isinstance(value, str):
            raise ProblemError(422, "invalid_cursor", "the cursor is not one this API issued")
        out.append(value)
    return tuple(out)
