"""The CLOB channels' part of the fault matrix: the book mirror (market channel) and our
orders (user channel), each against its loopback stand-in linked to the REST CLOB stand-in.

A live-profile engine copies leader fills with both channels up; one channel is dropped
(and refused while down), silenced (pings answered), sent garbage, a gap, reordered or
duplicated frames, while fills keep coming and settling (one of them fails on chain). For
every fault: the copies made meanwhile are priced by GET /book (market channel) or settled
from GET /data/trades (user channel), the fallback; the faults that lose something log one
line for it and show in the channel's health entry (what ``/healthz`` and the stream-age
metric read); every leader fill is copied exactly once, every fill is settled exactly once
(final, or reversed where the stand-in's trade FAILED), and the positions equal the
stand-in's fills."""
from __future__ import annotations

import logging
from collections import Counter
from decimal import Decimal

import pytest
from dependency_injector import providers

from copytrader.adapters.execution.polymarket.executor import PolymarketExecutor
from copytrader.adapters.market.clob import ClobMarketData
from copytrader.adapters.market.clob_stream import BookMirror
from copytrader.application.service import BOOK_TELEMETRY
from copytrader.domain.model import Settlement
from copytrader.testing import TOKEN, make_trade
from tests.live.conftest import KEY, clob, live_app  # noqa: F401 (fixtures)
from tests.reliability import FIGURES
from tests.standins.clob_ws import ClobMarketWs, ClobUserWs
from tests.standins.ws import MonotonicClock as Clock

D = Decimal
FAULTS = ("drop", "silent", "malformed", "gap", "reorder", "duplicate")
STALE_S = 10.0  # market.ws_stale_s of the mirror
# the faults that lose something the engine can tell: one log line each, and the line it is
DEGRADED = {
    ("market", "drop"): "market channel degraded",
    ("market", "silent"): "market channel degraded",
    ("market", "malformed"): "market channel: unreadable frame",
    ("market", "gap"): "unusable until its next snapshot (",
    ("market", "reorder"): "unusable until its next snapshot (",
    ("user", "drop"): "user channel degraded",
    ("user", "silent"): "user channel degraded",
    ("user", "malformed"): "user channel: unreadable frame",
}
BIDS = [("0.49", "500"), ("0.48", "500")]
LINES = ("market channel degraded", "market channel: unreadable frame", "unusable until its next snapshot (",
         "user channel degraded", "user channel: unreadable frame")



@pytest.fixture
def channels(clob):  # noqa: F811
    with ClobMarketWs(clob) as market_ws, ClobUserWs(clob) as user_ws:
        yield market_ws, user_ws


class Run:
    """The live engine with both channels, and what the test reads of it."""

    def __init__(self, live_app, clob, market_ws, user_ws) -> None:  # noqa: F811
        self.clob, self.market_ws, self.user_ws = clob, market_ws, user_ws
        self.clock, self.user_clock = Clock(), Clock()  # the market channel's, the user channel's
        clob.set_book(TOKEN, bids=BIDS, asks=[("0.50", "5000"), ("0.51", "500")])  # every copy fills at 0.50
        options = {"backoff_s": (0.01, 0.05), "poll_s": 0.02}
        self.app, self.fakes = live_app("live", sections={"market": {"ws_url": market_ws.url}},
                                        ws_user_url=user_ws.url)
        c = self.app.container
        self.mirror = BookMirror(market_ws.url, stale_s=STALE_S, clock=self.clock,
                                 stream_options={**options, "clock": self.clock})
        c.market.override(providers.Singleton(ClobMarketData, clob.url, 0.7, 0.0, 0.0, gamma_host=clob.url,
                                              data_host=clob.url, mirror=self.mirror))
        c.executor.override(providers.Singleton(
            PolymarketExecutor, settings=c.config.live, key=KEY, market=c.market, clock=c.clock, post=True,
            wall=c.wall_clock, user_ws_url=user_ws.url,
            user_stream_options={"clock": self.user_clock,
                                 "stream_options": {**options, "clock": self.user_clock}}))
        self.market = c.market()
        self.executor = c.executor()
        self.user = self.executor.user_stream
        assert user_ws.wait_for(lambda: not self.user.health()[1])  # authenticated, its PONG seen

    def close(self) -> None:
        self.executor.close()
        self.market.close()

    def copy(self, seq: int) -> None:
        assert self.app.process(make_trade(seq=seq)).status == "filled"

    def sources(self) -> list[str]:
        return [d["book_source"] for k, _, d in reversed(self.app.service.store.telemetry(1000))
                if k == BOOK_TELEMETRY]

    def mirrored(self) -> bool:
        return self.market_ws.wait_for(lambda: self.mirror.book(TOKEN) is not None)

    def mirrored_as_rest(self) -> bool:
        """The mirror serves the REST stand-in's book, level for level."""
        def same() -> bool:
            book, rest = self.mirror.book(TOKEN), self.clob.books[TOKEN]
            levels = {side: sorted((tuple(lv) for lv in rest[side] if lv[1] > 0), reverse=side == "bids")
                      for side in ("bids", "asks")}
            return book is not None and [(lv.price, lv.size) for lv in book.bids] == levels["bids"] and \
                [(lv.price, lv.size) for lv in book.asks] == levels["asks"]
        return self.market_ws.wait_for(same)

    def pushed(self, last: bool = False) -> bool:
        """Every trade of ours (``last``: the newest) is in the user stream's memory at the stand-in's status."""
        def same() -> bool:
            with self.user._lock:
                held = {i: t["status"] for i, t in self.user._trades.items()}
            want = {t["id"]: t["_path"][t["_step"]] for t in self.clob.trades[-1 if last else 0:]}
            return {i: held.get(i) for i in want} == want
        return self.user_ws.wait_for(same)

    def trade_reads(self) -> int:
        return sum(1 for r in self.clob.requests if r == ("GET", "/data/trades"))

    def market_health(self):
        [h] = self.market.streams()
        return h

    def user_health(self):
        [h] = self.executor.streams()
        return h

    def settle(self, rounds: int = 12) -> None:
        """Step the settlement watch (time passing on the engine's clock) until no fill is provisional."""
        watch = self.app.service.settlements
        for _ in range(rounds):
            watch.step()
            if watch.pending == 0:
                return
            self.fakes.clock.advance(60)
        raise AssertionError(f"{watch.pending} fills still provisional")


def _market_fault(run: Run, fault: str) -> list[str]:
    """Copies 3 and 4 (4 fails on chain) through a market-channel fault; the sources expected."""
    ws, clob = run.market_ws, run.clob
    if fault == "drop":
        ws.inject("refuse")
        ws.inject("drop")
        assert ws.wait_for(lambda: not run.mirror.status().connected)
        h = run.market_health()
        assert h.stale and not h.connected and h.fallback  # GET /book covers it
        run.copy(3)
        clob.fail_next_trades(1)
        run.copy(4)
        ws.clear()
        return ["rest", "rest"]
    if fault == "silent":
        ws.inject("silent")  # pings answered, nothing else: the books age out
        run.clock.advance(STALE_S + 1)
        assert run.mirror.book(TOKEN) is None and ws.wait_for(lambda: run.mirror.degraded)
        run.copy(3)
        clob.fail_next_trades(1)
        run.copy(4)
        h = run.market_health()
        assert h.stale and h.fallback and h.age_s is not None and h.age_s > STALE_S
        ws.clear()
        clob.set_book(TOKEN, bids=BIDS + [("0.47", "5")], asks=clob.books[TOKEN]["asks"])  # the market moves
        return ["rest", "rest"]
    if fault == "malformed":
        subscribes = run.mirror.malformed
        ws.inject("malformed")
        assert ws.wait_for(lambda: run.mirror.malformed == subscribes + 1)
    elif fault == "gap":
        ws.inject("gap")  # this change of the best ask is lost ...
        clob.set_book(TOKEN, bids=BIDS, asks=[("0.51", "500")])
        clob.set_book(TOKEN, bids=BIDS + [("0.47", "5")], asks=[("0.51", "500")])  # ... and the next shows it
        assert ws.wait_for(lambda: run.mirror.gaps >= 1)
        assert run.mirrored()
        clob.set_book(TOKEN, bids=BIDS, asks=[("0.50", "5000"), ("0.51", "500")])
        assert ws.wait_for(lambda: getattr(run.mirror.book(TOKEN), "best_ask", None) == D("0.50"))
    elif fault == "reorder":
        ws.inject("reorder")  # the two changes arrive newest first: the older is never applied over it
        clob.set_book(TOKEN, bids=BIDS, asks=[("0.50", "4000"), ("0.51", "500")])
        clob.set_book(TOKEN, bids=BIDS, asks=[("0.50", "3000"), ("0.51", "500")])
        assert ws.wait_for(lambda: run.mirror.gaps >= 1)
    elif fault == "duplicate":
        ws.inject("duplicate")
        clob.set_book(TOKEN, bids=BIDS, asks=[("0.50", "4000"), ("0.51", "500")])
        assert ws.wait_for(lambda: run.mirror.book(TOKEN) is not None
                           and run.mirror.book(TOKEN).asks[0].size == D("4000"))
        assert run.mirror.gaps == 0
    assert run.mirrored()  # a fresh snapshot asked for and applied
    run.copy(3)
    clob.fail_next_trades(1)
    assert run.mirrored()
    run.copy(4)
    return ["stream", "stream"]


def _user_fault(run: Run, fault: str) -> None:
    """Copies 3 and 4 (4 fails on chain) through a user-channel fault; every trade so far ends."""
    ws, clob = run.user_ws, run.clob
    if fault == "drop":
        ws.inject("refuse")
        ws.inject("drop")
        assert ws.wait_for(lambda: not run.user.stream.status().connected)
        run.copy(3)
        clob.fail_next_trades(1)
        run.copy(4)
        clob.advance_trades(2)  # pushed to nobody
        h = run.user_health()
        assert h.stale and not h.connected and h.fallback
        ws.clear()
        assert ws.wait_for(lambda: run.user.stream.status().connected and run.user.stream.status().reconnects >= 1)
        return
    if fault == "silent":
        ws.inject("silent")
        run.copy(3)
        clob.fail_next_trades(1)
        run.copy(4)
        clob.advance_trades(2)  # swallowed
        run.user_clock.advance(11)  # the matched orders' events are owed
        h = run.user_health()
        assert h.stale and h.fallback and h.age_s >= 11
        run.settle()            # read over REST meanwhile
        ws.clear()
        return
    if fault == "malformed":
        ws.inject("malformed")
        assert ws.wait_for(lambda: run.user.malformed == 1)
        run.copy(3)
        clob.fail_next_trades(1)
        run.copy(4)
        assert run.pushed()
        clob.advance_trades(2)
        return
    run.copy(3)
    clob.fail_next_trades(1)
    run.copy(4)
    assert run.pushed()
    if fault == "gap":
        clob.advance_trades(1)
        assert run.pushed()
        ws.inject("gap")        # the first trade's final status is never sent (no sequence numbers to see it)
        clob.advance_trades(1)
        run.user_clock.advance(31)  # pending longer than memory is trusted after its last event: REST
        return
    ws.inject(fault)            # reorder, duplicate: harmless
    clob.advance_trades(1)
    if fault == "duplicate":
        assert run.pushed()
    clob.advance_trades(1)
    assert run.pushed()


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("channel", ("market", "user"))
def test_a_channel_fault_degrades_to_its_fallback_and_misses_and_doubles_nothing(
        live_app, clob, channels, channel, fault, caplog):  # noqa: F811
    market_ws, user_ws = channels
    run = Run(live_app, clob, market_ws, user_ws)
    caplog.clear()  # the lines of the start (the user channel is down until it connects)
    try:
        with caplog.at_level(logging.WARNING, logger="copytrader"):
            run.copy(1)                 # first sight: GET /book, then the token is mirrored
            assert run.mirrored()
            run.copy(2)
            assert run.mirrored_as_rest()  # nothing in flight when the fault starts
            during = _market_fault(run, fault) if channel == "market" else (_user_fault(run, fault) or
                                                                              ["stream", "stream"])
            assert run.mirrored_as_rest()  # whatever it missed, the mirror holds the venue's book again
            run.copy(5)                 # recovered: priced from the mirror again
            clob.advance_trades(2)      # every trade ends: CONFIRMED, or FAILED for the 4th order
            assert run.pushed(last=channel == "user" and fault in ("drop", "silent", "gap"))
            run.settle()
            assert run.app.service.settlements.step() == 0
        FIGURES["faults injected"] += 1
        assert run.sources() == ["rest", "stream", *during, "stream"]
        history = run.app.history(limit=100)
        assert set(Counter(r.trade_id for r in history).values()) == {1} and len(history) == 5
        ends = {r.trade_id: r.settlement for r in history}
        failed = make_trade(seq=4).id
        assert ends == {make_trade(seq=n).id: Settlement.REVERSED if make_trade(seq=n).id == failed
                        else Settlement.FINAL for n in range(1, 6)}
        watch = run.app.service.settlements
        assert (watch.confirmed, watch.reversed) == (4, 1)
        assert run.fakes.alerter.kinds().count("trade_failed") == 1
        assert sum(p.size for p in run.app.positions()) == clob.fills(TOKEN) == D("80")
        if channel == "market":
            assert run.trade_reads() == 0  # the user channel settled every fill
        elif fault in ("reorder", "duplicate"):
            assert run.trade_reads() == 0
        else:
            assert run.trade_reads() >= 1  # the fallback read what the channel lost
        text = [r.getMessage() for r in caplog.records]
        expected = DEGRADED.get((channel, fault))
        for line in LINES:
            assert sum(line in m for m in text) == (1 if line == expected else 0), (line, text)
    finally:
        run.close()
