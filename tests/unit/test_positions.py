"""Positions and PnL: average cost, partial fills, sells, resolution, aggregates."""
from __future__ import annotations

from decimal import Decimal

import pytest

from copytrader.domain.model import Side
from copytrader.domain.portfolio import Portfolio, Position

from .conftest import LEADER, TOKEN

D = Decimal
DAY = "2026-11-01"


def pos(**kw) -> Position:
    return Position(leader=LEADER, token_id=TOKEN, condition_id="c", **kw)


def test_average_cost_over_buys():
    p = pos().fill(Side.BUY, D("10"), D("0.40"), D(0)).fill(Side.BUY, D("30"), D("0.60"), D(0))
    assert p.size == D("40") and p.cost == D("22") and p.avg_cost == D("0.55")


def test_partial_sell_realises_against_average_cost():
    p = pos().fill(Side.BUY, D("40"), D("0.50"), D(0)).fill(Side.SELL, D("10"), D("0.70"), D(0))
    assert p.realised == D("2") and p.size == D("30") and p.avg_cost == D("0.5")


def test_full_sell_closes_exactly():
    p = pos().fill(Side.BUY, D("3"), D("0.33"), D(0)).fill(Side.BUY, D("7"), D("0.37"), D(0))
    p = p.fill(Side.SELL, D("3.33"), D("0.40"), D(0)).fill(Side.SELL, D("6.67"), D("0.41"), D(0))
    assert p.size == 0 and p.cost == 0 and not p.is_open
    assert p.realised == D("3.33") * D("0.40") + D("6.67") * D("0.41") - (D("0.99") + D("2.59"))


def test_selling_more_than_held_is_impossible():
    with pytest.raises(ValueError, match="exceeds position"):
        pos().fill(Side.BUY, D("5"), D("0.5"), D(0)).fill(Side.SELL, D("6"), D("0.5"), D(0))


def test_fees_reduce_realised():
    p = pos().fill(Side.BUY, D("10"), D("0.5"), D("0.05")).fill(Side.SELL, D("10"), D("0.5"), D("0.04"))
    assert p.realised == D("-0.09") and p.fees == D("0.09")


def test_unrealised_uses_the_mark_or_the_last_price():
    p = pos().fill(Side.BUY, D("10"), D("0.5"), D(0))
    assert p.unrealised(D("0.62")) == D("1.2")
    assert p.unrealised() == 0  # last price is our own fill


@pytest.mark.parametrize("payout, realised", [(D(1), D("6")), (D(0), D("-4"))])
def test_resolution_pays_one_or_zero(payout, realised):
    p = pos().fill(Side.BUY, D("10"), D("0.4"), D(0)).resolve(payout)
    assert (p.size, p.cost, p.realised, p.settled) == (0, 0, realised, True)


def test_portfolio_aggregates_match_a_recomputation():
    pf = Portfolio()
    other = "0x" + "22" * 20
    pf.apply_fill(LEADER, TOKEN, "c1", Side.BUY, D("10"), D("0.5"), D(0), DAY)
    pf.apply_fill(other, TOKEN, "c1", Side.BUY, D("20"), D("0.4"), D(0), DAY)
    pf.apply_fill(LEADER, "t2", "c2", Side.BUY, D("5"), D("0.9"), D(0), DAY)
    pf.apply_fill(LEADER, TOKEN, "c1", Side.SELL, D("10"), D("0.6"), D(0), DAY)
    assert pf.open_tokens == 2  # TOKEN still held through the other leader
    positions = pf.positions()
    assert pf.total_exposure == sum(p.cost for p in positions) == D("12.5")
    assert pf.market_exposure["c1"] == D("8") and pf.leader_exposure[LEADER] == D("4.5")
    assert pf.realised_total == D("1") and pf.daily_realised(DAY) == D("1")
    pf.apply_fill(other, TOKEN, "c1", Side.SELL, D("20"), D("0.4"), D(0), DAY)
    assert pf.open_tokens == 1 and not pf.holds_token(TOKEN)


def test_resolve_settles_every_position_of_the_condition():
    pf = Portfolio()
    pf.apply_fill(LEADER, "yes", "c", Side.BUY, D("10"), D("0.6"), D(0), DAY)
    pf.apply_fill(LEADER, "no", "c", Side.BUY, D("10"), D("0.3"), D(0), DAY)
    changed = pf.resolve("c", {"yes": D(1), "no": D(0)}, DAY)
    assert len(changed) == 2 and pf.total_exposure == 0 and pf.open_tokens == 0
    assert pf.realised_total == D("10") - D("9")


def test_daily_realised_starts_again_each_day():
    pf = Portfolio()
    pf.apply_fill(LEADER, TOKEN, "c", Side.BUY, D("10"), D("0.5"), D(0), DAY)
    pf.apply_fill(LEADER, TOKEN, "c", Side.SELL, D("5"), D("0.3"), D(0), DAY)
    assert pf.daily_realised(DAY) == D("-1")
    pf.roll_day("2026-11-02", D(0))
    assert pf.daily_realised("2026-11-02") == 0 and pf.daily_realised(DAY) == 0
