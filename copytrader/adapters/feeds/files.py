"""Backtest feed: one or more files of Data API ``/activity`` rows, streamed.

Each file is JSONL (one row a line) or a JSON array; both are read
incrementally (an array is decoded element by element from a buffer), so a
million rows never sit in memory at once. Several files (e.g. one per leader)
are merged by timestamp with a heap that holds one row per file; each file
keeps its own cursor (rows consumed), stored under its own key, so a replay
can resume. With a ``clock``, time follows the rows' timestamps.
"""
from __future__ import annotations

import heapq
import json
from itertools import islice
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import attrs

from ...domain.model import LeaderTrade
from ...ports import CursorLookup, FeedItem
from ..clock import ManualClock
from .activity import DECODER, MAX_LINE, parse_activity_row, parse_json_line
from .errors import FeedError

_CHUNK = 1 << 16


# where an array element with a number no Decimal or int holds ends (numbers kept as text)
_SPAN = json.JSONDecoder(parse_float=str, parse_int=str, parse_constant=str)


def _array_rows(fh: Any, path: Path) -> Iterator[tuple[Any, bool]]:
    """Elements of a top-level JSON array, decoded one at a time, as ``iter_entries`` gives them
    (an element with a number out of range as its text, a line to quarantine)."""
    buf = fh.read(_CHUNK)
    pos = buf.index("[") + 1
    while True:
        # skip whitespace and separators, reading more when the buffer runs dry
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            if pos < len(buf):
                break
            more = fh.read(_CHUNK)
            if not more:
                raise FeedError(f"replay file {path} is not valid JSON: the array is not closed")
            buf, pos = more, 0
        if buf[pos] == "]":
            return
        decoder, raw = DECODER, False
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                more = fh.read(_CHUNK)
                if not more or len(buf) - pos > MAX_LINE:
                    raise FeedError(f"replay file {path} is not valid JSON: {exc}") from None
                buf, pos = buf[pos:] + more, 0
                continue
            except ValueError:  # JSON, but a number no Decimal (or int) holds: this element alone is
                decoder, raw = _SPAN, True  # refused, its text read as a line (and quarantined)
                continue
            # a number at the end of the buffer may continue in the next chunk
            if end == len(buf) and not isinstance(value, (dict, list, str)):
                more = fh.read(_CHUNK)
                if more:
                    buf, pos = buf[pos:] + more, 0
                    continue
            break
        yield (buf[pos:end], True) if raw else (value, False)
        buf, pos = buf[end:], 0
        if len(buf) < 1024:
            buf += fh.read(_CHUNK)


def iter_entries(path: Path) -> Iterator[tuple[Any, bool]]:
    """(entry, is_line) pairs: the non-blank lines of a JSONL file, undecoded,
    or the decoded elements of a JSON array; streamed."""
    try:
        fh = path.open("r", encoding="utf-8")
    except OSError as exc:
        raise FeedError(f"cannot read replay file {path}: {exc.strerror}") from None
    with fh:
        try:
            head = fh.read(4096)
        except UnicodeDecodeError:
            raise FeedError(f"replay file {path} is not UTF-8 text") from None
        first = head.lstrip()[:1]
        fh.seek(0)
        try:
            if first == "[":
                yield from _array_rows(fh, path)
                return
            for line in fh:
                if not line.isspace():  # a line is never empty: not blank, without stripping a copy
                    yield line, True
        except UnicodeDecodeError:
            raise FeedError(f"replay file {path} is not UTF-8 text") from None


def count_rows(path: Path) -> Optional[int]:
    """Non-blank lines of a JSONL file (fast, for a progress bar); None for arrays."""
    with path.open("rb") as fh:
        if fh.read(4096).lstrip()[:1] == b"[":
            return None
        fh.seek(0)
        n = 0
        for line in fh:
            if line.strip():
                n += 1
        return n


class FilesFeed:
    """Rows of several activity files, merged by timestamp (ties: file order,
    then row order). ``observe`` sees every parsed trade before the engine
    does (a market data source that follows the leaders' prices uses it)."""

    def __init__(self, paths: Sequence[str | Path], clock: Optional[ManualClock] = None, latency_s: int = 0,
                 observe: Optional[Callable[[LeaderTrade], None]] = None) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise FeedError("no input files")
        for p in self.paths:
            if not p.is_file():
                raise FeedError(f"replay file not found: {p}")
        self.names = [f"replay:{p.resolve()}" for p in self.paths]
        self.name = self.names[0] if len(self.paths) == 1 else "files:" + ",".join(self.names)
        self.clock = clock
        self.latency_s = latency_s
        self.observe = observe

    def _items(self, index: int, skip: int) -> Iterator[tuple[int, int, int, FeedItem]]:
        path, key = self.paths[index], self.names[index]
        name = path.name
        last_ts = 0
        # rows before the cursor are not even decoded
        for n, (entry, is_line) in islice(enumerate(iter_entries(path), start=1), skip, None):
            payload = parse_json_line(entry, name) if is_line else parse_activity_row(entry, name)
            if type(payload) is LeaderTrade:
                last_ts = payload.timestamp
            else:  # its source names the row ("a.jsonl:7"): text made for a quarantined row only
                payload = attrs.evolve(payload, source=f"{name}:{n}")
            # quarantined rows keep their place: the time of the row before them
            yield last_ts, index, n, FeedItem(str(n), payload, key)

    def read(self, cursors: CursorLookup) -> Iterator[FeedItem]:
        streams = []
        for i, key in enumerate(self.names):
            cursor = cursors(key)
            streams.append(self._items(i, int(cursor) if cursor else 0))
        merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda e: e[:3])
        latency = timedelta(seconds=self.latency_s)
        for _ts, _i, _n, item in merged:
            payload = item.payload
            if type(payload) is LeaderTrade:
                if self.observe is not None:
                    self.observe(payload)
                if self.clock is not None:
                    self.clock.advance_to(payload.time + latency if latency else payload.time)
            yield item
