"""The bidding rules as plain functions, free of I/O: what a bid may be, and what it does to an auction.

Money is in integer cents. The repository applies what these functions decide, under the auction row's
lock (or as one conditional UPDATE for the plain case), and the tests check the functions against a
simple reference model of proxy bidding.

Proxy (maximum) bidding: a bidder may give a maximum; the system then bids for them only as much as
needed to lead. The visible price is the second-highest maximum plus one increment, capped at the
leader's maximum; with equal maximums the earlier one leads. Every automatic step is an accepted bid
of its own (strictly above the one before), so the history stays strictly increasing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

#: Price bands for listings without an increment of their own: (price from, increment), in cents.
#: Small steps at low prices, larger ones as the price grows, like the large marketplaces' tables.
BANDED_INCREMENTS: tuple[tuple[int, int], ...] = (
    (0, 5),
    (1_00, 25),
    (5_00, 50),
    (25_00, 1_00),
    (100_00, 2_50),
    (250_00, 5_00),
    (500_00, 10_00),
    (1_000_00, 25_00),
    (2_500_00, 50_00),
    (5_000_00, 100_00),
)


def increment_at(price_cents: int, increment_cents: int | None) -> int:
    """The step above ``price_cents``: the listing's own increment, or the banded table when it has none."""
    if increment_cents:
        return increment_cents
    step = BANDED_INCREMENTS[0][1]
    for floor, band_step in BANDED_INCREMENTS:
        if price_cents >= floor:
            step = band_step
    return step


def next_bid_after(price_cents: int, increment_cents: int | None) -> int:
    """The lowest bid that beats ``price_cents``."""
    return price_cents + increment_at(price_cents, increment_cents)


def min_next_bid_cents(*, bid_count: int, start_cents: int, current_cents: int, increment_cents: int | None) -> int:
    """The first bid must reach the start price; every later one the current price plus the increment."""
    return start_cents if bid_count == 0 else next_bid_after(current_cents, increment_cents)


def rejection(
    *, open_: bool, ends_at: datetime, now: datetime, seller: bool, amount_cents: int, min_next_cents: int
) -> tuple[int, str] | None:
    """Why a bid is refused (status, code), or None when it is accepted. The order is the answer's priority."""
    if not open_ or ends_at <= now:
        return 409, "auction_closed"
    if seller:
        return 403, "own_listing"
    if amount_cents < min_next_cents:
        return 409, "bid_too_low"
    return None


def reserve_met(reserve_cents: int | None, current_cents: int, bid_count: int) -> bool | None:
    """None without a reserve; else whether the leading bid reaches it."""
    if reserve_cents is None:
        return None
    return bid_count > 0 and current_cents >= reserve_cents


def sold(reserve_cents: int | None, current_cents: int, bid_count: int) -> bool:
    """An auction ends sold when it has a bid that reaches the reserve (if any)."""
    return bid_count > 0 and reserve_met(reserve_cents, current_cents, bid_count) is not False


def buy_now_available(
    *, buy_now_cents: int | None, reserve_cents: int | None, current_cents: int, bid_count: int, open_: bool
) -> bool:
    """Buying now is allowed while open and no bid has reached the reserve (without a reserve: no bid yet)."""
    if buy_now_cents is None or not open_:
        return False
    if reserve_cents is None:
        return bid_count == 0
    return not reserve_met(reserve_cents, current_cents, bid_count)


@dataclass(frozen=True)
class AuctionState:
    """What the rules need of an auction (the repository's row, or the reference model's)."""

    start_cents: int
    current_cents: int
    increment_cents: int | None
    bid_count: int
    leader_id: int | None
    #: The leader's private maximum; None when it is just the current price.
    leader_max_cents: int | None
    reserve_cents: int | None

    @property
    def min_next_cents(self) -> int:
        return min_next_bid_cents(
            bid_count=self.bid_count,
            start_cents=self.start_cents,
            current_cents=self.current_cents,
            increment_cents=self.increment_cents,
        )

    @property
    def leader_max(self) -> int:
        return self.current_cents if self.leader_max_cents is None else max(self.leader_max_cents, self.current_cents)


@dataclass(frozen=True)
class Step:
    """One accepted bid a request produces: the caller's own, or an automatic one for a maximum."""

    bidder_id: int
    amount_cents: int
    automatic: bool
    #: Who this bid took the lead from (told ``bid.outbid``), if anyone.
    outbid_id: int | None


@dataclass(frozen=True)
class Resolution:
    """What an accepted request does: the bids it adds (strictly increasing) and the auction after them."""

    steps: tuple[Step, ...]
    leader_id: int
    #: The leader's maximum after the request (None: no headroom above the price).
    leader_max_cents: int | None
    current_cents: int

    @property
    def caller_step(self) -> Step | None:
        """The last bid made for the caller itself (not the automatic answer of someone else's maximum)."""
        return next((s for s in reversed(self.steps) if not s.automatic), None)


@dataclass(frozen=True)
class TooLow:
    """The request does not reach the next acceptable bid."""

    min_next_cents: int
    kind: Literal["bid_too_low"] = "bid_too_low"


def _lift_to_reserve(price: int, maximum: int, reserve_cents: int | None) -> int:
    """A maximum that reaches the reserve lifts the price to it."""
    if reserve_cents is not None and maximum >= reserve_cents > price:
        return reserve_cents
    return price


def resolve_bid(
    state: AuctionState, bidder_id: int, amount_cents: int | None, max_cents: int | None
) -> Resolution | TooLow:
    """Apply one bid request (an amount, a maximum, or both with amount <= maximum) to an open auction.

    The caller has already checked that the auction is open, not over, and not the bidder's own.
    """
    if amount_cents is None and max_cents is None:
        raise ValueError("a bid needs an amount or a maximum")
    min_next = state.min_next_cents
    explicit = amount_cents is not None
    amount = amount_cents if amount_cents is not None else min_next
    maximum = max_cents if max_cents is not None else amount
    if explicit and maximum < amount:  # the API refuses this; a maximum below one's own bid means the bid
        maximum = amount
    if amount < min_next or maximum < min_next:
        return TooLow(min_next)
    reserve = state.reserve_cents

    # No bid yet: the bidder leads at their amount (lifted to the reserve if their maximum reaches it).
    if state.bid_count == 0 or state.leader_id is None:
        price = _lift_to_reserve(amount, maximum, reserve)
        return Resolution((Step(bidder_id, price, False, None),), bidder_id, _headroom(maximum, price), price)

    leader_max = state.leader_max
    # The leader again: an explicit amount is a bid of its own; a maximum alone only raises the maximum
    # (never the price), except that reaching the reserve lifts the price to it.
    if bidder_id == state.leader_id:
        new_max = max(leader_max, maximum)
        if explicit:
            price = _lift_to_reserve(amount, new_max, reserve)
            return Resolution((Step(bidder_id, price, False, None),), bidder_id, _headroom(new_max, price), price)
        price = _lift_to_reserve(state.current_cents, new_max, reserve)
        steps = (Step(bidder_id, price, True, None),) if price > state.current_cents else ()
        return Resolution(steps, bidder_id, _headroom(new_max, price), price)

    leader = state.leader_id
    if maximum > leader_max:
        # The newcomer's maximum beats the leader's: the leader's maximum bids in full, then the newcomer
        # leads by one increment over it (capped at their maximum, never below their own amount).
        defence = (Step(leader, leader_max, True, None),) if leader_max > state.current_cents else ()
        price = max(amount, min(maximum, leader_max + increment_at(leader_max, state.increment_cents)))
        price = _lift_to_reserve(price, maximum, reserve)
        steps = (*defence, Step(bidder_id, price, False, leader))
        return Resolution(steps, bidder_id, _headroom(maximum, price), price)

    # The leader's maximum holds (an equal one too: the earlier leads). The newcomer's bid goes in at its
    # maximum (one cent below on a tie, so amounts stay unique), and the leader's answers one increment above.
    own = maximum if maximum < leader_max else maximum - 1
    answer = min(leader_max, maximum + increment_at(maximum, state.increment_cents))
    answer = _lift_to_reserve(answer, leader_max, reserve)
    steps = (Step(bidder_id, own, False, None),) if own > state.current_cents else ()
    steps = (*steps, Step(leader, answer, True, bidder_id))
    return Resolution(steps, leader, _headroom(leader_max, answer), answer)


def _headroom(maximum: int, price: int) -> int | None:
    return maximum if maximum > price else None
