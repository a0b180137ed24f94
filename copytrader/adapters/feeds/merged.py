"""Several feeds polled in turn, each one poll at a time.

``both`` = fills from the chain (one block behind) plus the Data API for the
rows fill logs do not carry (REDEEM, MERGE, SPLIT): each fact has one source,
so nothing is copied twice. After the first round, a failing feed is logged
and retried on the next round instead of stopping the others.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterator, Optional, Sequence

from ...ports import CursorLookup, FeedItem, LeaderFeed
from .errors import FeedError
from .polling import Polling, close_each

log = logging.getLogger("copytrader.feeds")


class MergedFeed(Polling):
    def __init__(self, feeds: Sequence[LeaderFeed], poll_interval_s: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep, max_polls: Optional[int] = None,
                 should_stop: Callable[[], bool] = lambda: False) -> None:
        self.feeds = list(feeds)
        self.name = "+".join(f.name for f in self.feeds)
        for f in self.feeds:
            f.max_polls = 1  # type: ignore[attr-defined]  # one poll per round, driven from here
        Polling.__init__(self, poll_interval_s, sleep, max_polls, should_stop)

    def streams(self) -> list:
        from ..streams import streams_of

        return streams_of(self.feeds)

    def close(self) -> None:
        close_each(self.feeds)

    def read(self, cursors: CursorLookup) -> Iterator[FeedItem]:
        rounds = 0
        while True:
            for feed in self.feeds:
                try:
                    for item in feed.read(cursors):
                        yield item if item.key else FeedItem(item.cursor, item.payload, feed.name)
                except FeedError as exc:
                    if rounds == 0:
                        raise
                    log.error("%s (next round retries)", exc)
            rounds += 1
            if not self._another_round(rounds):
                return
