"""Detection on the chain, pushed vs polled: a leader fill mined by the JSON-RPC
stand-in (pushed by its WebSocket stand-in as a node pushes it) → the
``LeaderTrade`` out of ``OnchainFeed.read``, p50/p99, on loopback.

Chain poll reads once per ``poll_interval_s`` (a fill waits for the next poll:
half an interval on average); chain push is the socket's frames plus our
handling. Both with ``confirmations = 0``: each confirmation adds a block time
(about 2 s on Polygon) to either source alike.
"""
from __future__ import annotations

import random
import threading
import time
from typing import Any

LEADER, OTHER = "0x" + "a1" * 20, "0x" + "b2" * 20


def _detect(rpc: Any, ws: Any, n: int, poll_interval_s: float, seed: int = 7) -> list[float]:
    from copytrader.adapters.execution.polymarket.settings import EXCHANGE_V3, V2_EXCHANGE, V2_NEG_RISK_EXCHANGE
    from copytrader.adapters.feeds.onchain import OnchainFeed
    from copytrader.domain.model import LeaderTrade
    from tests.standins.rpc import fill_log

    feed = OnchainFeed(rpc.url, [LEADER], [V2_EXCHANGE, V2_NEG_RISK_EXCHANGE, EXCHANGE_V3], confirmations=0,
                       start_block=rpc.block + 1, ws_url=ws.url if ws else "", poll_interval_s=poll_interval_s,
                       idle_s=0.05)
    stop, seen, cond = threading.Event(), {}, threading.Condition()
    feed.stop_when(stop.is_set, stop.wait)

    def reader() -> None:
        for item in feed.read(lambda key: None):
            if isinstance(item.payload, LeaderTrade):
                with cond:
                    seen[item.payload.tx_hash] = time.perf_counter()
                    cond.notify_all()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    rng, out = random.Random(seed), []
    try:
        if ws is not None:
            if not ws.wait_subscribed(2, timeout_s=10):
                raise RuntimeError("the feed did not subscribe")
            rpc.mine(1_795_000_000)  # the head the socket is trusted after
            deadline = time.monotonic() + 10
            while feed._coverage.trusted_after is None and time.monotonic() < deadline:
                time.sleep(0.005)
        for i in range(n):
            if ws is None:
                time.sleep(rng.random() * poll_interval_s)  # a fill lands anywhere between two polls
            tx = "0x" + f"{10**6 + rpc.block:064x}"
            t0 = time.perf_counter()
            rpc.mine(1_795_000_000 + i, [fill_log(V2_EXCHANGE, LEADER, OTHER, 0, 10**70 + i, 1_000_000, 2_000_000, tx)])
            with cond:
                if not cond.wait_for(lambda: tx in seen, timeout=poll_interval_s * 3 + 5):
                    raise RuntimeError(f"fill {i} not detected")
                out.append(seen[tx] - t0)
    finally:
        stop.set()
        thread.join(poll_interval_s + 5)
        feed.close()
    return out


def bench(quick: bool) -> dict[str, Any]:
    from bench.workload import pct
    from tests.standins.rpc import RpcStandIn
    from tests.standins.rpc_ws import RpcWsStandIn

    poll_interval_s = 0.5
    n_push, n_poll = (20, 5) if quick else (300, 40)
    with RpcStandIn() as rpc, RpcWsStandIn(rpc) as ws:
        push = _detect(rpc, ws, n_push, poll_interval_s)
    with RpcStandIn() as rpc:
        poll = _detect(rpc, None, n_poll, poll_interval_s)
    ms = lambda v: round(v * 1000, 2)  # noqa: E731
    return {"push_n": n_push, "poll_n": n_poll, "poll_interval_s": poll_interval_s,
            "push_p50_ms": ms(pct(push, 0.5)), "push_p99_ms": ms(pct(push, 0.99)),
            "poll_p50_ms": ms(pct(poll, 0.5)), "poll_p99_ms": ms(pct(poll, 0.99))}


def rows(r: dict[str, Any]) -> list[tuple]:
    """(measure, value, baseline, ratio, target, pass) rows of the table."""
    if "streams_chain" not in r:
        return []
    C = r["streams_chain"]
    return [(f"detection, chain push, p{q} ({C['push_n']} fills)", f"{C[f'push_p{q}_ms']} ms",
             f"chain poll every {C['poll_interval_s']} s: {C[f'poll_p{q}_ms']} ms",
             round(C[f"push_p{q}_ms"] / C[f"poll_p{q}_ms"], 3) if C[f"poll_p{q}_ms"] else "", "", None)
            for q in (50, 99)]
