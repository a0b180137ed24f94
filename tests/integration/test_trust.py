"""Defects of the trust pass (issue 14) in the engine itself, on the test profile."""
from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from dependency_injector import providers

from copytrader.domain.model import ExecStatus, ExecutionResult, IntentStatus, Reason, TradingState
from copytrader.testing import T0, TOKEN, book, make_app, make_trade

D = Decimal


class CountingMarket:
    """Market data that counts the remote calls it answers."""

    def __init__(self, inner, fail: bool = False):
        self.inner, self.fail, self.calls = inner, fail, 0

    def market(self, token_id):
        self.calls += 1
        if self.fail:
            raise ConnectionError("CLOB unreachable")
        return self.inner.market(token_id)

    def book(self, token_id):
        self.calls += 1
        if self.fail:
            raise ConnectionError("CLOB unreachable")
        return self.inner.book(token_id)


def test_once_the_breaker_halts_trades_are_recorded_halted_without_remote_calls():
    app, fakes = make_app({"risk": {"max_consecutive_faults": "3"}})
    fakes.market.put(*book(TOKEN, asks=[("0.51", "1000")]))
    market = CountingMarket(fakes.market, fail=True)
    app.container.market.override(providers.Object(market))
    reasons = [app.process(make_trade(seq=n)).reason for n in range(10)]
    assert reasons == ["market_data_error"] * 3 + ["trading_halted"] * 7
    assert market.calls == 3  # 65 GET /book in a row before: none once HALTED
    assert app.state().state is TradingState.HALTED and app.state().reason.startswith("circuit breaker")


def test_a_run_that_ends_halted_by_the_breaker_says_so():
    app, fakes = make_app({"risk": {"max_consecutive_faults": "2"}})
    app.container.market.override(providers.Object(CountingMarket(fakes.market, fail=True)))
    for n in range(4):
        fakes.feed.push(make_trade(seq=n))
    summary = app.run()
    assert summary.halted_by_breaker and summary.to_dict()["halted_by_circuit_breaker"] is True
    assert summary.state == "HALTED" and summary.rejected == {"market_data_error": 2, "trading_halted": 2}
    app.halt("a person's halt")
    assert not app.run().halted_by_breaker


def test_a_copy_made_smaller_names_the_limit_not_the_executions_message():
    """max_trade_usdc=5 with fixed_usdc=20 on a thin book: the summary said
    "copied smaller because of: FOK not filled: 8 of 16.12 available ..."."""
    app, fakes = make_app({"risk": {"max_trade_usdc": "5"}, "sizing": {"fixed_usdc": "20"}})
    fakes.market.put(*book(TOKEN, asks=[("0.31", "8")]))
    fakes.feed.push(make_trade(price="0.31", seq=1))
    summary = app.run()
    limit = Reason.MAX_TRADE_NOTIONAL.value  # named after its setting, max_trade_usdc
    assert summary.outcomes == {"unfilled": 1} and summary.reduced == {limit: 1}
    fakes.market.put(*book(TOKEN, asks=[("0.31", "100")]))
    out = app.process(make_trade(price="0.31", seq=2))
    assert (out.status, out.limit, out.reduced, out.reason) == ("filled", limit, True, limit)


def test_the_daily_loss_reducing_state_lifts_at_the_next_utc_day_a_persons_does_not():
    app, fakes = make_app({"risk": {"daily_loss_limit_usdc": "3"}, "sizing": {"fixed_usdc": "20"}})
    fakes.market.put(*book(TOKEN, bids=[("0.30", "1000")], asks=[("0.51", "1000")]))
    app.process(make_trade(side="BUY", price="0.50", seq=1))
    app.process(make_trade(side="SELL", price="0.30", size="100", seq=2))
    assert app.state().state is TradingState.REDUCING
    assert app.process(make_trade(seq=3)).reason == "reducing_only"
    tomorrow = T0.replace(hour=0) + timedelta(days=1, minutes=1)
    fakes.clock.set(tomorrow)
    ts = int(tomorrow.timestamp())
    assert app.process(make_trade(timestamp=ts, seq=4)).status == "filled"
    assert app.state().state is TradingState.ACTIVE and "new UTC day" in app.state().reason
    # a person's reduce-only is theirs until resume
    app.service.reduce_only("manual")
    fakes.clock.set(tomorrow + timedelta(days=1))
    out = app.process(make_trade(timestamp=ts + 86400, seq=5))
    assert out.reason == "reducing_only" and app.state().state is TradingState.REDUCING


class Lookups:
    """An executor whose POST answer says nothing, and whose lookups tell the
    given answers in turn: (status, shares matched) at 0.51."""

    def __init__(self, inner, *answers):
        self.inner, self.answers = inner, list(answers)

    def prepare(self, intent, market):
        return self.inner.prepare(intent, market)

    def submit(self, order, intent, market):
        return ExecutionResult(intent.id, ExecStatus.UNKNOWN, execution_id=order.order_id, error="timeout")

    def lookup(self, record, market):
        status, shares = self.answers.pop(0)
        return ExecutionResult(record.intent_id, status, filled_size=D(shares), avg_price=D("0.51"),
                               execution_id=record.execution_id)


def test_a_fill_read_again_is_booked_once():
    """A resting order partly matched is read at each start: the position
    moves by what is new only (it was booked again each time: 10, 20, 40)."""
    app, fakes = make_app()
    fakes.market.put(*book(TOKEN, asks=[("0.51", "1000")]))
    app.container.executor.override(providers.Object(Lookups(
        app.container.executor(), (ExecStatus.UNKNOWN, "10"), (ExecStatus.UNKNOWN, "10"), (ExecStatus.FILLED, "20"))))
    assert app.process(make_trade()).status == "unknown"
    assert app.positions()[0].size == D("10")
    sizes = []
    for _ in range(2):  # two restarts
        app.container.service.reset()
        app.service.start()
        sizes.append(app.positions()[0].size)
    assert sizes == [D("10"), D("20")] and app.positions()[0].cost == D("10.2")
    assert app.history()[0].status is IntentStatus.FILLED


def test_not_filled_orders_get_a_log_line_and_debug_gives_the_decision(caplog):
    app, fakes = make_app()
    fakes.market.put(*book(TOKEN, asks=[("0.50", "8")]))
    with caplog.at_level(logging.DEBUG, logger="copytrader"):
        assert app.process(make_trade(seq=1)).status == "unfilled"
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("not filled BUY") and "FOK not filled" in m for m in messages)
    assert any(m.startswith("decision") and "limit 0.51" in m for m in messages)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="copytrader"):
        app.process(make_trade(seq=2))
    assert not any(r.getMessage().startswith("decision") for r in caplog.records)


def test_reconciliation_at_start_stamps_the_wall_clock_not_the_replays():
    """A replay's clock starts at the epoch before its first row: start-up
    reconciliation stamped settled intents 1970-01-01 and booked their PnL
    there, out of reach of the daily loss limit."""
    from copytrader.adapters.clock import EPOCH, ManualClock

    app, fakes = make_app()
    fakes.market.put(*book(TOKEN, asks=[("0.51", "1000")]))
    app.container.executor.override(providers.Object(Lookups(
        app.container.executor(), (ExecStatus.UNKNOWN, "0"), (ExecStatus.FILLED, "20"))))
    assert app.process(make_trade()).status == "unknown"
    wall = ManualClock(T0 + timedelta(hours=2))
    fakes.clock.set(EPOCH)  # a replay engine restarted: no row read yet
    app.container.wall_clock.override(providers.Object(wall))
    app.container.service.reset()
    assert app.service.start() == 0
    [rec] = app.history()
    assert rec.status is IntentStatus.FILLED and rec.updated_at == wall.now()
