"""Our orders over the CLOB user channel: their trades' settlement pushed, not polled.

``wss://ws-subscriptions-clob.polymarket.com/ws/user`` (``live.ws_user_url``).
On every (re)connect the stream sends the SDK's own initial frame
(``polymarket._internal.streams.clob.user_protocol.build_initial_frame``:
``{"type": "user", "auth": {"apiKey", "secret", "passphrase"}}``, then a
``PING``) for every market of the account, as the SDK's ``UserSpec()``
without markets does. Not per market: the channel does not acknowledge a
``{"operation": "subscribe", "markets": [...]}``, so one sent just before an
order is posted races the match and loses its ``trade`` event (seen on the
stand-in); the account's events are our own orders' anyway. The channel
then pushes flat objects (or arrays of them) with ``event_type``:

- ``trade``: the whole trade each time its status moves (``id``,
  ``taker_order_id``, ``maker_orders[]``, ``size``, ``price``, ``status``
  MATCHED → MINED → CONFIRMED or RETRYING → FAILED, ``last_update``);
- ``order``: an order placed, updated (``size_matched``) or cancelled, with
  ``associate_trades`` (the ids of the trades it is in).

The latest state of each trade is kept (a status never moves back: a
reordered or repeated event changes nothing), indexed by every order in it,
and ``settlement(record)`` answers from memory what ``GET /data/trades``
answers (the same ``parsing.settlement_from_trades``) when, and only when,
memory is known to be complete for that order: the socket is connected and
fresh; the order was not known before the last reconnect or unreadable
frame (then its missed interval is read over REST once: ``absorb``);
every trade its ``order`` events name has been seen; and the shares of
its trades account for the fill booked; and, for a still pending order,
its last event is less than ``pending_trust_s`` old (an event the channel
never sent cannot be seen missing: a slow settlement is read over REST too).
Otherwise it answers None and the executor reads REST, the fallback
(``fallback=True`` in ``health``).

The channel pushes nothing while we have no order, so a quiet socket that
answers ``PING`` is alive; silence is noticed where an event is owed: an
order the exchange matched (``expect``) that shows no event within
``event_wait_s`` makes the channel *degraded* (one log line; health stale;
its age, the metric, counts from the oldest owed event) until it delivers.
Secrets: the credentials come from a callable at each connect and only go
into the auth frame; nothing here logs or keeps them.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal
from typing import Any, Callable, Iterable, Optional

from ....domain.model import ZERO, IntentRecord, SettlementReport, SettlementState
from ...streams import Stream, StreamStatus, redact_url
from .parsing import Unreadable, _ours, settlement_from_trades, trade_status

log = logging.getLogger("copytrader.execution")

DEFAULT_WS_USER_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/user"
EVENT_WAIT_S = 10.0  # a matched order's first event is owed within this long (it comes at the match)
# A pending answer from memory is trusted this long after the order's last event: the channel has
# no sequence numbers, so a status move it never sent would otherwise leave a fill pending for good
PENDING_TRUST_S = 30.0
MAX_TRADES = 20_000  # trades kept in memory (the oldest are forgotten first)
_RANK = {"MATCHED": 0, "MATCHED_NOT_BROADCASTED": 0, "MINED": 1, "RETRYING": 1, "CONFIRMED": 2, "FAILED": 2}


def _stamp(event: dict) -> int:
    try:
        return int(event.get("last_update") or event.get("timestamp") or 0)
    except (TypeError, ValueError):
        return 0


class UserStream:
    def __init__(self, url: str, credentials: Callable[[], Any], *, clock: Callable[[], float] = time.monotonic,
                 event_wait_s: float = EVENT_WAIT_S, pending_trust_s: float = PENDING_TRUST_S,
                 stream_options: Optional[dict] = None) -> None:
        self._credentials = credentials  # () -> ApiKeyCreds (key, secret, passphrase)
        self._clock = clock
        self.event_wait_s = event_wait_s
        self.pending_trust_s = pending_trust_s
        self._seen_at: dict[str, float] = {}           # order id -> when its state last changed (our clock)
        self._lock = threading.Lock()
        self._trades: dict[str, dict] = {}             # trade id -> its latest event (or REST row)
        self._by_order: dict[str, set[str]] = {}       # order id -> ids of the trades it is in
        self._named: dict[str, set[str]] = {}          # order id -> trade ids its order events name
        self._stale: set[str] = set()                  # orders known before a reconnect / unreadable frame
        self._owed: dict[str, float] = {}              # matched order -> when we started waiting for its event
        self._news: set[str] = set()                   # orders with a new state since the last ``news``
        self._resync = False                           # everything watched needs one REST read
        self._opened = 0
        self._opened_at: Optional[float] = None
        self.malformed = 0
        self.degraded = False
        self._closing = False
        options = {"ping_text": "PING", "pong_text": "PONG", "ping_every_s": 10.0, "stale_s": 30.0,
                   "pongs_keep_alive": True, "clock": clock, **(stream_options or {})}
        self.stream = Stream("user", url, on_open=self._on_open, on_frame=self.apply, on_status=self._status,
                             **options)

    def __repr__(self) -> str:
        return f"UserStream({self.stream.name}, {redact_url(self.stream.url)})"

    # -- the executor's side -----------------------------------------------------------

    def start(self) -> None:
        self.stream.start()

    def close(self) -> None:
        self._closing = True
        self.stream.close()

    def expect(self, order_id: str) -> None:
        """The exchange matched this order: its trade event is owed."""
        order = order_id.lower()
        with self._lock:
            if not self._by_order.get(order):
                self._owed.setdefault(order, self._clock())

    def settlement(self, record: IntentRecord) -> Optional[SettlementReport]:
        """The order's settlement from the channel, or None: read REST."""
        if not self._trusted():
            return None
        order = record.execution_id.lower()
        with self._lock:
            ids = self._by_order.get(order, set())
            if order in self._stale or not ids or not self._named.get(order, set()) <= ids:
                return None
            trades = [self._trades[i] for i in ids]
            quiet = self._clock() - self._seen_at.get(order, float("-inf"))
        report = settlement_from_trades(trades, record)
        if report.state is SettlementState.PENDING:
            return report if quiet <= self.pending_trust_s else None
        try:
            known = sum((shares for _, _, shares, _ in _ours(trades, record)), ZERO)
        except Unreadable:
            return None
        return report if known >= record.filled_size else None  # a trade of it we never saw: REST

    def absorb(self, order_id: str, rows: Iterable[Any]) -> None:
        """What ``GET /data/trades`` showed of an order: its missed interval is read back."""
        order = order_id.lower()
        with self._lock:
            for row in rows:
                try:
                    self._note_trade(row, news=False)
                except (ValueError, TypeError, KeyError, AttributeError):
                    continue  # the REST parser judges it (settlement_from_trades)
            self._stale.discard(order)
            self._seen_at[order] = self._clock()
            ids = self._by_order.get(order, set())
            if ids and all(trade_status(self._trades[i]) in ("CONFIRMED", "FAILED") for i in ids):
                self._owed.pop(order, None)

    def news(self) -> tuple[bool, set[str]]:
        """(read everything watched over REST once?, orders with new events) since the last call."""
        self._trusted()
        with self._lock:
            resync, self._resync = self._resync, False
            orders, self._news = self._news, set()
        return resync, orders

    def health(self) -> tuple[StreamStatus, bool, Optional[float]]:
        """(the socket's status, stale?, age for the metric: since its last frame, or since
        the oldest event it owes when that is overdue)."""
        st = self.stream.status()
        trusted, overdue = self._state()
        return st, not trusted, overdue if overdue is not None else st.age_s

    # -- the stream's thread -----------------------------------------------------------

    def _trusted(self) -> bool:
        return self._state()[0]

    def _state(self) -> tuple[bool, Optional[float]]:
        """(memory may answer for the channel, seconds the oldest owed event is overdue);
        logs one line when the channel degrades and one when it is trusted again. Up means
        connected, fresh and a frame since the last connect (the ``PING`` sent with the
        auth frame is answered ``PONG`` only once the credentials are accepted)."""
        now = self._clock()
        st = self.stream.status()
        with self._lock:
            waits = [now - at for at in self._owed.values() if now - at > self.event_wait_s]
            opened = self._opened_at
        overdue = max(waits) if waits else None
        framed = st.connected and opened is not None and st.age_s is not None and now - st.age_s >= opened - 1e-6
        if overdue is not None:
            down: Optional[str] = f"no event for a matched order within {self.event_wait_s:g}s"
        elif not st.connected:
            down = st.last_error or "disconnected"
        elif st.stale:
            down = st.last_error or "stale"
        elif not framed and opened is not None and now - opened > self.event_wait_s:
            down = "no answer since connecting"
        else:
            down = None
        trusted = framed and not st.stale and overdue is None
        if down is not None:
            self._degrade(True, down)
        elif trusted:
            self._degrade(False, "")
        return trusted, overdue

    def _degrade(self, degraded: bool, why: str) -> None:
        with self._lock:
            if degraded == self.degraded or self._closing:
                return
            self.degraded = degraded
        if degraded:
            log.warning("user channel degraded (%s): settlement read from GET /data/trades until it recovers", why)
        else:
            log.warning("user channel recovered: settlement pushed again")

    def _status(self, status: StreamStatus) -> None:
        self._state()

    def _on_open(self, stream: Stream) -> None:
        from polymarket._internal.streams.clob.user_protocol import UserServerState, build_initial_frame

        creds = self._credentials()
        with self._lock:
            self._opened += 1
            if self._opened > 1:  # what the channel pushed meanwhile is lost: REST reads it back
                self._stale.update(self._by_order)
                self._resync = True
            self._opened_at = self._clock()
        stream.send(json.dumps(build_initial_frame(UserServerState(include_all_markets=True), creds)))
        stream.send("PING")  # answered once the credentials are accepted: the channel is up

    def apply(self, text: str) -> None:
        """Apply one frame (an event or a JSON array of events)."""
        try:
            raw = json.loads(text)
            events = raw if isinstance(raw, list) else [raw]
            if not all(isinstance(e, dict) for e in events):
                raise ValueError("not an object")
            with self._lock:
                for e in events:
                    kind = e.get("event_type")
                    if kind == "trade":
                        self._note_trade(e)
                    elif kind == "order":
                        self._note_order(e)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self.malformed += 1
            with self._lock:  # which order it was about is unknown: every known one is read back
                self._stale.update(self._by_order)
                self._resync = True
            log.warning("user channel: unreadable frame (%s); our orders' trades are read over REST once",
                        " ".join(str(exc).split())[:120])

    def _orders_of(self, trade: dict) -> list[str]:
        orders = [str(trade.get("taker_order_id") or "").lower()]
        orders += [str(m.get("order_id") or "").lower() for m in trade.get("maker_orders") or () if isinstance(m, dict)]
        return [o for o in orders if o]

    def _note_trade(self, trade: dict, news: bool = True) -> None:
        trade_id = str(trade["id"])
        status = trade_status(trade)
        if status not in _RANK:
            raise ValueError(f"trade status {status!r}")
        Decimal(str(trade["size"]))  # readable amounts, or the frame is unreadable
        held = self._trades.get(trade_id)
        if held is not None:
            before = trade_status(held)
            if (_RANK[status], _stamp(trade)) <= (_RANK[before], _stamp(held)) or \
                    _RANK[before] == 2:  # never back, never past a terminal status
                return
        self._trades[trade_id] = trade
        if held is None and len(self._trades) > MAX_TRADES:
            self._prune()
        now = self._clock()
        for order in self._orders_of(trade):
            self._by_order.setdefault(order, set()).add(trade_id)
            self._owed.pop(order, None)
            self._seen_at[order] = now
            if news:
                self._news.add(order)

    def _prune(self) -> None:
        """Forget the oldest tenth of the trades (settled long ago: the watch reads REST for
        an order whose trades are gone, as for one never seen)."""
        for trade_id in list(self._trades)[:MAX_TRADES // 10]:
            trade = self._trades.pop(trade_id)
            for order in self._orders_of(trade):
                for table in (self._by_order, self._named, self._seen_at):
                    table.pop(order, None)

    def _note_order(self, event: dict) -> None:
        order = str(event["id"]).lower()
        named = {str(t) for t in event.get("associate_trades") or ()}
        self._named.setdefault(order, set()).update(named)
        self._owed.pop(order, None)
        self._news.add(order)


__all__ = ["DEFAULT_WS_USER_URL", "EVENT_WAIT_S", "UserStream"]
