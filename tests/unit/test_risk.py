"""RiskKernel.check: one or more tests per limit, with Portfolio states built via its API."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Optional

import pytest

from copytrader.domain.model import (
    Approve, OrderBook, PriceLevel, Reason, Reduce, Reject, Side, TradingState,
)
from copytrader.domain.portfolio import Portfolio
from copytrader.domain.risk import RiskKernel, RiskLimits, day_key

from .domain_helpers import (
    CONDITION, CONDITION_B, DAY0, LEADER, LEADER2, T0, TOKEN, TOKEN_B, TOKEN_NO, book, intent,
)

D = Decimal
MIN = D("5")


def check(it, portfolio: Optional[Portfolio] = None, limits: Optional[RiskLimits] = None,
          state: TradingState = TradingState.ACTIVE, ob: Optional[OrderBook] = "default",  # type: ignore[assignment]
          now=T0, min_size: Decimal = MIN, budget: Optional[Decimal] = None):
    if ob == "default":
        ob = book(bid="0.50", ask="0.50", token_id=it.token_id)
    return RiskKernel(limits or RiskLimits()).check(
        it, portfolio or Portfolio(), state, now, ob, min_size, budget)


def holding(*fills: tuple[str, str, str, str, str], day: str = DAY0) -> Portfolio:
    """A portfolio after BUY fills of (leader, token, condition, size, price)."""
    p = Portfolio()
    for leader, token, cond, size, price in fills:
        p.apply_fill(leader, token, cond, Side.BUY, D(size), D(price), D(0), day)
    return p


def test_day_key_is_iso_date():
    assert day_key(T0) == DAY0 == "2026-11-01"


def test_plain_buy_and_sell_are_approved():
    assert check(intent()) == Approve()
    p = holding((LEADER, TOKEN, CONDITION, "20", "0.50"))
    assert check(intent(side="SELL"), p) == Approve()


# -- max trade notional ------------------------------------------------------------
def test_max_trade_notional_reduces_to_the_right_size():
    it = intent(size="400", limit="0.51", leader_price="0.50")  # 204 USDC > 100
    decision = check(it)
    assert decision == Reduce(D("196.07"), Reason.MAX_TRADE_NOTIONAL)  # floor(100 / 0.51, 0.01)
    assert decision.size * it.limit_price <= D("100")
    assert (decision.size + D("0.01")) * it.limit_price > D("100")


def test_max_trade_notional_exactly_at_cap_is_approved():
    assert check(intent(size="200", limit="0.50")) == Approve()  # 100.00 USDC
    assert isinstance(check(intent(size="200.01", limit="0.50")), Reduce)


def test_max_trade_notional_rejects_when_reduced_size_below_min_size():
    limits = RiskLimits(max_trade_usdc=D("2"))
    decision = check(intent(size="20", limit="0.50"), limits=limits)  # room for 4 shares < 5
    assert isinstance(decision, Reject)
    assert decision.reason is Reason.MAX_TRADE_NOTIONAL
    # With a smaller market minimum the same intent is reduced instead.
    assert check(intent(size="20", limit="0.50"), limits=limits, min_size=D("1")) == Reduce(
        D("4.00"), Reason.MAX_TRADE_NOTIONAL)


# -- per-market cap ----------------------------------------------------------------
def test_market_cap_counts_existing_exposure_in_that_market():
    p = holding((LEADER, TOKEN_NO, CONDITION, "400", "0.50"))  # 200 USDC in CONDITION
    assert p.market_exposure[CONDITION] == D("200")
    it = intent(size="200", limit="0.50")  # 100 USDC; 50 left in the market
    assert check(it, p) == Reduce(D("100.00"), Reason.MAX_MARKET_NOTIONAL)
    # The same order in another market is fine.
    other = intent(size="200", limit="0.50", token_id=TOKEN_B, condition_id=CONDITION_B)
    assert check(other, p) == Approve()


def test_market_cap_full_rejects():
    p = holding((LEADER, TOKEN, CONDITION, "500", "0.50"))  # 250 = the cap
    decision = check(intent(size="10", limit="0.50"), p)
    assert isinstance(decision, Reject) and decision.reason is Reason.MAX_MARKET_NOTIONAL


def test_market_cap_counts_every_leader():
    p = holding((LEADER, TOKEN, CONDITION, "200", "0.50"), (LEADER2, TOKEN_NO, CONDITION, "200", "0.50"))
    it = intent(size="200", limit="0.50")  # 100 > 250 - 200
    assert check(it, p) == Reduce(D("100.00"), Reason.MAX_MARKET_NOTIONAL)


# -- total exposure ------------------------------------------------------------------
def test_total_exposure_cap_reduces():
    limits = RiskLimits(max_market_usdc=None)
    p = holding((LEADER, TOKEN_NO, CONDITION, "1000", "0.50"), (LEADER, TOKEN_B, CONDITION_B, "900", "0.50"))
    assert p.total_exposure == D("950")
    decision = check(intent(size="200", limit="0.50"), p, limits)  # 100 > 50 left
    assert decision == Reduce(D("100.00"), Reason.MAX_TOTAL_EXPOSURE)


def test_total_exposure_cap_full_rejects():
    limits = RiskLimits(max_market_usdc=None)
    p = holding((LEADER, TOKEN_B, CONDITION_B, "2000", "0.50"))  # 1000 = the cap
    decision = check(intent(size="10", limit="0.50"), p, limits)
    assert isinstance(decision, Reject) and decision.reason is Reason.MAX_TOTAL_EXPOSURE


def test_tightest_headroom_decides():
    limits = RiskLimits(max_trade_usdc=D("100"), max_market_usdc=D("60"), max_total_exposure_usdc=D("1000"))
    assert check(intent(size="400", limit="0.50"), limits=limits) == Reduce(D("120.00"), Reason.MAX_MARKET_NOTIONAL)


def test_disabled_caps_approve_any_size():
    limits = RiskLimits(max_trade_usdc=None, max_market_usdc=None, max_total_exposure_usdc=None)
    assert check(intent(size="1000000", limit="0.50"), limits=limits) == Approve()


# -- max open positions --------------------------------------------------------------
def test_max_open_positions_rejects_a_new_token():
    limits = RiskLimits(max_open_positions=2)
    p = holding((LEADER, TOKEN, CONDITION, "20", "0.50"), (LEADER, TOKEN_NO, CONDITION, "20", "0.50"))
    assert p.open_tokens == 2
    it = intent(token_id=TOKEN_B, condition_id=CONDITION_B)
    decision = check(it, p, limits)
    assert isinstance(decision, Reject) and decision.reason is Reason.MAX_OPEN_POSITIONS
    # One slot free: allowed.
    assert check(it, p, RiskLimits(max_open_positions=3)) == Approve()


def test_max_open_positions_still_allows_buying_a_held_token():
    limits = RiskLimits(max_open_positions=2)
    p = holding((LEADER, TOKEN, CONDITION, "20", "0.50"), (LEADER, TOKEN_NO, CONDITION, "20", "0.50"))
    assert check(intent(token_id=TOKEN), p, limits) == Approve()
    # Held through another leader counts as held too.
    assert check(intent(token_id=TOKEN, leader=LEADER2), p, limits) == Approve()


def test_max_open_positions_does_not_block_sells():
    limits = RiskLimits(max_open_positions=1)
    p = holding((LEADER, TOKEN, CONDITION, "20", "0.50"), (LEADER, TOKEN_NO, CONDITION, "20", "0.50"))
    assert check(intent(side="SELL", token_id=TOKEN_B, condition_id=CONDITION_B), p, limits) == Approve()


# -- daily loss ------------------------------------------------------------------------
def _losing(loss_price: str) -> Portfolio:
    p = holding((LEADER, TOKEN_B, CONDITION_B, "400", "0.50"))
    p.apply_fill(LEADER, TOKEN_B, CONDITION_B, Side.SELL, D("400"), D(loss_price), D(0), DAY0)
    return p


def test_daily_loss_limit_rejects_buys_but_approves_sells():
    p = _losing("0.25")  # realised -100 today
    assert p.daily_realised(DAY0) == D("-100")
    decision = check(intent(), p)
    assert isinstance(decision, Reject) and decision.reason is Reason.DAILY_LOSS_LIMIT
    assert check(intent(side="SELL"), p) == Approve()


def test_daily_loss_below_limit_and_next_day_are_fine():
    assert check(intent(), _losing("0.2501")) == Approve()  # -99.96
    assert check(intent(), _losing("0.25"), now=T0 + timedelta(days=1)) == Approve()
    assert check(intent(), _losing("0.25"), limits=RiskLimits(daily_loss_limit_usdc=None)) == Approve()


# -- price band / slippage / liquidity -------------------------------------------------
def test_price_band_rejects_best_ask_above_max_buy_price():
    it = intent(size="20", limit="0.98", leader_price="0.97")
    decision = check(it, ob=book(bid="0.96", ask="0.98"))
    assert isinstance(decision, Reject) and decision.reason is Reason.PRICE_BAND
    assert check(it, ob=book(bid="0.96", ask="0.97")) == Approve()


def test_price_band_rejects_sell_below_min_sell_price():
    limits = RiskLimits(min_sell_price=D("0.10"))
    p = holding((LEADER, TOKEN, CONDITION, "20", "0.50"))
    it = intent(side="SELL", limit="0.09", leader_price="0.09")
    decision = check(it, p, limits, ob=book(bid="0.09", ask="0.10"))
    assert isinstance(decision, Reject) and decision.reason is Reason.PRICE_BAND
    assert check(it, p, limits, ob=book(bid="0.10", ask="0.11")) == Approve()


def test_buy_slippage_best_ask_too_far_above_leader():
    it = intent(leader_price="0.50", limit="0.51")
    decision = check(it, ob=book(bid="0.49", ask="0.53"))  # > 0.50 * 1.05 = 0.525
    assert isinstance(decision, Reject) and decision.reason is Reason.SLIPPAGE
    assert check(it, ob=book(bid="0.49", ask="0.52")) == Approve()
    assert check(it, ob=book(bid="0.49", ask="0.525")) == Approve()  # exactly at the bound


def test_sell_slippage_best_bid_too_far_below_leader():
    p = holding((LEADER, TOKEN, CONDITION, "20", "0.50"))
    it = intent(side="SELL", leader_price="0.50", limit="0.49")
    decision = check(it, p, ob=book(bid="0.47", ask="0.55"))  # < 0.50 * 0.95 = 0.475
    assert isinstance(decision, Reject) and decision.reason is Reason.SLIPPAGE
    assert check(it, p, ob=book(bid="0.48", ask="0.55")) == Approve()


def test_empty_book_is_no_liquidity():
    buy = check(intent(), ob=OrderBook(TOKEN))
    assert isinstance(buy, Reject) and buy.reason is Reason.NO_LIQUIDITY
    missing = check(intent(), ob=None)
    assert isinstance(missing, Reject) and missing.reason is Reason.NO_LIQUIDITY
    # A buy needs asks, a sell needs bids.
    only_bids = OrderBook(TOKEN, bids=(PriceLevel(D("0.50"), D(100)),))
    assert check(intent(side="BUY"), ob=only_bids).reason is Reason.NO_LIQUIDITY
    only_asks = OrderBook(TOKEN, asks=(PriceLevel(D("0.50"), D(100)),))
    assert check(intent(side="SELL"), ob=only_asks).reason is Reason.NO_LIQUIDITY
    assert check(intent(side="BUY"), ob=only_asks) == Approve()


# -- deny / allow lists ------------------------------------------------------------------
def test_deny_list_by_condition_id_case_insensitive():
    limits = RiskLimits(deny_markets=[CONDITION.upper().replace("0X", "0x")])
    decision = check(intent(side="BUY"), limits=limits)
    assert isinstance(decision, Reject) and decision.reason is Reason.MARKET_DENIED
    # exits stay possible from a denied market
    assert not isinstance(check(intent(side="SELL"), limits=limits), Reject)
    # The intent's spelling does not matter either.
    decision = check(intent(condition_id=CONDITION.upper()), limits=RiskLimits(deny_markets=[CONDITION]))
    assert decision.reason is Reason.MARKET_DENIED
    assert check(intent(token_id=TOKEN_B, condition_id=CONDITION_B), limits=limits) == Approve()


def test_deny_list_by_token_id():
    token = "0xAbC" + "1" * 10
    limits = RiskLimits(deny_markets=[" " + token.lower() + " "])
    decision = check(intent(token_id=token.upper().replace("0X", "0x")), limits=limits)
    assert isinstance(decision, Reject) and decision.reason is Reason.MARKET_DENIED


def test_allow_list_by_condition_id_and_by_token_id():
    by_cond = RiskLimits(allow_markets=[CONDITION.upper()])
    assert check(intent(), limits=by_cond) == Approve()
    outside = check(intent(token_id=TOKEN_B, condition_id=CONDITION_B), limits=by_cond)
    assert isinstance(outside, Reject) and outside.reason is Reason.MARKET_NOT_ALLOWED
    token = "0xAbC" + "1" * 10
    by_token = RiskLimits(allow_markets=[token])
    assert check(intent(token_id=token.lower(), condition_id=CONDITION_B), limits=by_token) == Approve()
    assert check(intent(), limits=by_token).reason is Reason.MARKET_NOT_ALLOWED


def test_deny_wins_over_allow():
    limits = RiskLimits(allow_markets=[CONDITION], deny_markets=[TOKEN])
    assert check(intent(), limits=limits).reason is Reason.MARKET_DENIED


# -- trades per window -----------------------------------------------------------------------
def test_trades_per_window_rejects_at_the_limit():
    limits = RiskLimits(max_orders_per_window=3, window_s=60)
    p = holding((LEADER, TOKEN, CONDITION, "20", "0.50"))
    for seconds in (50, 30, 10):
        p.note_order(T0 - timedelta(seconds=seconds), limits.window)
    for side in ("BUY", "SELL"):
        decision = check(intent(side=side), p, limits)
        assert isinstance(decision, Reject) and decision.reason is Reason.RATE_LIMIT


def test_trades_per_window_ignores_older_orders():
    limits = RiskLimits(max_orders_per_window=3, window_s=60)
    p = Portfolio()
    for seconds in (120, 61, 30, 10):
        p.note_order(T0 - timedelta(seconds=seconds), limits.window)
    assert check(intent(), p, limits) == Approve()  # only 2 inside the window
    p.note_order(T0, limits.window)
    assert check(intent(), p, limits).reason is Reason.RATE_LIMIT
    # A minute later the window is empty again.
    assert check(intent(), p, limits, now=T0 + timedelta(seconds=61)) == Approve()


# -- trading state ---------------------------------------------------------------------------
def test_halted_rejects_buys_and_sells():
    p = holding((LEADER, TOKEN, CONDITION, "20", "0.50"))
    for side in ("BUY", "SELL"):
        decision = check(intent(side=side), p, state=TradingState.HALTED)
        assert isinstance(decision, Reject) and decision.reason is Reason.TRADING_HALTED


def test_reducing_rejects_buys_and_approves_sells():
    p = holding((LEADER, TOKEN, CONDITION, "20", "0.50"))
    decision = check(intent(side="BUY"), p, state=TradingState.REDUCING)
    assert isinstance(decision, Reject) and decision.reason is Reason.REDUCING_ONLY
    assert check(intent(side="SELL"), p, state=TradingState.REDUCING) == Approve()


# -- leader budget ------------------------------------------------------------------------
def test_leader_budget_reduces_and_rejects():
    p = holding((LEADER, TOKEN_B, CONDITION_B, "160", "0.50"))  # 80 USDC from LEADER
    assert p.leader_exposure[LEADER] == D("80")
    it = intent(size="100", limit="0.50")  # 50 USDC; 20 left of a 100 budget
    assert check(it, p, budget=D("100")) == Reduce(D("40.00"), Reason.LEADER_BUDGET)
    full = check(it, p, budget=D("80"))
    assert isinstance(full, Reject) and full.reason is Reason.LEADER_BUDGET
    # Another leader's budget is untouched by LEADER's exposure; no budget means no limit.
    assert check(intent(size="100", limit="0.50", leader=LEADER2), p, budget=D("100")) == Approve()
    assert check(it, p, budget=None) == Approve()


@pytest.mark.parametrize("state", [TradingState.HALTED, TradingState.REDUCING])
def test_state_checked_before_anything_else(state):
    # Even with no book and a denied market, the state decides first.
    decision = check(intent(), limits=RiskLimits(deny_markets=[CONDITION]), state=state, ob=None)
    assert isinstance(decision, Reject)
    assert decision.reason in (Reason.TRADING_HALTED, Reason.REDUCING_ONLY)
