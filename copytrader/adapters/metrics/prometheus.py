"""Prometheus metrics for the service, every series labelled by follower.

prometheus-client (the ``service`` extra) is imported when a ``Metrics`` is
built; each instance has its own registry, so several can live in one
process (tests) and nothing is registered globally."""
from __future__ import annotations

from typing import Iterable

STATES = ("ACTIVE", "REDUCING", "HALTED")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram  # the CLI names the extra
        self.registry = CollectorRegistry()
        r = self.registry
        self.trades_seen = Counter("copytrader_trades_seen", "Leader trades read from the feed (duplicates "
                                   "and quarantined rows included)", ["follower"], registry=r)
        self.trades_copied = Counter("copytrader_trades_copied", "Copies filled, fully or partly",
                                     ["follower"], registry=r)
        self.trades_rejected = Counter("copytrader_trades_rejected", "Leader trades not copied, by reason",
                                       ["follower", "reason"], registry=r)
        self.outcomes = Counter("copytrader_outcomes", "Feed items by outcome", ["follower", "status"], registry=r)
        self.unknown_orders = Counter("copytrader_unknown_orders", "Orders whose outcome is not known",
                                      ["follower"], registry=r)
        self.order_latency = Histogram("copytrader_order_latency_seconds", "Time to submit an order and get "
                                       "the answer", ["follower"], buckets=LATENCY_BUCKETS, registry=r)
        self.trading_state = Gauge("copytrader_trading_state", "1 for the follower's trading state, 0 for the "
                                   "others", ["follower", "state"], registry=r)
        self.feed_lag = Gauge("copytrader_feed_lag_seconds", "Now minus the time of the newest leader trade read",
                              ["follower"], registry=r)
        self.last_poll = Gauge("copytrader_feed_last_poll_timestamp_seconds", "When the feed last polled "
                               "(Unix time)", ["follower"], registry=r)
        self.worker_running = Gauge("copytrader_worker_running", "1 while this worker holds the follower's "
                                    "lease and trades", ["follower"], registry=r)
        self.position_drift = Gauge("copytrader_position_drift", "Shares on chain minus shares in our book, per "
                                    "outcome token (`copytrader reconcile`; 0: none)", ["follower", "token"], registry=r)
        self.stream_age_gauge = Gauge("copytrader_stream_age_seconds", "Seconds since a socket's last frame (-1: none "
                                "yet), per follower and stream", ["follower", "stream"], registry=r)
        self.worker_failures = Counter("copytrader_worker_failures", "Follower worker failures (restarted)",
                                       ["follower"], registry=r)

    def follower(self, name: str) -> None:
        """Create a follower's series at zero so they show before the first trade."""
        for c in (self.trades_seen, self.trades_copied, self.unknown_orders, self.worker_failures):
            c.labels(name)
        self.worker_running.labels(name).set(0)

    def outcome(self, follower: str, status: str, reason: str = "") -> None:
        self.trades_seen.labels(follower).inc()
        self.outcomes.labels(follower, status).inc()
        if status in ("filled", "partial"):
            self.trades_copied.labels(follower).inc()
        elif status == "rejected":
            self.trades_rejected.labels(follower, reason or "unspecified").inc()
        elif status == "unknown":
            self.unknown_orders.labels(follower).inc()

    def state(self, follower: str, state: str, states: Iterable[str] = STATES) -> None:
        for s in states:
            self.trading_state.labels(follower, s).set(1 if s == state else 0)

    def worker(self, follower: str, running: bool) -> None:
        self.worker_running.labels(follower).set(1 if running else 0)

    def worker_failed(self, follower: str) -> None:
        self.worker_failures.labels(follower).inc()

    def polled(self, follower: str, at: float) -> None:
        self.last_poll.labels(follower).set(at)

    def lag(self, follower: str, seconds: float) -> None:
        self.feed_lag.labels(follower).set(seconds)

    def drift(self, follower: str, token: str, shares: float) -> None:
        self.position_drift.labels(follower, token).set(shares)

    def stream_age(self, follower: str, stream: str, seconds: float) -> None:
        self.stream_age_gauge.labels(follower, stream).set(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
