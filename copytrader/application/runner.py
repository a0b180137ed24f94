"""The run loop: read the feed, handle each item, checkpoint as we go."""
from __future__ import annotations

from collections import Counter
from typing import Callable, Optional

import attrs

from ..ports import LeaderFeed, Quarantined, SourceHealth
from .service import CopyService, Outcome


@attrs.define
class RunSummary:
    seen: int = 0
    outcomes: Counter = attrs.field(factory=Counter)  # status -> count
    rejected: Counter = attrs.field(factory=Counter)  # reason -> count
    reduced: Counter = attrs.field(factory=Counter)  # limit -> count of copies made smaller
    unresolved_at_start: int = 0

    def add(self, outcome: Outcome) -> None:
        self.seen += 1
        self.outcomes[outcome.status] += 1
        if outcome.status == "rejected":
            self.rejected[outcome.reason] += 1
        elif outcome.reduced:
            self.reduced[outcome.reason] += 1

    @property
    def copied(self) -> int:
        return self.outcomes["filled"] + self.outcomes["partial"]

    def to_dict(self) -> dict:
        return {
            "seen": self.seen,
            "copied": self.copied,
            "outcomes": dict(sorted(self.outcomes.items())),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "reduced_by_limit": dict(sorted(self.reduced.items())),
            "unresolved_at_start": self.unresolved_at_start,
        }


def run(
    service: CopyService,
    feed: LeaderFeed,
    *,
    max_items: Optional[int] = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_outcome: Callable[[Outcome], None] = lambda o: None,
) -> RunSummary:
    """Reconcile first, then process the feed from its stored cursor. The
    cursor is written in the same transaction as what each row produced."""
    summary = RunSummary(unresolved_at_start=service.start())
    for item in feed.read(service.store.get_cursor):
        if isinstance(item.payload, SourceHealth):
            service.source_health(item.payload.source, item.payload.error)
            if should_stop():
                break
            continue
        checkpoint = (item.key or feed.name, item.cursor)
        if item.payload is None:
            service.checkpoint(*checkpoint)
            if should_stop():
                break
            continue
        if isinstance(item.payload, Quarantined):
            outcome = service.quarantine(item.payload, checkpoint)
        else:
            outcome = service.handle(item.payload, checkpoint)
        summary.add(outcome)
        on_outcome(outcome)
        if (max_items is not None and summary.seen >= max_items) or should_stop():
            break
    return summary
