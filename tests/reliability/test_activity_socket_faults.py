"""The activity socket's part of the fault matrix (``feed.kind = "fast"``): whatever the
socket does (dropped, stalled answering pings, mute, a gap, reordered, duplicated or
garbage frames), the chain delivers every fill, each is copied exactly once, and every
fill booked from a hint is confirmed by the chain's event of it."""
from __future__ import annotations

from decimal import Decimal

import pytest

from tests.feeds.test_activity_socket import (  # noqa: F401 (fixtures)
    T, StepClock, accounted_once, chain_fill, engine, row, rpc, run, socket_server, streamed)
from tests.reliability import FIGURES

D = Decimal
FAULTS = ["drop", "silent", "mute", "gap", "reorder", "duplicate", "malformed"]


@pytest.mark.parametrize("fault", FAULTS)
def test_activity_socket_fault_misses_and_doubles_nothing(socket_server, rpc, fault):
    clock = StepClock(T)
    feed = streamed(socket_server, rpc, clock, max_polls=3)
    feed._start_stream()
    assert socket_server.subscribed()
    socket_server.trade(row(1, size=11.0))
    socket_server.inject(fault)
    for n in range(2, 5):
        socket_server.noise(20, T + 10)
        socket_server.trade(row(n, size=10.0 + n))
    rpc.mine(T + 10, [chain_fill(n, size=10 + n) for n in range(1, 5)])
    app, _ = engine()
    summary = run(app, feed)
    socket_server.clear()
    FIGURES["faults injected"] += 1
    assert summary.copied == 4, (fault, feed.counts)
    accounted_once(app, 4)
    [pos] = app.positions()
    assert pos.size == 4 * D(20)  # each of the four fills copied once (the fixed 10 USDC at 0.50)
    assert feed.counts["confirmed"] == feed.counts["hinted"]  # every fill booked from a hint, confirmed
