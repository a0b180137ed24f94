"""The supervised WebSocket stream (adapters/streams.py) against the loopback ws stand-in:
reconnects, the watchdog, bounded jittered backoff, status and age, send, close."""
from __future__ import annotations

import logging
import random
import subprocess
import sys
import threading

import pytest

from copytrader.adapters.streams import Stream
from tests.standins.ws import WsClient, WsStandIn
from tests.standins.ws import MonotonicClock as FakeClock



class Echo(WsStandIn):
    """Answers "sub" with "ok"; records everything."""
    paths = ("/ws",)

    def on_message(self, client: WsClient, text: str) -> None:
        if text == "sub":
            client.send("ok")


class Probe:
    """Collects on_open calls and frames; events to wait on (bounded)."""

    def __init__(self) -> None:
        self.opens = 0
        self.frames: list[str] = []
        self.cond = threading.Condition()

    def on_open(self, stream: Stream) -> None:
        with self.cond:
            self.opens += 1
            self.cond.notify_all()
        stream.send("sub")

    def on_frame(self, text: str) -> None:
        with self.cond:
            self.frames.append(text)
            self.cond.notify_all()

    def wait(self, predicate, timeout_s: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout_s)


def make(server: WsStandIn, probe: Probe, **kw) -> Stream:
    kw.setdefault("backoff_s", (0.01, 0.05))
    kw.setdefault("poll_s", 0.02)
    return Stream("test", server.url + "/ws", on_open=probe.on_open, on_frame=probe.on_frame, **kw)


def test_frames_in_order_and_reconnect_after_a_drop_runs_on_open_again():
    with Echo() as server:
        probe = Probe()
        stream = make(server, probe)
        stream.start()
        try:
            assert probe.wait(lambda: probe.frames == ["ok"])
            for i in range(20):
                server.push(f"f{i}")
            assert probe.wait(lambda: len(probe.frames) == 21)
            assert probe.frames[1:] == [f"f{i}" for i in range(20)]
            server.inject("drop")
            assert probe.wait(lambda: probe.opens == 2 and probe.frames.count("ok") == 2)
            assert server.wait_for(lambda: server.connections == 2 and len(server.clients) == 1)
            assert server.clients[0].received == ["sub"]   # subscribed again on the new connection
            status = stream.status()
            assert status.connected and status.reconnects == 1
            assert "connection lost" in status.last_error
        finally:
            stream.close()


def test_watchdog_reconnects_a_silent_stream_that_still_answers_pings():
    clock = FakeClock()
    with Echo() as server:
        probe = Probe()
        stream = make(server, probe, clock=clock, stale_s=30, ping_text="PING", ping_every_s=5,
                      pong_text="PONG", pongs_keep_alive=False)
        stream.start()
        try:
            assert probe.wait(lambda: probe.frames == ["ok"])
            server.inject("silent")
            clock.advance(6)                      # a ping is due: answered, but a pong is no data
            assert server.wait_for(lambda: server.pings >= 1)
            clock.advance(20)
            assert stream.status().connected and server.connections == 1
            clock.advance(5)                      # 31 s without a data frame
            assert server.wait_for(lambda: server.connections == 2)
            assert "watchdog" in stream.status().last_error
            assert "PONG" not in probe.frames     # pongs never reach on_frame
            server.clear()
        finally:
            stream.close()


def test_pongs_keep_a_quiet_stream_alive_when_they_count():
    clock = FakeClock()
    with Echo() as server:
        probe = Probe()
        stream = make(server, probe, clock=clock, stale_s=30, ping_text="PING", ping_every_s=10,
                      pong_text="PONG")
        stream.start()
        try:
            assert probe.wait(lambda: probe.frames == ["ok"])
            for n in range(1, 6):                 # 50 s, a ping (and its pong) every 10 s
                clock.advance(10)
                assert server.wait_for(lambda: server.pings >= n)
                assert server.wait_for(lambda: (stream.status().age_s or 0) < 10)
            assert server.connections == 1 and stream.status().reconnects == 0
        finally:
            stream.close()


def test_backoff_is_exponential_bounded_and_jittered():
    stream = Stream("b", "ws://127.0.0.1:9/x", on_open=lambda s: None, on_frame=lambda t: None,
                    backoff_s=(0.5, 30.0), rng=random.Random(7))
    delays = [stream.backoff_delay(a) for a in range(40)]
    for attempt, delay in enumerate(delays):
        step = min(30.0, 0.5 * 2 ** attempt)
        assert step / 2 <= delay <= step
    assert max(delays) <= 30.0 and min(delays) >= 0.25
    assert len({round(stream.backoff_delay(10), 9) for _ in range(20)}) > 1   # jittered, not fixed
    with pytest.raises(ValueError):
        Stream("b", "ws://x", on_open=lambda s: None, on_frame=lambda t: None, backoff_s=(2.0, 1.0))


def test_refused_connections_are_retried_without_raising_then_connect():
    with Echo() as server:
        server.inject("refuse")
        probe = Probe()
        stream = make(server, probe)
        stream.start()
        try:
            assert server.wait_for(lambda: "failed" in stream.status().last_error)
            assert probe.opens == 0 and not stream.status().connected
            server.clear()
            assert probe.wait(lambda: probe.frames == ["ok"])
            assert stream.status().connected
        finally:
            stream.close()


def test_status_age_and_staleness_follow_the_clock():
    clock = FakeClock()
    with Echo() as server:
        probe = Probe()
        stream = make(server, probe, clock=clock, stale_s=30)
        assert stream.status().age_s is None and not stream.status().stale
        stream.start()
        try:
            assert probe.wait(lambda: probe.frames == ["ok"])
            clock.advance(5)
            status = stream.status()
            assert status.age_s == pytest.approx(5) and not status.stale and status.name == "test"
            server.push("x")
            assert probe.wait(lambda: probe.frames[-1:] == ["x"])
            assert stream.status().age_s == pytest.approx(0)
        finally:
            stream.close()


def test_never_connected_is_stale_after_stale_s():
    clock = FakeClock()
    stream = Stream("never", "ws://127.0.0.1:9/ws", on_open=lambda s: None, on_frame=lambda t: None,
                    clock=clock, stale_s=30, backoff_s=(0.01, 0.05), open_timeout_s=0.5)
    stream.start()
    try:
        assert not stream.status().stale
        clock.advance(31)
        status = stream.status()
        assert status.stale and not status.connected and status.age_s is None
    finally:
        stream.close()


def test_send_when_disconnected_is_dropped_and_logged(caplog):
    stream = Stream("idle", "ws://127.0.0.1:9/ws", on_open=lambda s: None, on_frame=lambda t: None)
    with caplog.at_level(logging.WARNING, logger="copytrader.streams"):
        stream.send('{"secret": "not logged"}')
    assert "not connected, frame dropped" in caplog.text and "not logged" not in caplog.text


def test_a_failing_frame_handler_skips_the_frame_and_keeps_the_stream():
    with Echo() as server:
        seen: list[str] = []

        def on_frame(text: str) -> None:
            if text == "boom":
                raise ValueError("bad frame")
            seen.append(text)

        stream = Stream("h", server.url + "/ws", on_open=lambda s: s.send("sub"), on_frame=on_frame,
                        backoff_s=(0.01, 0.05), poll_s=0.02)
        stream.start()
        try:
            assert server.wait_clients(1)
            server.inject("malformed")
            server.push("boom")
            server.push("after")
            assert server.wait_for(lambda: "after" in seen)
            assert server.connections == 1
        finally:
            stream.close()


def test_close_stops_the_thread_and_the_connection():
    statuses = []
    with Echo() as server:
        probe = Probe()
        stream = make(server, probe, on_status=statuses.append)
        stream.start()
        assert probe.wait(lambda: probe.frames == ["ok"])
        stream.close()
        assert not stream.alive
        assert server.wait_for(lambda: not server.clients)
        assert not stream.status().connected
        assert statuses[-1].connected is False and any(s.connected for s in statuses)
        server.push("late")
        assert probe.frames == ["ok"]


def test_importing_the_stream_module_does_not_load_websockets():
    code = ("import sys, copytrader.adapters.streams as s; "
            "s.Stream('x', 'ws://127.0.0.1:9', on_open=lambda st: None, on_frame=lambda t: None).status(); "
            "print('websockets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_urls_in_logs_and_errors_lose_keys_in_user_info_query_and_long_path_segments():
    from copytrader.adapters.streams import redact_url

    key = "k3yAbCdEf0123456789xyzABCDEF"
    assert redact_url(f"wss://polygon-mainnet.g.alchemy.com/v2/{key}") == "wss://polygon-mainnet.g.alchemy.com/v2/***"
    assert redact_url(f"https://user:{key}@node.example:8545/rpc?apikey={key}#x") == "https://node.example:8545/rpc"
    assert redact_url("wss://ws-subscriptions-clob.polymarket.com/ws/market") == \
        "wss://ws-subscriptions-clob.polymarket.com/ws/market"


def test_feeds_of_feeds_show_every_socket_with_its_fallback():
    from copytrader.adapters.feeds.merged import MergedFeed
    from copytrader.adapters.streams import StreamStatus, health, streams_of

    class Socketed:
        name, max_polls = "socketed", None

        def streams(self):
            return [health(StreamStatus("chain", False, None, 0, "connect to ws://127.0.0.1:1 refused", False), True)]

    class Plain:
        name, max_polls = "plain", None

    merged = MergedFeed([Socketed(), Plain()])
    [shown] = merged.streams()
    assert (shown.name, shown.stale, shown.fallback) == ("chain", True, True)  # not connected counts as stale
    assert streams_of([merged, Plain()]) == [shown]
