"""Fault injection on every remote the engine talks to (Data API, CLOB,
Polygon JSON-RPC), each against its loopback stand-in: 429 with and without
Retry-After, 5xx, resets, timeouts before and after the server acted,
malformed and truncated JSON, empty pages, duplicated and out-of-order rows.

For every fault: no crash, no missed or doubled trade, waits within bounds,
a log line naming the endpoint; a run of failures of one remote trips the
circuit breaker (HALTED, an alert), which stays until `resume`.
(Webhook alerters are fault-tested with their stand-ins in tests/service.)"""
from __future__ import annotations

import logging
import random
from collections import Counter
from decimal import Decimal

import pytest

from copytrader.adapters.execution.polymarket.settings import V2_EXCHANGE
from copytrader.adapters.feeds.data_api import DataApiFeed
from copytrader.adapters.feeds.http import Backoff, JsonGetter, TokenBucket
from copytrader.adapters.feeds.onchain import OnchainFeed
from copytrader.domain.model import IntentStatus, TradingState
from copytrader.testing import T0, TOKEN, book, make_app, make_trade, v2_position_id
from tests.live.conftest import clob, live_app  # noqa: F401 (fixtures)
from tests.reliability import FIGURES
from tests.standins import FAULTS, FakeTime
from tests.standins.data_api import DataApiStandIn, activity_row
from tests.standins.rpc import RpcStandIn, fill_log

D = Decimal
T = int(T0.timestamp())
LEADER = "0x" + "a1" * 20
MAX_WAIT = 30.0


def engine(**risk):
    app, fakes = make_app({"risk": {"max_consecutive_faults": 3, **risk}, "follower": {"max_trade_age_s": 10**9}})
    fakes.market.put(*book(TOKEN, asks=[("0.50", "10000")], bids=[("0.49", "10000")]))
    return app, fakes


def accounted(app, expected: int) -> Counter:
    """Each leader trade has exactly one intent, none left open."""
    history = app.history(limit=1000)
    per_trade = Counter(r.trade_id for r in history)
    assert len(per_trade) == expected and set(per_trade.values()) == {1}
    assert not [r for r in history if r.status in (IntentStatus.PENDING, IntentStatus.UNKNOWN)]
    return per_trade


# -- Data API ------------------------------------------------------------------
def data_api_feed(api, clock, polls: int, attempts: int = 3) -> DataApiFeed:
    http = JsonGetter(api.url, TokenBucket(1000.0, 1000, monotonic=clock.time, sleep=clock.sleep), timeout_s=0.3,
                      sleep=clock.sleep, rng=random.Random(3), max_attempts=attempts)
    return DataApiFeed(http, [LEADER], clock_s=clock.time, sleep=clock.sleep, max_polls=polls, lookback_s=10**6,
                       poll_interval_s=5)


@pytest.mark.parametrize("fault", FAULTS + ("empty", "duplicated", "out-of-order"))
def test_data_api_fault_misses_and_doubles_nothing(fault, caplog):
    app, _ = engine()
    with DataApiStandIn() as api:
        api.add(*(activity_row(LEADER, T - 100 + i, i, asset=TOKEN) for i in range(6)))
        if fault == "duplicated":
            api.duplicate_every = 2
        elif fault == "out-of-order":
            api.reverse_pages = True
        else:
            api.inject(fault)
        clock = FakeTime(T)
        feed = data_api_feed(api, clock, polls=3)
        with caplog.at_level(logging.WARNING, logger="copytrader"):
            summary = app.run(feed)
    FIGURES["faults injected"] += 1
    accounted(app, 6)
    assert summary.outcomes["filled"] == 6
    assert all(0 <= w <= MAX_WAIT for w in feed.http.waits)
    if fault in FAULTS:
        assert any(f"{api.url}/activity" in r.getMessage() for r in caplog.records), "a log line names the endpoint"
    if fault == "429":
        assert feed.http.waits[0] == 1.0  # Retry-After honoured


def test_data_api_outage_trips_the_breaker_and_recovery_does_not_resume():
    app, fakes = engine()
    with DataApiStandIn() as api:
        api.add(activity_row(LEADER, T - 100, 1, asset=TOKEN))
        clock = FakeTime(T)
        feed = data_api_feed(api, clock, polls=6, attempts=2)
        # first poll fine, then three polls of 2 failed attempts each, then the API is back
        api.inject(*(["pass"] + ["503", "reset"] * 3))
        api.add(activity_row(LEADER, T - 50, 2, asset=TOKEN))
        app.run(feed)
    FIGURES["faults injected"] += 6
    state = app.state()
    assert state.state is TradingState.HALTED and "3 consecutive data_api failures" in state.reason
    assert "state" in fakes.alerter.kinds()
    assert all(0 <= w <= MAX_WAIT for w in feed.http.waits)


# -- CLOB ----------------------------------------------------------------------
POST_FAULTS = ("429", "429-retry", "500", "502", "503", "reset", "timeout", "malformed", "truncated",
               "reset-after-accept", "timeout-after-accept")


V2_TOKEN = v2_position_id(0x5A, 1)  # a Protocol V2 market: ExchangeV3, domain "3"


@pytest.mark.parametrize("token", [TOKEN, V2_TOKEN], ids=["ctf", "v2"])
@pytest.mark.parametrize("fault", POST_FAULTS)
def test_clob_post_fault_never_doubles_an_order(live_app, clob, fault, token, caplog):  # noqa: F811
    app, fakes = live_app("live")
    clob.set_book(V2_TOKEN, bids=[("0.49", "500")], asks=[("0.50", "500")], market="0x" + "5a" * 32, version="v2")
    clob.inject("POST /order", fault)
    with caplog.at_level(logging.WARNING, logger="copytrader"):
        first = app.process(make_trade(token_id=token, seq=1))
        second = app.process(make_trade(token_id=token, seq=2))
    FIGURES["faults injected"] += 1
    assert second.status == "filled"  # the next trade goes through
    accounted(app, 2)
    signed = {}
    for salt, signature in clob.signed:
        signed.setdefault(salt, set()).add(signature)
    assert all(len(s) == 1 for s in signed.values()), "no intent was signed twice"
    refused = fault.startswith("429")  # the exchange says it did nothing: a rejection
    assert len(clob.orders) == (1 if refused else 2) and sum(p.size for p in app.positions()) == clob.fills(token)
    assert clob.rejections == [] and first.status == ("unfilled" if refused else "filled")
    acted = fault.endswith("after-accept")
    # the exchange never acted on it: the same signed order went out again, once
    assert max(Counter(clob.attempts).values()) == (1 if refused or acted else 2)
    if not refused:  # an unknown outcome: logged, alerted, looked up by hash
        assert "error" in fakes.alerter.kinds()
        assert any(p.startswith("/data/order/") for _, p in clob.requests)


@pytest.mark.parametrize("fault", ("429", "500", "503", "reset", "timeout", "malformed", "truncated"))
def test_clob_book_fault_is_a_recorded_rejection(live_app, clob, fault):  # noqa: F811
    app, _ = live_app("live", sections={"market": {"book_ttl_s": "0", "rules_ttl_s": "0"}})
    clob.inject("GET /book", fault)
    out = app.process(make_trade(seq=1))
    FIGURES["faults injected"] += 1
    assert out.status == "rejected" and out.reason == "market_data_error"
    [rec] = app.history()
    assert rec.detail and "\n" not in rec.detail and clob.attempts == []
    assert app.process(make_trade(seq=2)).status == "filled"


def test_clob_outage_trips_the_breaker(live_app, clob):  # noqa: F811
    app, fakes = live_app("live", sections={"market": {"book_ttl_s": "0", "rules_ttl_s": "0"},
                                            "risk": {"max_consecutive_faults": "3"}})
    clob.inject("GET /book", "503", "reset", "503")
    outcomes = [app.process(make_trade(seq=n)).reason for n in range(4)]
    FIGURES["faults injected"] += 3
    assert outcomes == ["market_data_error"] * 3 + ["trading_halted"]
    assert app.state().state is TradingState.HALTED and "market data" in app.state().reason
    assert "state" in fakes.alerter.kinds() and clob.attempts == []
    app.resume()
    assert app.process(make_trade(seq=9)).status == "filled"


# -- Polygon JSON-RPC ----------------------------------------------------------
def onchain_feed(rpc, clock, polls: int, attempts: int = 4) -> OnchainFeed:
    return OnchainFeed(rpc.url, [LEADER], [V2_EXCHANGE], confirmations=0, start_block=rpc.block + 1,
                       timeout_s=0.3, clock_s=clock.time, sleep=clock.sleep, max_polls=polls,
                       max_attempts=attempts, backoff=Backoff(sleep=clock.sleep, rng=random.Random(5)))


def mine_fills(rpc, n: int, first: int = 0) -> None:
    for i in range(first, first + n):  # the leader's maker BUY of 100 shares at 0.50
        rpc.mine(T + i, (fill_log(V2_EXCHANGE, LEADER, "0x" + "ee" * 20, 0, int(TOKEN), 50_000_000, 100_000_000,
                                  "0x" + f"{i + 1:064x}"),))


@pytest.mark.parametrize("fault", FAULTS + ("rpc-error",))
def test_rpc_fault_misses_and_doubles_nothing(fault, caplog):
    app, _ = engine()
    with RpcStandIn() as rpc:
        clock = FakeTime(T)
        feed = onchain_feed(rpc, clock, polls=2)
        mine_fills(rpc, 3)
        rpc.inject(fault)
        with caplog.at_level(logging.WARNING, logger="copytrader"):
            summary = app.run(feed)
    FIGURES["faults injected"] += 1
    accounted(app, 3)
    assert summary.outcomes["filled"] == 3
    assert all(0 <= w <= MAX_WAIT for w in feed.backoff.waits) and len(feed.backoff.waits) == 1
    assert any("JSON-RPC" in r.getMessage() and rpc.url in r.getMessage() for r in caplog.records)
    if fault == "429":
        assert feed.backoff.waits == [1.0]


def test_rpc_outage_trips_the_breaker_then_the_fills_are_read():
    app, fakes = engine()
    with RpcStandIn() as rpc:
        clock = FakeTime(T)
        feed = onchain_feed(rpc, clock, polls=5, attempts=2)
        mine_fills(rpc, 1)
        rpc.inject(*(["pass"] * 4 + ["503"] * 6))  # the first poll's requests pass, then 3 polls fail
        app.run(feed)
        assert app.state().state is TradingState.HALTED and "onchain" in app.state().reason
        assert "state" in fakes.alerter.kinds()
        app.resume()
        mine_fills(rpc, 1, first=1)
        app.run(onchain_feed(rpc, clock, polls=1))
    FIGURES["faults injected"] += 6
    accounted(app, 2)
    assert [r.status for r in app.history()] == [IntentStatus.FILLED] * 2


# -- the chain pushed over eth_subscribe (feed.ws_url) -----------------------------------
@pytest.mark.parametrize("fault", ("drop", "silent", "gap", "reorder", "duplicate", "malformed", "skip-blocks"))
def test_chain_push_fault_misses_and_doubles_nothing(fault, caplog):
    import functools
    import threading
    import time

    from copytrader.adapters.streams import Stream
    from tests.standins.rpc_ws import RpcWsStandIn

    app, _ = engine()
    clock, stop, outcomes = {"now": 0.0}, threading.Event(), []
    with RpcStandIn() as rpc, RpcWsStandIn(rpc) as ws:
        feed = OnchainFeed(rpc.url, [LEADER], [V2_EXCHANGE], confirmations=0, start_block=rpc.block + 1,
                           ws_url=ws.url, idle_s=0.02, poll_interval_s=5, ws_stale_s=2, clock_s=FakeTime(T).time,
                           monotonic=lambda: clock["now"],
                           stream=functools.partial(Stream, backoff_s=(0.01, 0.05), poll_s=0.02))
        runner = threading.Thread(target=lambda: app.run(feed, stop=stop, on_outcome=outcomes.append), daemon=True)
        with caplog.at_level(logging.WARNING, logger="copytrader"):
            runner.start()
            try:
                assert ws.wait_subscribed(2)
                rpc.mine(T)
                assert ws.wait_for(lambda: feed._coverage.trusted_after is not None, 5)
                mine_fills(rpc, 1)
                if fault == "skip-blocks":
                    ws.skip_blocks(1)
                else:
                    ws.inject(fault)
                mine_fills(rpc, 2, first=1)
                deadline = time.monotonic() + 10
                while len([o for o in outcomes if o.status == "filled"]) < 3 and time.monotonic() < deadline:
                    clock["now"] += 1  # time passes: a silent socket goes stale, a fallback poll comes due
                    if fault == "silent" and clock["now"] == 8:
                        ws.clear()
                    rpc.mine(T + 100 + int(clock["now"]))  # heads keep coming
                    time.sleep(0.05)
            finally:
                stop.set()
                runner.join(10)
    FIGURES["faults injected"] += 1
    assert not runner.is_alive()
    accounted(app, 3)
    assert len([o for o in outcomes if o.status == "filled"]) == 3
