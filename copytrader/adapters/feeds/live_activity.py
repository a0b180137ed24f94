"""Leader fills from Polymarket's activity socket (RTDS), a hint confirmed by the chain.

``feed.kind = "fast"``: the activity socket (``wss://ws-live-data.polymarket.com``,
topic ``activity``, types ``trades`` and ``orders_matched``) plus the on-chain
feed (fills) plus the Data API (REDEEM, MERGE, SPLIT), as ``both`` but with the
socket in front. The wire format (Polymarket's real-time-data-client, and
frames captured from production by others): subscribe with
``{"action":"subscribe","subscriptions":[{"topic":"activity","type":"trades"},
{"topic":"activity","type":"orders_matched"}]}``; each message is
``{"connection_id", "timestamp" (ms), "topic", "type", "payload"}`` and the
payload is a Data API activity row without ``type`` and ``usdcSize``
(``proxyWallet`` checksummed, ``asset``, ``conditionId``, ``side``, ``size``,
``price``, ``timestamp`` in seconds, ``transactionHash``, ``outcome``, ``title``,
...). ``trades`` carries the taker and the makers of a match, ``orders_matched``
the taker again: the same fill may come twice. The socket cannot filter by
wallet: every trade of every wallet arrives, so a frame is first checked for a
followed ``proxyWallet`` in its raw text (one regular-expression search) and
only those frames are decoded. The text ``ping`` goes out every 5 s; a socket
that delivers no data frame for ``feed.rtds_stale_s`` (pongs do not count: users
report sockets that answer pings and deliver nothing) is replaced (the
supervised :class:`~copytrader.adapters.streams.Stream`, jittered backoff).

What a hint may do, and what "confirmed" means. A hinted fill is parsed exactly
as the Data API row of that fill (``parse_activity_row``: the same
``LeaderTrade``, the same id) and handed to the engine at once: a hint makes us
act sooner, on the fill the truth sources will report. The chain is the truth
for fills: its ``OrderFilled`` event of the same fill, matched by
(leader, transaction hash, token, side), *confirms* the hint and is not booked
again (it only moves the chain's cursor). A fill the chain delivers first is
booked from the chain and a later hint of it is dropped. The fills hinted and not
yet confirmed are kept in this feed's own cursor (``rtds``), committed in the
same transaction as each hinted trade, so a restart still recognises the chain's
event of a fill booked from a hint. A hint of a fill made before this feed
started reading is not acted on: the chain, resuming from its stored cursor,
delivers it (it may already have). A hint the chain does not confirm within
``feed.rtds_confirm_s`` is logged once and counted (``unconfirmed``); it stays in
the ledger, so a late chain event is still not booked twice. A chain event that
confirms a hint with another size or price is logged and counted
(``mismatched``); the copy was made from the hint.
"""
from __future__ import annotations

import json
import logging
import queue
import re
import time
from collections import Counter, OrderedDict
from decimal import Decimal
from typing import Any, Callable, Iterator, Optional, Sequence, Union

from ...domain.model import LeaderTrade, micro
from ...ports import CursorLookup, FeedItem, LeaderFeed, Quarantined
from .activity import DECODER, parse_activity_row
from .errors import FeedError
from .polling import Polling, close_each

log = logging.getLogger("copytrader.feeds")

RTDS_URL = "wss://ws-live-data.polymarket.com"
TYPES = ("trades", "orders_matched")
SUBSCRIBE = json.dumps({"action": "subscribe",
                        "subscriptions": [{"topic": "activity", "type": t} for t in TYPES]},
                       separators=(",", ":"))
PING, PONG = "ping", "pong"
HINT_KEY = "rtds"               # this feed's cursor: the ledger of hinted fills
START_GRACE_S = 5               # hints of fills this close to our start are left to the chain
MAX_LEDGER = 2000               # unconfirmed hints kept at most (oldest dropped, logged)
MAX_DELIVERED = 10000           # fills the chain delivered first, remembered to drop a late hint
_WALLET = re.compile(r'"proxyWallet"\s*:\s*"(0x[0-9a-fA-F]{40})"')


def followed_wallet(raw: str, leaders: frozenset[str]) -> Optional[str]:
    """The followed wallet a raw frame is about, or None, without decoding it."""
    m = _WALLET.search(raw)
    if m is None:
        return None
    wallet = m.group(1).lower()
    return wallet if wallet in leaders else None


def parse_frame(raw: str) -> Union[LeaderTrade, Quarantined, None]:
    """One activity message: the fill as the Data API row of it would give it, a
    Quarantined with the reason, or None for a frame that is not a fill (another topic)."""
    try:
        msg = DECODER.decode(raw)
    except ValueError as exc:
        return Quarantined("rtds", raw[:4000], f"not JSON: {exc}")
    if not isinstance(msg, dict):
        return Quarantined("rtds", raw[:4000], f"message is a {type(msg).__name__}, not an object")
    if msg.get("topic") != "activity" or msg.get("type") not in TYPES:
        return None
    payload = msg.get("payload")
    if not isinstance(payload, dict):
        return Quarantined("rtds", raw[:4000], "activity message without a payload object")
    payload = {"type": "TRADE", **payload}  # the socket's rows are fills and say no type
    if "usdcSize" not in payload and "size" in payload and "price" in payload:
        try:  # the socket sends no usdcSize: the notional (the Data API's is fee-inclusive; not in the id)
            payload = {**payload, "usdcSize": Decimal(str(payload["size"])) * Decimal(str(payload["price"]))}
        except ArithmeticError:
            pass  # parse_activity_row names the bad number
    return parse_activity_row(payload, "rtds")


def fill_key(trade: LeaderTrade) -> str:
    """What the chain's event and the socket's row of one fill share."""
    return f"{trade.leader}|{trade.tx_hash}|{trade.token_id}|{trade.side}"


class HintLedger:
    """The fills hinted by the socket and what the chain said of them (pure, no I/O).

    ``pending``: key -> [hints not yet confirmed, when first hinted (s), size, price,
    expired]; ``delivered``: keys the chain delivered first."""

    def __init__(self, pending: Optional[dict] = None, max_pending: int = MAX_LEDGER) -> None:
        self.pending: OrderedDict[str, list] = OrderedDict(pending or {})
        self.delivered: OrderedDict[str, None] = OrderedDict()
        self.ids: OrderedDict[str, None] = OrderedDict()  # hint ids seen (trades + orders_matched)
        self.max_pending = max_pending

    @classmethod
    def load(cls, text: Optional[str]) -> "HintLedger":
        if not text:
            return cls()
        # restored entries are marked expired: confirmed before the restart or not, they are
        # not counted again; they still absorb the chain's event of their fill
        return cls({k: [int(v[0]), int(v[1]), v[2], v[3], True] for k, v in json.loads(text)["hints"]})

    def dump(self) -> str:
        return json.dumps({"hints": [[k, v[:4]] for k, v in self.pending.items()]}, separators=(",", ":"))

    def offer(self, trade: LeaderTrade, since_s: float) -> str:
        """What to do with a hint: "book", or why not ("duplicate", "late", "before_start")."""
        if trade.id in self.ids:
            return "duplicate"
        _remember(self.ids, trade.id, MAX_DELIVERED)
        key = fill_key(trade)
        if key in self.delivered:
            return "late"
        if trade.timestamp < since_s + START_GRACE_S:
            return "before_start"
        entry = self.pending.get(key)
        if entry is None:
            self.pending[key] = [1, trade.timestamp, str(trade.size), str(trade.price), False]
            while len(self.pending) > self.max_pending:
                old, _ = self.pending.popitem(last=False)
                log.warning("activity socket: ledger full, forgetting the unconfirmed hint %s", old)
        else:
            entry[0] += 1
        return "book"

    def confirm(self, trade: LeaderTrade) -> Optional[list]:
        """The chain delivered ``trade``: the hint entry it confirms (then not booked again), or None
        (booked from the chain; a later hint of it is dropped)."""
        key = fill_key(trade)
        entry = self.pending.get(key)
        if entry is None:
            _remember(self.delivered, key, MAX_DELIVERED)
            return None
        entry[0] -= 1
        if entry[0] <= 0:
            del self.pending[key]
        return entry

    def expire(self, now_s: float, confirm_s: float) -> list[str]:
        """Hints older than ``confirm_s`` not confirmed: reported once each."""
        late = []
        for key, entry in self.pending.items():
            if not entry[4] and now_s - entry[1] > confirm_s:
                entry[4] = True
                late.append(key)
        return late


def _remember(seen: OrderedDict, key: str, limit: int) -> None:
    seen[key] = None
    if len(seen) > limit:
        seen.popitem(last=False)


class FastFeed(Polling):
    """The activity socket in front of truth feeds (the chain first: it confirms fills).

    Frames arrive on the stream's thread: a followed wallet's are parsed there and
    handed over through a bounded queue; the engine's thread reads this feed as any
    polling feed (one round of the truth feeds, then waiting ``poll_interval_s`` for
    the next, handing hints over as they come: the run loop's ``settling`` runs
    after each item and after each round, as with every polling feed)."""

    name = "fast"

    def __init__(self, url: str, leaders: Sequence[str], truth: Sequence[LeaderFeed], *,
                 stale_s: float = 30.0, confirm_s: float = 60.0, poll_interval_s: float = 2.0,
                 ping_every_s: float = 5.0, queue_size: int = 10000,
                 clock_s: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep, max_polls: Optional[int] = None,
                 should_stop: Callable[[], bool] = lambda: False,
                 stream_factory: Optional[Callable[..., Any]] = None) -> None:
        self.url = url
        self.leaders = frozenset(a.lower() for a in leaders)
        self.truth = list(truth)
        for f in self.truth:
            f.max_polls = 1  # type: ignore[attr-defined]  # one poll per round, driven from here
        Polling.__init__(self, poll_interval_s, sleep, max_polls, should_stop)
        self.stale_s, self.confirm_s, self.ping_every_s = stale_s, confirm_s, ping_every_s
        self._clock_s, self._mono = clock_s, monotonic
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stream_factory = stream_factory
        self.stream: Any = None
        self.ledger = HintLedger()
        self.counts: Counter = Counter()
        self._since_s: float = clock_s()
        self._stopped = False

    # -- the stream's thread ------------------------------------------------------------
    def on_open(self, stream: Any) -> None:
        stream.send(SUBSCRIBE)

    def on_frame(self, raw: str) -> None:
        """Every frame of the socket: other wallets' are dropped undecoded."""
        self.counts["frames"] += 1
        if followed_wallet(raw, self.leaders) is None:
            if raw.lstrip()[:1] not in ("{", "") and raw.strip().lower() != PONG:
                self.counts["malformed"] += 1  # not a message at all
                log.warning("activity socket: a frame that is not a message, dropped: %r", raw[:80])
            return
        self.counts["parsed"] += 1
        parsed = parse_frame(raw)
        if parsed is None:
            return
        if isinstance(parsed, Quarantined):
            self.counts["malformed"] += 1
            log.warning("activity socket: unreadable fill of a followed wallet dropped (the chain delivers it): %s",
                        parsed.reason)
            return
        try:
            self._queue.put_nowait(parsed)
        except queue.Full:
            self.counts["overflow"] += 1
            log.warning("activity socket: hint queue full, hint dropped (the chain delivers it)")

    def _start_stream(self) -> None:
        if self.stream is not None:
            return
        factory = self._stream_factory
        if factory is None:
            from ..streams import Stream as factory  # noqa: N813  # the websockets client, loaded only now
        self.stream = factory("rtds", self.url, on_open=self.on_open, on_frame=self.on_frame, ping_text=PING,
                              ping_every_s=self.ping_every_s, stale_s=self.stale_s, pong_text=PONG,
                              pongs_keep_alive=False)
        self.stream.start()

    def close(self) -> None:
        """The activity socket, and the truth feeds' (the chain's)."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        close_each(self.truth)

    def streams(self) -> list:
        """The activity socket (the truth feeds cover it while it is stale) and theirs."""
        from ..streams import health, streams_of

        own = [health(self.stream.status(), fallback=True)] if self.stream is not None else []
        return own + streams_of(self.truth)

    def status(self) -> dict:
        out = dict(self.counts)
        out["pending"] = sum(1 for e in self.ledger.pending.values() if not e[4])
        if self.stream is not None:
            out["stream"] = self.stream.status()
        return out

    # -- the engine's thread ------------------------------------------------------------
    def _hint(self, trade: LeaderTrade) -> Optional[FeedItem]:
        verdict = self.ledger.offer(trade, self._since_s)
        if verdict != "book":
            self.counts[verdict] += 1
            return None
        self.counts["hinted"] += 1
        return FeedItem(cursor=self.ledger.dump(), payload=trade, key=HINT_KEY)

    def _hints(self) -> Iterator[FeedItem]:
        while True:
            try:
                trade = self._queue.get_nowait()
            except queue.Empty:
                return
            item = self._hint(trade)
            if item is not None:
                yield item

    def _truth(self, feed: LeaderFeed, item: FeedItem) -> FeedItem:
        key = item.key or feed.name
        trade = item.payload
        if isinstance(trade, LeaderTrade) and trade.is_trade:
            entry = self.ledger.confirm(trade)
            if entry is not None:  # the hint was right: this fill is booked already
                self.counts["confirmed"] += 1
                if micro(Decimal(entry[2])) != micro(trade.size) or abs(Decimal(entry[3]) - trade.price) > Decimal("0.005"):
                    self.counts["mismatched"] += 1
                    log.warning("activity socket: the chain's fill %s differs from its hint (size %s price %s, "
                                "hinted %s at %s); the copy was made from the hint", trade.tx_hash, trade.size,
                                trade.price, entry[2], entry[3])
                return FeedItem(item.cursor, None, key)
        return FeedItem(item.cursor, item.payload, key)

    def _expire(self) -> None:
        for key in self.ledger.expire(self._clock_s(), self.confirm_s):
            self.counts["unconfirmed"] += 1
            log.warning("activity socket: hinted fill %s not confirmed by the chain within %gs (copied once; "
                        "a later chain event of it is not booked again)", key, self.confirm_s)

    def read(self, cursors: CursorLookup) -> Iterator[FeedItem]:
        self.ledger = HintLedger.load(cursors(HINT_KEY))
        self._since_s = self._clock_s()
        self._start_stream()
        rounds, self._stopped = 0, False
        try:
            while True:
                for feed in self.truth:
                    try:
                        for item in feed.read(cursors):
                            yield from self._hints()
                            out = self._truth(feed, item)
                            yield out
                            if out.payload is None and item.payload is not None:  # a hint confirmed:
                                # the ledger without it, after the chain's cursor moved past it (a crash
                                # between the two leaves the entry, which then absorbs nothing new)
                                yield FeedItem(self.ledger.dump(), None, HINT_KEY)
                    except FeedError as exc:
                        if rounds == 0:
                            raise
                        log.error("%s (next round retries)", exc)
                yield from self._hints()
                self._expire()
                rounds += 1
                if (self.max_polls is not None and rounds >= self.max_polls) or self._should_stop():
                    return
                yield from self._between_rounds()
                if self._stopped:
                    return
        finally:
            self.close()

    def _between_rounds(self) -> Iterator[FeedItem]:
        """Wait ``poll_interval_s`` for the next round, handing hints over as they arrive; a
        ``stop_when`` wait that reports the stop (``Event.wait``) ends the wait early."""
        deadline = self._mono() + self.poll_interval_s
        while True:
            remaining = deadline - self._mono()
            if remaining <= 0:
                return
            try:
                trade = self._queue.get(timeout=min(remaining, 0.25))
            except queue.Empty:
                if self._sleep(0):
                    self._stopped = True
                    return
                continue
            item = self._hint(trade)
            if item is not None:
                yield item
