"""Positions (average cost, realised/unrealised PnL, resolution) and the Portfolio aggregates."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from copytrader.domain.model import Side
from copytrader.domain.portfolio import Portfolio, Position

from .domain_helpers import (
    CONDITION, CONDITION_B, DAY0, DAY1, LEADER, LEADER2, T0, TOKEN, TOKEN_B, TOKEN_NO, trade,
)

D = Decimal
ZERO = D(0)


def buy(p: Portfolio, size: str, price: str, leader: str = LEADER, token: str = TOKEN,
        cond: str = CONDITION, fee: str = "0", day: str = DAY0) -> Position:
    return p.apply_fill(leader, token, cond, Side.BUY, D(size), D(price), D(fee), day)


def sell(p: Portfolio, size: str, price: str, leader: str = LEADER, token: str = TOKEN,
         cond: str = CONDITION, fee: str = "0", day: str = DAY0) -> Position:
    return p.apply_fill(leader, token, cond, Side.SELL, D(size), D(price), D(fee), day)


def recomputed(p: Portfolio) -> dict:
    """The aggregates, recomputed from the open positions."""
    total, markets, leaders, tokens = ZERO, {}, {}, {}
    for pos in p.positions():
        assert pos.is_open
        total += pos.cost
        markets[pos.condition_id] = markets.get(pos.condition_id, ZERO) + pos.cost
        leaders[pos.leader] = leaders.get(pos.leader, ZERO) + pos.cost
        tokens[pos.token_id] = tokens.get(pos.token_id, ZERO) + pos.size
    return {"total": total, "markets": markets, "leaders": leaders, "tokens": tokens}


def assert_aggregates_consistent(p: Portfolio) -> None:
    r = recomputed(p)
    assert p.total_exposure == r["total"]
    for cond in set(p.market_exposure) | set(r["markets"]):
        assert p.market_exposure.get(cond, ZERO) == r["markets"].get(cond, ZERO), cond
    for leader in set(p.leader_exposure) | set(r["leaders"]):
        assert p.leader_exposure.get(leader, ZERO) == r["leaders"].get(leader, ZERO), leader
    assert p.open_tokens == len(r["tokens"])
    assert {k: v for k, v in p.token_size.items() if v != 0} == r["tokens"]
    for token in r["tokens"]:
        assert p.holds_token(token)
    pending = p.pending()
    assert all(q.is_pending for q in pending)
    assert p.pending_cash == sum((q.size * q.payout for q in pending), ZERO)
    assert p.pending_cost == sum((q.cost for q in pending), ZERO)


# -- Position ----------------------------------------------------------------------
def test_average_cost_over_several_buys():
    p = Portfolio()
    buy(p, "10", "0.40")
    buy(p, "30", "0.60")
    pos = buy(p, "20", "0.45")
    assert pos.size == D("60")
    assert pos.cost == D("4") + D("18") + D("9")
    assert pos.avg_cost == D("0.516667")  # 31 / 60, micro-rounded
    assert pos.bought == D("60") and pos.sold == ZERO
    assert pos.last_price == D("0.45")
    assert pos.realised == ZERO


def test_partial_sell_realises_pnl_and_keeps_average_cost():
    p = Portfolio()
    buy(p, "100", "0.40")
    buy(p, "100", "0.60")  # cost 100, avg 0.50
    pos = sell(p, "50", "0.70")
    assert pos.realised == D("35") - D("25")  # proceeds - released cost
    assert pos.size == D("150")
    assert pos.cost == D("75")
    assert pos.avg_cost == D("0.5")
    assert pos.sold == D("50")
    assert p.realised_total == D("10")


def test_full_sell_closes_the_position():
    p = Portfolio()
    buy(p, "30", "0.33")
    buy(p, "0.07", "0.71")  # an awkward cost basis
    buy(p, "5", "0.20", token=TOKEN_B, cond=CONDITION_B)
    assert p.open_tokens == 2
    pos = sell(p, "30.07", "0.50")
    assert pos.size == ZERO
    assert pos.cost == ZERO  # exactly, not a rounding residue
    assert not pos.is_open
    assert pos.realised == D("15.035") - (D("9.9") + D("0.0497"))
    assert p.position(LEADER, TOKEN) is None
    assert [q.token_id for q in p.positions()] == [TOKEN_B]
    assert p.open_tokens == 1
    assert not p.holds_token(TOKEN)
    assert p.market_exposure.get(CONDITION, ZERO) == ZERO
    assert p.total_exposure == D("1")
    assert_aggregates_consistent(p)


def test_full_sell_releases_the_whole_cost_basis_even_off_micro():
    # A cost basis with more precision than micro units (e.g. loaded from elsewhere)
    # is released in full on a complete exit: no residue is left behind.
    pos = Position(leader=LEADER, token_id=TOKEN, condition_id=CONDITION, size=D("3"), cost=D("1.0000004"))
    closed = pos.fill(Side.SELL, D("3"), D("0.50"), ZERO)
    assert closed.cost == ZERO
    assert closed.realised == D("1.5") - D("1.0000004")


def test_close_then_reopen_starts_fresh():
    p = Portfolio()
    buy(p, "10", "0.50")
    sell(p, "10", "0.60")
    pos = buy(p, "4", "0.25")
    assert pos.size == D("4") and pos.cost == D("1") and pos.bought == D("4") and pos.sold == ZERO
    assert p.open_tokens == 1


def test_selling_more_than_held_raises_and_changes_nothing():
    p = Portfolio()
    buy(p, "10", "0.50")
    with pytest.raises(ValueError):
        sell(p, "10.01", "0.50")
    with pytest.raises(ValueError):
        sell(p, "1", "0.50", token=TOKEN_B)  # nothing held at all
    pos = p.position(LEADER, TOKEN)
    assert pos.size == D("10") and pos.cost == D("5")
    assert p.total_exposure == D("5") and p.realised_total == ZERO
    assert_aggregates_consistent(p)


def test_fees_reduce_realised():
    p = Portfolio()
    pos = buy(p, "10", "0.50", fee="0.05")
    assert pos.realised == D("-0.05") and pos.fees == D("0.05")
    assert pos.cost == D("5")  # fees are not in the cost basis
    pos = sell(p, "10", "0.60", fee="0.06")
    assert pos.realised == D("-0.05") + D("6") - D("5") - D("0.06")
    assert pos.fees == D("0.11")
    assert p.realised_total == D("0.89")
    assert p.daily_realised(DAY0) == D("0.89")


def test_unrealised_with_a_mark():
    pos = Position(leader=LEADER, token_id=TOKEN, condition_id=CONDITION)
    assert pos.unrealised(D("0.9")) == ZERO  # nothing held
    pos = pos.fill(Side.BUY, D("10"), D("0.40"), ZERO).fill(Side.BUY, D("10"), D("0.60"), ZERO)
    assert pos.unrealised(D("0.70")) == D("14") - D("10")
    assert pos.unrealised(D("0.30")) == D("-4")
    assert pos.unrealised() == D("12") - D("10")  # defaults to the last fill price (0.60)
    assert Position(leader=LEADER, token_id=TOKEN, condition_id=CONDITION, size=D(5), cost=D(2)).unrealised() == ZERO


def test_zero_size_fill_is_a_no_op():
    pos = Position(leader=LEADER, token_id=TOKEN, condition_id=CONDITION)
    assert pos.fill(Side.BUY, ZERO, D("0.5"), ZERO) is pos


def test_resolution_pays_one_per_winning_share_and_zero_per_losing():
    p = Portfolio()
    buy(p, "100", "0.40", token=TOKEN)  # YES, cost 40
    buy(p, "50", "0.70", token=TOKEN_NO)  # NO, cost 35
    buy(p, "20", "0.30", leader=LEADER2, token=TOKEN)  # YES via another leader, cost 6
    buy(p, "10", "0.50", token=TOKEN_B, cond=CONDITION_B)  # another market
    changed = p.resolve(CONDITION, {TOKEN: D(1), TOKEN_NO: D(0)}, DAY1, pay=True)
    by_key = {(q.leader, q.token_id): q for q in changed}
    assert set(by_key) == {(LEADER, TOKEN), (LEADER, TOKEN_NO), (LEADER2, TOKEN)}
    yes, no, yes2 = by_key[(LEADER, TOKEN)], by_key[(LEADER, TOKEN_NO)], by_key[(LEADER2, TOKEN)]
    assert yes.realised == D("100") - D("40")
    assert no.realised == ZERO - D("35")
    assert yes2.realised == D("20") - D("6")
    for q in changed:
        assert q.size == ZERO and q.cost == ZERO and q.settled
    assert yes.last_price == D(1) and no.last_price == D(0)
    assert p.realised_total == D("60") - D("35") + D("14")
    assert p.daily_realised(DAY1) == D("39")
    assert [q.token_id for q in p.positions()] == [TOKEN_B]
    assert p.open_tokens == 1 and p.total_exposure == D("5")
    assert_aggregates_consistent(p)


def test_resolution_leaves_tokens_without_payout_alone():
    p = Portfolio()
    buy(p, "10", "0.40", token=TOKEN)
    buy(p, "10", "0.40", token=TOKEN_NO)
    changed = p.resolve(CONDITION, {TOKEN: D(1)}, DAY0, pay=True)
    assert [q.token_id for q in changed] == [TOKEN]
    assert p.position(LEADER, TOKEN_NO).size == D("10")
    assert p.resolve(CONDITION_B, {TOKEN_B: D(1)}, DAY0, pay=True) == []


# -- aggregates ------------------------------------------------------------------------
def test_aggregates_match_recomputation_after_a_sequence():
    p = Portfolio()
    steps = [
        lambda: buy(p, "100", "0.40"),
        lambda: buy(p, "50", "0.42", leader=LEADER2),  # same token, second leader
        lambda: buy(p, "30", "0.55", token=TOKEN_NO),
        lambda: buy(p, "12.34", "0.17", token=TOKEN_B, cond=CONDITION_B, leader=LEADER2),
        lambda: sell(p, "33.33", "0.45"),
        lambda: sell(p, "66.67", "0.47"),  # LEADER closes TOKEN; LEADER2 still holds it
        lambda: buy(p, "7", "0.61", fee="0.01"),
        lambda: sell(p, "50", "0.39", leader=LEADER2),
        lambda: p.resolve(CONDITION_B, {TOKEN_B: D(0)}, DAY0, pay=False),
        lambda: sell(p, "7", "0.60"),
    ]
    for step in steps:
        step()
        assert_aggregates_consistent(p)
    assert [q.token_id for q in p.positions()] == [TOKEN_NO]
    assert p.open_tokens == 1
    assert p.total_exposure == D("16.5")
    assert p.leader_exposure[LEADER] == D("16.5") and p.leader_exposure[LEADER2] == ZERO


def test_two_leaders_holding_the_same_token_count_once():
    p = Portfolio()
    buy(p, "10", "0.50", leader=LEADER)
    buy(p, "20", "0.50", leader=LEADER2)
    assert p.open_tokens == 1
    assert p.token_size[TOKEN] == D("30")
    assert p.leader_exposure == {LEADER: D("5"), LEADER2: D("10")}
    assert p.market_exposure[CONDITION] == D("15")
    sell(p, "10", "0.50", leader=LEADER)
    assert p.open_tokens == 1 and p.holds_token(TOKEN)
    sell(p, "20", "0.50", leader=LEADER2)
    assert p.open_tokens == 0 and not p.holds_token(TOKEN)
    assert p.total_exposure == ZERO
    assert_aggregates_consistent(p)


def test_constructed_from_positions_has_the_same_aggregates():
    p = Portfolio()
    buy(p, "10", "0.50")
    buy(p, "20", "0.30", leader=LEADER2, token=TOKEN_B, cond=CONDITION_B)
    copy = Portfolio(positions=p.positions(), realised_total=D("3"))
    assert copy.total_exposure == p.total_exposure
    assert copy.market_exposure == p.market_exposure
    assert copy.leader_exposure == p.leader_exposure
    assert copy.open_tokens == p.open_tokens == 2
    assert copy.realised_total == D("3")
    # Closed positions are not loaded.
    closed = Position(leader=LEADER, token_id=TOKEN_NO, condition_id=CONDITION, realised=D("1"))
    assert Portfolio(positions=[closed]).open_tokens == 0


# -- daily realised and orders window ---------------------------------------------------------
def test_daily_realised_resets_on_a_new_day():
    p = Portfolio()
    buy(p, "100", "0.50", day=DAY0)
    sell(p, "50", "0.40", day=DAY0)  # -5
    assert p.daily_realised(DAY0) == D("-5")
    sell(p, "50", "0.60", day=DAY1)  # +5
    assert p.daily_realised(DAY1) == D("5")
    assert p.daily_realised(DAY0) == ZERO  # only the current day is kept
    assert p.realised_total == ZERO
    assert p.day == (DAY1, D("5"))


def test_roll_day_uses_the_stored_value_only_for_a_new_day():
    p = Portfolio(daily_realised=(DAY0, D("-7")))
    assert p.daily_realised(DAY0) == D("-7")
    p.roll_day(DAY0, D("100"))  # same day: ignored
    assert p.daily_realised(DAY0) == D("-7")
    p.roll_day(DAY1, D("-2"))
    assert p.daily_realised(DAY1) == D("-2") and p.daily_realised(DAY0) == ZERO
    buy(p, "10", "0.50", fee="1", day=DAY1)
    assert p.daily_realised(DAY1) == D("-3")


def test_orders_since_window():
    window = timedelta(seconds=60)
    p = Portfolio(recent_orders=[T0 - timedelta(seconds=100), T0 - timedelta(seconds=40)])
    assert p.orders_since(T0 - window) == 1
    p.note_order(T0 - timedelta(seconds=20), window)
    p.note_order(T0, window)
    assert p.orders_since(T0 - window) == 3
    assert p.orders_since(T0 - timedelta(seconds=20)) == 2  # the boundary is inclusive
    assert p.orders_since(T0 + timedelta(seconds=30)) == 0


def test_observe_leader_tracks_holdings():
    p = Portfolio()
    assert p.observe_leader(trade(side="BUY", size="100")) == ((LEADER, TOKEN), D("100"))
    p.observe_leader(trade(side="BUY", size="50", tx_hash="0x" + "99" * 32))
    assert p.leader_holding(LEADER, TOKEN) == D("150")
    p.observe_leader(trade(side="SELL", size="30"))
    assert p.leader_holding(LEADER, TOKEN) == D("120")
    p.observe_leader(trade(side="SELL", size="500"))  # more than we saw: floor at zero
    assert p.leader_holding(LEADER, TOKEN) == ZERO
    p.observe_leader(trade(side="BUY", size="10"))
    p.observe_leader(trade(side="", kind="REDEEM", size="4"))
    assert p.leader_holding(LEADER, TOKEN) == D("6")
    assert p.leader_holding(LEADER2, TOKEN) == ZERO


# -- resolution live: pending, lost, paid ------------------------------------------------
def test_live_resolution_keeps_a_winner_pending_and_clears_a_loser():
    p = Portfolio()
    buy(p, "100", "0.40", token=TOKEN)  # YES, cost 40
    buy(p, "50", "0.70", token=TOKEN_NO)  # NO, cost 35
    buy(p, "10", "0.50", token=TOKEN_B, cond=CONDITION_B)  # another market, cost 5
    changed = p.resolve(CONDITION, {TOKEN: D(1), TOKEN_NO: D(0)}, DAY1, pay=False)
    yes, no = sorted(changed, key=lambda q: q.token_id != TOKEN)
    assert yes.is_pending and not yes.settled and yes.status == "pending payout"
    assert (yes.size, yes.cost, yes.realised, yes.payout) == (D("100"), D("40"), ZERO, D(1))
    assert no.status == "lost" and no.settled and (no.size, no.cost, no.realised, no.payout) == (ZERO, ZERO, D("-35"), ZERO)
    # the winner is cash to come, not risk: no exposure, not an open position
    assert p.pending() == [yes] and p.pending_cash == D("100") and p.pending_cost == D("40")
    assert [q.token_id for q in p.positions()] == [TOKEN_B]
    assert p.total_exposure == D("5") and p.market_exposure.get(CONDITION, ZERO) == ZERO
    assert p.open_tokens == 1 and not p.holds_token(TOKEN)
    assert p.leader_exposure[LEADER] == D("5")
    assert p.realised_total == D("-35") and p.daily_realised(DAY1) == D("-35")
    assert p.booked_pnl == D("-35") + D("100") - D("40")
    assert p.current(LEADER, TOKEN) == yes
    assert_aggregates_consistent(p)
    # resolving again changes nothing (the periodic check and a REDEEM hint may both see it)
    assert p.resolve(CONDITION, {TOKEN: D(1), TOKEN_NO: D(0)}, DAY1, pay=False) == []


def test_pay_books_realised_once_on_the_day_it_happened():
    p = Portfolio()
    buy(p, "100", "0.40", token=TOKEN)
    p.resolve(CONDITION, {TOKEN: D(1)}, DAY0, pay=False)
    booked = p.booked_pnl
    paid = p.pay(LEADER, TOKEN, D("100"), DAY1)
    assert paid.status == "paid" and paid.settled and (paid.size, paid.cost, paid.realised) == (ZERO, ZERO, D("60"))
    assert p.realised_total == D("60") and p.daily_realised(DAY1) == D("60") and p.daily_realised(DAY0) == ZERO
    assert p.pending() == [] and p.pending_cash == ZERO and p.pending_cost == ZERO
    assert p.booked_pnl == booked  # the payout was already counted as pending cash
    assert_aggregates_consistent(p)
    with pytest.raises(ValueError, match="paid, not pending"):
        paid.paid(D("100"))
    with pytest.raises(ValueError, match="is paid"):
        p.pay(LEADER, TOKEN, D("100"), DAY1)  # never twice
    assert p.realised_total == D("60")


def test_pay_books_what_was_received_not_what_was_expected():
    p = Portfolio()
    buy(p, "10", "0.40", token=TOKEN)
    p.resolve(CONDITION, {TOKEN: D("0.5")}, DAY0, pay=False)
    assert p.pending_cash == D("5")
    assert p.pay(LEADER, TOKEN, D("4.9"), DAY0).realised == D("4.9") - D("4")


def test_paper_resolution_pays_at_once_as_before():
    live, paper = Portfolio(), Portfolio()
    for p in (live, paper):
        buy(p, "100", "0.40", token=TOKEN)
        buy(p, "50", "0.70", token=TOKEN_NO)
    paper.resolve(CONDITION, {TOKEN: D(1), TOKEN_NO: D(0)}, DAY0, pay=True)
    live.resolve(CONDITION, {TOKEN: D(1), TOKEN_NO: D(0)}, DAY0, pay=False)
    yes = paper.current(LEADER, TOKEN)
    assert yes.status == "paid" and yes.payout == D(1) and yes.realised == D("60") and paper.pending() == []
    assert paper.booked_pnl == live.booked_pnl == paper.realised_total
    live.pay(LEADER, TOKEN, D("100"), DAY0)
    assert live.current(LEADER, TOKEN) == yes


def test_positions_loaded_pending_stay_pending():
    p = Portfolio()
    buy(p, "100", "0.40", token=TOKEN)
    buy(p, "10", "0.50", token=TOKEN_B, cond=CONDITION_B)
    p.resolve(CONDITION, {TOKEN: D(1)}, DAY0, pay=False)
    q = Portfolio(positions=[p.current(LEADER, TOKEN), p.current(LEADER, TOKEN_B)])
    assert q.pending() == p.pending() and q.pending_cash == D("100")
    assert q.total_exposure == D("5") and q.open_tokens == 1
    assert_aggregates_consistent(q)


def test_a_late_fill_of_a_resolved_market_stays_pending():
    p = Portfolio()
    buy(p, "10", "0.40", token=TOKEN)
    p.resolve(CONDITION, {TOKEN: D(1)}, DAY0, pay=False)
    pos = buy(p, "5", "0.90", token=TOKEN)  # an order matched before the resolution was seen
    assert pos.is_pending and pos.size == D("15") and pos.cost == D("8.5")
    assert p.pending_cash == D("15") and p.total_exposure == ZERO
    assert_aggregates_consistent(p)


@pytest.mark.parametrize("payout", [D("-0.1"), D("1.5"), D("NaN")])
def test_a_payout_outside_zero_to_one_is_refused(payout):
    pos = Portfolio().apply_fill(LEADER, TOKEN, CONDITION, Side.BUY, D("1"), D("0.5"), ZERO, DAY0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        pos.resolved(payout)
