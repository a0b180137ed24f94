"""The interfaces the core needs. Adapters implement them; the application
only ever sees these protocols."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Callable, Collection, ContextManager, Iterator, Optional, Protocol, Union, runtime_checkable

import attrs

from ..domain.model import (
    CopyIntent, ExecutionResult, IntentRecord, LeaderTrade, MarketInfo, OrderBook, PreparedOrder, Settlement,
    SettlementReport, TradingState, hot_record,
)
from ..domain.portfolio import Position, PositionKey
from ..domain.redemption import Call, Redemption
from ..domain.sizing import LeaderSettings


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC time."""


@attrs.frozen
class Quarantined:
    """A feed row that could not be parsed: kept, logged, never copied."""

    source: str
    raw: str
    reason: str


@attrs.frozen
class SourceHealth:
    """A feed's word on its remote: a failed poll (``error`` set) or the first
    good poll after failures. The engine's circuit breaker counts these."""

    source: str
    error: str = ""


@hot_record  # one per row of a feed
class FeedItem:
    """One row from a feed, with the cursor to store (under ``key``, the
    feed's name by default) in the same transaction as what the row produced.
    A ``None`` payload only moves the cursor (e.g. blocks without fills)."""

    cursor: str
    payload: Union[LeaderTrade, Quarantined, SourceHealth, None]
    key: str = ""


CursorLookup = Callable[[str], Optional[str]]


@runtime_checkable
class LeaderFeed(Protocol):
    name: str

    def read(self, cursors: CursorLookup) -> Iterator[FeedItem]:
        """Items after the stored cursors (``cursors(key)``; None: from the start), in order.

        A feed that polls a remote without end may also offer
        ``stop_when(should_stop, wait)``: end after the current round once
        ``should_stop()`` is true, waiting between rounds with ``wait(seconds)``."""


@attrs.frozen
class StreamHealth:
    """One socket an adapter depends on, as the supervisor shows it (metrics, ``/healthz``).
    An adapter with sockets (market data, a feed) offers ``streams() -> list[StreamHealth]``;
    ``fallback``: whether something else covers it while it is stale (GET /book for the book
    mirror): a stale stream without one makes its follower unhealthy."""

    name: str
    connected: bool
    age_s: Optional[float]
    stale: bool
    fallback: bool
    reconnects: int = 0
    last_error: str = ""


class MarketData(Protocol):
    """May also offer ``resolved_markets() -> list[str]``: condition ids the venue
    pushed as resolved since the last call (the CLOB market channel); the
    resolution watch checks them at once instead of at its next periodic pass."""

    def market(self, token_id: str) -> Optional[MarketInfo]:
        """Tick size, minimum order size, neg-risk flag, closed/resolved; None if unknown."""

    def book(self, token_id: str) -> Optional[OrderBook]:
        """The current order book; None if unknown."""


class Executor(Protocol):
    """Orders go out in two steps so the order id is durable before sending:
    ``prepare`` builds and signs (no side effects), the application stores the
    result with the intent, then ``submit`` sends it."""

    def prepare(self, intent: CopyIntent, market: MarketInfo) -> PreparedOrder:
        """Build (and sign) the order. Raises ValueError if it cannot be built."""

    def submit(self, order: PreparedOrder, intent: CopyIntent, market: MarketInfo) -> ExecutionResult:
        """Send the order. Must not raise for exchange or network errors:
        those map to ``rejected`` (nothing happened) or ``unknown`` (it may have)."""

    def lookup(self, record: IntentRecord, market: Optional[MarketInfo]) -> ExecutionResult:
        """Settle an intent whose outcome is not known (after a crash or a
        timeout) by its stored order id, without sending anything new.
        ``not_found`` when the venue knows neither the order nor a trade of it."""

    def settlement(self, record: IntentRecord) -> SettlementReport:
        """Where the trades of a provisional fill's order stand on chain
        (pending, confirmed: how much, or failed), read without waiting."""


class Alerter(Protocol):
    """May set ``silent = True`` when it drops every alert: the engine then
    skips building the per-trade messages."""

    def send(self, kind: str, message: str, **data: object) -> None:
        """Best effort: must never raise into trading."""


class FollowerMetrics(Protocol):
    """What the supervisor reports per follower (Prometheus in ``copytrader serve``)."""

    def follower(self, name: str) -> None:
        """Create the follower's series (at zero, before its first trade)."""

    def outcome(self, follower: str, status: str, reason: str = "") -> None: ...
    def state(self, follower: str, state: str) -> None: ...
    def worker(self, follower: str, running: bool) -> None: ...
    def worker_failed(self, follower: str) -> None: ...
    def polled(self, follower: str, at: float) -> None: ...
    def lag(self, follower: str, seconds: float) -> None: ...
    def drift(self, follower: str, token: str, shares: float) -> None:
        """A token's drift from the chain (shares on chain minus ours; 0: none)."""

    def stream_age(self, follower: str, stream: str, seconds: float) -> None:
        """Seconds since a socket's last frame (``StreamHealth.age_s``; -1: none yet)."""


class RedeemError(Exception):
    """A redemption the venue refused: nothing was sent (one sentence)."""


class RedeemUnknown(Exception):
    """A redemption that may have been sent (a timeout or 5xx after sending): one sentence."""


class Redeemer(Protocol):
    """A wallet's redemptions on chain (the venue adapter). Amounts in micro units.
    Its calls are made by one thread at a time (``application.auto_redeem`` gives
    them to its own thread, so waiting for a block never holds up copying)."""

    route: str  # domain.redemption.EOA | RELAYER
    wallet: str

    def ledger(self, token_id: str, neg_risk: bool) -> str:
        """The ERC-1155 contract holding ``token_id``."""
    def balances(self, ledger: str, token_ids: list[str]) -> list[int]: ...
    def credited(self, tx_hash: str) -> Optional[int]:
        """The pUSD (micro units) the transaction credited to the wallet, from its
        receipt's logs; None when there is no receipt to read."""
    def nonce(self) -> int:
        """The wallet's nonce: an EOA's transaction count, a relayed wallet's at the
        relayer; a send moves it (unmoved: nothing of the wallet was sent since)."""
    def calls(self, condition_id: str, token_ids: list[str], amounts: list[int], neg_risk: bool) -> list[Call]:
        """The redeem call(s) of a market's tokens, as the SDK builds them."""
    def simulate(self, calls: list[Call]) -> Optional[int]:
        """eth_call of the calls from the wallet: the payout when the contract returns one,
        None when it returns nothing; raises RedeemError when it would revert."""
    def send(self, calls: list[Call]) -> tuple[str, str]:
        """(transaction hash, relayer transaction id), either may be empty. RedeemError when
        nothing was sent; RedeemUnknown when it may have been."""
    def wait(self, tx_hash: str, relayer_id: str) -> tuple[str, str, str]:
        """(state "mined" | "failed" | "pending", transaction hash, reason), bounded by the
        settings' polls; a lookup without waiting when nothing was sent by this process."""


@attrs.frozen
class StoredState:
    state: TradingState
    reason: str = ""
    since: Optional[datetime] = None


@attrs.frozen
class ControlAction:
    """A person's control action (halt, reduce-only, resume, pausing or resuming
    a leader) as the store records it, with where it came from (``source``:
    cli, dashboard, api, telegram)."""

    at: datetime
    follower: str
    action: str  # halt | reduce_only | resume | pause_leader | resume_leader
    target: str = ""  # "" or the leader's address
    reason: str = ""
    source: str = ""


@attrs.frozen
class DecisionFilter:
    """Which decisions a page of history holds (every field optional). ``outcome``:
    copied (filled or partial), rejected (not copied, with a reason), unfilled
    (the venue filled nothing), open (pending or unknown). ``before``: (created_at,
    cursor) of the last row of the previous page (pages are newest first)."""

    leader: str = ""
    market: str = ""  # a condition id
    outcome: str = ""
    since: Optional[datetime] = None
    until: Optional[datetime] = None
    before: Optional[tuple[datetime, int]] = None


class Store(Protocol):
    """Repository and unit of work. Writes happen inside ``transaction()``:
    they all commit together or not at all."""

    def transaction(self, defer: bool = False) -> ContextManager[None]:
        """``defer``: the writes send nothing (a rejection, a duplicate, a cursor move) and
        may be committed later with others' (group commit), always before the next
        transaction that is not deferred commits, at ``flush()`` and at ``close()``;
        a crash may lose them. A store that does not group commits them at once."""
    def flush(self) -> None:
        """Commit the deferred writes still waiting (none: nothing to do)."""
    def changed(self) -> bool:
        """Whether the trading state or the paused leaders may have changed (in another
        process, or by this store's own commits) since the last call; True if the store
        cannot tell. The engine reads them again only then."""

    # feed cursors and leader trades seen
    def get_cursor(self, feed: str) -> Optional[str]: ...
    def set_cursor(self, feed: str, cursor: str) -> None: ...
    def has_trade(self, trade_id: str) -> bool: ...
    def get_trade(self, trade_id: str) -> Optional[LeaderTrade]: ...
    def add_trade(self, trade: LeaderTrade) -> None: ...
    def trade_prices_newest_first(self, token_ids: Collection[str]) -> Iterator[tuple[str, Decimal]]:
        """(token, price) of the leader trades in ``token_ids``, newest first (the marks of open positions)."""
    def quarantine(self, item: Quarantined, at: datetime) -> None: ...
    def quarantined(self, limit: int = 100) -> list[tuple[datetime, Quarantined]]: ...
    def put_order(self, order: PreparedOrder, at: datetime) -> None: ...
    def get_order(self, order_id: str) -> Optional[PreparedOrder]: ...
    def put_telemetry(self, key: str, at: datetime, data: dict) -> None: ...
    def telemetry(self, limit: int = 100) -> list[tuple[str, datetime, dict]]: ...

    # intents: the audit trail
    def put_intent(self, record: IntentRecord) -> None: ...
    def get_intent(self, intent_id: str) -> Optional[IntentRecord]: ...
    def open_intents(self) -> list[IntentRecord]: ...
    def intents_in(self, settlement: Settlement, limit: Optional[int] = None) -> list[IntentRecord]:
        """Intents whose fill is ``provisional`` (or ``reversed``), oldest first; the oldest ``limit``."""
    def history(self, limit: int = 100, offset: int = 0) -> list[IntentRecord]: ...
    def decisions(self, where: DecisionFilter, limit: int = 100) -> list[tuple[int, IntentRecord]]:
        """(cursor, intent) newest first matching ``where``, read through an index (no scan of the
        whole history per page): pass the last cursor as ``before`` for the next page."""
    def order_times_since(self, since: datetime, limit: Optional[int] = None) -> list[datetime]:
        """Creation times of sent intents since ``since``, oldest first; the newest ``limit``."""

    # positions and PnL
    def put_position(self, position: Position) -> None: ...
    def positions(self, include_closed: bool = False) -> list[Position]: ...
    def put_leader_holding(self, key: PositionKey, size: Decimal) -> None: ...
    def leader_holdings(self) -> dict[PositionKey, Decimal]: ...
    def put_daily_realised(self, day: str, realised: Decimal) -> None: ...
    def daily_realised(self, day: str) -> Decimal: ...
    def realised_total(self) -> Decimal: ...

    # redemptions of resolved markets (domain.redemption): committed before anything is sent
    def put_redemption(self, redemption: Redemption) -> None: ...
    def get_redemption(self, redemption_id: str) -> Optional[Redemption]: ...
    def redemptions(self, unfinished: bool = False) -> list[Redemption]:
        """Every redemption by id; only those requested, sent or mined with ``unfinished``."""

    # leaders added at run time (`copytrader leaders add`), next to the config's
    def put_leader(self, leader: LeaderSettings) -> None: ...
    def remove_leader(self, address: str) -> bool: ...
    def leaders(self) -> list[LeaderSettings]: ...

    # trading state
    def get_state(self) -> StoredState: ...
    def set_state(self, state: StoredState) -> None: ...

    # control actions (application.control) and paused leaders
    def put_control(self, action: ControlAction) -> None: ...
    def controls(self, limit: int = 100, since: Optional[datetime] = None,
                 until: Optional[datetime] = None) -> list[ControlAction]:
        """Control actions newest first, at ``since`` or later and before ``until``."""
    def pause_leader(self, address: str, at: datetime, reason: str) -> None: ...
    def resume_leader(self, address: str) -> bool: ...
    def paused_leaders(self) -> dict[str, tuple[datetime, str]]:
        """Paused leader address -> (since, reason)."""
    def leader_paused(self, address: str) -> bool: ...

    def close(self) -> None: ...


__all__ = [
    "Alerter", "Clock", "ControlAction", "CursorLookup", "DecisionFilter", "Executor", "FeedItem", "FollowerMetrics",
    "LeaderFeed", "MarketData", "Quarantined", "RedeemError", "RedeemUnknown", "Redeemer", "Store", "StoredState",
]
