"""The pacing every polling feed shares: when to stop, how to wait between rounds."""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Optional


def close_each(feeds: Iterable[Any]) -> None:
    """Close each of ``feeds`` that holds something open (a socket's thread): a feed of feeds' close."""
    for feed in feeds:
        close = getattr(feed, "close", None)
        if close is not None:
            close()


class Polling:
    """At most ``max_polls`` rounds (None: no end); after each round, stop if
    ``should_stop()`` says so, else wait ``poll_interval_s`` with ``sleep``."""

    def __init__(self, poll_interval_s: float, sleep: Callable[[float], object] = time.sleep,
                 max_polls: Optional[int] = None, should_stop: Callable[[], bool] = lambda: False) -> None:
        self.poll_interval_s = poll_interval_s
        self.max_polls = max_polls
        self._sleep = sleep
        self._should_stop = should_stop

    def stop_when(self, should_stop: Callable[[], bool], wait: Callable[[float], object]) -> None:
        """End after the current round once ``should_stop()`` is true, and wait
        between rounds with ``wait`` (``threading.Event.wait`` ends at once on stop)."""
        self._should_stop, self._sleep = should_stop, wait

    def before_wait(self, hook: Callable[[], object]) -> None:
        """Call ``hook`` before each wait between rounds (the wait itself unchanged)."""
        sleep = self._sleep

        def wait(seconds: float) -> object:
            hook()
            return sleep(seconds)
        self._sleep = wait

    def _another_round(self, rounds: int) -> bool:
        """After ``rounds`` rounds: False to end, or wait and True."""
        if (self.max_polls is not None and rounds >= self.max_polls) or self._should_stop():
            return False
        self._sleep(self.poll_interval_s)
        return True
