"""Money: decimal strings with two places on the wire, integer cents in storage, never floats.

Inputs take a string or a JSON number, are rounded half-up to cents, and must be finite, positive and
within the allowed maximum.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("1000000000")


def parse_amount(value: Any, maximum: Decimal = MAX_AMOUNT) -> Decimal:
    """A positive, finite amount rounded to cents; raises ValueError with a message otherwise."""
    if isinstance(value, bool) or value is None:
        raise ValueError("must be a decimal number")
    if isinstance(value, int | float):
        text = repr(value) if isinstance(value, float) else str(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 40:
            raise ValueError("must be a decimal number")
    elif isinstance(value, Decimal):
        text = str(value)
    else:
        raise ValueError("must be a decimal number")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError("must be a decimal number") from None
    if not amount.is_finite():
        raise ValueError("must be a finite number")
    if amount > maximum:
        raise ValueError(f"must be at most {maximum}")
    if amount <= 0:  # before quantize: a huge negative would overflow the context's precision there
        raise ValueError("must be positive")
    amount = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    if amount <= 0:
        raise ValueError("must be positive")
    return amount


def to_cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def format_cents(cents: int) -> str:
    return f"{from_cents(cents):.2f}"


def _validate(value: Any) -> Decimal:
    return parse_amount(value)


#: A request field holding money (string or number in, ``Decimal`` with cents out).
MoneyIn = Annotated[Decimal, BeforeValidator(_validate)]
#: A response field holding money: serialised as a two-place string.
MoneyOut = Annotated[Decimal, PlainSerializer(lambda d: f"{d:.2f}", return_type=str)]
