"""The risk kernel: one test (at least) per limit."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import attrs

from copytrader.domain.model import Approve, Reason, Reduce, Reject, Side, TradingState
from copytrader.domain.portfolio import Portfolio
from copytrader.domain.risk import RiskKernel, RiskLimits

from .conftest import CONDITION, LEADER, T0, TOKEN, intent, order_book

D = Decimal
OPEN = RiskLimits(max_trade_usdc=None, max_market_usdc=None, max_total_exposure_usdc=None,
                  max_open_positions=None, daily_loss_limit_usdc=None, max_orders_per_window=None)


def check(limits=OPEN, it=None, pf=None, state=TradingState.ACTIVE, book=None, budget=None, min_size="5"):
    return RiskKernel(limits).check(it or intent(), pf or Portfolio(), state, T0,
                                    book if book is not None else order_book(), D(min_size), budget)


def held(*fills):
    pf = Portfolio()
    for leader, token, cond, size, price in fills:
        pf.apply_fill(leader, token, cond, Side.BUY, D(size), D(price), D(0), "2026-11-01")
    return pf


def reason(verdict):
    assert isinstance(verdict, Reject), verdict
    return verdict.reason


def test_all_open_approves():
    assert check() == Approve()


def test_max_trade_notional_reduces_then_rejects():
    lim = _with(max_trade_usdc=D("5"))
    assert check(lim, intent(size="20", limit="0.50")) == Reduce(D("10"), Reason.MAX_TRADE_NOTIONAL)
    assert reason(check(_with(max_trade_usdc=D("2")), intent(size="20", limit="0.50"))) is Reason.MAX_TRADE_NOTIONAL


def _with(**kw):
    return attrs.evolve(OPEN, **kw)


def test_per_market_cap_counts_existing_exposure():
    pf = held((LEADER, "other-token", CONDITION, "30", "0.5"))  # 15 USDC already in this market
    assert check(_with(max_market_usdc=D("20")), intent(size="20"), pf) == Reduce(D("10"), Reason.MAX_MARKET_NOTIONAL)
    assert check(_with(max_market_usdc=D("20")), intent(size="20", condition="0xother"), pf) == Approve()


def test_total_exposure_cap():
    pf = held((LEADER, "t1", "c1", "100", "0.5"), (LEADER, "t2", "c2", "100", "0.4"))  # 90 USDC
    assert reason(check(_with(max_total_exposure_usdc=D("92")), intent(size="20"), pf)) is Reason.MAX_TOTAL_EXPOSURE
    assert check(_with(max_total_exposure_usdc=D("100")), intent(size="20"), pf) == Approve()


def test_max_open_positions_allows_adding_to_a_held_token():
    pf = held((LEADER, "t1", "c1", "10", "0.5"), (LEADER, TOKEN, "c2", "10", "0.5"))
    assert reason(check(_with(max_open_positions=2), intent(token="t3"), pf)) is Reason.MAX_OPEN_POSITIONS
    assert check(_with(max_open_positions=2), intent(token=TOKEN), pf) == Approve()


def test_daily_loss_limit_blocks_buys_not_sells():
    pf = held((LEADER, TOKEN, CONDITION, "100", "0.5"))
    pf.apply_fill(LEADER, TOKEN, CONDITION, Side.SELL, D("50"), D("0.30"), D(0), "2026-11-01")  # -10
    lim = _with(daily_loss_limit_usdc=D("10"))
    assert reason(check(lim, intent(), pf)) is Reason.DAILY_LOSS_LIMIT
    assert check(lim, intent(side="SELL", limit="0.49"), pf) == Approve()
    assert check(_with(daily_loss_limit_usdc=D("10.01")), intent(), pf) == Approve()


def test_price_band():
    assert reason(check(_with(max_buy_price=D("0.97")), intent(leader_price="0.98", limit="0.99"),
                        book=order_book(ask="0.98", bid="0.97"))) is Reason.PRICE_BAND
    assert reason(check(_with(min_sell_price=D("0.05")), intent(side="SELL", leader_price="0.04", limit="0.04"),
                        book=order_book(bid="0.04", ask="0.05"))) is Reason.PRICE_BAND


def test_slippage_against_the_leaders_price():
    lim = _with(max_slippage=D("0.05"))
    assert reason(check(lim, intent(leader_price="0.50"), book=order_book(ask="0.53"))) is Reason.SLIPPAGE
    assert check(lim, intent(leader_price="0.50"), book=order_book(ask="0.52")) == Approve()
    assert reason(check(lim, intent(side="SELL", leader_price="0.50"), book=order_book(bid="0.47"))) is Reason.SLIPPAGE


def test_empty_book_side_is_no_liquidity():
    assert reason(check(book=order_book(ask=None))) is Reason.NO_LIQUIDITY
    assert check(it=intent(side="SELL", limit="0.49"), book=order_book(ask=None)) == Approve()


def test_allow_and_deny_lists_by_condition_or_token_any_case():
    assert reason(check(_with(deny_markets=[CONDITION.upper().replace("0X", "0x")]))) is Reason.MARKET_DENIED
    assert reason(check(_with(deny_markets=[TOKEN]))) is Reason.MARKET_DENIED
    assert reason(check(_with(allow_markets=["0xsomething-else"]))) is Reason.MARKET_NOT_ALLOWED
    assert check(_with(allow_markets=[TOKEN])) == Approve()


def test_orders_per_window():
    pf = Portfolio()
    lim = _with(max_orders_per_window=3, window_s=60)
    for seconds in (-100, -50, -10, -1):
        pf.note_order(T0 + timedelta(seconds=seconds), lim.window)
    assert reason(check(lim, pf=pf)) is Reason.RATE_LIMIT  # 3 in the last minute
    later = RiskKernel(lim).check(intent(), pf, TradingState.ACTIVE, T0 + timedelta(seconds=55),
                                  order_book(), D(5))
    assert later == Approve()  # two of them have left the window


def test_trading_states():
    assert reason(check(state=TradingState.HALTED)) is Reason.TRADING_HALTED
    assert reason(check(it=intent(side="SELL", limit="0.49"), state=TradingState.HALTED)) is Reason.TRADING_HALTED
    assert reason(check(state=TradingState.REDUCING)) is Reason.REDUCING_ONLY
    assert check(it=intent(side="SELL", limit="0.49"), state=TradingState.REDUCING) == Approve()


def test_leader_budget():
    pf = held((LEADER, "t1", "c1", "40", "0.5"))  # 20 USDC from this leader
    assert check(budget=D("25"), pf=pf, it=intent(size="20")) == Reduce(D("10"), Reason.LEADER_BUDGET)
    assert check(budget=D("25"), pf=pf, it=intent(size="20", leader="0x" + "99" * 20)) == Approve()


def test_tightest_cap_wins():
    pf = held((LEADER, "t1", CONDITION, "10", "0.5"))
    lim = _with(max_trade_usdc=D("8"), max_market_usdc=D("9"))  # market headroom 4 < trade cap 8
    assert check(lim, intent(size="20"), pf) == Reduce(D("8"), Reason.MAX_MARKET_NOTIONAL)


def test_a_limits_reason_is_the_name_of_its_setting():
    """What `history`, the run summary and the report say is the setting to change."""
    pf = held((LEADER, "t1", CONDITION, "40", "0.5"), (LEADER, "t2", "c2", "10", "0.5"))  # 25 USDC, 20 in CONDITION
    pf.apply_fill(LEADER, "t2", "c2", Side.SELL, D("10"), D("0.1"), D(0), "2026-11-01")  # -4 realised today
    for seconds in (-3, -2, -1):
        pf.note_order(T0 + timedelta(seconds=seconds), timedelta(seconds=60))
    verdicts = {
        "max_trade_usdc": check(_with(max_trade_usdc=D("5")), intent(size="20"), pf),
        "max_market_usdc": check(_with(max_market_usdc=D("25")), intent(size="20"), pf),
        "max_total_exposure_usdc": check(_with(max_total_exposure_usdc=D("22")), intent(size="20"), pf),
        "budget_usdc": check(OPEN, intent(size="20"), pf, budget=D("22")),
        "daily_loss_limit_usdc": check(_with(daily_loss_limit_usdc=D("4")), intent(), pf),
        "max_orders_per_window": check(_with(max_orders_per_window=3), intent(), pf),
        "max_open_positions": check(_with(max_open_positions=1), intent(token="t9"), pf),
    }
    assert {setting: v.reason.value for setting, v in verdicts.items()} == {s: s for s in verdicts}
    assert set(verdicts) - {"budget_usdc"} <= set(attrs.fields_dict(RiskLimits))
