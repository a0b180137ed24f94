"""The copy flow end to end on the test profile (fakes wired by the container)."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import attrs
import pytest

from copytrader.adapters.feeds.memory import MemoryFeed
from copytrader.domain.model import IntentStatus, TradingState
from copytrader.testing import CONDITION, LEADER, T0, TOKEN, book, make_app, make_trade

D = Decimal
OTHER = "2" * 40


@pytest.fixture
def engine():
    app, fakes = make_app({"risk": {"max_trade_usdc": "50", "max_market_usdc": "80"}})
    fakes.market.put(*book(TOKEN, bids=[("0.49", "500"), ("0.48", "500")], asks=[("0.51", "300"), ("0.52", "500")]))
    yield app, fakes
    app.close()


def test_buy_is_copied_at_the_book_and_recorded(engine):
    app, fakes = engine
    out = app.process(make_trade(price="0.50", size="200"))
    assert out.status == "filled"
    [rec] = app.history()
    # fixed sizing: 10 USDC / 0.50 = 20 shares; limit 0.50 * 1.02 -> 0.51
    assert (rec.size, rec.limit_price, rec.status) == (D("20"), D("0.51"), IntentStatus.FILLED)
    assert rec.avg_price == D("0.51") and rec.filled_size == D("20")
    assert rec.slippage == D("0.01")  # paid one cent more than the leader
    [pos] = app.positions()
    assert (pos.size, pos.cost, pos.leader) == (D("20"), D("10.2"), LEADER)
    assert "fill" in fakes.alerter.kinds()


def test_fok_on_a_thin_book_is_not_filled_and_leaves_no_position():
    app, fakes = make_app()
    fakes.market.put(*book(TOKEN, asks=[("0.50", "8")]))
    out = app.process(make_trade(price="0.50"))
    assert out.status == "unfilled"
    [rec] = app.history()
    assert rec.status is IntentStatus.REJECTED and "FOK not filled" in rec.error
    assert app.positions() == []


def test_fak_takes_what_the_book_has():
    app, fakes = make_app({"follower": {"order_type": "FAK"}})
    fakes.market.put(*book(TOKEN, asks=[("0.50", "8"), ("0.60", "100")]))
    out = app.process(make_trade(price="0.50"))
    assert out.status == "partial"
    [pos] = app.positions()
    assert pos.size == D("8")  # 0.60 is beyond the 0.51 limit


def test_duplicate_delivery_creates_no_second_intent(engine):
    app, _ = engine
    trade = make_trade()
    assert app.process(trade).status == "filled"
    assert app.process(make_trade()).status == "duplicate"
    assert len(app.history()) == 1
    assert app.positions()[0].size == D("20")


def test_sell_mirrors_the_leaders_fraction(engine):
    app, _ = engine
    app.process(make_trade(side="BUY", size="100", price="0.50", seq=1))
    out = app.process(make_trade(side="SELL", size="25", price="0.50", seq=2))  # leader sells 25%
    assert out.status == "filled"
    [pos] = app.positions()
    assert pos.size == D("15")  # we held 20, sold 25% = 5
    assert pos.realised == D("5") * D("0.49") - D("5") * D("0.51")


def test_sell_without_position_is_rejected_not_shorted(engine):
    app, _ = engine
    out = app.process(make_trade(side="SELL"))
    assert (out.status, out.reason) == ("rejected", "no_position")
    assert app.positions() == []


def test_unfollowed_leader_is_rejected_with_reason():
    app, fakes = make_app(environ={"COPYTRADER_LEADERS": "0x" + "11" * 20})
    fakes.market.put(*book(TOKEN, asks=[("0.51", "300")]))
    out = app.process(make_trade())
    assert (out.status, out.reason) == ("rejected", "not_followed")
    assert app.history()[0].decision == "rejected"


def test_halt_applies_to_the_next_trade_and_resume_restores(engine):
    app, _ = engine
    app.halt("test")
    out = app.process(make_trade(seq=1))
    assert (out.status, out.reason) == ("rejected", "trading_halted")
    app.resume()
    assert app.process(make_trade(seq=2)).status == "filled"


def test_halt_written_by_another_writer_applies_before_next_trade(engine):
    from copytrader.ports import StoredState
    app, fakes = engine
    app.process(make_trade(seq=1))
    fakes.store.set_state(StoredState(TradingState.HALTED, "operator"))  # e.g. `copytrader halt`
    assert app.process(make_trade(seq=2)).reason == "trading_halted"


def test_reducing_state_allows_only_sells(engine):
    app, _ = engine
    app.process(make_trade(side="BUY", seq=1))
    app.service.reduce_only("test")
    assert app.process(make_trade(side="BUY", seq=2)).reason == "reducing_only"
    # the leader now holds 200 (our copy of the second buy was refused): selling
    # 100 is half, so we sell half of our 20
    assert app.process(make_trade(side="SELL", size="100", seq=3)).status == "filled"
    assert app.positions()[0].size == D("10")


def test_daily_loss_limit_moves_state_to_reducing_by_itself():
    app, fakes = make_app({"risk": {"daily_loss_limit_usdc": "3"}, "sizing": {"fixed_usdc": "20"}})
    fakes.market.put(*book(TOKEN, bids=[("0.30", "1000")], asks=[("0.51", "1000")]))
    app.process(make_trade(side="BUY", price="0.50", seq=1))  # 39.21 shares at 0.51
    assert app.state().state is TradingState.ACTIVE
    # the leader dumps at 0.30 and we follow: a loss of 39.21 x 0.21 > 3 USDC
    assert app.process(make_trade(side="SELL", price="0.30", size="100", seq=2)).status == "filled"
    assert app.service.portfolio.daily_realised("2026-11-01") < D("-3")
    assert app.state().state is TradingState.REDUCING
    assert app.process(make_trade(side="BUY", seq=4)).reason == "reducing_only"
    assert "state" in fakes.alerter.kinds()


class ExplodingExecutor:
    def __init__(self, inner, failed_lookups=10**6):
        self.inner = inner
        self.calls = self.lookups = 0
        self.failed_lookups = failed_lookups

    def prepare(self, intent, market):
        return self.inner.prepare(intent, market)

    def submit(self, order, intent, market):
        self.calls += 1
        raise TimeoutError("read timed out")

    def lookup(self, record, market):
        self.lookups += 1
        if self.lookups <= self.failed_lookups:
            raise ConnectionError("venue unreachable")
        return self.inner.lookup(record, market)


def test_executor_error_is_unknown_then_reconciled_at_start(engine):
    from dependency_injector import providers
    app, fakes = engine
    paper = app.container.executor()
    boom = ExplodingExecutor(paper)
    app.container.executor.override(providers.Object(boom))
    app.container.service.reset()
    out = app.process(make_trade())
    assert out.status == "unknown"
    assert [r.status for r in app.history()] == [IntentStatus.UNKNOWN]
    assert app.positions() == []
    # restart: a new service on the same store reconciles before any new trade
    app.container.executor.reset_override()
    app.container.service.reset()
    assert app.service.start() == 0
    [rec] = app.history()
    assert rec.status is IntentStatus.FILLED and app.positions()[0].size == D("20")
    assert boom.calls == 1  # the order was never sent a second time


def test_consecutive_faults_trip_the_breaker():
    from dependency_injector import providers
    app, fakes = make_app({"risk": {"max_consecutive_faults": "3", "max_trade_usdc": "off"}})
    fakes.market.put(*book(TOKEN, asks=[("0.51", "1000")]))
    app.container.executor.override(providers.Object(ExplodingExecutor(app.container.executor())))
    for i in range(3):
        app.process(make_trade(seq=i))
    assert app.state().state is TradingState.HALTED
    assert app.process(make_trade(seq=9)).reason == "trading_halted"
    assert fakes.alerter.kinds().count("error") == 3


def test_redeem_settles_resolved_market_without_selling(engine):
    app, fakes = engine
    app.process(make_trade(side="BUY", seq=1))
    fakes.market.put(*book(TOKEN, closed=True, payout="1"))
    out = app.process(make_trade(kind="REDEEM", side="", price="1", size="100", seq=2))
    assert out.status == "observed"
    assert app.positions() == []
    [pos] = app.positions(include_closed=True)
    assert pos.settled and pos.realised == D("20") - D("10.2")
    assert [r.side for r in app.history()] == ["BUY"]  # no sell order was made


def test_stale_trade_is_rejected_by_the_injected_clock(engine):
    app, fakes = engine
    fakes.clock.set(T0 + timedelta(seconds=301))
    assert app.process(make_trade()).reason == "stale"


def test_run_loop_checkpoints_and_restarts_where_it_stopped(engine):
    app, fakes = engine
    for i in range(4):
        fakes.feed.push(make_trade(seq=i, size="10"))
    first = app.run(max_items=2)
    assert first.seen == 2 and fakes.store.get_cursor("memory") == "2"
    second = app.run()
    assert second.seen == 2 and second.copied == 2
    assert len(app.history(limit=10)) == 4


def test_failed_transaction_leaves_nothing_half_written(engine):
    app, fakes = engine
    store = fakes.store
    original = store.put_intent

    def failing(record):
        raise OSError("disk full")

    store.put_intent = failing  # the fake's own attribute, not a library internal
    feed = MemoryFeed([make_trade()])
    with pytest.raises(OSError):
        app.run(feed=feed)
    store.put_intent = original
    assert store.get_cursor("memory") is None and not store.has_trade(make_trade().id)
    assert app.run(feed=feed).copied == 1  # the row is read again and copied once
    assert len(app.history()) == 1


def test_embedding_api_accepts_activity_rows_and_quarantines_bad_ones(engine):
    app, fakes = engine
    row = {"proxyWallet": LEADER.upper().replace("0X", "0x"), "timestamp": int(T0.timestamp()),
           "conditionId": CONDITION, "type": "TRADE", "size": 100, "usdcSize": 50,
           "transactionHash": "0x" + "ef" * 32, "price": Decimal("0.5"), "asset": TOKEN, "side": "BUY"}
    assert app.process(row).status == "filled"
    assert app.process({**row, "price": "abc"}).status == "quarantined"
    assert store_quarantined(fakes.store)[0][1].reason.startswith("price is not a number")


def store_quarantined(store):
    return store.quarantined()


def test_order_id_is_durable_before_submit_and_unknown_is_settled_by_lookup(engine):
    from dependency_injector import providers
    app, fakes = engine
    paper = app.container.executor()
    seen_at_submit = {}

    class Recording(ExplodingExecutor):
        def submit(self, order, intent, market):
            rec = fakes.store.get_intent(intent.id)
            seen_at_submit.update(status=rec.status, execution_id=rec.execution_id,
                                  order=fakes.store.get_order(order.order_id), cursor=fakes.store.get_cursor("memory"))
            return super().submit(order, intent, market)

    boom = Recording(paper, failed_lookups=0)  # the venue answers the lookup
    app.container.executor.override(providers.Object(boom))
    app.container.service.reset()
    fakes.feed.push(make_trade())
    summary = app.run()
    assert seen_at_submit["status"] is IntentStatus.PENDING
    assert seen_at_submit["execution_id"] == seen_at_submit["order"].order_id != ""
    assert seen_at_submit["cursor"] == "1"  # the cursor committed with the intent
    assert summary.outcomes["filled"] == 1  # timeout after acceptance, settled by lookup
    assert (boom.calls, boom.lookups) == (1, 1)


def test_buy_limit_is_capped_at_the_price_band():
    app, fakes = make_app({"risk": {"max_buy_price": "0.97", "max_slippage": "0.05"}})
    fakes.market.put(*book(TOKEN, asks=[("0.96", "5"), ("0.98", "1000")], bids=[("0.95", "100")]))
    out = app.process(make_trade(price="0.965", size="100"))  # limit would be 0.98 with 2% slippage
    [rec] = app.history()
    assert rec.limit_price == D("0.97") and out.status == "unfilled"  # nothing at or under 0.97 beyond 5 shares


def test_exits_are_allowed_from_a_denied_market(engine):
    app, _ = engine
    app.process(make_trade(side="BUY", seq=1))
    app.container.config.engine.override(attrs.evolve(app.service.settings, limits=attrs.evolve(
        app.service.settings.limits, deny_markets=[CONDITION])))
    app.container.service.reset()
    assert app.process(make_trade(side="BUY", seq=2)).reason == "market_denied"
    assert app.process(make_trade(side="SELL", size="200", seq=3)).status == "filled"
