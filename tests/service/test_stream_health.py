"""Supervision of the sockets (issue 18 item 5): each follower's streams in the metrics
(copytrader_stream_age_seconds) and in /healthz; a stale stream without a fallback makes
its follower unhealthy, one with a fallback (the book mirror: GET /book) does not."""
from __future__ import annotations

import logging

from copytrader.adapters.feeds.memory import MemoryFeed
from copytrader.adapters.market.clob_stream import BookMirror
from copytrader.application.supervisor import Session, Supervisor, SupervisorSettings
from copytrader.ports import StreamHealth
from copytrader.testing import make_app, make_trade
from tests.service.test_supervisor import Metrics
from tests.standins.clob import ClobStandIn
from tests.standins.clob_ws import ClobMarketWs


class StreamingFeed(MemoryFeed):
    def __init__(self, items, health):
        super().__init__(items)
        self.health = health

    def streams(self):
        return [self.health]


def _run(health):
    app, _ = make_app(profile="paper")
    metrics = Metrics()
    sup = Supervisor(SupervisorSettings(), metrics, wall=lambda: 1.0e9)
    sup.add("alice", lambda alerter: Session(app.service, StreamingFeed([make_trade()], health), close=lambda: None),
            lambda: None)
    sup.workers[0]._session_open = None
    worker = sup.workers[0]
    session = Session(app.service, StreamingFeed([], health), close=lambda: None)
    worker._session_open = session
    worker.status.worker = "running"
    worker._heartbeat(app.service)
    return sup, metrics


def test_a_stale_stream_without_fallback_is_unhealthy_and_its_age_is_a_metric():
    sup, metrics = _run(StreamHealth("activity", True, 42.0, True, False, 3, "no frame for 30s (watchdog)"))
    ok, health = sup.health()
    alice = health["followers"]["alice"]
    assert not ok and not alice["healthy"]
    assert alice["streams"]["activity"] == {"connected": True, "age_s": 42.0, "stale": True, "fallback": False,
                                            "reconnects": 3, "error": "no frame for 30s (watchdog)"}
    assert ("stream_age", "alice", "activity", 42.0) in metrics.calls


def test_a_stale_stream_with_a_fallback_is_shown_but_healthy():
    sup, metrics = _run(StreamHealth("market", False, None, True, True))
    ok, health = sup.health()
    assert ok and health["followers"]["alice"]["streams"]["market"]["stale"] is True
    assert ("stream_age", "alice", "market", -1.0) in metrics.calls


def test_prometheus_gauge():
    from copytrader.adapters.metrics.prometheus import Metrics as Prom

    m = Prom()
    m.stream_age("alice", "market", 1.5)
    assert b'copytrader_stream_age_seconds{follower="alice",stream="market"} 1.5' in m.render()[0]


def test_the_mirror_logs_once_when_it_degrades_and_once_when_it_recovers(caplog):
    with ClobStandIn() as clob, ClobMarketWs(clob) as ws:
        mirror = BookMirror(ws.url, stream_options={"backoff_s": (0.01, 0.05), "poll_s": 0.02})
        with caplog.at_level(logging.WARNING, logger="copytrader.market"):
            mirror.watch([str(10**70 + 1)])
            assert ws.wait_clients(1)
            ws.inject("refuse")
            ws.inject("drop")
            assert ws.wait_for(lambda: mirror.degraded)
            assert ws.wait_for(lambda: "failed" in mirror.status().last_error)   # retried, still refused
            ws.clear()
            assert ws.wait_for(lambda: not mirror.degraded)
        mirror.close()
    lines = [r.getMessage() for r in caplog.records if "market channel" in r.getMessage()]
    assert sum("degraded" in m for m in lines) == 1 and sum("recovered" in m for m in lines) == 1
