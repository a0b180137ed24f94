"""Leader activity from the Data API (``GET /activity``), polled per leader.

Each leader has a watermark stored as its own cursor: the newest timestamp
seen and the identities of the rows seen in the last ``overlap_s`` seconds.
Every poll asks again from ``newest - overlap_s`` (the Data API is seconds to
tens of seconds behind the chain and may deliver rows late or out of order),
skips the identities it has seen, and pages past the 500-row limit; past the
5,000-row offset cap it moves the window's start forward instead. A row is
handed over with the watermark that includes it, and the run loop stores
that watermark in the same transaction as the row's intent, so a restart in
the middle of a page neither misses nor repeats a row.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any, Callable, Iterator, Optional, Sequence

from ...ports import CursorLookup, FeedItem, Quarantined, SourceHealth
from .activity import parse_activity_row
from .http import FeedError, JsonGetter
from .polling import Polling

log = logging.getLogger("copytrader.feeds")
TYPES = "TRADE,REDEEM,MERGE,SPLIT"


class Watermark:
    def __init__(self, newest: int = 0, seen: Optional[dict[str, int]] = None) -> None:
        self.newest = newest
        self.seen = dict(seen or {})

    @classmethod
    def load(cls, text: Optional[str]) -> Optional["Watermark"]:
        if not text:
            return None
        data = json.loads(text)
        return cls(int(data["t"]), data.get("seen", {}))

    def dump(self) -> str:
        return json.dumps({"t": self.newest, "seen": self.seen}, sort_keys=True, separators=(",", ":"))

    def add(self, ident: str, ts: int, overlap_s: int) -> "Watermark":
        newest = max(self.newest, ts)
        seen = {k: v for k, v in self.seen.items() if v >= newest - overlap_s}
        seen[ident] = ts
        return Watermark(newest, seen)


def row_identity(row: Any, parsed: Any) -> str:
    if not isinstance(parsed, Quarantined):
        return parsed.id
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _timestamp(row: Any) -> Optional[int]:
    try:
        return int(row["timestamp"])
    except (KeyError, TypeError, ValueError):
        return None


class DataApiFeed(Polling):
    name = "data_api"

    def __init__(self, http: JsonGetter, leaders: Sequence[str], clock_s: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, poll_interval_s: float = 5.0, overlap_s: int = 300,
                 lookback_s: int = 0, page_limit: int = 500, max_offset: int = 5000,
                 max_polls: Optional[int] = None, should_stop: Callable[[], bool] = lambda: False,
                 types: str = TYPES) -> None:
        self.http = http
        self.types = types
        self.leaders = [a.lower() for a in leaders]
        Polling.__init__(self, poll_interval_s, sleep, max_polls, should_stop)
        self._clock_s = clock_s
        self.overlap_s, self.lookback_s = overlap_s, lookback_s
        self.page_limit, self.max_offset = page_limit, max_offset
        self.failures = 0

    def key(self, leader: str) -> str:
        return f"{self.name}:{leader}"

    def read(self, cursors: CursorLookup) -> Iterator[FeedItem]:
        marks = {}
        for leader in self.leaders:
            # a leader followed for the first time starts now (minus lookback): no copying of old history
            stored = Watermark.load(cursors(self.key(leader)))
            marks[leader] = stored or Watermark(int(self._clock_s()) - self.lookback_s - self.overlap_s)
        polls = 0
        while True:
            for leader in self.leaders:
                try:
                    for item, mark in self._poll(leader, marks[leader]):
                        marks[leader] = mark
                        yield item
                    if self.failures:
                        self.failures = 0
                        yield FeedItem("", SourceHealth(self.name))
                except FeedError as exc:
                    self.failures += 1
                    if polls == 0 and self.failures >= len(self.leaders):
                        raise  # nothing works at all: say so at once, in one line
                    log.error("data api: %s (poll continues)", exc)
                    yield FeedItem("", SourceHealth(self.name, str(exc)))
            polls += 1
            if not self._another_round(polls):
                return

    def _poll(self, leader: str, mark: Watermark) -> Iterator[tuple[FeedItem, Watermark]]:
        start, offset = max(0, mark.newest - self.overlap_s), 0
        while True:
            page = self.http.get("/activity", {
                "user": leader, "type": self.types, "limit": self.page_limit, "offset": offset, "start": start,
                "sortBy": "TIMESTAMP", "sortDirection": "ASC"})
            if not isinstance(page, list):
                raise FeedError(f"GET /activity for {leader}: expected a list, got {type(page).__name__}")
            rows = sorted(page, key=lambda r: _timestamp(r) or 0)  # tolerate out-of-order pages
            for row in rows:
                parsed = parse_activity_row(row, f"data_api:{leader}")
                ident = row_identity(row, parsed)
                ts = _timestamp(row) or mark.newest
                if ident in mark.seen or ts < mark.newest - self.overlap_s:
                    continue
                if not isinstance(parsed, Quarantined) and parsed.leader != leader:
                    parsed = Quarantined(f"data_api:{leader}", json.dumps(row, default=str)[:4000],
                                         f"row of {parsed.leader} in the feed of {leader}")
                mark = mark.add(ident, ts, self.overlap_s)
                yield FeedItem(cursor=mark.dump(), payload=parsed, key=self.key(leader)), mark
            if len(page) < self.page_limit:
                return
            offset += self.page_limit
            if offset + self.page_limit > self.max_offset:  # deeper than the API pages: move the window
                start, offset = mark.newest, 0
