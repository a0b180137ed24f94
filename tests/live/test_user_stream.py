"""Our orders over the CLOB user channel (loopback stand-ins: the REST CLOB and its user
channel, linked): a provisional fill settles to final or is reversed from pushed ``trade``
events without any ``GET /data/trades``; a dropped connection's missed interval is read back
over REST before anything else; silence and garbage degrade to polling with one log line and
the metric; duplicated and reordered events are harmless; a wrong key is refused; a live run
copies a leader fill (book from the mirror) and settles it from the socket."""
from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest
from dependency_injector import providers

from copytrader.adapters.execution.polymarket.executor import PolymarketExecutor
from copytrader.adapters.execution.polymarket.user_stream import UserStream
from copytrader.application.service import BOOK_TELEMETRY
from copytrader.application.settlement_watch import FIRST_CHECK_S, PER_PASS
from copytrader.domain.model import IntentStatus, Settlement
from copytrader.testing import TOKEN, make_trade
from tests.live.conftest import KEY
from tests.standins.clob_ws import ClobMarketWs, ClobUserWs
from tests.standins.ws import MonotonicClock as Clock

D = Decimal



def _trade_reads(clob) -> int:
    return sum(1 for r in clob.requests if r == ("GET", "/data/trades"))


@pytest.fixture
def user_ws(clob):
    with ClobUserWs(clob) as ws:
        yield ws


@pytest.fixture
def pushed(live_app, clob, user_ws):
    """A live app whose executor follows the user channel stand-in (stream clock injected)."""
    executors = []

    def build(clock=None, sections=None, **options):
        app, fakes = live_app("live", sections=sections, ws_user_url=user_ws.url)
        c = app.container
        opts = {"stream_options": {"backoff_s": (0.01, 0.05), "poll_s": 0.02}, **options}
        if clock is not None:
            opts["clock"] = clock
            opts["stream_options"]["clock"] = clock
        c.executor.override(providers.Singleton(
            PolymarketExecutor, settings=c.config.live, key=KEY, market=c.market, clock=c.clock, post=True,
            wall=c.wall_clock, user_ws_url=user_ws.url, user_stream_options=opts))
        executor = c.executor()
        executors.append(executor)
        assert user_ws.wait_for(lambda: any("owner" in cl.state for cl in user_ws.clients))  # authenticated
        return app, fakes, executor
    yield build
    for executor in executors:
        executor.close()


def _statuses(executor, record) -> list[str]:
    stream = executor.user_stream
    with stream._lock:
        return sorted(stream._trades[i]["status"] for i in stream._by_order.get(record.execution_id.lower(), ()))


def _pushed_status(user_ws, executor, record, status) -> bool:
    return user_ws.wait_for(lambda: _statuses(executor, record) == [status])


def test_the_auth_frame_is_the_sdks_and_a_wrong_key_is_refused(pushed, user_ws, clob, caplog):
    app, fakes, executor = pushed()
    [client] = [c for c in user_ws.clients if "owner" in c.state]
    first = json.loads(client.received[0])
    creds = clob.creds[client.state["owner"]]
    assert first == {"type": "user", "auth": {"apiKey": creds["apiKey"], "secret": creds["secret"],
                                              "passphrase": creds["passphrase"]}}  # every market of ours
    assert user_ws.wait_for(lambda: user_ws.pings >= 1)  # sent with it: its PONG says the key was accepted
    with caplog.at_level(logging.DEBUG):
        class Wrong:
            key, secret, passphrase = "not-a-key", "c2VjcmV0LW5vdC1vdXJz", "pass-not-ours"
        bad = UserStream(user_ws.url, lambda: Wrong(), stream_options={"backoff_s": (0.01, 0.05), "poll_s": 0.02})
        bad.start()
        try:
            assert user_ws.wait_for(lambda: user_ws.refused >= 2)  # cut at once, again at each retry
            assert not any("owner" in c.state and c.state["owner"] != client.state["owner"] for c in user_ws.clients)
            assert bad.health()[1] and "connection lost" in bad.stream.status().last_error
        finally:
            bad.close()
    assert "c2VjcmV0LW5vdC1vdXJz" not in caplog.text and creds["secret"] not in caplog.text
    assert "c2VjcmV0" not in repr(bad) and creds["secret"] not in repr(executor.user_stream)


def test_a_fill_settles_to_final_from_the_channel_without_polling(pushed, user_ws, clob):
    app, fakes, executor = pushed()
    out = app.process(make_trade())
    [rec] = app.history()
    assert out.status == "filled" and rec.settlement is Settlement.PROVISIONAL
    assert _pushed_status(user_ws, executor, rec, "MATCHED")
    clob.advance_trades()
    assert _pushed_status(user_ws, executor, rec, "MINED")
    assert app.service.settlements.step() == 0 and app.history()[0].settlement is Settlement.PROVISIONAL
    clob.advance_trades()
    assert _pushed_status(user_ws, executor, rec, "CONFIRMED")
    assert app.service.settlements.step() == 1  # at once: the push made it due, no clock moved
    [rec] = app.history()
    assert (rec.status, rec.settlement, rec.filled_size) == (IntentStatus.FILLED, Settlement.FINAL, D("20"))
    assert app.positions()[0].size == D("20") == clob.fills(TOKEN)
    assert _trade_reads(clob) == 0 and ("GET", "/data/trades") not in clob.requests
    [health] = executor.streams()
    assert (health.name, health.connected, health.stale, health.fallback) == ("user", True, False, True)


def test_a_failing_trade_is_reversed_from_the_channel_without_polling(pushed, user_ws, clob):
    app, fakes, executor = pushed()
    clob.fail_next_trades(1)
    app.process(make_trade())
    [rec] = app.history()
    assert _pushed_status(user_ws, executor, rec, "MATCHED")
    clob.advance_trades()
    assert _pushed_status(user_ws, executor, rec, "RETRYING")
    assert app.service.settlements.step() == 0
    clob.advance_trades()
    assert _pushed_status(user_ws, executor, rec, "FAILED")
    assert app.service.settlements.step() == 1
    [rec] = app.history()
    assert (rec.status, rec.settlement, rec.filled_size) == (IntentStatus.REJECTED, Settlement.REVERSED, D("0"))
    assert app.positions() == [] and app.service.portfolio.total_exposure == D("0") == clob.fills(TOKEN)
    assert fakes.alerter.kinds().count("trade_failed") == 1 and _trade_reads(clob) == 0
    # the order's event said what failed: its matched size given back
    assert [e["size_matched"] for e in user_ws.events if e["event_type"] == "order"] == ["20", "0"]


def test_after_a_dropped_connection_the_gap_is_read_back_over_rest_first(pushed, user_ws, clob):
    app, fakes, executor = pushed()
    app.process(make_trade(seq=1))
    [first] = app.history()
    assert _pushed_status(user_ws, executor, first, "MATCHED")
    user_ws.inject("refuse")
    user_ws.inject("drop")
    assert user_ws.wait_for(lambda: not executor.user_stream.stream.status().connected)
    clob.advance_trades(2)  # MINED, CONFIRMED: pushed to nobody, the client misses them
    assert executor.user_stream.settlement(first) is None  # disconnected: memory is not the record
    pings = user_ws.pings
    user_ws.clear()
    assert user_ws.wait_for(lambda: executor.user_stream.stream.status().connected
                            and executor.user_stream.stream.status().reconnects >= 1)
    assert user_ws.wait_for(lambda: user_ws.pings > pings)  # sent after its auth frame: the channel knows it again
    assert _statuses(executor, first) == ["MATCHED"]  # what it holds is stale: the reconnect said so
    assert app.service.settlements.step() == 1  # the resync pass: every watched fill read over REST now
    assert _trade_reads(clob) == 1 and app.history()[0].settlement is Settlement.FINAL
    # the next copy is settled from the socket again: nothing missed, nothing doubled
    app.process(make_trade(seq=2))
    second = [r for r in app.history() if r.intent_id != first.intent_id][0]
    assert _pushed_status(user_ws, executor, second, "MATCHED")
    clob.advance_trades(2)
    assert _pushed_status(user_ws, executor, second, "CONFIRMED")
    assert app.service.settlements.step() == 1 and _trade_reads(clob) == 1
    assert [r.settlement for r in app.history()] == [Settlement.FINAL, Settlement.FINAL]
    assert app.service.settlements.confirmed == 2 and app.positions()[0].size == clob.fills(TOKEN) == D("40")


def test_the_resync_pass_reads_every_watched_fill_in_one_step(pushed, user_ws, clob):
    clob.set_book(TOKEN, bids=[("0.49", "500")], asks=[("0.50", "5000")])
    app, fakes, executor = pushed(sections={"risk": {"max_orders_per_window": "off",
                                                     "max_market_usdc": "off", "max_total_exposure_usdc": "off"}})
    for seq in range(1, PER_PASS + 3):
        app.process(make_trade(seq=seq))
    assert len(app.history()) == PER_PASS + 2
    assert user_ws.wait_for(lambda: len(executor.user_stream._by_order) >= PER_PASS + 2)
    user_ws.inject("refuse")
    user_ws.inject("drop")
    assert user_ws.wait_for(lambda: not executor.user_stream.stream.status().connected)
    clob.advance_trades(2)
    user_ws.clear()
    assert user_ws.wait_for(lambda: executor.user_stream.stream.status().reconnects >= 1
                            and executor.user_stream.stream.status().connected)
    assert app.service.settlements.step() == PER_PASS + 2  # more than a pass's bound: all before the next trade
    assert app.service.settlements.pending == 0


def test_silence_degrades_to_polling_with_one_log_line_and_the_metric(pushed, user_ws, clob, caplog):
    clock = Clock()
    app, fakes, executor = pushed(clock=clock)
    user_ws.inject("silent")  # pings answered, events swallowed: the stall users report
    with caplog.at_level(logging.WARNING, logger="copytrader.execution"):
        app.process(make_trade())
        [rec] = app.history()
        clock.advance(11)  # the matched order's event is owed (EVENT_WAIT_S)
        for _ in range(3):
            [health] = executor.streams()
            assert health.stale and health.age_s >= 11 and health.fallback
        clob.advance_trades(2)  # CONFIRMED, swallowed
        fakes.clock.advance(FIRST_CHECK_S)
        assert app.service.settlements.step() == 1  # polled: GET /data/trades
    assert _trade_reads(clob) == 1 and app.history()[0].settlement is Settlement.FINAL
    assert caplog.text.count("user channel degraded") == 1
    assert "settlement read from GET /data/trades" in caplog.text


def test_a_silent_channel_shows_in_healthz_and_the_stream_age_metric(pushed, user_ws):
    """The supervisor reads the executor's ``streams()`` next to the market data's and the feed's."""
    from copytrader.adapters.feeds.memory import MemoryFeed
    from copytrader.application.supervisor import Session, Supervisor, SupervisorSettings
    from tests.service.test_supervisor import Metrics

    clock = Clock()
    app, fakes, executor = pushed(clock=clock)
    user_ws.inject("silent")
    app.process(make_trade())
    clock.advance(12)
    metrics = Metrics()
    sup = Supervisor(SupervisorSettings(), metrics, wall=lambda: 1.0e9)
    sup.add("alice", lambda alerter: None, lambda: None)
    worker = sup.workers[0]
    worker._session_open = Session(app.service, MemoryFeed([]), close=lambda: None)
    worker.status.worker = "running"
    worker._heartbeat(app.service)
    ok, health = sup.health()
    user = health["followers"]["alice"]["streams"]["user"]
    assert ok and user["stale"] is True and user["fallback"] is True and user["age_s"] >= 12  # polling covers it
    [age] = [c[3] for c in metrics.calls if c[:3] == ("stream_age", "alice", "user")]
    assert age >= 12


def test_garbage_makes_the_known_orders_read_back_once_with_one_log_line(pushed, user_ws, clob, caplog):
    app, fakes, executor = pushed()
    app.process(make_trade())
    [rec] = app.history()
    assert _pushed_status(user_ws, executor, rec, "MATCHED")
    with caplog.at_level(logging.WARNING, logger="copytrader.execution"):
        user_ws.inject("malformed")
        assert user_ws.wait_for(lambda: executor.user_stream.malformed == 1)
    assert caplog.text.count("user channel: unreadable frame") == 1
    assert app.service.settlements.step() == 0 and _trade_reads(clob) == 1  # read back once: still MATCHED
    clob.advance_trades(2)
    assert _pushed_status(user_ws, executor, rec, "CONFIRMED")
    assert app.service.settlements.step() == 1 and _trade_reads(clob) == 1  # from the socket again


def test_duplicated_and_reordered_events_are_harmless(pushed, user_ws, clob):
    app, fakes, executor = pushed()
    app.process(make_trade())
    [rec] = app.history()
    assert _pushed_status(user_ws, executor, rec, "MATCHED")
    user_ws.inject("duplicate")
    clob.advance_trades()                        # MINED, twice
    assert _pushed_status(user_ws, executor, rec, "MINED")
    user_ws.inject("reorder")
    clob.advance_trades()                        # CONFIRMED held back ...
    app.process(make_trade(seq=2))               # ... behind the next order's MATCHED
    assert _pushed_status(user_ws, executor, rec, "CONFIRMED")
    late = [e for e in user_ws.events if e["event_type"] == "trade" and e["status"] == "MINED"][-1]
    executor.user_stream.apply(json.dumps(late))  # an old event again, after the final one: ignored
    assert _statuses(executor, rec) == ["CONFIRMED"]
    assert app.service.settlements.step() == 1 and app.service.settlements.step() == 0
    assert app.service.settlements.confirmed == 1 and _trade_reads(clob) == 0
    [first] = [r for r in app.history() if r.intent_id == rec.intent_id]
    assert first.settlement is Settlement.FINAL


def test_an_event_the_channel_never_sent_is_read_over_rest_after_a_while(pushed, user_ws, clob):
    clock = Clock()
    app, fakes, executor = pushed(clock=clock)
    app.process(make_trade())
    [rec] = app.history()
    assert _pushed_status(user_ws, executor, rec, "MATCHED")
    clob.advance_trades()
    assert _pushed_status(user_ws, executor, rec, "MINED")
    user_ws.inject("gap")
    clob.advance_trades()                        # CONFIRMED: never sent (no sequence numbers to see it)
    fakes.clock.advance(FIRST_CHECK_S)
    assert app.service.settlements.step() == 0 and _trade_reads(clob) == 0  # MINED, from memory
    clock.advance(31)                            # pending longer than PENDING_TRUST_S since its last event
    fakes.clock.advance(60)
    assert app.service.settlements.step() == 1 and _trade_reads(clob) == 1
    assert app.history()[0].settlement is Settlement.FINAL


def test_a_live_run_copies_with_the_mirrored_book_and_settles_from_the_socket(live_app, clob, user_ws):
    with ClobMarketWs(clob) as market_ws:
        app, fakes = live_app("live", sections={"market": {"ws_url": market_ws.url}}, ws_user_url=user_ws.url)
        executor = app.container.executor()
        try:  # an order posted before the channel is up is settled over REST (no event of it seen)
            assert user_ws.wait_for(lambda: not executor.user_stream.health()[1])
            fakes.feed.items.extend([make_trade(seq=1), make_trade(seq=2)])
            mirror = app.container.market().mirror

            def settle(outcome):  # the leader's fills keep coming; ours settle on chain meanwhile
                [rec] = [r for r in app.history() if r.trade_id == outcome.trade_id]
                assert user_ws.wait_for(lambda: _statuses(executor, rec) == ["MATCHED"])
                clob.advance_trades(2)
                assert user_ws.wait_for(lambda: _statuses(executor, rec) == ["CONFIRMED"])
                if outcome.trade_id == make_trade(seq=1).id:  # the second copy is priced from the mirror
                    assert market_ws.wait_for(lambda: mirror.book(TOKEN) is not None)
            summary = app.run(on_outcome=settle)
            assert summary.copied == 2
            assert [r.settlement for r in app.history()] == [Settlement.FINAL, Settlement.FINAL]
            assert _trade_reads(clob) == 0 and app.positions()[0].size == clob.fills(TOKEN)
            sources = [row["book_source"] for kind, _, row in reversed(app.service.store.telemetry())
                       if kind == BOOK_TELEMETRY]
            assert sources == ["rest", "stream"]
        finally:
            executor.close()
            app.container.market().close()
