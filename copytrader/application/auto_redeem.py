"""The engine redeeming resolved markets by itself (``live.auto_redeem``).

The same pass as ``copytrader redeem --live --yes`` (``Redemptions.steps``:
records committed before sending, unfinished ones reconciled first, a payout
booked once from the balances), driven so that copying never waits for it:
its venue requests (balance reads, the ``eth_call``, the send, the wait for a
block, which can take minutes) are answered by a thread of its own, one at a
time; its bookkeeping (the store, the portfolio, alerts) runs on the engine's
thread, in ``step``, which the run loop calls between leader trades and polls
(``runner.settling``) and which never blocks. A pass starts at most every
``INTERVAL_S`` of the engine's clock, and only when positions are pending or
a redemption is unfinished. A finite run (a replay, ``--once``) ends with
``drain``: the pass in hand, and one more if positions are pending, finished
before it returns, within a bound.

What it does not do by itself: send again a redemption that failed after it
was sent (it alerts; ``copytrader redeem --live --yes`` retries). A market
whose plan fails (its simulation reverts, the venue refuses) is tried again
later, each time waiting twice as long (at most an hour). Without what
sending needs (live.rpc_url, a relayer key for a relayed wallet) it alerts
once and the positions stay pending.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future, TimeoutError as Late
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..domain.redemption import FAILED, PAID, REQUESTED, Redemption, usdc
from ..ports import RedeemError, Redeemer
from .redemption import Redemptions, Steps

if TYPE_CHECKING:
    from .service import CopyService

log = logging.getLogger("copytrader.redeem")

INTERVAL_S = 30  # a pass at most this often (engine clock)
RETRY_S, RETRY_MAX_S = 60, 3600  # a market whose plan failed: tried again after 60 s, 120 s, ... at most 1 h
DRAIN_S = 300.0  # what a finite run waits at its end for the pass in hand (real seconds)


class _Worker:
    """One daemon thread answering requests in order (a wait for a block that
    hangs past the process's end does not keep it alive)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._requests: "queue.SimpleQueue[tuple[Callable[[], Any], Future]]" = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None

    def submit(self, request: Callable[[], Any]) -> Future:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()
        future: Future = Future()
        self._requests.put((request, future))
        return future

    def _loop(self) -> None:
        while True:
            request, future = self._requests.get()
            try:
                future.set_result(request())
            except BaseException as exc:  # handed to the pass, which decides
                future.set_exception(exc)


class AutoRedeem:
    """``venue()`` builds the redeemer (on the worker thread: deriving a
    deposit wallet reads the chain); RedeemError when sending is not set up."""

    def __init__(self, service: "CopyService", venue: Callable[[], Redeemer], interval_s: float = INTERVAL_S,
                 hook: Callable[[str, Redemption], None] = lambda step, record: None) -> None:
        self.service, self.venue, self.hook = service, venue, hook
        self.interval = timedelta(seconds=interval_s)
        self.off = ""  # why sending is not possible (alerted once)
        self._use_case: Optional[Redemptions] = None
        self._worker = _Worker(f"redeem-{id(self):x}")
        self._pass: Optional[Steps] = None
        self._answer: Optional[Future] = None
        self._next: Optional[datetime] = None
        self._retry: dict[str, tuple[datetime, float]] = {}  # condition -> (not before, last wait in s)
        self._started_at: Optional[datetime] = None
        self._titles: dict[str, str] = {}  # the pending markets' titles (for the alerts)

    # -- driven by the engine's thread ----------------------------------------------
    def step(self) -> None:
        """Take the answer the worker has ready, or start a pass when one is due; never waits."""
        if self._answer is not None:
            if self._answer.done():
                self._advance(self._answer)
            return
        now = self.service.clock.now()
        if self._next is not None and now < self._next:
            return
        self._next = now + self.interval
        self._begin(now)

    def drain(self, timeout_s: float = DRAIN_S) -> None:
        """Finish the pass in hand here, then one more if something is left to
        redeem (a finite run ends with its redemptions done, or as far as the
        chain let them go within ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        for _ in range(2):
            if self._answer is None:
                self._begin(self.service.clock.now())
            while self._answer is not None:
                try:
                    self._answer.exception(timeout=max(0.0, deadline - time.monotonic()))
                except Late:
                    log.warning("auto-redeem: a venue request still runs after %.0f s; the record says where "
                                "it stands and the next start goes on from there", timeout_s)
                    return
                self._advance(self._answer)

    # -- the pass ----------------------------------------------------------------------
    def _due(self) -> bool:
        service = self.service
        return bool(service.portfolio.pending() or service.store.redemptions(unfinished=True))

    def _begin(self, now: datetime) -> None:
        if self.off or not self._due():
            return
        self._started_at = now
        self._titles = {p.condition_id: p.title[:60] for p in self.service.portfolio.pending() if p.title}
        self._pass = self._steps(now)
        self._advance(None)

    def _advance(self, answer: Optional[Future]) -> None:
        """Give the pass its answer and hand its next request to the worker."""
        assert self._pass is not None
        self._answer = None
        try:
            if answer is None:
                request = next(self._pass)
            elif answer.exception() is not None:
                request = self._pass.throw(answer.exception())
            else:
                request = self._pass.send(answer.result())
        except StopIteration as done:
            self._pass = None
            self._finished(done.value or [])
            return
        except Exception as exc:  # a venue read failed: the records say where it stands, the next pass goes on
            self._pass = None
            log.warning("auto-redeem: the pass stopped: %s; the next one goes on in %ss",
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                        int(self.interval.total_seconds()))
            return
        self._answer = self._worker.submit(request)

    def _steps(self, now: datetime) -> Steps:
        if self._use_case is None:
            try:
                redeemer = yield self.venue
            except RedeemError as exc:
                self._switch_off(str(exc))
                return []
            service = self.service
            self._use_case = Redemptions(service.store, service.portfolio, redeemer, service.market,
                                         service.clock, hook=self.hook)
        pending = self._use_case.pending_conditions()
        ready = [c for c in pending if c not in self._retry or self._retry[c][0] <= now]
        return (yield from self._use_case.steps(ready if len(ready) < len(pending) else None, send=True))

    def _finished(self, records: list[Redemption]) -> None:
        now = self.service.clock.now()
        for record in records:
            if record.state == FAILED and self.service.store.get_redemption(record.id) is None:
                self._later(record, now)  # a plan that failed: nothing was recorded or sent
                continue
            self._retry.pop(record.condition_id, None)
            if record.updated_at is None or self._started_at is None or record.updated_at < self._started_at:
                continue  # nothing new about it in this pass
            title = self._titles.get(record.condition_id) or record.condition_id
            if record.state == PAID:
                self.service.alerter.send(
                    "redeemed", f"{title} redeemed: {usdc(record.paid)} pUSD"
                    + (f" ({record.reason})" if record.reason else ""),
                    condition_id=record.condition_id, paid_usdc=str(usdc(record.paid)), route=record.route,
                    tx_hash=record.tx_hash)
            elif record.state == FAILED:
                self.service.alerter.send(
                    "redeem_failed", f"{title}: redemption failed: {record.reason}; "
                    "`copytrader redeem --live --yes` tries again", condition_id=record.condition_id,
                    reason=record.reason, tx_hash=record.tx_hash)
            elif record.state == REQUESTED and record.reason:
                log.warning("auto-redeem %s: %s", record.condition_id, record.reason)

    def _later(self, record: Redemption, now: datetime) -> None:
        _, waited = self._retry.get(record.condition_id, (now, RETRY_S / 2))
        wait = min(RETRY_MAX_S, waited * 2)
        self._retry[record.condition_id] = (now + timedelta(seconds=wait), wait)
        log.warning("auto-redeem %s not sent: %s; tried again in %.0f s", record.condition_id, record.reason, wait)

    def _switch_off(self, reason: str) -> None:
        self.off = reason
        log.error("auto-redeem cannot send: %s; resolved positions stay pending", reason)
        self.service.alerter.send("redeem_off", f"auto-redeem cannot send: {reason}; resolved positions stay "
                                  "pending (set live.auto_redeem = false to redeem by `copytrader redeem` only)",
                                  reason=reason)


__all__ = ["AutoRedeem", "DRAIN_S", "INTERVAL_S"]
