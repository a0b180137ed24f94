"""What `copytrader scout` reads from the Data API, cached on disk in SQLite.

- Candidates: ``GET /v1/leaderboard?category=&timePeriod=DAY|WEEK|MONTH|ALL&orderBy=PNL|VOL&limit=&offset=``
  (at most 50 a page, paged by ``offset``; rows ``rank, proxyWallet, userName, vol, pnl``). The cursor-paged
  ``/v2/leaderboard`` serves the same board in a ``{data, pagination}`` envelope; v1's offset pages are
  enough for a top 50-1000 and are what the stand-in and the SDK's ``list_trader_leaderboard`` read.
- History: ``GET /activity?user=&type=TRADE&start=&end=&sortBy=TIMESTAMP&sortDirection=ASC``, 500 rows a
  page, ``offset`` at most 5,000: deeper, the window moves to the newest timestamp read (rows deduplicated
  by identity, as the live feed does).
- Market trades (the delay model's tape): ``GET /trades?market=<condition>&takerOnly=true``, newest first,
  500 a page, ``offset`` at most 10,000 (the documented cap; no time filter exists): paged back until the
  window's start is passed, the market's first trade is reached, or the cap is hit (``truncated``).

The cache keeps, per wallet, the activity rows of the span it has read and, per market, the trades from
the newest it read back to the oldest; a request inside what it has makes no HTTP request, and a later
window fetches only what is newer. All requests share one ``JsonGetter`` (its token bucket and
``Retry-After`` handling); a ``ScoutHistory`` without one reads the cache only (a scout's worker
processes: a read the cache cannot answer raises ``NotCached``, and the parent fetches it).
"""
from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any, Callable, Optional

from .activity import DECODER, parse_activity_row
from .data_api import row_identity
from .http import FeedError, JsonGetter

log = logging.getLogger("copytrader.scout")

PERIODS = ("DAY", "WEEK", "MONTH", "ALL")
ORDERS = ("PNL", "VOL")
PERIOD_S = {"DAY": 86_400, "WEEK": 7 * 86_400, "MONTH": 30 * 86_400, "ALL": 365 * 86_400}  # ALL: the last year


_ROW = json.JSONEncoder(default=str, separators=(",", ":"))


class CachedRow(dict):
    """A row read from the cache, with ``text``: its JSON as stored (a scout writes it out as it is)."""

    text: str


def row_json(row: dict) -> str:
    """The row's JSON on one line: the cache's text when it came from the cache."""
    return row.text if isinstance(row, CachedRow) else _ROW.encode(row)


def _dump(rows: list) -> str:
    """Rows as the cache stores them: one JSON object a line."""
    return "".join(row_json(r) + "\n" for r in rows)


def _load(text: str) -> list:
    """What ``_dump`` stored; a cache written before rows were stored a line each holds a JSON array."""
    if text.lstrip().startswith("["):
        return DECODER.decode(text)
    rows = []
    for line in text.splitlines():
        row = CachedRow(DECODER.decode(line))
        row.text = line
        rows.append(row)
    return rows


def _ident(row: Any) -> str:
    parsed = parse_activity_row({"type": "TRADE", **row} if isinstance(row, dict) and "type" not in row else row, "")
    return row_identity(row, parsed)


class NotCached(Exception):
    """A cache-only ``ScoutHistory`` was asked for rows the cache does not hold."""


class ScoutCache:
    """SQLite file of leaderboards, activity spans and market tapes (JSON rows as the API sent them)."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(path))
            self.db.executescript(
                "CREATE TABLE IF NOT EXISTS boards (key TEXT PRIMARY KEY, rows TEXT NOT NULL);"
                "CREATE TABLE IF NOT EXISTS activity (user TEXT PRIMARY KEY, start INTEGER, end_ INTEGER,"
                " rows TEXT NOT NULL);"
                "CREATE TABLE IF NOT EXISTS tapes (market TEXT PRIMARY KEY, oldest INTEGER, newest INTEGER,"
                " complete INTEGER, truncated INTEGER, rows TEXT NOT NULL);")
        except sqlite3.DatabaseError as exc:
            raise FeedError(f"scout cache {path} is not a usable SQLite database ({exc}): set scout.cache "
                            "to another file, or remove it") from None

    def get(self, sql: str, args: tuple) -> Optional[tuple]:
        return self.db.execute(sql, args).fetchone()

    def put(self, sql: str, args: tuple) -> None:
        with self.db:
            self.db.execute(sql, args)

    def close(self) -> None:
        self.db.close()


class ScoutHistory:
    """The Data API reads of a scout, through ``cache`` (``http`` None: the cache only)."""

    def __init__(self, http: Optional[JsonGetter], cache: ScoutCache, page: int = 500, max_offset: int = 5000,
                 trades_max_offset: int = 10_000, on_rows: Callable[[int], None] = lambda n: None) -> None:
        self.http, self.cache = http, cache
        self.page, self.max_offset, self.trades_max_offset = page, max_offset, trades_max_offset
        self.on_rows = on_rows  # rows fetched (for a progress bar)
        self.requests = 0

    def _get(self, path: str, params: dict) -> Any:
        if self.http is None:
            raise NotCached(path)
        self.requests += 1
        body = self.http.get(path, params)
        if not isinstance(body, list):
            raise FeedError(f"GET {self.http.base_url}{path}: expected a list, got {type(body).__name__}")
        self.on_rows(len(body))
        return body

    def leaderboard(self, category: str, period: str, order: str, top: int, until: int) -> list[dict]:
        key = f"{category}|{period}|{order}|{top}|{until // 3600}"  # a board read within the same hour is reused
        hit = self.cache.get("SELECT rows FROM boards WHERE key = ?", (key,))
        if hit:
            return _load(hit[0])
        rows: list[dict] = []
        while len(rows) < top:
            limit = min(50, top - len(rows))
            page = self._get("/v1/leaderboard", {"category": category, "timePeriod": period, "orderBy": order,
                                                 "limit": limit, "offset": len(rows)})
            rows += [r for r in page if isinstance(r, dict) and isinstance(r.get("proxyWallet"), str)]
            if len(page) < limit or len(rows) >= 1000:
                break
        self.cache.put("INSERT OR REPLACE INTO boards VALUES (?, ?)", (key, _dump(rows[:top])))
        return rows[:top]

    def activity(self, user: str, start: int, end: int) -> list[dict]:
        """TRADE rows of ``user`` in [start, end], ascending."""
        user = user.lower()
        hit = self.cache.get("SELECT start, end_, rows FROM activity WHERE user = ?", (user,))
        rows: list[dict] = _load(hit[2]) if hit else []
        have = (hit[0], hit[1]) if hit else None
        if have and have[0] <= start and end <= have[1]:
            return [r for r in rows if start <= int(r.get("timestamp", 0)) <= end]
        fetch_from = have[1] if have and have[0] <= start <= have[1] else start  # only what is newer
        if not (have and have[0] <= start <= have[1]):
            rows = []
        seen = {_ident(r) for r in rows}
        lo, offset = fetch_from, 0
        while True:
            page = self._get("/activity", {"user": user, "type": "TRADE", "limit": self.page, "offset": offset,
                                           "start": lo, "end": end, "sortBy": "TIMESTAMP", "sortDirection": "ASC"})
            for row in page:
                if isinstance(row, dict) and (i := _ident(row)) not in seen:
                    seen.add(i)
                    rows.append(row)
            if len(page) < self.page:
                break
            offset += self.page
            if offset + self.page > self.max_offset:  # the API's offset cap: move the window
                newest = max(int(r.get("timestamp", lo)) for r in page if isinstance(r, dict))
                if newest <= lo:
                    log.warning("activity of %s: more than %d rows in one second at %d; the rest is not read",
                                user, self.max_offset, lo)
                    break
                lo, offset = newest, 0
        rows.sort(key=lambda r: int(r.get("timestamp", 0)))
        span = (min(have[0], start) if have and fetch_from != start else start, end)
        self.cache.put("INSERT OR REPLACE INTO activity VALUES (?, ?, ?, ?)", (user, span[0], span[1], _dump(rows)))
        return [r for r in rows if start <= int(r.get("timestamp", 0)) <= end]

    def market_trades(self, market: str, oldest: int, newest: int) -> tuple[list[dict], bool]:
        """The taker trades of ``market`` (a condition id) from ``oldest`` to ``newest`` (what the tape
        holds), and whether the API's offset cap cut it before ``oldest``."""
        market = market.lower()
        hit = self.cache.get("SELECT oldest, newest, complete, truncated, rows FROM tapes WHERE market = ?",
                             (market,))
        rows: list[dict] = _load(hit[4]) if hit else []
        if hit and (hit[0] <= oldest or hit[2]) and newest <= hit[1]:
            return rows, bool(hit[3]) and hit[0] > oldest
        seen = {_ident(r) for r in rows}
        known_newest = hit[1] if hit else None
        reached, complete, truncated, offset = newest, False, False, 0
        while True:
            page = self._get("/trades", {"market": market, "limit": self.page, "offset": offset,
                                         "takerOnly": "true"})
            stamps = [int(r.get("timestamp", 0)) for r in page if isinstance(r, dict)]
            for row in page:
                if isinstance(row, dict) and (i := _ident(row)) not in seen:
                    seen.add(i)
                    rows.append(row)
            if stamps:
                reached = min(reached, min(stamps))
            if len(page) < self.page:
                complete = True
                break
            if reached < oldest or (known_newest is not None and reached <= known_newest and hit[0] <= oldest):
                break  # back past the window, or into what the cache holds
            offset += self.page
            if offset + self.page > self.trades_max_offset:
                truncated = True
                log.warning("market trades of %s: the API's offset cap (%d) was reached before %d",
                            market, self.trades_max_offset, oldest)
                break
        rows.sort(key=lambda r: int(r.get("timestamp", 0)))
        low = min(reached, hit[0]) if hit and hit[0] <= reached else reached
        self.cache.put("INSERT OR REPLACE INTO tapes VALUES (?, ?, ?, ?, ?, ?)",
                       (market, low, max(newest, hit[1] if hit else newest), int(complete or bool(hit and hit[2])),
                        int(truncated), _dump(rows)))
        return rows, truncated and low > oldest


__all__ = ["CachedRow", "NotCached", "ORDERS", "PERIODS", "PERIOD_S", "ScoutCache", "ScoutHistory", "row_json"]
