"""Clocks: the system clock, and a manual one for tests and replays."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock:
    """Time moves only when told to: tests set it, replays advance it to the
    timestamp of each row so that a replay is deterministic."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    def advance_to(self, when: datetime) -> None:
        """Move forward only: rows out of order never turn time back."""
        if when > self._now:
            self._now = when
