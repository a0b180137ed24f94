"""Taking back a fill whose trade FAILED on chain (Portfolio.revert_fill):
exact in Decimal when nothing moved the position since, and the books stay
sane (shares = bought - sold >= 0, realised - cost = cash) when something did."""
from __future__ import annotations

from decimal import Decimal

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from copytrader.domain.model import ZERO, Side, micro
from copytrader.domain.portfolio import Portfolio, PositionDelta

D = Decimal
L, T, C = "0x" + "01" * 20, str(10**70 + 1), "c"
ops = st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 10_000), st.integers(1, 99),
                         st.integers(0, 50)), max_size=20)


def _apply(pf, op, hundredths, cents, fee_micro):
    size, price, fee = D(hundredths) / 100, D(cents) / 100, D(fee_micro) / 10**6
    held = pf.position(L, T)
    if op == "sell":
        size = min(size, held.size if held else ZERO)
        if size <= 0:
            return None
    old = pf.current(L, T)
    new = pf.apply_fill(L, T, C, Side.BUY if op == "buy" else Side.SELL, size, price, fee, "d")
    return PositionDelta.between(old, new)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(ops, st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 10_000), st.integers(1, 99),
                      st.integers(0, 50)))
def test_the_last_fill_taken_back_leaves_exactly_what_was_before(history, last):
    pf = Portfolio()
    for op in history:
        _apply(pf, *op)
    before = (pf.current(L, T), pf.total_exposure, pf.realised_total, pf.day, pf.open_tokens)
    delta = _apply(pf, *last)
    if delta is None or before[0] is None:
        return
    position, note = pf.revert_fill(L, T, delta, "d")
    # every amount exactly as before; the mark (last_price) stays the latest matched price
    assert note == "" and position == attrs.evolve(before[0], last_price=position.last_price)
    before = (position,) + before[1:]
    assert (pf.current(L, T), pf.total_exposure, pf.realised_total, pf.day, pf.open_tokens) == before


@settings(max_examples=200, deadline=None, derandomize=True)
@given(ops, ops)
def test_a_fill_taken_back_after_others_keeps_the_books_sane(before, after):
    pf = Portfolio()
    for op in before:
        _apply(pf, *op)
    delta = _apply(pf, "buy", 1000, 50, 10)
    for op in after:
        _apply(pf, *op)
    position, _ = pf.revert_fill(L, T, delta, "d")
    assert position.size == position.bought - position.sold >= 0 and position.cost >= 0
    assert position.size > 0 or position.cost == 0
    assert pf.total_exposure == (position.cost if position.size > 0 else ZERO)


def test_a_failed_buy_of_a_new_position_leaves_nothing_open():
    pf = Portfolio()
    delta = _apply(pf, "buy", 2000, 50, 0)
    assert pf.total_exposure == D("10")
    position, note = pf.revert_fill(L, T, delta, "d")
    assert note == "" and (position.size, position.cost, position.realised, pf.total_exposure, pf.open_tokens) == (
        0, 0, 0, 0, 0)
    assert PositionDelta.parse(delta.text) == delta and micro(D("0.5") * 20) == D("10")
