"""Use case: watch provisional fills until their trades settle on chain.

A trade the exchange MATCHED can still fail on chain (MATCHED → MINED →
CONFIRMED, or RETRYING → FAILED). The fill is booked when matched, as
*provisional* (it counts toward exposure and every limit like a final one),
and watched here: the executor reads the trades of the order
(``Executor.settlement``) and

- every trade CONFIRMED: the fill becomes final;
- every trade FAILED: the booking is taken back exactly (position, realised
  PnL, exposure; ``Portfolio.revert_fill``), the intent is recorded as
  reversed, and an alert goes out;
- some CONFIRMED, some FAILED: the booking is taken back and the confirmed
  part booked as final, in the same transaction.

Checks are paced by the engine's clock (never a sleep): the first
``FIRST_CHECK_S`` after the match, then backing off to ``MAX_INTERVAL_S``;
each ``step`` checks at most ``PER_PASS`` fills that are due. The state is
the intent row (committed with the booking), so a restart resumes the watch
of every provisional fill (``resume``, from ``CopyService.start``).

An executor with pushed settlement (the CLOB user channel) offers
``settlement_news() -> (resync, order ids)``: a fill whose order the venue
pushed news of is checked at once (the executor answers from memory, no
request), and after a reconnect (``resync``) every watched fill is checked
in that same step, unbounded, so the missed interval is read back before
the next leader trade is handled.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import attrs

from ..domain.model import (
    ZERO, ExecStatus, ExecutionResult, IntentRecord, IntentStatus, Settlement, SettlementReport, SettlementState,
    dec_str,
)
from ..domain.portfolio import PositionDelta
from ..domain.risk import day_key

if TYPE_CHECKING:  # pragma: no cover
    from .service import CopyService

log = logging.getLogger("copytrader")

FIRST_CHECK_S = 2.0  # a Polygon block, about: the trade is rarely mined sooner
MAX_INTERVAL_S = 60.0
PER_PASS = 10  # checks (one trade lookup each) per step at most
OVERDUE = timedelta(minutes=10)  # alerted once: a trade that long unsettled needs a look


class SettlementWatch:
    def __init__(self, service: "CopyService") -> None:
        self.service = service
        self._due: dict[str, datetime] = {}  # intent id -> next check (engine clock)
        self._interval: dict[str, float] = {}
        self._since: dict[str, datetime] = {}
        self._overdue: set[str] = set()
        self._orders: dict[str, str] = {}  # intent id -> its order's id (pushed news names orders)
        self.confirmed = 0
        self.reversed = 0

    @property
    def pending(self) -> int:
        """Provisional fills being watched."""
        return len(self._due)

    def watch(self, record: IntentRecord) -> None:
        """A fill was booked as provisional: check it ``FIRST_CHECK_S`` from now."""
        if record.intent_id in self._due:
            return
        now = self.service.clock.now()
        self._due[record.intent_id] = now + timedelta(seconds=FIRST_CHECK_S)
        self._interval[record.intent_id] = FIRST_CHECK_S
        self._since[record.intent_id] = now
        self._orders[record.intent_id] = record.execution_id.lower()

    def resume(self) -> int:
        """At start-up: every provisional fill in the store is due now; one pass."""
        now = self.service.clock.now()
        for record in self.service.store.intents_in(Settlement.PROVISIONAL):
            if record.intent_id not in self._due:
                self._due[record.intent_id] = now
                self._interval[record.intent_id] = FIRST_CHECK_S
                self._since[record.intent_id] = record.updated_at or now
                self._orders[record.intent_id] = record.execution_id.lower()
        return self.step()

    def step(self) -> int:
        """Check the provisional fills that are due, at most ``PER_PASS`` (all of them after a
        reconnect of the executor's pushed settlement); how many settled."""
        news = getattr(self.service.executor, "settlement_news", None)
        resync, pushed = news() if news is not None else (False, set())
        if not self._due:
            return 0
        read = getattr(self.service.executor, "settlement", None)
        if read is None:  # an executor that cannot tell: the fills stay provisional
            return 0
        now = self.service.clock.now()
        for intent_id in list(self._due):
            if resync or self._orders.get(intent_id) in pushed:
                self._due[intent_id] = now
        due = sorted((at, intent_id) for intent_id, at in self._due.items() if at <= now)[:None if resync else PER_PASS]
        settled = 0
        for _, intent_id in due:
            record = self.service.store.get_intent(intent_id)
            if record is None or record.settlement is not Settlement.PROVISIONAL:
                self._forget(intent_id)
                continue
            if record.status.is_open:  # reconciliation settles it first
                self._later(record, now)
                continue
            try:
                report = read(record)
            except Exception as exc:  # noqa: BLE001 - the venue did not answer: look again later
                log.warning("settlement of intent %s: %s", intent_id, exc)
                self._later(record, now)
                continue
            if report.state is SettlementState.PENDING:
                self._later(record, now, report.detail)
                continue
            self.conclude(record, report, now)
            settled += 1
        return settled

    def conclude(self, record: IntentRecord, report: SettlementReport, now: datetime) -> IntentRecord:
        """Make a provisional fill final, or take back what failed of it."""
        self._forget(record.intent_id)
        if report.state is SettlementState.CONFIRMED and report.filled_size >= record.filled_size:
            self.confirmed += 1
            if report.filled_size > record.filled_size:  # more confirmed than was booked: book the rest
                return self.service.settle(record, self._result(record, report, ""), now)
            updated = attrs.evolve(record, settlement=Settlement.FINAL, booked="", updated_at=now)
            with self.service.transaction():
                self.service.store.put_intent(updated)
            log.info("fill of intent %s confirmed on chain (%s)", record.intent_id, report.detail)
            return updated
        return self._reverse(record, report, now)

    def _reverse(self, record: IntentRecord, report: SettlementReport, now: datetime) -> IntentRecord:
        service, day = self.service, day_key(now)
        kept = report.filled_size if report.state is SettlementState.CONFIRMED else ZERO
        failed = record.filled_size - kept
        price = dec_str(record.avg_price) if record.avg_price is not None else "?"
        what = (f"{dec_str(failed)} of {dec_str(record.filled_size)} shares matched @ {price} FAILED on chain "
                f"({report.detail})")
        with service.transaction():
            position, note = service.portfolio.revert_fill(
                record.leader, record.token_id, PositionDelta.parse(record.booked), day)
            service.store.put_position(position)
            service.health.booked(position)
            service.store.put_daily_realised(*service.portfolio.day)
            updated = attrs.evolve(
                record, status=IntentStatus.REJECTED, filled_size=ZERO, avg_price=None, fee=ZERO, slippage=None,
                settlement=Settlement.REVERSED if kept == 0 else Settlement.FINAL, booked="",
                error=f"{what}: fill reversed{'; ' + note if note else ''}", updated_at=now)
            service.store.put_intent(updated)
            if kept > 0:  # the confirmed part stands: booked again as final, in the same transaction
                updated = service.settle(updated, self._result(record, report, updated.error), now)
        self.reversed += 1
        log.error("intent %s: %s; the fill is taken back%s", record.intent_id, what, f" ({note})" if note else "")
        service.alerter.send("trade_failed", f"{record.side} {record.title or record.token_id[:12]}: {what}; "
                             f"position and PnL reversed{'; ' + note if note else ''}",
                             intent_id=record.intent_id, execution_id=record.execution_id,
                             failed=str(failed), kept=str(kept))
        return updated

    @staticmethod
    def _result(record: IntentRecord, report: SettlementReport, error: str) -> ExecutionResult:
        full = record.size is not None and report.filled_size >= record.size
        return ExecutionResult(record.intent_id, ExecStatus.FILLED if full else ExecStatus.PARTIAL,
                               filled_size=report.filled_size, avg_price=report.avg_price, fee=record.fee,
                               execution_id=record.execution_id, error=error)

    def _later(self, record: IntentRecord, now: datetime, detail: str = "") -> None:
        intent_id = record.intent_id
        interval = min(self._interval.get(intent_id, FIRST_CHECK_S) * 2, MAX_INTERVAL_S)
        self._interval[intent_id] = interval
        self._due[intent_id] = now + timedelta(seconds=interval)
        since = self._since.setdefault(intent_id, now)
        if now - since >= OVERDUE and intent_id not in self._overdue:
            self._overdue.add(intent_id)
            self.service.alerter.send(
                "unsettled", f"the fill of intent {intent_id} is still not settled on chain after "
                f"{int((now - since).total_seconds())} s ({detail or 'no terminal trade status'}); it stays "
                "provisional and counts toward the limits", intent_id=intent_id)

    def _forget(self, intent_id: str) -> None:
        for table in (self._due, self._interval, self._since, self._orders):
            table.pop(intent_id, None)
        self._overdue.discard(intent_id)


__all__ = ["FIRST_CHECK_S", "MAX_INTERVAL_S", "OVERDUE", "PER_PASS", "SettlementWatch"]
