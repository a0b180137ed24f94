"""Trade identity, validation and sizing."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from copytrader.domain.model import Reason, Reject, Side, dec_str, round_down, round_up
from copytrader.domain.portfolio import Portfolio
from copytrader.domain.sizing import (
    FollowerSettings, LeaderSettings, SizingMode, SizingPolicy, intent_id, limit_price, size_copy,
)
from copytrader.domain.validation import validate_intent, validate_trade

from .conftest import LEADER, T0, TOKEN, intent, make_trade, market

D = Decimal


# -- identity ---------------------------------------------------------------
def test_identity_is_stable_and_case_insensitive():
    a = make_trade(leader=LEADER, tx_hash="0x" + "aB" * 32)
    b = make_trade(leader=LEADER.upper().replace("0X", "0x"), tx_hash="0x" + "Ab" * 32)
    assert a.id == b.id and a.leader == LEADER


def test_two_rows_of_one_transaction_are_distinct():
    tx = "0x" + "11" * 32
    assert make_trade(tx_hash=tx, token_id="1").id != make_trade(tx_hash=tx, token_id="2").id
    assert make_trade(tx_hash=tx, size="5").id != make_trade(tx_hash=tx, size="6").id


def test_decimal_spelling_does_not_change_identity():
    assert make_trade(size="1.50").id == make_trade(size="1.5").id
    assert dec_str(D("1.50")) == "1.5" and dec_str(D("100")) == "100"


def test_rounding_helpers():
    assert round_down(D("0.4488"), D("0.01")) == D("0.44")
    assert round_up(D("0.4412"), D("0.01")) == D("0.45")
    assert round_down(D("0.1379"), D("0.001")) == D("0.137")


# -- validation -------------------------------------------------------------
@pytest.mark.parametrize("kwargs, reason", [
    ({"side": "HOLD"}, Reason.UNKNOWN_SIDE),
    ({"price": "NaN"}, Reason.NOT_FINITE),
    ({"size": "Infinity"}, Reason.NOT_FINITE),
    ({"price": "0"}, Reason.INVALID_PRICE),
    ({"price": "1"}, Reason.INVALID_PRICE),
    ({"price": "1.7"}, Reason.INVALID_PRICE),
    ({"size": "0"}, Reason.INVALID_SIZE),
    ({"size": "-3"}, Reason.INVALID_SIZE),
])
def test_bad_trades_are_rejected_with_their_reason(kwargs, reason):
    verdict = validate_trade(make_trade(**kwargs), T0, 300)
    assert isinstance(verdict, Reject) and verdict.reason is reason


def test_staleness_uses_the_given_time():
    trade = make_trade()
    assert validate_trade(trade, T0 + timedelta(seconds=300), 300) is None
    verdict = validate_trade(trade, T0 + timedelta(seconds=301), 300)
    assert verdict is not None and verdict.reason is Reason.STALE


def test_good_trade_passes():
    assert validate_trade(make_trade(side="sell"), T0, 300) is None


def test_order_checks_min_size_tick_and_closed_market():
    assert validate_intent(intent(size="5"), market()) is None
    assert validate_intent(intent(size="4.99"), market()).reason is Reason.BELOW_MIN_SIZE
    assert validate_intent(intent(limit="0.505"), market()).reason is Reason.OFF_TICK
    assert validate_intent(intent(limit="0.505"), market(tick="0.001")) is None
    assert validate_intent(intent(), market(closed=True)).reason is Reason.MARKET_CLOSED
    assert validate_intent(intent(limit="0.995"), market()).reason is Reason.INVALID_PRICE


# -- sizing -----------------------------------------------------------------
def _size(trade, follower=FollowerSettings(), leader=LeaderSettings(LEADER), portfolio=None):
    return size_copy(trade, follower, leader, portfolio or Portfolio(), market(), T0)


def test_fixed_notional_sizing():
    got = _size(make_trade(price="0.30"))
    assert got.size == D("33.33") and got.side is Side.BUY  # 10 USDC / 0.30, down to 0.01 share


def test_proportional_sizing_times_leader_multiplier():
    follower = FollowerSettings(sizing=SizingPolicy(SizingMode.PROPORTIONAL, multiplier=D("0.1")))
    got = _size(make_trade(size="250"), follower, LeaderSettings(LEADER, multiplier=D("0.5")))
    assert got.size == D("12.5")


def test_bankroll_sizing_counts_realised_pnl():
    follower = FollowerSettings(sizing=SizingPolicy(SizingMode.BANKROLL, bankroll_pct=D("0.02")), bankroll=D("1000"))
    pf = Portfolio(realised_total=D("500"))
    assert _size(make_trade(price="0.50"), follower, portfolio=pf).size == D("60")  # 2% of 1500 / 0.5


def test_leader_sizing_overrides_the_followers():
    leader = LeaderSettings(LEADER, sizing=SizingPolicy(SizingMode.FIXED, fixed_usdc=D("50")))
    assert _size(make_trade(price="0.50"), leader=leader).size == D("100")


def _holding(ours: str, leaders: str) -> Portfolio:
    pf = Portfolio()
    pf.apply_fill(LEADER, TOKEN, "c", Side.BUY, D(ours), D("0.5"), D(0), "d")
    pf.observe_leader(make_trade(side="BUY", size=leaders))
    return pf


def test_sell_mirrors_the_fraction_the_leader_sold():
    got = _size(make_trade(side="SELL", size="25"), portfolio=_holding("40", "100"))
    assert got.size == D("10") and got.side is Side.SELL


def test_sell_of_everything_or_more_than_seen_exits_fully():
    assert _size(make_trade(side="SELL", size="100"), portfolio=_holding("40", "100")).size == D("40")
    assert _size(make_trade(side="SELL", size="150"), portfolio=_holding("40", "100")).size == D("40")


def test_sell_without_position_is_rejected():
    got = _size(make_trade(side="SELL"))
    assert isinstance(got, Reject) and got.reason is Reason.NO_POSITION


def test_limit_price_moves_against_us_on_the_tick_and_stays_inside():
    tick = D("0.01")
    assert limit_price(Side.BUY, D("0.50"), D("0.02"), tick) == D("0.51")
    assert limit_price(Side.SELL, D("0.50"), D("0.02"), tick) == D("0.49")
    assert limit_price(Side.BUY, D("0.44"), D("0.02"), tick) == D("0.44")  # 2% is under a tick
    assert limit_price(Side.BUY, D("0.437"), D("0"), tick) == D("0.44")  # never below the leader
    assert limit_price(Side.BUY, D("0.99"), D("0.05"), tick) == D("0.99")
    assert limit_price(Side.SELL, D("0.01"), D("0.05"), tick) == D("0.01")


def test_intent_id_is_deterministic_and_follows_settings():
    trade = make_trade()
    f1, f2 = FollowerSettings(), FollowerSettings(sizing=SizingPolicy(fixed_usdc=D("20")))
    leader = LeaderSettings(LEADER)
    assert intent_id(trade, f1, leader) == intent_id(make_trade(), FollowerSettings(), leader)
    assert intent_id(trade, f1, leader) != intent_id(trade, f2, leader)


def test_bad_leader_address_is_refused():
    with pytest.raises(ValueError, match="40 hex"):
        LeaderSettings("0x1234")
