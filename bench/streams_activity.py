"""Detection on loopback: a leader fill emitted by a stand-in -> the LeaderTrade our feed hands the engine.

Two sources side by side, each against its stand-in (tests/standins): Polymarket's
activity socket (``feed.kind = "fast"``'s hint: the RTDS stand-in broadcasts every
wallet's fills, 50 other wallets' before each leader fill, so the client-side filter
works as it would) and the Data API poll (``GET /activity`` every ``POLL_S``). The
clock starts when the stand-in is given the fill (the socket's push, the row
becoming visible to ``GET /activity``) and stops when the feed's generator yields the
trade in the engine's thread. On loopback the socket's figure is our own cost (frame
filter, decode, queue, thread hand-over); the poll's is about half its interval plus
a request. Production adds the venues' own delays: the Data API has been measured
tens of seconds behind the chain, the activity socket a few seconds.
"""
from __future__ import annotations

import random
import threading
import time
from typing import Any

from bench.workload import pct

POLL_S = 0.5  # the Data API poll's interval here (feed.poll_interval_s; 5 s by default)
LEADER = "0x" + "a1" * 20
TOKEN = str(10**70 + 4242)


def _consume(feed: Any, seen: dict[str, float], got: threading.Condition, stop: threading.Event) -> threading.Thread:
    """The engine's side: read the feed, stamp each trade when it is handed over."""
    from copytrader.domain.model import LeaderTrade

    def loop() -> None:
        cursors: dict[str, str] = {}
        for item in feed.read(cursors.get):
            if item.key is not None or item.cursor:
                cursors[item.key or feed.name] = item.cursor
            if isinstance(item.payload, LeaderTrade):
                with got:
                    seen.setdefault(item.payload.tx_hash, time.perf_counter())
                    got.notify_all()
    feed.stop_when(stop.is_set, stop.wait)
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def _measure(n: int, emit, seen: dict[str, float], got: threading.Condition, timeout_s: float,
             spread_s: float) -> list[float]:
    """``n`` fills, each ``emit``-ted a random 0..``spread_s`` after the previous one was seen
    (so a poll's fills land anywhere in its interval); microseconds to each hand-over."""
    rng, out = random.Random(11), []
    for i in range(1, n + 1):
        tx = "0x" + f"{i:064x}"
        t0 = emit(i)
        with got:
            got.wait_for(lambda: tx in seen, timeout_s)
        if tx in seen:
            out.append((seen[tx] - t0) * 1e6)
        time.sleep(rng.uniform(0, spread_s))
    return out


def _socket(n: int) -> list[float]:
    from copytrader.adapters.feeds.live_activity import FastFeed
    from tests.standins.data_api import activity_row
    from tests.standins.rtds import RtdsStandIn

    seen: dict[str, float] = {}
    got, stop = threading.Condition(), threading.Event()
    with RtdsStandIn() as server:
        feed = FastFeed(server.url, [LEADER], [], poll_interval_s=1.0)
        reader = _consume(feed, seen, got, stop)
        if not server.subscribed(timeout_s=10):
            raise RuntimeError("the activity socket stand-in saw no subscription")
        now = int(time.time()) + 60  # fills after the feed's start (earlier ones are left to the chain)

        def emit(i: int) -> float:
            server.noise(50, now)
            row = activity_row(LEADER, now, i, asset=TOKEN, size=10.0, price=0.5)
            t0 = time.perf_counter()
            server.trade(row, taker=False)
            return t0
        try:
            return _measure(n, emit, seen, got, 5.0, 0.01)
        finally:
            stop.set()
            reader.join(5)


def _data_api(n: int) -> list[float]:
    from copytrader.adapters.feeds.data_api import DataApiFeed
    from copytrader.adapters.feeds.http import JsonGetter, TokenBucket
    from tests.standins.data_api import DataApiStandIn, activity_row

    seen: dict[str, float] = {}
    got, stop = threading.Condition(), threading.Event()
    with DataApiStandIn() as api:
        http = JsonGetter(api.url, TokenBucket(100.0, 100), timeout_s=2.0)
        feed = DataApiFeed(http, [LEADER], poll_interval_s=POLL_S, overlap_s=300)
        reader = _consume(feed, seen, got, stop)
        now = int(time.time())

        def emit(i: int) -> float:
            t0 = time.perf_counter()
            api.add(activity_row(LEADER, now, i, asset=TOKEN, size=10.0, price=0.5))
            return t0
        try:
            return _measure(n, emit, seen, got, POLL_S * 4 + 2, POLL_S)
        finally:
            stop.set()
            reader.join(5)


def bench(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"poll_s": POLL_S}
    for name, fn, n in (("activity_socket", _socket, 20 if quick else 500), ("data_api", _data_api, 6 if quick else 100)):
        us = fn(n)
        out[name] = {"samples": len(us), "asked": n, "p50_us": round(pct(us, 0.5)), "p99_us": round(pct(us, 0.99))}
    return out


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The bench table's rows (bench/__main__.py's shape)."""
    if "streams_activity" not in results:
        return []
    r = results["streams_activity"]
    s, d = r["activity_socket"], r["data_api"]
    out = []
    for q in ("p50", "p99"):
        out.append({"measure": f"detection, activity socket, {q} ({s['samples']} fills, 50 other wallets' each)",
                    "value": f"{s[q + '_us']:,} µs", "baseline": f"Data API poll ({r['poll_s']:g} s) {d[q + '_us']:,} µs",
                    "ratio": round(s[q + "_us"] / d[q + "_us"], 4) if d[q + "_us"] else "", "target": "",
                    "pass": None})
        out.append({"measure": f"detection, Data API poll every {r['poll_s']:g} s, {q} ({d['samples']} fills)",
                    "value": f"{d[q + '_us']:,} µs", "baseline": "", "ratio": "", "target": "", "pass": None})
    return out
