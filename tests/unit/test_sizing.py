"""size_copy, limit_price, intent ids and settings validation."""
from __future__ import annotations

from decimal import Decimal

import attrs
import pytest

from copytrader.domain.model import CopyIntent, OrderType, Reason, Reject, Side
from copytrader.domain.portfolio import Portfolio
from copytrader.domain.sizing import (
    FollowerSettings, LeaderSettings, SizingMode, SizingPolicy, intent_id, limit_price, size_copy,
)

from .domain_helpers import CONDITION, DAY0, LEADER, LEADER2, T0, TOKEN, market, trade

D = Decimal
ZERO = D(0)
LS = LeaderSettings(LEADER)


def follower(mode: SizingMode = SizingMode.FIXED, **kw) -> FollowerSettings:
    policy = {k: kw.pop(k) for k in ("fixed_usdc", "multiplier", "bankroll_pct") if k in kw}
    return FollowerSettings(sizing=SizingPolicy(mode=mode, **policy), **kw)


def sized(tr, fs=None, ls=LS, portfolio=None, mk=None) -> CopyIntent:
    result = size_copy(tr, fs or follower(), ls, portfolio or Portfolio(), mk or market(), T0)
    assert isinstance(result, CopyIntent), result
    return result


def held(size: str, price: str = "0.50", leader: str = LEADER, leader_bought: str | None = None) -> Portfolio:
    """We hold ``size`` from ``leader``; the leader was seen buying ``leader_bought``."""
    p = Portfolio()
    p.apply_fill(leader, TOKEN, CONDITION, Side.BUY, D(size), D(price), ZERO, DAY0)
    if leader_bought is not None:
        p.observe_leader(trade(leader=leader, side="BUY", size=leader_bought))
    return p


# -- BUY sizing ------------------------------------------------------------------------
def test_fixed_notional_rounds_down_to_cents_of_a_share():
    it = sized(trade(price="0.30"), follower(SizingMode.FIXED, fixed_usdc=D("10")))
    assert it.size == D("33.33")  # 10 / 0.30 = 33.333...
    assert it.side is Side.BUY
    it = sized(trade(price="0.07"), follower(SizingMode.FIXED, fixed_usdc=D("1")))
    assert it.size == D("14.28")  # 14.2857 rounded down, not to nearest
    it = sized(trade(price="0.50"), follower(SizingMode.FIXED, fixed_usdc=D("10")))
    assert it.size == D("20")


def test_fixed_notional_ignores_leader_size():
    fs = follower(SizingMode.FIXED, fixed_usdc=D("10"))
    assert sized(trade(size="5"), fs).size == sized(trade(size="50000"), fs).size == D("20")


def test_proportional_uses_leader_size_times_multipliers():
    fs = follower(SizingMode.PROPORTIONAL, multiplier=D("0.1"))
    assert sized(trade(size="123.45"), fs).size == D("12.34")  # 12.345 rounded down
    ls = LeaderSettings(LEADER, multiplier=D("2.5"))
    assert sized(trade(size="100"), fs, ls).size == D("25")


def test_bankroll_percent_uses_bankroll_plus_realised_total():
    fs = follower(SizingMode.BANKROLL, bankroll_pct=D("0.02"), bankroll=D("1000"))
    assert sized(trade(price="0.40"), fs).size == D("50")  # 20 / 0.40
    p = Portfolio(realised_total=D("250"))
    assert sized(trade(price="0.40"), fs, portfolio=p).size == D("62.5")  # 25 / 0.40
    p = Portfolio(realised_total=D("-500"))
    assert sized(trade(price="0.40"), fs, portfolio=p).size == D("25")  # 10 / 0.40


def test_bankroll_wiped_out_rejects():
    fs = follower(SizingMode.BANKROLL, bankroll=D("100"))
    rej = size_copy(trade(), fs, LS, Portfolio(realised_total=D("-100")), market(), T0)
    assert isinstance(rej, Reject) and rej.reason is Reason.INVALID_SIZE


def test_leader_multiplier_scales_fixed_notional():
    fs = follower(SizingMode.FIXED, fixed_usdc=D("10"))
    assert sized(trade(price="0.50"), fs, LeaderSettings(LEADER, multiplier=D("0.5"))).size == D("10")


def test_per_leader_sizing_overrides_follower_policy():
    fs = follower(SizingMode.FIXED, fixed_usdc=D("10"))
    override = LeaderSettings(LEADER, sizing=SizingPolicy(mode=SizingMode.PROPORTIONAL, multiplier=D("0.5")))
    assert sized(trade(size="100", price="0.50"), fs, override).size == D("50")
    override_fixed = LeaderSettings(LEADER, sizing=SizingPolicy(mode=SizingMode.FIXED, fixed_usdc=D("3")))
    assert sized(trade(size="100", price="0.50"), fs, override_fixed).size == D("6")
    assert sized(trade(size="100", price="0.50"), fs).size == D("20")


def test_buy_rounding_to_zero_rejects():
    fs = follower(SizingMode.PROPORTIONAL, multiplier=D("0.1"))
    rej = size_copy(trade(size="0.09"), fs, LS, Portfolio(), market(), T0)
    assert isinstance(rej, Reject) and rej.reason is Reason.INVALID_SIZE


def test_intent_fields_come_from_trade_and_settings():
    fs = follower(order_type=OrderType.FAK)
    tr = trade(leader=LEADER.upper().replace("0X", "0x"))
    it = sized(tr, fs)
    assert it.trade_id == tr.id and it.leader == LEADER and it.token_id == TOKEN
    assert it.condition_id == CONDITION and it.follower == "default"
    assert it.leader_price == D("0.50") and it.order_type is OrderType.FAK and it.created_at == T0
    assert it.limit_price == D("0.51")


# -- SELL sizing ------------------------------------------------------------------------------
def test_sell_mirrors_the_leaders_fraction():
    p = held("40", leader_bought="100")
    it = sized(trade(side="SELL", size="25"), portfolio=p)
    assert it.side is Side.SELL
    assert it.size == D("10")  # 25% of our 40


def test_sell_fraction_rounds_down():
    p = held("33.34", leader_bought="300")
    assert sized(trade(side="SELL", size="100"), portfolio=p).size == D("11.11")  # 11.1133...


def test_sell_ignores_follower_buy_policy():
    p = held("40", leader_bought="100")
    fs = follower(SizingMode.PROPORTIONAL, multiplier=D("5"))
    assert sized(trade(side="SELL", size="25"), fs, portfolio=p).size == D("10")


@pytest.mark.parametrize("leader_sells", ["100", "150"])
def test_sell_all_when_leader_sells_all_or_more_than_seen(leader_sells):
    # An odd-lot holding (a partial fill) is sold in full, not rounded to cents of a share.
    p = held("40.123456", leader_bought="100")
    assert sized(trade(side="SELL", size=leader_sells), portfolio=p).size == D("40.123456")


def test_sell_all_when_we_never_saw_the_leaders_buys():
    p = held("12")  # no observed leader holding
    assert sized(trade(side="SELL", size="1"), portfolio=p).size == D("12")


def test_sell_without_position_rejects_no_position():
    rej = size_copy(trade(side="SELL"), follower(), LS, Portfolio(), market(), T0)
    assert isinstance(rej, Reject) and rej.reason is Reason.NO_POSITION
    # A position copied from another leader does not count.
    p = held("40", leader=LEADER2)
    rej = size_copy(trade(side="SELL"), follower(), LS, p, market(), T0)
    assert isinstance(rej, Reject) and rej.reason is Reason.NO_POSITION


def test_sell_never_exceeds_what_we_hold():
    for ours, seen, sold in [("40", "100", "99.99"), ("0.05", "10", "9"), ("7.77", "3", "2.99")]:
        p = held(ours, leader_bought=seen)
        it = sized(trade(side="SELL", size=sold), portfolio=p)
        assert ZERO < it.size <= D(ours)


def test_sell_fraction_rounding_to_zero_rejects():
    p = held("0.05", leader_bought="1000")
    rej = size_copy(trade(side="SELL", size="1"), follower(), LS, p, market(), T0)
    assert isinstance(rej, Reject) and rej.reason is Reason.INVALID_SIZE


# -- limit price ------------------------------------------------------------------------------
@pytest.mark.parametrize("side, leader, slip, tick, expected", [
    ("BUY", "0.50", "0.02", "0.01", "0.51"),
    ("BUY", "0.53", "0.02", "0.01", "0.54"),   # 0.5406 rounded down (our favour)
    ("BUY", "0.505", "0.02", "0.001", "0.515"),  # 0.5151 rounded down
    ("BUY", "0.50", "0", "0.01", "0.50"),
    ("BUY", "0.505", "0", "0.01", "0.51"),  # never below the leader's price
    ("BUY", "0.99", "0.02", "0.01", "0.99"),  # capped at 1 - tick
    ("BUY", "0.01", "0.02", "0.01", "0.01"),
    ("SELL", "0.50", "0.02", "0.01", "0.49"),
    ("SELL", "0.53", "0.02", "0.01", "0.52"),  # 0.5194 rounded up (our favour)
    ("SELL", "0.505", "0.02", "0.001", "0.495"),  # 0.4949 rounded up
    ("SELL", "0.505", "0", "0.01", "0.50"),  # never above the leader's price
    ("SELL", "0.99", "0.02", "0.01", "0.98"),
    ("SELL", "0.01", "0.02", "0.01", "0.01"),  # floored at the tick
])
def test_limit_price(side, leader, slip, tick, expected):
    price = limit_price(Side(side), D(leader), D(slip), D(tick))
    assert price == D(expected)
    assert D(tick) <= price <= 1 - D(tick)
    assert price % D(tick) == 0


@pytest.mark.parametrize("tick", ["0.01", "0.001"])
@pytest.mark.parametrize("leader", ["0.001", "0.005", "0.01", "0.02", "0.49", "0.98", "0.99", "0.995", "0.999"])
@pytest.mark.parametrize("slip", ["0", "0.02", "0.5"])
def test_limit_price_on_tick_and_inside_the_unit_interval(tick, leader, slip):
    t = D(tick)
    for side in Side:
        price = limit_price(side, D(leader), D(slip), t)
        assert 0 < price < 1
        assert t <= price <= 1 - t
        assert price % t == 0
        bound = D(leader) * (1 + D(slip)) if side is Side.BUY else D(leader) * (1 - D(slip))
        # Within the slippage allowance unless the tick grid forces the nearest tradable price.
        if side is Side.BUY and D(leader) % t == 0 and D(leader) <= 1 - t:
            assert D(leader) <= price <= bound
        if side is Side.SELL and D(leader) % t == 0 and D(leader) >= t:
            assert bound <= price <= D(leader)


# -- intent id ------------------------------------------------------------------------------------
def test_intent_id_is_deterministic():
    tr = trade()
    assert sized(tr).id == sized(trade()).id == intent_id(tr, follower(), LS)
    assert intent_id(tr, follower(), LS) != intent_id(trade(tx_hash="0x" + "55" * 32), follower(), LS)


@pytest.mark.parametrize("change", [
    lambda fs: attrs.evolve(fs, sizing=attrs.evolve(fs.sizing, fixed_usdc=D("11"))),
    lambda fs: attrs.evolve(fs, sizing=attrs.evolve(fs.sizing, mode=SizingMode.PROPORTIONAL)),
    lambda fs: attrs.evolve(fs, sizing=attrs.evolve(fs.sizing, multiplier=D("0.2"))),
    lambda fs: attrs.evolve(fs, sizing=attrs.evolve(fs.sizing, bankroll_pct=D("0.05"))),
    lambda fs: attrs.evolve(fs, max_slippage=D("0.03")),
    lambda fs: attrs.evolve(fs, order_type=OrderType.FAK),
    lambda fs: attrs.evolve(fs, id="other"),
])
def test_intent_id_changes_with_follower_settings(change):
    tr, fs = trade(), follower()
    assert intent_id(tr, change(fs), LS) != intent_id(tr, fs, LS)


def test_intent_id_ignores_decimal_spelling_of_settings():
    tr = trade()
    a = follower(fixed_usdc=D("10"), max_slippage=D("0.02"))
    b = follower(fixed_usdc=D("10.00"), max_slippage=D("0.020"))
    assert intent_id(tr, a, LS) == intent_id(tr, b, LS)


def test_intent_id_changes_with_leader_sizing():
    tr, fs = trade(), follower()
    base = intent_id(tr, fs, LS)
    assert intent_id(tr, fs, LeaderSettings(LEADER, multiplier=D("2"))) != base
    assert intent_id(tr, fs, LeaderSettings(LEADER, sizing=SizingPolicy(fixed_usdc=D("5")))) != base
    # A name or budget does not change how the trade is sized.
    assert intent_id(tr, fs, LeaderSettings(LEADER, name="whale", budget_usdc=D("5"))) == base


# -- settings validation ---------------------------------------------------------------------------
@pytest.mark.parametrize("address", [
    "", "0x", "ab" * 21, "0x" + "ab" * 19, "0x" + "ab" * 21, "0x" + "zz" * 20, "1x" + "ab" * 20,
    "0x" + "ab" * 19 + "a",
])
def test_leader_settings_rejects_a_bad_address(address):
    with pytest.raises(ValueError):
        LeaderSettings(address)


def test_leader_settings_normalises_a_good_address():
    assert LeaderSettings("  0x" + "AB" * 20 + " ").address == LEADER


@pytest.mark.parametrize("bad", [D("0"), D("-1"), D("NaN"), D("Infinity")])
def test_non_positive_settings_are_rejected(bad):
    with pytest.raises(ValueError):
        LeaderSettings(LEADER, multiplier=bad)
    with pytest.raises(ValueError):
        SizingPolicy(fixed_usdc=bad)
    with pytest.raises(ValueError):
        SizingPolicy(multiplier=bad)
    with pytest.raises(ValueError):
        SizingPolicy(bankroll_pct=bad)
    with pytest.raises(ValueError):
        FollowerSettings(bankroll=bad)


def test_bankroll_counts_a_pending_payout_as_the_cash_it_will_pay():
    fs = follower(SizingMode.BANKROLL, bankroll_pct=D("0.02"), bankroll=D("1000"))
    live, paper = Portfolio(), Portfolio()
    for p in (live, paper):
        p.apply_fill(LEADER, TOKEN, CONDITION, Side.BUY, D("100"), D("0.40"), D(0), DAY0)
    live.resolve(CONDITION, {TOKEN: D(1)}, DAY0, pay=False)
    paper.resolve(CONDITION, {TOKEN: D(1)}, DAY0, pay=True)
    other = str(10**70 + 9)
    # 1000 + 60 gained: 21.2 / 0.40, whether the payout is redeemed yet or not
    assert sized(trade(price="0.40", token_id=other), fs, portfolio=live).size == D("53")
    assert sized(trade(price="0.40", token_id=other), fs, portfolio=paper).size == D("53")
