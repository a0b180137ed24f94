"""Replay feed: Data API ``/activity`` rows from a file (JSON array or JSONL)."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Iterator, Optional

from ...ports import CursorLookup, FeedItem, Quarantined
from ..clock import ManualClock
from .activity import loads, parse_activity_row
from .http import FeedError


class ReplayFeed:
    """Reads rows in file order; the cursor is the number of rows consumed.

    JSONL is streamed line by line; a JSON array is read whole. With a
    ``clock``, time is moved to each row's timestamp so validation (staleness)
    and daily limits behave as they did when the row was live.
    """

    def __init__(self, path: str | Path, clock: Optional[ManualClock] = None, latency_s: int = 0) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FeedError(f"replay file not found: {self.path}")
        self.name = f"replay:{self.path.resolve()}"
        self.clock = clock
        self.latency_s = latency_s

    def _rows(self) -> Iterator[tuple[object, str]]:
        with self.path.open("r", encoding="utf-8") as fh:
            head = fh.read(1)
            while head.isspace():
                head = fh.read(1)
            fh.seek(0)
            if head == "[":
                try:
                    rows = loads(fh.read())
                except ValueError as exc:
                    raise FeedError(f"replay file {self.path} is not valid JSON: {exc}") from None
                for row in rows:
                    yield row, ""
                return
            for line in fh:
                if not line.strip():
                    continue
                try:
                    yield loads(line), ""
                except ValueError as exc:
                    yield line.strip(), f"not JSON: {exc}"

    def read(self, cursors: CursorLookup) -> Iterator[FeedItem]:
        cursor = cursors(self.name)
        skip = int(cursor) if cursor else 0
        for index, (row, error) in enumerate(self._rows(), start=1):
            if index <= skip:
                continue
            source = f"{self.path.name}:{index}"
            payload = Quarantined(source, str(row)[:4000], error) if error else parse_activity_row(row, source)
            if self.clock is not None and not isinstance(payload, Quarantined):
                self.clock.advance_to(payload.time + timedelta(seconds=self.latency_s))
            yield FeedItem(cursor=str(index), payload=payload)
