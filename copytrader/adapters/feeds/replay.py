"""Replay feed: Data API ``/activity`` rows from one file (JSON array or JSONL).

It is ``FilesFeed`` over a single file (the feed ``copytrader backtest`` reads):
same name (``replay:<resolved path>``), same cursor (rows consumed), same
clock (moved to each trade's timestamp plus ``latency_s``), same parsing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from ...domain.model import LeaderTrade
from ..clock import ManualClock
from .files import FilesFeed
from .errors import FeedError

__all__ = ["FeedError", "ReplayFeed"]


class ReplayFeed(FilesFeed):
    """Reads rows in file order; the cursor is the number of rows consumed.

    Both JSONL and a JSON array are streamed. With a ``clock``, time is moved
    to each row's timestamp so validation (staleness) and daily limits behave
    as they did when the row was live.
    """

    def __init__(self, path: str | Path, clock: Optional[ManualClock] = None, latency_s: int = 0,
                 observe: Optional[Callable[[LeaderTrade], None]] = None) -> None:
        super().__init__([path], clock=clock, latency_s=latency_s, observe=observe)
        self.path = self.paths[0]
