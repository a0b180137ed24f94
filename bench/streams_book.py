"""Book mirror and reaction benchmarks (issue 18), on the loopback stand-ins.

- mirror: ``BookMirror.apply`` of one market-channel frame (a ``price_change`` of one level,
  with the channel's best bid/ask, checked) while following 1,000 tokens: p50/p99 per frame
  and the CPU seconds of 10,000 frames; end to end (the stand-in's book changes → its frame
  → the mirror's book shows it) p50/p99 over the loopback socket.
- reaction: ``LeaderTrade`` → signed order ready (dry-run, the live prepare path) with the
  book from the mirror, next to today's path (``GET /book`` per trade from the loopback CLOB)
  and next to the SDK's bare build+sign (``bench_latency``'s own measurement), p50/p99.
"""
from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

from bench import data
from bench.workload import KEY, OPEN_LIMITS, pct, sdk_signing


def _us(x: float) -> float:
    return round(x * 1e6, 1)


def bench_mirror(n_tokens: int, n_frames: int) -> dict[str, Any]:
    from copytrader.adapters.market.clob_stream import BookMirror, _Book

    mirror = BookMirror("ws://127.0.0.1:9/ws/market")  # frames handed in directly: no socket
    tokens = [data.token(i) for i in range(n_tokens)]
    bids = {t: {Decimal("0.40") + Decimal(k) / 100: Decimal(100) for k in range(10)} for t in tokens}
    asks = {t: {Decimal("0.51") + Decimal(k) / 100: Decimal(100) for k in range(10)} for t in tokens}
    for i, t in enumerate(tokens):
        mirror._books[t] = _Book()
        mirror.apply(json.dumps({"event_type": "book", "market": data.condition(i), "asset_id": t, "timestamp": "1",
                                 "bids": [{"price": str(p), "size": str(s)} for p, s in bids[t].items()],
                                 "asks": [{"price": str(p), "size": str(s)} for p, s in asks[t].items()],
                                 "tick_size": "0.01"}))
    frames = []
    for k in range(n_frames):
        t = tokens[(k * 7919) % n_tokens]
        side, levels = ("BUY", bids[t]) if k % 2 else ("SELL", asks[t])
        price = sorted(levels)[k % 9]  # never the level that empties the best: a consistent top
        levels[price] = Decimal(100 + k % 50)
        frames.append(json.dumps({"event_type": "price_change", "market": "0x1", "timestamp": str(2 + k),
                                  "price_changes": [{"asset_id": t, "price": str(price), "size": str(levels[price]),
                                                     "side": side, "hash": "0", "best_bid": str(max(bids[t])),
                                                     "best_ask": str(min(asks[t]))}]}))
    per = []
    c0 = time.thread_time()
    for frame in frames:
        t0 = time.perf_counter()
        mirror.apply(frame)
        per.append(time.perf_counter() - t0)
    cpu = time.thread_time() - c0
    assert mirror.gaps == 0 and mirror.malformed == 0, "the bench's frames must be consistent"
    return {"tokens": n_tokens, "frames": n_frames, "p50_us": _us(pct(per, 0.5)), "p99_us": _us(pct(per, 0.99)),
            "cpu_us_per_frame": _us(cpu / n_frames), "cpu_s_per_10k_frames": round(cpu / n_frames * 10_000, 3)}


def bench_mirror_e2e(n: int) -> dict[str, Any]:
    """The stand-in changes a book, pushes the frame, the mirror's book shows the change."""
    from copytrader.adapters.market.clob_stream import BookMirror
    from tests.standins.clob import ClobStandIn
    from tests.standins.clob_ws import ClobMarketWs

    token = data.token(0)
    out: list[float] = []
    with ClobStandIn() as clob, ClobMarketWs(clob) as ws:
        clob.set_book(token, bids=[("0.49", "100")], asks=[("0.51", "100")])
        mirror = BookMirror(ws.url, stream_options={"poll_s": 0.01})
        mirror.watch([token])
        ws.wait_for(lambda: mirror.book(token) is not None)
        for k in range(n + 20):
            size = str(100 + k + 1)
            t0 = time.perf_counter()
            clob.set_book(token, bids=[("0.49", size)], asks=[("0.51", "100")])
            while True:
                b = mirror.book(token)
                if b is not None and b.bids and str(b.bids[0].size) == size:
                    break
                time.sleep(0)  # let the stream's thread have the GIL
            out.append(time.perf_counter() - t0)
        mirror.close()
    out = out[20:]
    return {"n": len(out), "p50_us": _us(pct(out, 0.5)), "p99_us": _us(pct(out, 0.99))}


def _reaction(clob: Any, ws_url: str, n: int, n_tokens: int) -> list[float]:
    from copytrader.adapters.alerts.log import NullAlerter
    from copytrader.adapters.feeds.activity import parse_activity_row
    from copytrader.entrypoints.config import load_config
    from copytrader.entrypoints.container import build_container
    from dependency_injector import providers

    cfg = load_config(None, environ={"COPYTRADER_PRIVATE_KEY": KEY}, overrides={
        **OPEN_LIMITS, "": {"profile": "dry-run"}, "store": {"kind": "memory"},
        "feed": {"kind": "none"}, "live": {"host": clob.url, "gamma_host": clob.url},
        "market": {"kind": "clob", "ws_url": ws_url or "off", "book_ttl_s": "0", "rules_ttl_s": "3600"}})
    c = build_container(cfg)
    c.store.override(providers.Singleton(__import__("copytrader.adapters.storage.memory",
                                                    fromlist=["MemoryStore"]).MemoryStore))
    c.alerter.override(providers.Object(NullAlerter()))
    service, executor, market = c.service(), c.executor(), c.market()
    ready: list[float] = []
    submit = executor.submit

    def timed_submit(order, intent, m):
        ready.append(time.perf_counter())
        return submit(order, intent, m)

    executor.submit = timed_submit
    service.start()
    for i in range(n_tokens):  # first sight: REST, then (with the mirror) the socket
        market.market(data.token(i))
        market.book(data.token(i))
    if market.mirror is not None:
        deadline = time.monotonic() + 10
        while any(market.mirror.book(data.token(i)) is None for i in range(n_tokens)):
            if time.monotonic() > deadline:
                raise RuntimeError("the mirror did not get every book")
            time.sleep(0.01)
    lat = []
    for row in data.rows(n + 30, n_tokens):
        t0 = time.perf_counter()
        trade = parse_activity_row(row, "bench")
        before = len(ready)
        service.handle(trade)
        if len(ready) > before:
            lat.append(ready[-1] - t0)
    market.close()
    return lat[30:]


def bench_reaction(n: int, n_tokens: int = 20) -> dict[str, Any]:
    from tests.standins.clob import ClobStandIn
    from tests.standins.clob_ws import ClobMarketWs

    bare = sdk_signing(n, signature_type=0)
    with ClobStandIn() as clob, ClobMarketWs(clob) as ws:
        for i in range(n_tokens):
            clob.set_book(data.token(i), bids=[("0.49", "1000000"), ("0.48", "1000000")],
                          asks=[("0.51", "1000000"), ("0.52", "1000000")], market=data.condition(i))
        mirrored = _reaction(clob, ws.url, n, n_tokens)
        rest = _reaction(clob, "", max(40, n // 4), n_tokens)  # ~45 ms a GET /book on the stand-in: fewer
    p = lambda xs, q: pct(xs, q)
    return {"n": len(mirrored), "mirror_p50_us": _us(p(mirrored, 0.5)), "mirror_p99_us": _us(p(mirrored, 0.99)),
            "rest_p50_us": _us(p(rest, 0.5)), "rest_p99_us": _us(p(rest, 0.99)),
            "bare_p50_us": _us(p(bare, 0.5)), "bare_p99_us": _us(p(bare, 0.99)),
            "ratio_p99_vs_bare": round(p(mirrored, 0.99) / p(bare, 0.99), 2),
            "ratio_p50_vs_bare": round(p(mirrored, 0.5) / p(bare, 0.5), 2),
            "rest_ratio_p99_vs_bare": round(p(rest, 0.99) / p(bare, 0.99), 2),
            "executor": "dry-run (live prepare path, test key)", "store": "memory"}


def bench_streams_book(quick: bool) -> dict[str, Any]:
    return {"mirror": bench_mirror(100 if quick else 1000, 500 if quick else 10_000),
            "mirror_e2e": bench_mirror_e2e(30 if quick else 300),
            "reaction": bench_reaction(40 if quick else 400)}


def table_rows(r: dict[str, Any]) -> list[tuple]:
    """(measure, value, baseline, ratio, target, pass) rows for the bench table."""
    M, E, R = r["mirror"], r["mirror_e2e"], r["reaction"]
    return [
        ("book mirror: frame → book updated, p99", f"{M['p99_us']} µs", f"{M['tokens']} tokens followed", "",
         "≤ 100 µs", M["p99_us"] <= 100),
        ("book mirror: CPU per 10,000 frames", f"{M['cpu_s_per_10k_frames']} s", f"{M['cpu_us_per_frame']} µs a frame",
         "", "", None),
        ("book mirror end to end (stand-in → mirror), p99", f"{E['p99_us']} µs", f"p50 {E['p50_us']} µs", "", "", None),
        ("LeaderTrade → signed order, mirrored book, p99", f"{R['mirror_p99_us']} µs",
         f"SDK build+sign {R['bare_p99_us']} µs", R["ratio_p99_vs_bare"], "≤ 1.5× SDK p99",
         R["ratio_p99_vs_bare"] <= 1.5),
        ("LeaderTrade → signed order, GET /book, p99", f"{R['rest_p99_us']} µs",
         f"SDK build+sign {R['bare_p99_us']} µs", R["rest_ratio_p99_vs_bare"], "", None),
    ]
