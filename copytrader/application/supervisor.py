"""Supervising followers: one worker thread each, restarted after a failure,
standing by while another process holds the follower's lease, reporting
health, metrics and a daily summary. What a follower runs on (store, feed,
executor) comes from ``open_session``, made by the composition root."""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Sequence

import attrs

from ..domain.model import LeaderTrade
from ..ports import Alerter, FeedItem, FollowerMetrics, LeaderFeed, StoredState
from .chain_reconcile import DriftWatch
from .runner import run, settling
from .service import CopyService, Outcome

log = logging.getLogger("copytrader.service")


class Standby(Exception):
    """Raised by ``open_session`` when another worker holds the follower's lease."""


@attrs.define
class Session:
    """One attempt at a follower: its engine and feed, whether the lease still
    holds, how to close what the attempt opened (store last: it holds the
    lease), and ``read_state``: the stored trading state, callable from any
    thread (the health endpoint's) without touching the worker's connection;
    ``drift_watch``: stepped in the worker's thread between items and polls."""

    service: CopyService
    feed: LeaderFeed
    close: Callable[[], None]
    lease_alive: Callable[[], bool] = lambda: True
    read_state: Optional[Callable[[], StoredState]] = None
    drift_watch: Optional[DriftWatch] = None  # live with live.rpc_url: the periodic reconciliation with the chain


@attrs.define
class WorkerStatus:
    worker: str = "starting"  # starting|standby|running|failed|finished|stopped
    trading_state: str = ""
    reason: str = ""
    last_poll: Optional[float] = None  # wall-clock seconds
    error: str = ""
    failures: int = 0
    history: deque = attrs.field(factory=lambda: deque(maxlen=32))  # the latest worker states, in order
    streams: tuple = ()  # StreamHealth of the sockets the follower's adapters depend on (at its last heartbeat)


@attrs.frozen
class SupervisorSettings:
    lease_retry_s: float = 5.0
    restart_backoff_s: float = 10.0
    stale_poll_s: float = 120.0


class Worker:
    """A follower's thread: ``open_session(alerter)`` → trade until the feed ends
    (finished), a stop (stopped) or a failure (failed, restarted after a pause)."""

    def __init__(self, name: str, open_session: Callable[[Alerter], Session], make_alerter: Callable[[], Alerter],
                 supervisor: "Supervisor") -> None:
        self.name, self._open, self._make_alerter, self._sup = name, open_session, make_alerter, supervisor
        self.status = WorkerStatus()
        self.alerter: Any = None
        self.thread = threading.Thread(target=self.run, name=f"follower-{name}", daemon=True)
        self._day = ""
        self._counts = {"seen": 0, "copied": 0, "rejected": 0}
        self._alerted_error = ""
        self._session_open: Optional[Session] = None  # while trading: for refresh_state from other threads
        self._state_lock = threading.Lock()
        self._reads = self._shown = 0  # state reads begun, and the latest one shown

    @property
    def _metrics(self) -> Optional[FollowerMetrics]:
        return self._sup.metrics

    def _set(self, state: str, error: str = "") -> None:
        if state != self.status.worker:
            self.status.history.append(state)
        self.status.worker, self.status.error = state, error
        if self._metrics is not None:
            self._metrics.worker(self.name, state == "running")

    def run(self) -> None:
        stop, settings = self._sup.stop_event, self._sup.settings
        self.alerter = self._make_alerter()
        try:
            while not stop.is_set():
                if self.status.worker != "standby":  # a standby worker stays one while it retries
                    self._set("starting")
                try:
                    done = self._session()
                except Standby as exc:
                    self._set("standby", str(exc))
                    stop.wait(settings.lease_retry_s)
                    continue
                except Exception as exc:  # noqa: BLE001 - one follower's failure stops only it, for a while
                    self.status.failures += 1
                    message = f"{type(exc).__name__}: {exc}"[:300]
                    self._set("failed", message)
                    log.error("follower %s failed (restart in %ss): %s", self.name, settings.restart_backoff_s,
                              message)
                    if message != self._alerted_error:  # the same failure again and again: one alert
                        self._alert("error", f"worker failed, restarting: {message}")
                        self._alerted_error = message
                    if self._metrics is not None:
                        self._metrics.worker_failed(self.name)
                    stop.wait(settings.restart_backoff_s)
                    continue
                if done:
                    self._set("finished")
                    return
            self._set("stopped")
        finally:
            if self.status.worker not in ("finished", "stopped"):
                self._set("stopped", self.status.error)
            if hasattr(self.alerter, "close"):
                self.alerter.close()

    def _alert(self, kind: str, message: str) -> None:
        try:
            self.alerter.send(kind, message)
        except Exception:  # noqa: BLE001
            log.exception("alert failed")

    def _session(self) -> bool:
        """Take the follower's lease and trade until the feed ends (True) or we are stopped (False)."""
        session = self._open(self.alerter)
        self._session_open = session
        try:
            service, stop = session.service, self._sup.stop_event

            def should_stop() -> bool:
                self._heartbeat(service)
                if session.drift_watch is not None:
                    session.drift_watch.step()
                return stop.is_set() or not session.lease_alive()

            stop_when = getattr(session.feed, "stop_when", None)  # a polling feed: ends after a round, wakes on stop
            if stop_when is not None:
                stop_when(settling(service, should_stop), stop.wait)  # provisional fills settle between polls
                session.feed.before_wait(service.store.flush)  # nothing comes while it waits: the group commit first
            self._set("running")
            if self._alerted_error:
                self._alert("error", f"worker running again after {self.status.failures} failure(s)")
                self._alerted_error = ""
            self._heartbeat(service)
            run(service, _Observed(session.feed, self), should_stop=should_stop,
                on_outcome=lambda o: self._outcome(o, service))
            self._heartbeat(service)
            if not session.lease_alive() and not stop.is_set():
                raise RuntimeError("lost the follower's lease (database connection gone)")
            return not stop.is_set()
        finally:
            self._session_open = None
            session.close()

    def _outcome(self, outcome: Outcome, service: CopyService) -> None:
        self._counts["seen"] += 1
        if outcome.status in ("filled", "partial"):
            self._counts["copied"] += 1
        elif outcome.status == "rejected":
            self._counts["rejected"] += 1
        if self._metrics is not None:
            self._metrics.outcome(self.name, outcome.status, outcome.reason)
        self._state(service)

    def _state(self, service: CopyService) -> None:
        self._show_state(lambda: service.state)  # as the engine holds it after a trade

    def _show_state(self, read: Callable[[], StoredState]) -> None:
        """Show the state ``read`` gives, from any thread; of overlapping reads
        the one begun last wins (it cannot have seen an older state)."""
        with self._state_lock:
            self._reads += 1
            ticket = self._reads
        state = read()
        with self._state_lock:
            if ticket < self._shown:
                return
            self._shown = ticket
            self.status.trading_state, self.status.reason = state.state.value, state.reason
            if self._metrics is not None:
                self._metrics.state(self.name, state.state.value)

    def refresh_state(self) -> None:
        """Read the stored trading state now (another process may have halted
        the follower), through the session's thread-safe reader; callable from
        any thread. Without a session, the last state stays shown."""
        session = self._session_open
        if session is None or session.read_state is None:
            return
        try:
            self._show_state(session.read_state)
        except Exception as exc:  # noqa: BLE001 - health must answer; the last state stays shown
            log.warning("follower %s: cannot read the trading state: %s", self.name, exc)

    def _heartbeat(self, service: CopyService) -> None:
        self.status.last_poll = self._sup.wall()
        if self._metrics is not None:
            self._metrics.polled(self.name, self.status.last_poll)
        self._show_streams(service)
        self._show_state(service.store.get_state)  # the stored row: a halt from another process shows
        day = datetime.fromtimestamp(self.status.last_poll, timezone.utc).strftime("%Y-%m-%d")
        if self._day and day != self._day:
            c = self._counts
            realised = service.store.daily_realised(self._day)
            self._alert("summary", f"{self._day}: seen {c['seen']}, copied {c['copied']}, rejected "
                                   f"{c['rejected']}, realised PnL {realised} USDC, state {self.status.trading_state}")
            self._counts = {k: 0 for k in c}
        self._day = day

    def _show_streams(self, service: CopyService) -> None:
        """The sockets of the engine's market data, executor and feed (``streams()``, optional), for metrics
        and health."""
        session, found = self._session_open, []
        for adapter in (getattr(service, "market", None), getattr(service, "executor", None),
                        session.feed if session is not None else None):
            streams = getattr(adapter, "streams", None)
            if streams is not None:
                found.extend(streams())
        self.status.streams = tuple(found)
        if self._metrics is not None:
            for s in found:
                self._metrics.stream_age(self.name, s.name, -1.0 if s.age_s is None else s.age_s)

    def feed_item(self, item: FeedItem) -> None:
        self.status.last_poll = self._sup.wall()
        if isinstance(item.payload, LeaderTrade) and self._metrics is not None:
            self._metrics.lag(self.name, max(0.0, self.status.last_poll - item.payload.timestamp))


class _Observed:
    """The feed, told to the worker item by item (poll time, feed lag)."""

    def __init__(self, feed: LeaderFeed, worker: Worker) -> None:
        self.name, self._feed, self._worker = feed.name, feed, worker

    def read(self, cursors: Any) -> Any:
        for item in self._feed.read(cursors):
            self._worker.feed_item(item)
            yield item


class Supervisor:
    """The workers of several followers: ``add`` one per follower, then
    ``start``; ``stop`` asks each to finish the item in hand; ``health`` says
    whether every follower runs (or waits as standby, or has finished)."""

    def __init__(self, settings: SupervisorSettings, metrics: Optional[FollowerMetrics] = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.settings, self.metrics, self.wall = settings, metrics, wall
        self.stop_event = threading.Event()
        self.workers: list[Worker] = []

    def add(self, name: str, open_session: Callable[[Alerter], Session], make_alerter: Callable[[], Alerter]) -> Worker:
        worker = Worker(name, open_session, make_alerter, self)
        self.workers.append(worker)
        if self.metrics is not None:
            self.metrics.follower(name)
        return worker

    def start(self) -> "Supervisor":
        for w in self.workers:
            w.thread.start()
        return self

    def done(self) -> bool:
        return all(not w.thread.is_alive() for w in self.workers)

    def wait(self, timeout_s: Optional[float] = None) -> bool:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for w in self.workers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            w.thread.join(left)
        return self.done()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Ask every worker to stop after its current item, and wait; True when all have."""
        self.stop_event.set()
        return self.wait(timeout_s)

    def refresh_states(self) -> None:
        """Every follower's stored trading state, read now (health and metrics requests)."""
        for w in self.workers:
            w.refresh_state()

    def health(self) -> tuple[bool, dict]:
        self.refresh_states()
        now = self.wall()
        followers, ok = {}, True
        for w in self.workers:
            s = w.status
            age = None if s.last_poll is None else round(now - s.last_poll, 3)
            healthy = s.worker in ("standby", "finished") or (
                s.worker == "running" and age is not None and age <= self.settings.stale_poll_s)
            streams = {st.name: {"connected": st.connected, "age_s": None if st.age_s is None else round(st.age_s, 3),
                                 "stale": st.stale, "fallback": st.fallback, "reconnects": st.reconnects,
                                 "error": st.last_error or None} for st in s.streams}
            if s.worker == "running" and any(st.stale and not st.fallback for st in s.streams):
                healthy = False  # a socket the follower depends on is stale and nothing covers it
            ok = ok and healthy
            followers[w.name] = {"worker": s.worker, "trading_state": s.trading_state or None,
                                 "state_reason": s.reason or None, "last_poll_age_s": age, "healthy": healthy,
                                 "error": s.error or None, "failures": s.failures,
                                 **({"streams": streams} if streams else {})}
        return ok, {"status": "ok" if ok else "unhealthy", "followers": followers}


def close_all(name: str, resources: Sequence[Any]) -> None:
    """Close each resource that has ``close()``, in order; a failure is logged, never raised."""
    for resource in resources:
        close = getattr(resource, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing never stops the supervisor
                log.warning("follower %s: closing %s failed", name, type(resource).__name__)


__all__ = ["Session", "Standby", "Supervisor", "SupervisorSettings", "Worker", "WorkerStatus", "close_all"]
