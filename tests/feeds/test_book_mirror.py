"""The book mirror (CLOB market channel) against the loopback market-channel stand-in linked
to the REST CLOB stand-in: first sight REST then the socket, deltas, gaps, staleness, faults,
tick size changes, resolutions; and a live engine pricing its copies from the mirror."""
from __future__ import annotations

import logging
import threading
from decimal import Decimal

import pytest

from copytrader.adapters.market.clob import ClobMarketData
from copytrader.adapters.market.clob_stream import BookMirror
from copytrader.application.service import BOOK_TELEMETRY
from copytrader.testing import CONDITION, TOKEN, make_trade
from tests.standins.clob import ClobStandIn
from tests.standins.clob_ws import ClobMarketWs

D = Decimal
OTHER = str(10**70 + 7)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now


@pytest.fixture
def venue():
    with ClobStandIn() as clob:
        clob.set_book(TOKEN, bids=[("0.49", "100"), ("0.48", "50")], asks=[("0.51", "100"), ("0.52", "70")],
                      market=CONDITION)
        clob.set_book(OTHER, bids=[("0.20", "10")], asks=[("0.22", "10")])
        with ClobMarketWs(clob) as ws:
            yield clob, ws


def _market(clob, ws, clock=None, stale_s=60.0):
    clock = clock or Clock()
    mirror = BookMirror(ws.url, stale_s=stale_s, clock=clock,
                        stream_options={"backoff_s": (0.01, 0.05), "poll_s": 0.02})
    md = ClobMarketData(clob.url, gamma_host=clob.url, data_host=clob.url, monotonic=clock, mirror=mirror)
    return md, mirror, clock


def _rest_reads(clob) -> int:
    return sum(1 for _, p in clob.requests if p == "/book")


def _mirrored(ws, mirror, token=TOKEN) -> bool:
    return ws.wait_for(lambda: mirror.book(token) is not None)


def test_first_sight_is_rest_then_the_socket_prices_from_memory(venue):
    clob, ws = venue
    md, mirror, clock = _market(clob, ws)
    try:
        first = md.book(TOKEN)
        assert first.source == "rest" and first.best_ask == D("0.51")
        md.market(TOKEN)                         # the engine asks both: the token is watched from now on
        assert _mirrored(ws, mirror)
        clock.now += 5                           # past the REST cache (book_ttl_s 1 s)
        reads = _rest_reads(clob)
        book = md.book(TOKEN)
        assert book.source == "stream" and _rest_reads(clob) == reads
        assert book == first                     # the same levels, best first
        clob.set_book(TOKEN, bids=[("0.50", "10"), ("0.49", "100")], asks=[("0.52", "70")], market=CONDITION)
        assert ws.wait_for(lambda: mirror.book(TOKEN).best_ask == D("0.52"))
        book = md.book(TOKEN)
        assert [(lv.price, lv.size) for lv in book.bids] == [(D("0.50"), D("10")), (D("0.49"), D("100"))]
        assert [lv.price for lv in book.asks] == [D("0.52")] and _rest_reads(clob) == reads
    finally:
        md.close()


def test_a_stale_book_falls_back_to_rest(venue):
    clob, ws = venue
    md, mirror, clock = _market(clob, ws, stale_s=10)
    try:
        md.book(TOKEN), md.market(TOKEN)
        assert _mirrored(ws, mirror)
        clock.now += 11                          # no message for the token within ws_stale_s
        assert mirror.book(TOKEN) is None
        assert md.book(TOKEN).source == "rest"
    finally:
        md.close()


def test_a_gap_makes_the_book_unusable_until_a_fresh_snapshot(venue, caplog):
    clob, ws = venue
    md, mirror, clock = _market(clob, ws)
    try:
        md.book(TOKEN), md.market(TOKEN)
        assert _mirrored(ws, mirror)
        subscribes = sum(1 for c in ws.clients for m in c.received if '"subscribe"' in m)
        ws.inject("gap")                         # the client misses this change of the best ask
        clob.set_book(TOKEN, bids=[("0.49", "100"), ("0.48", "50")], asks=[("0.52", "70")], market=CONDITION)
        with caplog.at_level(logging.WARNING, logger="copytrader.market"):
            # the next change carries best_ask 0.52; the mirror still has 0.51 -> a gap; it asks again
            clob.set_book(TOKEN, bids=[("0.49", "100"), ("0.47", "5")], asks=[("0.52", "70")], market=CONDITION)
            assert ws.wait_for(lambda: mirror.gaps >= 1)
        assert "unusable until its next snapshot" in caplog.text
        assert ws.wait_for(lambda: sum(1 for c in ws.clients for m in c.received if '"subscribe"' in m) > subscribes)
        assert ws.wait_for(lambda: mirror.book(TOKEN) is not None)   # resynced from the new snapshot
        assert mirror.book(TOKEN).best_ask == D("0.52") and mirror.book(TOKEN).bids[-1].price == D("0.47")
    finally:
        md.close()


def test_a_price_change_for_a_book_never_snapshotted_is_not_served():
    mirror = BookMirror("ws://127.0.0.1:9/ws/market")
    mirror._books[TOKEN] = __import__("copytrader.adapters.market.clob_stream", fromlist=["_Book"])._Book()
    mirror.apply('{"event_type": "price_change", "market": "0x1", "timestamp": "5", "price_changes": '
                 f'[{{"asset_id": "{TOKEN}", "price": "0.5", "size": "10", "side": "SELL"}}]}}')
    assert mirror.book(TOKEN) is None and mirror.gaps == 1


def test_reordered_frames_are_a_gap_and_duplicates_are_harmless(venue):
    clob, ws = venue
    md, mirror, clock = _market(clob, ws)
    try:
        md.book(TOKEN), md.market(TOKEN)
        assert _mirrored(ws, mirror)
        ws.inject("duplicate")
        clob.set_book(TOKEN, bids=[("0.49", "100")], asks=[("0.51", "100"), ("0.52", "70")], market=CONDITION)
        assert ws.wait_for(lambda: mirror.book(TOKEN) is not None and len(mirror.book(TOKEN).bids) == 1)
        assert mirror.gaps == 0
        ws.inject("reorder")
        clob.set_book(TOKEN, bids=[("0.49", "100")], asks=[("0.51", "60"), ("0.52", "70")], market=CONDITION)
        clob.set_book(TOKEN, bids=[("0.49", "100")], asks=[("0.51", "20"), ("0.52", "70")], market=CONDITION)
        assert ws.wait_for(lambda: mirror.gaps >= 1)   # the older frame came last: never applied over the newer
        assert ws.wait_for(lambda: mirror.book(TOKEN) is not None)
        assert mirror.book(TOKEN).asks[0].size == D("20")
    finally:
        md.close()


def test_garbage_drop_and_silence_degrade_to_rest_then_recover(venue, caplog):
    clob, ws = venue
    md, mirror, clock = _market(clob, ws)
    try:
        md.book(TOKEN), md.market(TOKEN)
        assert _mirrored(ws, mirror)
        with caplog.at_level(logging.WARNING):
            ws.inject("malformed")
            assert ws.wait_for(lambda: mirror.malformed == 1)
        assert "unreadable frame" in caplog.text
        assert ws.wait_for(lambda: mirror.book(TOKEN) is not None)   # resubscribed: fresh snapshots
        ws.inject("drop")
        assert ws.wait_for(lambda: ws.connections == 2 and mirror.book(TOKEN) is not None)
        assert mirror.status().reconnects == 1
        ws.inject("silent")                      # answers pings, sends nothing: the book ages out
        clock.now += 61
        assert mirror.book(TOKEN) is None and md.book(TOKEN).source == "rest"
        ws.clear()
    finally:
        md.close()


def test_tick_size_change_applies_to_the_market_rules(venue):
    clob, ws = venue
    md, mirror, clock = _market(clob, ws)
    try:
        md.book(TOKEN)
        assert md.market(TOKEN).tick_size == D("0.01")
        assert _mirrored(ws, mirror)
        ws.tick_size_change(TOKEN, "0.001")
        assert ws.wait_for(lambda: mirror.tick_size(TOKEN) == D("0.001"))
        assert md.market(TOKEN).tick_size == D("0.001")
    finally:
        md.close()


def test_market_resolved_is_handed_on_and_drops_the_cached_status(venue):
    clob, ws = venue
    md, mirror, clock = _market(clob, ws)
    try:
        md.book(TOKEN), md.market(TOKEN)
        assert _mirrored(ws, mirror)
        clob.resolved[CONDITION] = TOKEN
        ws.market_resolved(CONDITION, [TOKEN, OTHER], TOKEN)
        assert ws.wait_for(lambda: bool(mirror._resolved))
        assert md.resolved_markets() == [CONDITION] and md.resolved_markets() == []
        assert TOKEN not in md._rules            # the next market() asks the venue again
    finally:
        md.close()


# -- the engine ---------------------------------------------------------------------------

KEY = "0x" + "4c" * 32


def _app(clob, ws, **market):
    from copytrader.testing import make_app

    app, fakes = make_app({"live": {"host": clob.url, "gamma_host": clob.url, "timeout_s": "2"},
                           "market": {"kind": "clob", "ws_url": ws.url, **market}},
                          profile="dry-run", environ={"COPYTRADER_PRIVATE_KEY": KEY})
    return app, fakes


def _sources(store) -> list[str]:
    return [d["book_source"] for k, _, d in reversed(store.telemetry(1000)) if k == BOOK_TELEMETRY]


def test_a_live_run_prices_copies_from_the_mirror_and_the_record_says_so(venue):
    clob, ws = venue
    app, fakes = _app(clob, ws, book_ttl_s="0")
    md = app.container.market()
    try:
        assert app.process(make_trade(seq=1, size="20")).status == "filled"
        assert _mirrored(ws, md.mirror)
        reads = _rest_reads(clob)
        assert app.process(make_trade(seq=2, size="20")).status == "filled"
        assert _rest_reads(clob) == reads        # priced from memory
        md.mirror._clock = lambda: 10**9         # the mirrored book is now stale: GET /book for that trade
        assert app.process(make_trade(seq=3, size="20")).status == "filled"
        assert _rest_reads(clob) > reads
        assert _sources(fakes.store) == ["rest", "stream", "rest"]
        assert len(app.history()) == 3           # three leader fills, three copies: none missed, none doubled
    finally:
        md.close()
        app.close()


def test_the_default_production_channel_is_never_mixed_with_another_clob(venue, caplog):
    clob, ws = venue
    from copytrader.testing import make_app

    with caplog.at_level(logging.WARNING):
        app, _ = make_app({"live": {"host": clob.url, "gamma_host": clob.url}, "market": {"kind": "clob"}},
                          profile="dry-run", environ={"COPYTRADER_PRIVATE_KEY": KEY})
        assert app.container.market().mirror is None
    assert "book mirror off" in caplog.text
    app2, _ = _app(clob, ws, ws_url="off")
    assert app2.container.market().mirror is None
