"""A position closed and bought again keeps its realised PnL (one store row per leader and token)."""
from decimal import Decimal as D

from copytrader.domain.model import ZERO, Side
from copytrader.domain.portfolio import Portfolio

LEADER, TOKEN, CONDITION = "0x" + "ab" * 20, "1" * 40, "0x" + "cd" * 32


def fill(p: Portfolio, side: Side, size: str, price: str, fee: str = "0"):
    return p.apply_fill(LEADER, TOKEN, CONDITION, side, D(size), D(price), D(fee), "2026-11-01")


def test_reopened_position_keeps_realised_and_fees_but_starts_a_new_round_trip():
    p = Portfolio()
    fill(p, Side.BUY, "10", "0.50", "0.01")
    closed = fill(p, Side.SELL, "10", "0.40")
    assert closed.realised == D("-1.01")
    reopened = fill(p, Side.BUY, "4", "0.25", "0.02")
    assert reopened.size == D("4") and reopened.bought == D("4") and reopened.sold == ZERO
    assert reopened.realised == D("-1.03") and reopened.fees == D("0.03")
    assert p.realised_total == D("-1.03")


def test_reopening_after_a_restart_keeps_realised_too():
    p = Portfolio()
    fill(p, Side.BUY, "10", "0.50")
    closed = fill(p, Side.SELL, "10", "0.60")
    restarted = Portfolio(positions=[closed], realised_total=closed.realised)  # as loaded from the store
    assert restarted.positions() == [] and restarted.open_tokens == 0
    reopened = fill(restarted, Side.BUY, "2", "0.50")
    assert reopened.realised == D("1") and restarted.realised_total == D("1")
