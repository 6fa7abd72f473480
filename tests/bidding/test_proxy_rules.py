"""The proxy-bidding rules (``services.bidding.rules``) against a simple reference model, with hypothesis.

The reference knows nothing of steps: it keeps every bidder's maximum and says who leads (the highest
maximum, the earlier on a tie) and at what price (the second-highest maximum plus one increment, capped
at the leader's maximum; raised to the reserve when the leader's maximum reaches it; never raised by the
leader raising their own maximum). The rules must agree after every request, and the bids they add must
be strictly increasing, above the price before, with the last one the leader's at the new price.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from services.bidding.rules import (
    AuctionState,
    Resolution,
    TooLow,
    buy_now_available,
    increment_at,
    min_next_bid_cents,
    reserve_met,
    resolve_bid,
    sold,
)


@dataclass
class Reference:
    start: int
    increment: int | None
    reserve: int | None
    maxima: dict[int, int] = field(default_factory=dict)
    since: dict[int, int] = field(default_factory=dict)
    leader: int | None = None
    price: int | None = None

    def min_next(self) -> int:
        if self.price is None:
            return self.start
        return self.price + increment_at(self.price, self.increment)

    def bid(self, t: int, bidder: int, maximum: int) -> bool:
        """A request with a maximum only; False when refused (below the next acceptable bid)."""
        if maximum < self.min_next():
            return False
        if bidder == self.leader:
            self.maxima[bidder] = max(self.maxima[bidder], maximum)
        else:
            self.maxima[bidder] = maximum
            self.since[bidder] = t
            ranked = sorted(self.maxima, key=lambda b: (-self.maxima[b], self.since[b]))
            self.leader = ranked[0]
            top = self.maxima[self.leader]
            if len(ranked) == 1:
                self.price = self.start
            else:
                second = self.maxima[ranked[1]]
                self.price = min(top, second + increment_at(second, self.increment))
        assert self.leader is not None and self.price is not None
        if self.reserve is not None and self.maxima[self.leader] >= self.reserve > self.price:
            self.price = self.reserve
        return True


def _apply(state: AuctionState, resolution: Resolution) -> AuctionState:
    return replace(
        state,
        current_cents=resolution.current_cents,
        bid_count=state.bid_count + len(resolution.steps),
        leader_id=resolution.leader_id,
        leader_max_cents=resolution.leader_max_cents,
    )


def _check_steps(before: AuctionState, resolution: Resolution, history: list[int]) -> None:
    amounts = [s.amount_cents for s in resolution.steps]
    assert all(a < b for a, b in itertools.pairwise(amounts)), amounts
    if history and amounts:
        assert amounts[0] > history[-1], (history[-1], amounts)
    if amounts:
        assert resolution.steps[-1].bidder_id == resolution.leader_id
        assert amounts[-1] == resolution.current_cents
    else:
        assert resolution.current_cents == before.current_cents and resolution.leader_id == before.leader_id
    if resolution.leader_max_cents is not None:
        assert resolution.leader_max_cents > resolution.current_cents
    history.extend(amounts)


cents = st.integers(min_value=1, max_value=50_000)
requests = st.lists(st.tuples(st.integers(min_value=1, max_value=5), cents), min_size=1, max_size=30)


@settings(max_examples=400, deadline=None)
@given(
    start=st.integers(min_value=1, max_value=5_000),
    increment=st.one_of(st.none(), st.integers(min_value=1, max_value=500)),
    reserve=st.one_of(st.none(), st.integers(min_value=1, max_value=60_000)),
    sequence=requests,
)
def test_maximums_lead_and_price_as_the_reference_says(
    start: int, increment: int | None, reserve: int | None, sequence: list[tuple[int, int]]
) -> None:
    if reserve is not None and reserve < start:
        reserve = start
    state = AuctionState(start, start, increment, 0, None, None, reserve)
    reference = Reference(start, increment, reserve)
    history: list[int] = []
    for t, (bidder, maximum) in enumerate(sequence):
        result = resolve_bid(state, bidder, None, maximum)
        accepted = reference.bid(t, bidder, maximum)
        assert isinstance(result, Resolution) == accepted, (t, bidder, maximum, state)
        if isinstance(result, TooLow):
            assert result.min_next_cents == state.min_next_cents == reference.min_next()
            continue
        _check_steps(state, result, history)
        state = _apply(state, result)
        assert (state.leader_id, state.current_cents) == (reference.leader, reference.price), (t, sequence)
        # min_next_bid tells the truth: one cent less is refused, the amount itself accepted.
        assert state.min_next_cents == reference.min_next()
    assert state.bid_count == len(history)


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(min_value=1, max_value=5_000),
    increment=st.one_of(st.none(), st.integers(min_value=1, max_value=500)),
    reserve=st.one_of(st.none(), st.integers(min_value=1, max_value=60_000)),
    sequence=st.lists(
        st.tuples(st.integers(min_value=1, max_value=4), st.one_of(st.none(), cents), st.one_of(st.none(), cents)),
        min_size=1,
        max_size=30,
    ),
)
def test_any_mix_of_amounts_and_maximums_keeps_bids_strictly_increasing(
    start: int, increment: int | None, reserve: int | None, sequence: list[tuple[int, int | None, int | None]]
) -> None:
    state = AuctionState(start, start, increment, 0, None, None, reserve)
    history: list[int] = []
    for bidder, amount, maximum in sequence:
        if amount is None and maximum is None:
            continue
        if amount is not None and maximum is not None and maximum < amount:
            amount, maximum = maximum, amount
        result = resolve_bid(state, bidder, amount, maximum)
        if isinstance(result, TooLow):
            assert (amount or 0) < state.min_next_cents or (maximum or 0) < state.min_next_cents
            continue
        _check_steps(state, result, history)
        # The answer of a request with an amount is never below that amount for its own bid (a lost tie aside).
        own = result.caller_step
        if amount is not None and own is not None and own.bidder_id == bidder and result.leader_id == bidder:
            assert own.amount_cents >= amount
        state = _apply(state, result)
        # The price never exceeds the leader's maximum; a met reserve is reported as met.
        if reserve is not None and state.bid_count:
            assert reserve_met(reserve, state.current_cents, state.bid_count) == (state.current_cents >= reserve)


def test_the_documented_examples() -> None:
    state = AuctionState(10_00, 10_00, 1_00, 0, None, None, None)
    # Alice: maximum 50. She leads at the start price.
    first = resolve_bid(state, 1, None, 50_00)
    assert isinstance(first, Resolution) and (first.current_cents, first.leader_id, first.leader_max_cents) == (
        10_00,
        1,
        50_00,
    )
    state = _apply(state, first)
    # Bob bids 20: accepted, and Alice's maximum answers at 21 at once.
    second = resolve_bid(state, 2, 20_00, None)
    assert isinstance(second, Resolution)
    assert [(s.bidder_id, s.amount_cents, s.automatic, s.outbid_id) for s in second.steps] == [
        (2, 20_00, False, None),
        (1, 21_00, True, 2),
    ]
    state = _apply(state, second)
    # Bob: maximum 60. Alice's 50 bids in full, Bob leads at 51.
    third = resolve_bid(state, 2, None, 60_00)
    assert isinstance(third, Resolution)
    assert [(s.bidder_id, s.amount_cents, s.automatic) for s in third.steps] == [(1, 50_00, True), (2, 51_00, False)]
    assert third.steps[-1].outbid_id == 1 and third.leader_max_cents == 60_00
    state = _apply(state, third)
    # Bob raises his own maximum: the price does not move.
    raised = resolve_bid(state, 2, None, 80_00)
    assert isinstance(raised, Resolution) and raised.steps == () and raised.current_cents == 51_00
    state = _apply(state, raised)
    # Carol ties Bob's maximum: the earlier (Bob) leads at 80; Carol's bid goes in one cent below.
    tie = resolve_bid(state, 3, None, 80_00)
    assert isinstance(tie, Resolution)
    assert [(s.bidder_id, s.amount_cents) for s in tie.steps] == [(3, 79_99), (2, 80_00)]
    assert tie.leader_id == 2 and tie.current_cents == 80_00 and tie.leader_max_cents is None


def test_reserve_and_buy_now_rules() -> None:
    # A maximum that reaches the reserve lifts the price to it.
    state = AuctionState(10_00, 10_00, 1_00, 0, None, None, 40_00)
    lifted = resolve_bid(state, 1, None, 45_00)
    assert isinstance(lifted, Resolution) and lifted.current_cents == 40_00 and lifted.leader_max_cents == 45_00
    below = resolve_bid(state, 1, None, 39_00)
    assert isinstance(below, Resolution) and below.current_cents == 10_00
    assert reserve_met(40_00, 10_00, 1) is False and reserve_met(40_00, 40_00, 1) is True
    assert reserve_met(None, 10_00, 1) is None and reserve_met(40_00, 40_00, 0) is False
    assert sold(40_00, 39_99, 3) is False and sold(None, 10_00, 1) is True and sold(None, 10_00, 0) is False
    assert buy_now_available(buy_now_cents=90_00, reserve_cents=None, current_cents=10_00, bid_count=0, open_=True)
    assert not buy_now_available(buy_now_cents=90_00, reserve_cents=None, current_cents=10_00, bid_count=1, open_=True)
    assert buy_now_available(buy_now_cents=90_00, reserve_cents=50_00, current_cents=49_00, bid_count=3, open_=True)
    assert not buy_now_available(buy_now_cents=90_00, reserve_cents=50_00, current_cents=50_00, bid_count=3, open_=True)
    assert not buy_now_available(buy_now_cents=None, reserve_cents=None, current_cents=10_00, bid_count=0, open_=True)
    assert not buy_now_available(buy_now_cents=90_00, reserve_cents=None, current_cents=10_00, bid_count=0, open_=False)


def test_banded_increments_grow_with_the_price_and_min_next_bid_follows() -> None:
    assert [increment_at(p, None) for p in (50, 1_00, 4_99, 5_00, 30_00, 120_00, 7_000_00)] == [
        5,
        25,
        25,
        50,
        1_00,
        2_50,
        100_00,
    ]
    assert increment_at(7_000_00, 3) == 3  # a listing's own increment always wins
    assert min_next_bid_cents(bid_count=0, start_cents=10_00, current_cents=10_00, increment_cents=None) == 10_00
    assert min_next_bid_cents(bid_count=2, start_cents=10_00, current_cents=30_00, increment_cents=None) == 31_00
