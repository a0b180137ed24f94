"""The book mirror: the CLOB market channel's books kept in memory.

``wss://ws-subscriptions-clob.polymarket.com/ws/market`` (``market.ws_url``):
on every (re)connect the mirror sends ``{"type": "market", "assets_ids":
[...], "custom_feature_enabled": true}`` with every token it watches, later
tokens with ``{"operation": "subscribe", "assets_ids": [...],
"custom_feature_enabled": true}`` (the SDK's ``market_protocol`` frames). The
server answers each subscribed token with a ``book`` snapshot, then sends:

- ``price_change``: a ``price_changes`` list, each the new aggregate ``size``
  at ``price`` on ``side`` (BUY: bids, SELL: asks; 0 removes the level),
  with the token's ``best_bid`` / ``best_ask`` after the change;
- ``tick_size_change`` (``new_tick_size``), ``best_bid_ask``,
  ``last_trade_price``, ``market_resolved`` (``market``, ``winning_asset_id``).

Frames are flat objects with ``event_type`` (or a JSON array of them).

A book is *usable* only from a ``book`` snapshot on, and stops being usable
(until the next snapshot, which the mirror asks for by unsubscribing and
subscribing the token again) when the channel shows it missed something:
a ``price_change`` for a token it has no snapshot of; the best bid or ask a
frame carries differing from the book's own after applying it (the channel
has no sequence numbers; its ``hash`` is opaque, so the top of book it sends
is what we can check); a frame older than the book's last one (reordered); a
frame that cannot be read (every book: which one it was for is unknown).
A usable book is *fresh* while its last message is less than ``stale_s`` old
and the socket is connected; anything else (stale, gapped, unknown,
disconnected) is not served, and the caller reads ``GET /book`` for that
trade (``ClobMarketData.book``). Frames are applied on the stream's thread;
reads take a lock and build an immutable ``OrderBook`` (source "stream").
"""
from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Optional

import attrs

from ...domain.model import OrderBook, PriceLevel
from ..streams import Stream, StreamStatus

log = logging.getLogger("copytrader.market")

DEFAULT_WS_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/market"


class _Book:
    __slots__ = ("bids", "asks", "tick", "at", "ts", "usable", "resync", "last_trade")

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.tick: Optional[Decimal] = None
        self.at: Optional[float] = None      # clock time of its last message
        self.ts = 0                          # the last frame's timestamp (ms)
        self.usable = False
        self.resync = True                   # a snapshot was asked for (subscribing asks for one)
        self.last_trade: Optional[Decimal] = None


class BookMirror:
    def __init__(self, url: str = DEFAULT_WS_URL, *, stale_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_status: Callable[[StreamStatus], None] = lambda status: None,
                 stream_options: Optional[dict] = None) -> None:
        self.stale_s = stale_s
        self._clock = clock
        self._lock = threading.Lock()
        self._books: dict[str, _Book] = {}
        self._resolved: list[str] = []
        self.gaps = 0           # times a book was found to have missed something
        self.malformed = 0      # frames that could not be read
        options = {"ping_text": "PING", "pong_text": "PONG", "ping_every_s": 10.0, "stale_s": 30.0,
                   "clock": clock, **(stream_options or {})}
        self._on_status = on_status
        self.degraded = False
        self._closing = False
        self._data_at: Optional[float] = None   # clock time of the last readable frame (PONGs are not data)
        self._since: Optional[float] = None     # when the socket was started
        self.stream = Stream("market", url, on_open=self._on_open, on_frame=self.apply, on_status=self._status,
                             **options)

    # -- the caller's side -------------------------------------------------------------

    def start(self) -> None:
        self._since = self._clock() if self._since is None else self._since
        self.stream.start()

    def close(self) -> None:
        self._closing = True
        self.stream.close()

    def status(self) -> StreamStatus:
        """The socket's status, its age and staleness counted from the last book message: a
        channel that answers ``PING`` but sends nothing for ``stale_s`` serves no book."""
        st = self.stream.status()
        with self._lock:
            data_at, since = self._data_at, self._since
        ref = data_at if data_at is not None else since
        if ref is None:
            return st
        now = self._clock()
        return attrs.evolve(st, age_s=None if data_at is None else max(0.0, now - data_at),
                            stale=st.stale or now - ref > self.stale_s)

    def watch(self, token_ids: Iterable[str]) -> None:
        """Subscribe to these tokens (those not watched yet); starts the socket on first use."""
        with self._lock:
            new = [t for t in dict.fromkeys(token_ids) if t and t not in self._books]
            for token in new:
                self._books[token] = _Book()
        if not new:
            return
        if not self.stream.alive:
            self.start()          # on_open subscribes every watched token
            return
        self.stream.send(json.dumps({"operation": "subscribe", "assets_ids": new, "custom_feature_enabled": True}))

    def watching(self, token_id: str) -> bool:
        with self._lock:
            return token_id in self._books

    def book(self, token_id: str) -> Optional[OrderBook]:
        """The mirrored book when usable and fresh, else None (read ``GET /book``)."""
        now = self._clock()
        with self._lock:
            b = self._books.get(token_id)
            if b is None or not b.usable or b.at is None or now - b.at > self.stale_s:
                return None
            bids, asks = list(b.bids.items()), list(b.asks.items())
        if not self.stream.status().connected:
            return None
        return OrderBook(token_id,
                         bids=tuple(PriceLevel(p, s) for p, s in sorted(bids, reverse=True)),
                         asks=tuple(PriceLevel(p, s) for p, s in sorted(asks)),
                         source="stream")

    def tick_size(self, token_id: str) -> Optional[Decimal]:
        """The tick size the channel last announced for the token (None: none yet)."""
        with self._lock:
            b = self._books.get(token_id)
            return b.tick if b is not None else None

    def resolved_markets(self) -> list[str]:
        """Condition ids the channel said resolved since the last call (drained)."""
        with self._lock:
            out, self._resolved = self._resolved, []
        return out

    # -- the stream's thread -----------------------------------------------------------

    def _status(self, status: StreamStatus) -> None:
        """One log line when the channel degrades (disconnected or stale: books from GET /book)
        and one when it recovers."""
        status = self.status()
        degraded = not status.connected or status.stale
        if degraded != self.degraded and not self._closing:
            self.degraded = degraded
            if degraded:
                log.warning("market channel degraded (%s): books from GET /book until it recovers",
                            status.last_error or "disconnected")
            else:
                log.warning("market channel recovered: books from the mirror again")
        self._on_status(status)

    def _on_open(self, stream: Stream) -> None:
        with self._lock:
            for b in self._books.values():  # what we missed while disconnected is unknown
                b.usable, b.resync = False, True   # the initial frame asks for every snapshot
            tokens = sorted(self._books)
        if tokens:
            stream.send(json.dumps({"type": "market", "assets_ids": tokens, "custom_feature_enabled": True}))

    def apply(self, text: str) -> None:
        """Apply one frame (an event or a JSON array of events)."""
        try:
            raw = json.loads(text)
        except ValueError as exc:
            self._malformed(exc)
            return
        now = self._clock()
        with self._lock:  # after a silence longer than stale_s, what the channel did not send is unknown
            silent, self._data_at = self._data_at is not None and now - self._data_at > self.stale_s, now
        if silent:  # the degraded line said it went quiet: this one is INFO
            self._resync_all(f"no message for over {self.stale_s:g}s", logging.INFO)
        try:
            events = raw if isinstance(raw, list) else [raw]
            with self._lock:
                resync = [t for t in (self._event(e) for e in events) if t]
        except (ValueError, TypeError, KeyError, AttributeError, InvalidOperation) as exc:
            self._malformed(exc)
            return
        for token in resync:
            self._resync(token)

    def _event(self, e: dict) -> Optional[str]:
        """Apply one event under the lock; a token whose book needs a new snapshot, or None."""
        kind = e.get("event_type") or e.get("type")
        now = self._clock()
        ts = int(e.get("timestamp") or 0)
        if kind == "book":
            token = str(e["asset_id"])
            b = self._books.get(token)
            if b is None:
                return None  # not ours (an unsubscribe in flight)
            if ts and ts < b.ts:
                return None  # an older snapshot than what we hold
            b.bids = {Decimal(str(lv["price"])): Decimal(str(lv["size"])) for lv in e.get("bids") or ()}
            b.asks = {Decimal(str(lv["price"])): Decimal(str(lv["size"])) for lv in e.get("asks") or ()}
            b.bids = {p: s for p, s in b.bids.items() if s > 0}
            b.asks = {p: s for p, s in b.asks.items() if s > 0}
            if e.get("tick_size") is not None:
                b.tick = Decimal(str(e["tick_size"]))
            b.ts, b.at, b.usable, b.resync = ts, now, True, False
            return None
        if kind == "price_change":
            gapped: Optional[str] = None
            tops: dict[str, tuple[Any, Any]] = {}
            for change in e["price_changes"]:
                token = str(change["asset_id"])
                b = self._books.get(token)
                if b is None:
                    continue
                price, size = Decimal(str(change["price"])), Decimal(str(change["size"]))
                side = str(change["side"]).upper()
                levels = b.bids if side == "BUY" else b.asks if side == "SELL" else None
                if levels is None:
                    raise ValueError(f"price_change side {side!r}")
                if not b.usable:
                    gapped = gapped or self._gap(token, b, "a price change before its snapshot")
                    continue
                if ts and ts < b.ts:
                    gapped = gapped or self._gap(token, b, "a price change older than the book")
                    continue
                if size > 0:
                    levels[price] = size
                else:
                    levels.pop(price, None)
                b.ts, b.at = max(b.ts, ts), now
                tops[token] = (change.get("best_bid"), change.get("best_ask"))
            for token, (bid, ask) in tops.items():
                b = self._books[token]
                if b.usable and not self._top_matches(b, bid, ask):
                    gapped = gapped or self._gap(token, b, "its best bid/ask differs from the channel's")
            return gapped
        if kind == "best_bid_ask":
            token = str(e["asset_id"])
            b = self._books.get(token)
            if b is None or not b.usable:
                return None
            b.at = now
            if not self._top_matches(b, e.get("best_bid"), e.get("best_ask")):
                return self._gap(token, b, "its best bid/ask differs from the channel's")
            return None
        if kind == "tick_size_change":
            b = self._books.get(str(e["asset_id"]))
            if b is not None:
                b.tick, b.at = Decimal(str(e["new_tick_size"])), now
            return None
        if kind == "last_trade_price":
            b = self._books.get(str(e["asset_id"]))
            if b is not None:
                b.last_trade, b.at = Decimal(str(e["price"])), now
            return None
        if kind == "market_resolved":
            condition = str(e["market"]).lower()
            if condition not in self._resolved:
                self._resolved.append(condition)
            log.info("market channel: market %s resolved (winner %s)", condition[:14],
                     str(e.get("winning_asset_id") or "?")[:14])
            return None
        return None  # new_market and events we do not use

    @staticmethod
    def _top_matches(b: _Book, bid: Any, ask: Any) -> bool:
        """The channel's best bid/ask (when it sends them; "0" or "" = an empty side) against the book's."""
        for given, levels, best in ((bid, b.bids, max), (ask, b.asks, min)):
            if given is None:
                continue
            want = Decimal(str(given)) if str(given) not in ("", "0") else None
            have = best(levels) if levels else None
            if want != have:
                return False
        return True

    def _gap(self, token: str, b: _Book, why: str) -> Optional[str]:
        self.gaps += 1
        if b.usable:
            log.warning("market channel: book of %s… unusable until its next snapshot (%s)", token[:12], why)
        b.usable = False
        if b.resync:
            return None
        b.resync = True
        return token

    def _resync(self, token: str) -> None:
        """Ask the channel for a fresh snapshot of ``token``."""
        self.stream.send(json.dumps({"operation": "unsubscribe", "assets_ids": [token]}))
        self.stream.send(json.dumps({"operation": "subscribe", "assets_ids": [token], "custom_feature_enabled": True}))

    def _malformed(self, exc: BaseException) -> None:
        self.malformed += 1
        self._resync_all(f"unreadable frame ({' '.join(str(exc).split())[:120]})", logging.WARNING, always=True)

    def _resync_all(self, why: str, level: int, always: bool = False) -> None:
        """Every book unusable until its next snapshot, which is asked for (one log line when
        some book was usable or not asked for yet, or ``always``)."""
        with self._lock:
            tokens = [t for t, b in self._books.items() if b.usable or not b.resync]
            for t in tokens:
                self._books[t].usable, self._books[t].resync = False, True
        if tokens or always:
            log.log(level, "market channel: %s; every book unusable until its next snapshot", why)
        if tokens:
            self.stream.send(json.dumps({"operation": "unsubscribe", "assets_ids": tokens}))
            self.stream.send(json.dumps({"operation": "subscribe", "assets_ids": tokens,
                                         "custom_feature_enabled": True}))
