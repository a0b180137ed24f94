"""Property tests of the pure domain (deterministic: derandomized hypothesis)."""
from __future__ import annotations

from decimal import Decimal
from typing import Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copytrader.domain.model import (
    CopyIntent, LeaderTrade, MarketInfo, Reduce, Reject, Side, TradingState, micro, round_down,
)
from copytrader.domain.portfolio import Portfolio, Position
from copytrader.domain.risk import RiskKernel, RiskLimits
from copytrader.domain.sizing import FollowerSettings, LeaderSettings, SizingMode, SizingPolicy, size_copy
from copytrader.domain.validation import validate_intent, validate_trade

from .domain_helpers import DAY0, T0, book

D = Decimal
ZERO = D(0)
CENT = D("0.01")
PROPS = settings(max_examples=200, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

LEADERS = ["0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "c3" * 20]
# token -> condition: two outcome tokens share market A.
MARKETS = {
    "1" * 40: "0x" + "aa" * 32,
    "2" * 40: "0x" + "aa" * 32,
    "3" * 40: "0x" + "bb" * 32,
    "4" * 40: "0x" + "cc" * 32,
    "5" * 40: "0x" + "dd" * 32,
}
TOKENS = list(MARKETS)

trade_steps = st.lists(
    st.tuples(
        st.integers(0, len(LEADERS) - 1),
        st.integers(0, len(TOKENS) - 1),
        st.sampled_from(["BUY", "BUY", "SELL"]),
        st.integers(1, 99),  # price in ticks of 0.01
        st.integers(1, 40_000),  # size in hundredths of a share
    ),
    min_size=1, max_size=40,
)

limits_st = st.builds(
    RiskLimits,
    max_trade_usdc=st.sampled_from([D("5"), D("25"), D("60"), None]),
    max_market_usdc=st.sampled_from([D("20"), D("45"), D("150"), None]),
    max_total_exposure_usdc=st.sampled_from([D("40"), D("100"), D("400")]),
    max_open_positions=st.sampled_from([1, 2, 3, None]),
    daily_loss_limit_usdc=st.sampled_from([D("10"), None]),
    max_orders_per_window=st.just(None),
)

policy_st = st.one_of(
    st.builds(SizingPolicy, mode=st.just(SizingMode.FIXED),
              fixed_usdc=st.sampled_from([D("1"), D("7.5"), D("30"), D("200")])),
    st.builds(SizingPolicy, mode=st.just(SizingMode.PROPORTIONAL),
              multiplier=st.sampled_from([D("0.05"), D("0.5"), D("1"), D("3")])),
    st.builds(SizingPolicy, mode=st.just(SizingMode.BANKROLL),
              bankroll_pct=st.sampled_from([D("0.01"), D("0.1"), D("0.5")])),
)

budget_st = st.sampled_from([None, D("15"), D("50"), D("500")])


def _check_caps(p: Portfolio, limits: RiskLimits, budgets: dict[str, Optional[Decimal]]) -> None:
    # Recompute every exposure from the positions themselves, so that a broken
    # running aggregate cannot hide a breach.
    total, markets, leaders, tokens = ZERO, {}, {}, set()
    for pos in p.positions():
        assert pos.size > 0 and pos.cost >= 0
        total += pos.cost
        markets[pos.condition_id] = markets.get(pos.condition_id, ZERO) + pos.cost
        leaders[pos.leader] = leaders.get(pos.leader, ZERO) + pos.cost
        tokens.add(pos.token_id)
    assert total <= limits.max_total_exposure_usdc
    if limits.max_market_usdc is not None:
        for cond, used in markets.items():
            assert used <= limits.max_market_usdc, (cond, used)
    for leader, used in leaders.items():
        if budgets.get(leader) is not None:
            assert used <= budgets[leader], (leader, used)
    if limits.max_open_positions is not None:
        assert len(tokens) <= limits.max_open_positions
    assert all(v >= 0 for v in p.token_size.values())
    # ... and the running aggregates the kernel reads agree with them.
    assert p.total_exposure == total
    assert {k: v for k, v in p.market_exposure.items() if v != 0} == {k: v for k, v in markets.items() if v != 0}
    assert {k: v for k, v in p.leader_exposure.items() if v != 0} == {k: v for k, v in leaders.items() if v != 0}
    assert p.open_tokens == len(tokens)


@PROPS
@given(
    steps=trade_steps, limits=limits_st, policy=policy_st,
    budgets=st.tuples(budget_st, budget_st, budget_st),
    min_size=st.sampled_from([D("1"), D("5")]),
)
def test_no_sequence_of_leader_trades_breaks_a_cap(steps, limits, policy, budgets, min_size):
    follower = FollowerSettings(sizing=policy, bankroll=D("500"), max_slippage=D("0.02"))
    leaders = {addr: LeaderSettings(addr, budget_usdc=b) for addr, b in zip(LEADERS, budgets)}
    budget_of = {addr: ls.budget_usdc for addr, ls in leaders.items()}
    kernel = RiskKernel(limits)
    p = Portfolio()
    buys: list[tuple[int, int]] = []
    for i, (li, ti, side, ticks, cents) in enumerate(steps):
        if side == "SELL" and buys:
            li, ti = buys[(li * len(TOKENS) + ti) % len(buys)]  # mostly sell what the leader bought
        elif side == "BUY":
            buys.append((li, ti))
        token = TOKENS[ti]
        mk = MarketInfo(token_id=token, condition_id=MARKETS[token], min_order_size=min_size)
        price = D(ticks) * CENT
        tr = LeaderTrade(
            leader=LEADERS[li], token_id=token, condition_id=mk.condition_id, side=side,
            size=D(cents) * CENT, price=price, usdc_size=D(cents) * CENT * price,
            timestamp=int(T0.timestamp()), tx_hash="0x" + f"{i:064x}",
        )
        ls = leaders[tr.leader]
        rejection = validate_trade(tr, T0, follower.max_trade_age_s)
        assert rejection is None  # every generated trade is well formed
        sized = size_copy(tr, follower, ls, p, mk, T0)
        if not isinstance(sized, Reject):
            it: CopyIntent = sized
            rejection = validate_intent(it, mk)
            if rejection is None:
                verdict = kernel.check(it, p, TradingState.ACTIVE, T0, book(bid=price, ask=price, token_id=token),
                                       mk.min_order_size, ls.budget_usdc)
                if isinstance(verdict, Reduce):
                    assert verdict.size < it.size and verdict.size >= mk.min_order_size
                    it = it.with_size(verdict.size)
                if not isinstance(verdict, Reject):
                    if it.side is Side.BUY:
                        if limits.max_trade_usdc is not None:
                            assert it.notional <= limits.max_trade_usdc
                    else:
                        pos = p.position(it.leader, it.token_id)
                        assert pos is not None and it.size <= pos.size
                    p.apply_fill(it.leader, it.token_id, it.condition_id, it.side, it.size,
                                 it.limit_price, ZERO, DAY0)
        p.observe_leader(tr)
        _check_caps(p, limits, budget_of)


# -- PnL identity ---------------------------------------------------------------------------
pnl_ops = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(1, 10**9), st.integers(1, 999), st.integers(0, 50_000)),
        st.tuples(st.just("sell"), st.integers(1, 100), st.integers(1, 999), st.integers(0, 50_000)),
        st.tuples(st.just("resolve"), st.sampled_from([0, 1]), st.just(0), st.just(0)),
    ),
    min_size=1, max_size=30,
)


@PROPS
@given(ops=pnl_ops)
def test_pnl_identity_realised_minus_cost_equals_cash_flow(ops):
    pos = Position(leader=LEADERS[0], token_id=TOKENS[0], condition_id=MARKETS[TOKENS[0]])
    cash = ZERO
    for kind, a, b, c in ops:
        fee = D(c) * D("0.000001")
        price = D(b) * D("0.001")
        if kind == "buy":
            size = D(a) * D("0.000001")  # micro shares: notional needs quantising
            pos = pos.fill(Side.BUY, size, price, fee)
            cash += -micro(size * price) - fee
        elif kind == "sell":
            size = round_down(pos.size * D(a) / 100, D("0.000001"))
            if size <= 0:
                continue
            pos = pos.fill(Side.SELL, size, price, fee)
            cash += micro(size * price) - fee
        else:
            if not pos.is_open:  # a market resolves once
                continue
            payout = D(a)
            cash += micro(pos.size * payout)
            pos = pos.resolve(payout)
        assert pos.realised - pos.cost == cash
        assert pos.size >= 0 and pos.cost >= 0
        if pos.size == 0:
            assert pos.cost == 0


# -- positions equal the sum of fills --------------------------------------------------------------
fill_ops = st.lists(
    st.tuples(
        st.sampled_from(["buy", "buy", "sell", "resolve"]),
        st.integers(0, 1),  # leader
        st.integers(0, 2),  # token (0 and 1 share a market)
        st.integers(1, 100_000),  # buy size in cents / sell fraction in percent
        st.integers(1, 99),
    ),
    min_size=1, max_size=40,
)


@PROPS
@given(ops=fill_ops)
def test_positions_equal_the_sum_of_fills(ops):
    p = Portfolio()
    bought: dict[tuple[str, str], Decimal] = {}
    sold: dict[tuple[str, str], Decimal] = {}
    for kind, li, ti, amount, ticks in ops:
        leader, token = LEADERS[li], TOKENS[ti]
        cond, key, price = MARKETS[token], (LEADERS[li], TOKENS[ti]), D(ticks) * CENT
        if kind == "buy":
            size = D(amount) * CENT
            p.apply_fill(leader, token, cond, Side.BUY, size, price, ZERO, DAY0)
            bought[key] = bought.get(key, ZERO) + size
        elif kind == "sell":
            pos = p.position(leader, token)
            if pos is None:
                continue
            size = round_down(pos.size * D(min(amount, 100)) / 100, CENT)
            if size <= 0:
                continue
            p.apply_fill(leader, token, cond, Side.SELL, size, price, ZERO, DAY0)
            sold[key] = sold.get(key, ZERO) + size
        else:
            p.resolve(cond, {token: D(ticks % 2)}, DAY0, pay=True)
            for k in list(bought):
                if k[1] == token:
                    bought.pop(k), sold.pop(k, None)
        # A closed position starts afresh when bought again.
        for k in list(bought):
            if bought[k] - sold.get(k, ZERO) == 0:
                bought.pop(k), sold.pop(k, None)
        open_keys = {pos.key for pos in p.positions()}
        assert open_keys == set(bought)
        for pos in p.positions():
            assert pos.size == pos.bought - pos.sold
            assert pos.bought == bought[pos.key] and pos.sold == sold.get(pos.key, ZERO)
            assert pos.size > 0
        assert p.token_size == {
            t: s for t in TOKENS
            if (s := sum((q.size for q in p.positions() if q.token_id == t), ZERO)) > 0
        }
