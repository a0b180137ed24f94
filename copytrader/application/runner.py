"""The run loop: read the feed, handle each item, checkpoint as we go."""
from __future__ import annotations

import itertools
from collections import Counter
from typing import Callable, Iterator, Optional

import attrs

from ..domain.model import TradingState
from ..ports import FeedItem, LeaderFeed, Quarantined, SourceHealth
from .service import BREAKER, CopyService, Outcome


@attrs.define
class RunSummary:
    seen: int = 0
    outcomes: Counter = attrs.field(factory=Counter)  # status -> count
    rejected: Counter = attrs.field(factory=Counter)  # reason -> count
    reduced: Counter = attrs.field(factory=Counter)  # limit -> count of copies made smaller
    unresolved_at_start: int = 0
    anomalies: int = 0  # exchange answers that could not be true (see CopyService.settle)
    state: str = ""  # the trading state when the run ended, and why
    state_reason: str = ""

    def add(self, outcome: Outcome) -> None:
        self.seen += 1
        self.outcomes[outcome.status] += 1
        if outcome.status == "rejected":
            self.rejected[outcome.reason] += 1
        elif outcome.limit:
            self.reduced[outcome.limit] += 1

    @property
    def copied(self) -> int:
        return self.outcomes["filled"] + self.outcomes["partial"]

    @property
    def halted_by_breaker(self) -> bool:
        """The run ended HALTED by the circuit breaker (a run of failures of one remote)."""
        return self.state == TradingState.HALTED.value and self.state_reason.startswith(BREAKER)

    def to_dict(self) -> dict:
        return {
            "seen": self.seen,
            "copied": self.copied,
            "outcomes": dict(sorted(self.outcomes.items())),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "reduced_by_limit": dict(sorted(self.reduced.items())),
            "unresolved_at_start": self.unresolved_at_start,
            "anomalies": self.anomalies,
            "state": self.state,
            "state_reason": self.state_reason,
            "halted_by_circuit_breaker": self.halted_by_breaker,
        }


def settling(service: CopyService, should_stop: Callable[[], bool]) -> Callable[[], bool]:
    """``should_stop`` that first lets the store commit deferred rows whose
    time is up (``CopyService.idle``), gives the settlement watch and the
    resolution watch a (bounded, paced) pass, and the auto-redeem its step
    (which never waits): the run loop asks after every item, a polling feed
    after every round, so provisional fills settle, resolved markets are
    noticed and redeemed while the leaders are quiet too."""
    step, resolutions = service.settlements.step, service.resolutions.step
    redeem = service.redemptions.step if service.redemptions is not None else (lambda: None)

    def stop() -> bool:
        service.idle()  # deferred rows reach disk within their time while the feed is quiet too
        step()
        resolutions()
        redeem()
        return should_stop()
    return stop


def run(
    service: CopyService,
    feed: LeaderFeed,
    *,
    max_items: Optional[int] = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_outcome: Callable[[Outcome], None] = lambda o: None,
    commit_every: int = 1,
) -> RunSummary:
    """Reconcile first, then process the feed from its stored cursor. The
    cursor is written in the same transaction as what each row produced.
    ``commit_every`` > 1 commits that many rows at a time (``service.batch``:
    replays on the paper executor only). Provisional fills are watched
    between items (``settling``). A run that ends by itself (the feed's end,
    ``max_items``), not by a stop, first finishes its redemptions (``drain``)."""
    anomalies = service.anomalies
    summary = RunSummary(unresolved_at_start=service.start())
    asked_to_stop, should_stop = should_stop, settling(service, should_stop)
    try:
        items = feed.read(service.store.get_cursor)
        if commit_every <= 1:
            _handle_items(service, feed, items, summary, max_items, should_stop, on_outcome)
        else:
            while True:
                with service.batch():
                    taken, stopped = _handle_items(service, feed, itertools.islice(items, commit_every), summary,
                                                   max_items, should_stop, on_outcome)
                if stopped or taken < commit_every:  # a stop, the item limit, or the end of the feed
                    break
        if service.redemptions is not None and not asked_to_stop():
            service.redemptions.drain()
        return summary
    finally:
        service.store.flush()  # the rows that send nothing and still wait (group commit)
        summary.anomalies = service.anomalies - anomalies
        state = service.state
        summary.state, summary.state_reason = state.state.value, state.reason


def _handle_items(service: CopyService, feed: LeaderFeed, items: Iterator[FeedItem], summary: RunSummary,
                  max_items: Optional[int], should_stop: Callable[[], bool],
                  on_outcome: Callable[[Outcome], None]) -> tuple[int, bool]:
    """Handle ``items`` until they end or a stop: (items taken, stopped)."""
    taken = 0
    for item in items:
        taken += 1
        if isinstance(item.payload, SourceHealth):
            service.source_health(item.payload.source, item.payload.error)
            if should_stop():
                return taken, True
            continue
        checkpoint = (item.key or feed.name, item.cursor)
        if item.payload is None:
            service.checkpoint(*checkpoint)
            if should_stop():
                return taken, True
            continue
        if isinstance(item.payload, Quarantined):
            outcome = service.quarantine(item.payload, checkpoint)
        else:
            outcome = service.handle(item.payload, checkpoint)
        summary.add(outcome)
        on_outcome(outcome)
        if (max_items is not None and summary.seen >= max_items) or should_stop():
            return taken, True
    return taken, False
