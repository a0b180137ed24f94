"""The application's Supervisor on its own: sessions from a plain function, no container."""
from __future__ import annotations

from copytrader.adapters.feeds.memory import MemoryFeed
from copytrader.application.supervisor import Session, Standby, Supervisor, SupervisorSettings
from copytrader.testing import TOKEN, RecordingAlerter, book, make_app, make_trade


class Metrics:
    """The FollowerMetrics port, recorded."""

    def __init__(self):
        self.calls: list[tuple] = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))


def test_standby_then_a_failure_then_a_session_that_finishes():
    app, fakes = make_app(profile="paper")
    fakes.market.put(*book(TOKEN, asks=[("0.51", "300")], bids=[("0.49", "300")]))
    attempts, closed, alerters = [], [], []

    def open_session(alerter):
        attempts.append(alerter)
        if len(attempts) <= 2:
            raise Standby("another worker holds alice")
        if len(attempts) == 3:
            raise RuntimeError("feed down")
        return Session(app.service, MemoryFeed([make_trade(), make_trade(price="1.5", seq=2)]),
                       close=lambda: closed.append(len(attempts)))

    metrics = Metrics()
    sup = Supervisor(SupervisorSettings(lease_retry_s=0.01, restart_backoff_s=0.01), metrics, wall=lambda: 1.0e9)
    worker = sup.add("alice", open_session, lambda: alerters.append(RecordingAlerter()) or alerters[-1])
    assert sup.start().wait(30)
    assert worker.status.worker == "finished" and worker.status.failures == 1
    # a standby worker stays one while it retries; "starting" is the initial state
    assert list(worker.status.history) == ["standby", "failed", "starting", "running", "finished"]
    assert closed == [4] and len(alerters) == 1 and all(a is alerters[0] for a in attempts)
    assert [a.kind for a in alerters[0].sent] == ["error", "error"]  # the failure, then running again
    assert ("follower", "alice") in metrics.calls and ("worker_failed", "alice") in metrics.calls
    assert ("outcome", "alice", "filled", "") in metrics.calls
    assert ("outcome", "alice", "rejected", "invalid_price") in metrics.calls
    assert ("worker", "alice", True) in metrics.calls and metrics.calls[-1][:2] == ("worker", "alice")
    ok, health = sup.health()
    assert ok and health["followers"]["alice"]["worker"] == "finished"
    app.close()
