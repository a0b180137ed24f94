"""Property-based: whatever the leaders do, no cap is ever exceeded, and the
books balance (positions = sum of fills, PnL identity)."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from copytrader.domain.model import (
    ZERO, MarketInfo, OrderBook, PriceLevel, Reduce, Reject, Side, TradingState, micro,
)
from copytrader.domain.portfolio import Portfolio, Position
from copytrader.domain.risk import RiskKernel, RiskLimits, day_key
from copytrader.domain.sizing import FollowerSettings, LeaderSettings, SizingMode, SizingPolicy, size_copy
from copytrader.domain.validation import validate_intent, validate_trade
from copytrader.testing import T0, make_trade

D = Decimal
LEADERS = ["0x" + f"{i:02x}" * 20 for i in (1, 2, 3)]
TOKENS = [str(10**20 + i) for i in range(6)]
LIMITS = RiskLimits(max_trade_usdc=D("40"), max_market_usdc=D("60"), max_total_exposure_usdc=D("150"),
                    max_open_positions=4, daily_loss_limit_usdc=D("30"), max_orders_per_window=1000)
BUDGET = D("70")

trades = st.lists(st.tuples(
    st.sampled_from(LEADERS), st.sampled_from(TOKENS), st.sampled_from(["BUY", "BUY", "SELL"]),
    st.integers(min_value=1, max_value=5000), st.integers(min_value=1, max_value=99)), max_size=60)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(trades, st.sampled_from(list(SizingMode)))
def test_no_sequence_of_leader_trades_breaks_a_cap(seq, mode):
    follower = FollowerSettings(sizing=SizingPolicy(mode, fixed_usdc=D("25"), multiplier=D("0.2"),
                                                    bankroll_pct=D("0.05")), bankroll=D("1000"))
    kernel = RiskKernel(LIMITS)
    pf = Portfolio()
    for i, (leader, token, side, size, cents) in enumerate(seq):
        now = T0 + timedelta(seconds=i)
        price = D(cents) / 100
        trade = make_trade(leader=leader, token_id=token, condition_id="c" + token[-1:] if token[-1] in "01" else "c2",
                           side=side, size=size, price=price, timestamp=int(now.timestamp()), seq=i)
        market = MarketInfo(token_id=token, condition_id=trade.condition_id)
        book = OrderBook(token, bids=(PriceLevel(price, D(10**6)),), asks=(PriceLevel(price, D(10**6)),))
        assert validate_trade(trade, now, 300) is None
        sized = size_copy(trade, follower, LeaderSettings(leader), pf, market, now)
        pf.observe_leader(trade)
        if isinstance(sized, Reject) or validate_intent(sized, market):
            continue
        verdict = kernel.check(sized, pf, TradingState.ACTIVE, now, book, market.min_order_size, BUDGET)
        if isinstance(verdict, Reject):
            continue
        if isinstance(verdict, Reduce):
            sized = sized.with_size(verdict.size)
        if sized.side is Side.BUY:
            assert sized.notional <= LIMITS.max_trade_usdc
        fill_price = min(sized.limit_price, price) if sized.side is Side.BUY else max(sized.limit_price, price)
        pf.apply_fill(leader, token, trade.condition_id, sized.side, sized.size, fill_price, ZERO, day_key(now))
        pf.note_order(now, LIMITS.window)
        assert pf.total_exposure <= LIMITS.max_total_exposure_usdc
        assert all(v <= LIMITS.max_market_usdc for v in pf.market_exposure.values())
        assert all(v <= BUDGET for v in pf.leader_exposure.values())
        assert pf.open_tokens <= LIMITS.max_open_positions
        assert all(p.size > 0 for p in pf.positions())


ops = st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 10_000), st.integers(1, 99),
                         st.integers(0, 50)), max_size=40)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(ops, st.sampled_from([None, 0, 1]))
def test_pnl_identity_and_positions_equal_fills(seq, payout):
    p = Position(leader=LEADERS[0], token_id=TOKENS[0], condition_id="c")
    cash = ZERO
    for op, hundredths, cents, fee_micro in seq:
        size, price, fee = D(hundredths) / 100, D(cents) / 100, D(fee_micro) / 10**6
        if op == "sell":
            size = min(size, p.size)
            if size == 0:
                continue
        side = Side.BUY if op == "buy" else Side.SELL
        p = p.fill(side, size, price, fee)
        cash += (-1 if side is Side.BUY else 1) * micro(size * price) - fee
        assert p.size == p.bought - p.sold >= 0
        mark = price
        assert p.realised + p.unrealised(mark) == cash + micro(p.size * mark)
    if payout is not None and p.is_open:
        cash += micro(p.size * payout)
        p = p.resolve(D(payout))
        assert p.size == 0 and p.realised == cash


book_ops = st.lists(st.tuples(
    st.sampled_from(["buy", "buy", "sell", "resolve", "pay", "pay"]), st.sampled_from(LEADERS[:2]),
    st.sampled_from(TOKENS[:4]), st.integers(1, 5000), st.integers(1, 99)), max_size=50)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(book_ops)
def test_resolve_then_pay_books_realised_exactly_once_and_pending_is_never_exposure(seq):
    """Live resolutions (pending, then paid) keep the books: realised − cost
    is the cash that moved (a payout counts when received), realised is
    booked once per payout, and pending positions are never open risk."""
    pf = Portfolio()
    cash = ZERO
    market = {t: "c" + str(i // 2) for i, t in enumerate(TOKENS[:4])}  # two tokens per market
    for op, leader, token, size, cents in seq:
        price, cond = D(cents) / 100, market[token]
        before = pf.realised_total
        if op == "buy" or (op == "sell" and pf.position(leader, token) is not None):
            side = Side.BUY if op == "buy" else Side.SELL
            held = pf.position(leader, token)
            qty = D(size) / 100 if side is Side.BUY else min(held.size, D(size) / 100)
            pf.apply_fill(leader, token, cond, side, qty, price, ZERO, "d")
            cash += (-1 if side is Side.BUY else 1) * micro(qty * price)
        elif op == "resolve":
            pf.resolve(cond, {t: D(1) if t == token else D(0) for t in TOKENS[:4] if market[t] == cond}, "d", pay=False)
        elif op == "pay":
            pending = [p for p in pf.pending() if p.token_id == token]
            if not pending:
                continue
            pos = pending[0]
            got = pf.pay(pos.leader, pos.token_id, pos.pending_cash, "e")
            cash += got.realised - pos.realised + pos.cost  # the amount received
            assert got.realised - pos.realised == pos.pending_cash - pos.cost
            assert pf.realised_total - before == got.realised - pos.realised
            try:
                pf.pay(pos.leader, pos.token_id, pos.pending_cash, "e")
            except ValueError:
                pass
            else:
                raise AssertionError("a payout was booked twice")
            assert pf.realised_total - before == got.realised - pos.realised
        opened, pending = pf.positions(), pf.pending()
        assert all(p.is_open for p in opened) and all(p.is_pending for p in pending)
        assert pf.total_exposure == sum((p.cost for p in opened), ZERO)
        for c in set(market.values()):
            assert pf.market_exposure.get(c, ZERO) == sum((p.cost for p in opened if p.condition_id == c), ZERO)
        assert pf.open_tokens == len({p.token_id for p in opened})
        assert all(not pf.holds_token(p.token_id) or any(q.token_id == p.token_id for q in opened) for p in pending)
        assert pf.pending_cash == sum((p.size * p.payout for p in pending), ZERO)
        held_cost = sum((p.cost for p in opened + pending), ZERO)
        assert pf.realised_total - held_cost == cash
