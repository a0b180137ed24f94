"""The Store port over SQL, written once for SQLite and PostgreSQL.

``SqlStore`` holds every Store method whose logic is the same in both
databases; the subclasses (``SqliteStore``, ``PostgresStore``) connect, lock,
migrate, run transactions and say how their dialect differs, as class
attributes:

- ``PARAM``: the placeholder (``?`` or ``%s``);
- ``NO_LIMIT``: the ``LIMIT`` value meaning "no limit" (``-1`` or ``None``);
- ``POSITIONS_ORDER``: the column that keeps positions in insertion order;
- ``INTENTS_CREATED``: what follows ``FROM intents`` in the rate-window query
  (SQLite names its index);
- ``TRADES_JOIN``, ``TRADES_NEWEST_FIRST``: what follows ``FROM trades t`` and
  the ``ORDER BY`` that give leader trades newest first as the report reads
  them (SQLite: as recorded; PostgreSQL keeps no insertion order: by time);
- ``_encode``, ``_decode_num``, ``_decode_time``, ``_intent``, ``_position``:
  a parameter's value for the driver, and a money value, a time, an intent
  row and a position row as the driver gives them back.

Statements are written here with ``?`` placeholders and ``{name}`` dialect
fields, and made once per subclass (``__init_subclass__``), never per call.
Upserts use ``ON CONFLICT ... DO NOTHING / DO UPDATE SET x = excluded.x``,
which both databases (SQLite >= 3.24) understand.

Standard library only: the CLI imports the SQLite store to report errors.
"""
from __future__ import annotations

import json
import operator
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable, ClassVar, Collection, Iterator, Optional, TypeVar

from ...domain.model import IntentRecord, LeaderTrade, PreparedOrder, Settlement, TradingState, stable_id
from ...domain.portfolio import Position, PositionKey
from ...domain.redemption import Redemption
from ...domain.sizing import LeaderSettings
from ...ports import ControlAction, DecisionFilter, Quarantined, StoredState
from .unit import NestedTransactions


class StoreError(RuntimeError):
    """The store failed; the message is one sentence that names it (a runtime failure)."""


class StoreLockedError(StoreError):
    """Another process writes this store."""


class BadStoreError(StoreError):
    """The store named by the configuration cannot be used as given: not a
    database, not a file, in a folder that cannot be written, read-only. The
    user fixes the path (bad input, not a runtime failure)."""


class StoreMissingError(BadStoreError):
    """The database (a SQLite file, a PostgreSQL follower schema) does not
    exist, and the store was asked not to create it."""


_INTENT_FIELDS = (
    "intent_id", "trade_id", "follower", "leader", "token_id", "condition_id", "side", "leader_size",
    "leader_price", "created_at", "decision", "status", "reason", "detail", "size", "limit_price",
    "order_type", "filled_size", "avg_price", "fee", "slippage", "execution_id", "error", "updated_at", "title",
    "settlement", "booked",
)
_POSITION_FIELDS = ("leader", "token_id", "condition_id", "size", "cost", "realised", "fees", "bought",
                    "sold", "last_price", "settled", "title", "payout")
_POSITION_COLUMNS = _POSITION_FIELDS + ("is_open",)
_intent_values = operator.attrgetter(*_INTENT_FIELDS)
_position_values = operator.attrgetter(*_POSITION_FIELDS)


def _upsert(table: str, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
    """INSERT of every column, updating the non-key ones when the key exists."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")


def quarantine_key(raw: str) -> str:
    """A quarantined row's key: its content, so the same bad row read again (from a
    file of another name, or the same file from scratch) is kept once. PostgreSQL's
    migration 2 computes the same key in SQL."""
    return stable_id("quarantine", raw)


# Migration (SQLite 6, PostgreSQL 3): the reasons recorded before they took the names
# of the settings that give them (issue 14), as Reason names them now. Frozen text: a
# later rename gets a migration of its own.
_OLD_REASONS = {"max_trade_notional": "max_trade_usdc", "max_market_notional": "max_market_usdc",
                "max_total_exposure": "max_total_exposure_usdc", "leader_budget": "budget_usdc",
                "daily_loss_limit": "daily_loss_limit_usdc", "rate_limit": "max_orders_per_window"}
# Migration (SQLite 7, PostgreSQL 4): where a booked fill stands on chain (Settlement);
# every fill booked before is final, as it was taken then.
SETTLEMENT_COLUMNS = """
    ALTER TABLE intents ADD COLUMN settlement TEXT NOT NULL DEFAULT 'final';
    ALTER TABLE intents ADD COLUMN booked TEXT NOT NULL DEFAULT '';
    CREATE INDEX intents_provisional ON intents(seq) WHERE settlement = 'provisional';
    CREATE INDEX intents_reversed ON intents(seq) WHERE settlement = 'reversed';
"""

# A resolved position keeps its payout per share (pending until redeemed live); a row
# settled before was paid at once at its last price, the payout it resolved at.
PAYOUT_COLUMN = """
    ALTER TABLE positions ADD COLUMN payout {type};
    UPDATE positions SET payout = last_price WHERE settled = TRUE;
"""

# Migration (SQLite 9, PostgreSQL 6): redemptions, committed before anything is sent
# (domain.redemption); the record itself is its JSON, with the state kept apart for the
# unfinished ones read at start-up.
REDEMPTIONS_TABLE = """
    CREATE TABLE redemptions (id TEXT PRIMARY KEY, condition_id TEXT NOT NULL, state TEXT NOT NULL,
        record TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE INDEX redemptions_unfinished ON redemptions(state) WHERE state IN ('requested', 'sent', 'mined');
"""

# Migration (SQLite 10, PostgreSQL 7): control actions with their source (application.control),
# paused leaders, and the indexes that page the dashboard's filtered decisions newest first.
CONTROL_TABLES = """
    CREATE TABLE control_actions (id {serial} PRIMARY KEY, at {time} NOT NULL, follower TEXT NOT NULL,
        action TEXT NOT NULL, target TEXT NOT NULL, reason TEXT NOT NULL, source TEXT NOT NULL);
    CREATE INDEX control_actions_at ON control_actions(at, id);
    CREATE TABLE paused_leaders (address TEXT PRIMARY KEY, since {time} NOT NULL, reason TEXT NOT NULL);
    CREATE INDEX intents_leader ON intents(leader, created_at, seq);
    CREATE INDEX intents_market ON intents(condition_id, created_at, seq);
    CREATE INDEX intents_skipped ON intents(created_at, seq) WHERE status = 'skipped';
    CREATE INDEX intents_unfilled ON intents(created_at, seq) WHERE status = 'rejected';
"""

# DecisionFilter.outcome -> the intent statuses it means, and the condition that names them as
# literals (a partial index serves a query only when its WHERE says the index's condition):
# rejected and unfilled have partial indexes of their own (written only for such intents),
# open ones intents_open; copied ones (most decisions) walk intents_created newest first.
OUTCOME_STATUSES = {"copied": ("filled", "partial"), "rejected": ("skipped",), "unfilled": ("rejected",),
                    "open": ("pending", "unknown")}
_OUTCOME_SQL = {outcome: "status = '{}'".format(*statuses) if len(statuses) == 1
                else f"status IN ({', '.join(repr(s) for s in statuses)})" for outcome, statuses in OUTCOME_STATUSES.items()}

RENAME_REASONS = ("UPDATE intents SET reason = CASE reason "
                  + " ".join(f"WHEN '{old}' THEN '{new}'" for old, new in _OLD_REASONS.items())
                  + " END WHERE reason IN (" + ", ".join(f"'{old}'" for old in _OLD_REASONS) + ")")


_SELECT_INTENT = f"SELECT {', '.join(_INTENT_FIELDS)} FROM intents"

# name -> statement, with ``?`` placeholders and ``{dialect}`` fields
_STATEMENTS = {
    "_GET_CURSOR": "SELECT cursor FROM cursors WHERE feed = ?",
    "_CURSORS": "SELECT feed, cursor FROM cursors ORDER BY feed",
    "_NEWEST_TRADE": "SELECT MAX(timestamp) FROM trades",
    "_SET_CURSOR": _upsert("cursors", ("feed", "cursor"), ("feed",)),
    "_HAS_TRADE": "SELECT 1 FROM trades WHERE id = ?",
    "_GET_TRADE": "SELECT leader, token_id, condition_id, side, size, price, usdc_size, timestamp, tx_hash, kind, "
                  "outcome, title, log_index FROM trades WHERE id = ?",
    "_TRADE_PRICES": "SELECT t.token_id, t.price FROM trades t{TRADES_JOIN} WHERE t.kind = 'TRADE' "
                     "AND t.token_id IN ({{TOKENS}}) ORDER BY {TRADES_NEWEST_FIRST}",
    "_OUTCOMES": "SELECT token_id, MIN(outcome) FROM trades WHERE outcome <> '' AND token_id IN ({{TOKENS}}) "
                 "GROUP BY token_id",
    "_ADD_TRADE": "INSERT INTO trades (id, leader, token_id, condition_id, side, size, price, usdc_size, "
                  "timestamp, tx_hash, kind, outcome, title, log_index) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                  "ON CONFLICT (id) DO NOTHING",
    "_QUARANTINE": "INSERT INTO quarantine (key, at, source, raw, reason) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT (key) DO NOTHING",
    "_QUARANTINED": "SELECT at, source, raw, reason FROM quarantine ORDER BY id DESC LIMIT ?",
    "_PUT_ORDER": _upsert("orders", ("order_id", "intent_id", "venue", "payload", "created_at"), ("order_id",)),
    "_GET_ORDER": "SELECT intent_id, order_id, payload, venue FROM orders WHERE order_id = ?",
    "_PUT_TELEMETRY": "INSERT INTO telemetry (key, at, data) VALUES (?, ?, ?)",
    "_TELEMETRY": "SELECT key, at, data FROM telemetry ORDER BY id DESC LIMIT ?",
    "_PUT_INTENT": _upsert("intents", _INTENT_FIELDS, ("intent_id",)),
    "_GET_INTENT": f"{_SELECT_INTENT} WHERE intent_id = ?",
    "_OPEN_INTENTS": f"{_SELECT_INTENT} WHERE status IN ('pending', 'unknown') ORDER BY seq",
    # the literal conditions of the partial indexes intents_provisional and intents_reversed
    "_PROVISIONAL": f"{_SELECT_INTENT} WHERE settlement = 'provisional' ORDER BY seq LIMIT ?",
    "_REVERSED": f"{_SELECT_INTENT} WHERE settlement = 'reversed' ORDER BY seq LIMIT ?",
    "_HISTORY": f"{_SELECT_INTENT} ORDER BY created_at DESC, seq DESC LIMIT ? OFFSET ?",
    "_ORDER_TIMES": "SELECT created_at FROM intents{INTENTS_CREATED} WHERE status != 'skipped' "
                    "AND created_at >= ? ORDER BY created_at DESC, seq DESC LIMIT ?",
    "_PUT_POSITION": _upsert("positions", _POSITION_COLUMNS, ("leader", "token_id")),
    "_ALL_POSITIONS": f"SELECT {', '.join(_POSITION_FIELDS)} FROM positions ORDER BY {{POSITIONS_ORDER}}",
    "_OPEN_POSITIONS": f"SELECT {', '.join(_POSITION_FIELDS)} FROM positions WHERE is_open = TRUE "
                       "ORDER BY {POSITIONS_ORDER}",
    "_PUT_HOLDING": _upsert("leader_holdings", ("leader", "token_id", "size"), ("leader", "token_id")),
    "_HOLDINGS": "SELECT leader, token_id, size FROM leader_holdings",
    "_PUT_DAILY": _upsert("daily_pnl", ("day", "realised"), ("day",)),
    "_DAILY": "SELECT realised FROM daily_pnl WHERE day = ?",
    "_REALISED": "SELECT realised FROM positions",
    "_PUT_LEADER": _upsert("leaders", ("address", "name", "multiplier", "budget_usdc"), ("address",)),
    "_HAS_LEADER": "SELECT 1 FROM leaders WHERE address = ?",
    "_REMOVE_LEADER": "DELETE FROM leaders WHERE address = ?",
    "_PUT_REDEMPTION": _upsert("redemptions", ("id", "condition_id", "state", "record", "updated_at"), ("id",)),
    "_GET_REDEMPTION": "SELECT record FROM redemptions WHERE id = ?",
    "_REDEMPTIONS": "SELECT record FROM redemptions ORDER BY id",
    "_UNFINISHED_REDEMPTIONS": "SELECT record FROM redemptions WHERE state IN ('requested', 'sent', 'mined') "
                               "ORDER BY id",
    "_LEADERS": "SELECT address, name, multiplier, budget_usdc FROM leaders ORDER BY address",
    "_PUT_CONTROL": "INSERT INTO control_actions (at, follower, action, target, reason, source) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
    "_PAUSE_LEADER": _upsert("paused_leaders", ("address", "since", "reason"), ("address",)),
    "_IS_PAUSED": "SELECT 1 FROM paused_leaders WHERE address = ?",
    "_RESUME_LEADER": "DELETE FROM paused_leaders WHERE address = ?",
    "_PAUSED": "SELECT address, since, reason FROM paused_leaders ORDER BY address",
    "_GET_STATE": "SELECT state, reason, since FROM state WHERE id = 1",
    "_SET_STATE": "INSERT INTO state (id, state, reason, since) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE "
                  "SET state = excluded.state, reason = excluded.reason, since = excluded.since",
}


_S = TypeVar("_S", bound="SqlStore")


class SqlStore(NestedTransactions):
    """The Store port over a DB-API-like connection ``self._db`` (``execute``
    returning a cursor); subclasses provide ``_write``, ``_begin``,
    ``_commit``, ``_rollback``, ``_version``, ``_where`` and the dialect
    attributes."""

    PARAM: ClassVar[str] = "?"
    NO_LIMIT: ClassVar[Any] = None
    POSITIONS_ORDER: ClassVar[str] = "rowid"
    INTENTS_CREATED: ClassVar[str] = ""
    TRADES_JOIN: ClassVar[str] = ""
    TRADES_NEWEST_FIRST: ClassVar[str] = "t.rowid DESC"

    _encode: Callable[[Any], Any]
    _decode_num: Callable[[Any], Optional[Decimal]]
    _decode_time: Callable[[Any], Optional[datetime]]
    _intent: Callable[[tuple[Any, ...]], IntentRecord]
    _position: Callable[[tuple[Any, ...]], Position]

    _SELECT_INTENT: ClassVar[str] = _SELECT_INTENT
    _db: Any
    read_only: bool

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dialect = {"INTENTS_CREATED": cls.INTENTS_CREATED, "POSITIONS_ORDER": cls.POSITIONS_ORDER,
                   "TRADES_JOIN": cls.TRADES_JOIN, "TRADES_NEWEST_FIRST": cls.TRADES_NEWEST_FIRST}
        for name, sql in _STATEMENTS.items():
            setattr(cls, name, sql.format_map(dialect).replace("?", cls.PARAM))

    @property
    def _where(self) -> str:  # pragma: no cover - abstract
        """The database, as messages name it (never with a password)."""
        raise NotImplementedError

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- schema -------------------------------------------------------------------
    def _version(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def schema_version(self) -> int:
        return self._version()

    def _needs_migration(self, current: int, latest: int) -> bool:
        """Whether to migrate from ``current`` to ``latest``; an error if this
        copytrader is too old, or if the store is read-only and behind."""
        if current > latest:
            raise StoreError(f"{self._where} has schema version {current}, newer than this "
                             f"copytrader knows ({latest}): upgrade copytrader")
        if current == latest:
            return False
        if self.read_only and current == 0:
            raise BadStoreError(f"{self._where} holds no copytrader data (no schema): check the path")
        if self.read_only:
            raise StoreError(f"{self._where} needs migration to version {latest}: run a write command first")
        return True

    def _run_script(self, script: str) -> None:
        for statement in filter(str.strip, script.split(";")):
            self._db.execute(statement)

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Optional[tuple[Any, ...]]:
        return self._db.execute(sql, params).fetchone()

    def _peek(self, sql: str, params: tuple[Any, ...] = ()) -> Optional[tuple[Any, ...]]:
        """``_one`` for what deferred transactions never write (the trading state, paused
        leaders, the daily PnL): a store holding deferred writes (``SqliteStore``) reads
        without committing them first, as ``_one`` does."""
        return self._db.execute(sql, params).fetchone()

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, params).fetchall()

    # -- feed ---------------------------------------------------------------------
    def get_cursor(self, feed: str) -> Optional[str]:
        row = self._one(self._GET_CURSOR, (feed,))
        return row[0] if row else None

    def set_cursor(self, feed: str, cursor: str) -> None:
        self._write(self._SET_CURSOR, (feed, cursor))

    def cursors(self) -> dict[str, str]:
        """Every feed cursor (for `status`)."""
        return dict(self._all(self._CURSORS))

    def newest_trade_timestamp(self) -> Optional[int]:
        """The time (unix seconds) of the newest leader trade stored (for `status`: it reads the whole table)."""
        row = self._one(self._NEWEST_TRADE)
        return None if row is None or row[0] is None else int(row[0])

    def has_trade(self, trade_id: str) -> bool:
        return self._one(self._HAS_TRADE, (trade_id,)) is not None

    def get_trade(self, trade_id: str) -> Optional[LeaderTrade]:
        row = self._one(self._GET_TRADE, (trade_id,))
        if row is None:
            return None
        num = self._decode_num
        leader, token, condition, side, size, price, usdc, ts, tx, kind, outcome, title, log_index = row
        return LeaderTrade(leader=leader, token_id=token, condition_id=condition, side=side, size=num(size),
                           price=num(price), usdc_size=num(usdc), timestamp=int(ts), tx_hash=tx, kind=kind,
                           outcome=outcome, title=title, log_index=log_index)

    def add_trade(self, trade: LeaderTrade) -> None:
        self._write(self._ADD_TRADE,
                    (trade.id, trade.leader, trade.token_id, trade.condition_id, trade.side, trade.size, trade.price,
                     trade.usdc_size, trade.timestamp, trade.tx_hash, trade.kind, trade.outcome, trade.title,
                     trade.log_index))

    def trade_prices_newest_first(self, token_ids: Collection[str]) -> Iterator[tuple[str, Decimal]]:
        """(token id, price) of the leader trades in ``token_ids``, newest first
        in the order ``copytrader report`` reads them (``TRADES_NEWEST_FIRST``)."""
        num = self._decode_num
        return ((token, num(price)) for token, price in self._of_tokens(self._TRADE_PRICES, token_ids))

    def token_outcomes(self, token_ids: Collection[str]) -> dict[str, str]:
        """The outcome ("Yes", "No", a team...) of each of ``token_ids`` the leaders traded, from the trades."""
        return dict(self._of_tokens(self._OUTCOMES, token_ids))

    def _of_tokens(self, sql: str, token_ids: Collection[str]) -> Iterator[tuple[Any, ...]]:
        """The rows of ``sql`` (with ``{TOKENS}`` where the list of token ids goes) for ``token_ids``."""
        tokens = sorted(set(token_ids))
        if not tokens:
            return iter(())
        return iter(self._db.execute(sql.replace("{TOKENS}", ", ".join([self.PARAM] * len(tokens))), tuple(tokens)))

    def quarantine(self, item: Quarantined, at: datetime) -> None:
        self._write(self._QUARANTINE, (quarantine_key(item.raw), at, item.source, item.raw, item.reason))

    def quarantined(self, limit: int = 100) -> list[tuple[datetime, Quarantined]]:
        time = self._decode_time
        return [(time(at), Quarantined(source, raw, reason))
                for at, source, raw, reason in self._all(self._QUARANTINED, (limit,))]

    # -- orders and telemetry -------------------------------------------------------
    def put_order(self, order: PreparedOrder, at: datetime) -> None:
        self._write(self._PUT_ORDER, (order.order_id, order.intent_id, order.venue,
                                      json.dumps(order.payload, sort_keys=True) if order.payload else "{}", at))

    def get_order(self, order_id: str) -> Optional[PreparedOrder]:
        row = self._one(self._GET_ORDER, (order_id,))
        return PreparedOrder(row[0], row[1], json.loads(row[2]), row[3]) if row else None

    def put_telemetry(self, key: str, at: datetime, data: dict) -> None:
        self._write(self._PUT_TELEMETRY, (key, at, json.dumps(data, sort_keys=True, default=str)))

    def telemetry(self, limit: int = 100) -> list[tuple[str, datetime, dict]]:
        time = self._decode_time
        return [(key, time(at), json.loads(data)) for key, at, data in self._all(self._TELEMETRY, (limit,))]

    # -- intents ------------------------------------------------------------------
    def put_intent(self, record: IntentRecord) -> None:
        self._write(self._PUT_INTENT, _intent_values(record))

    def get_intent(self, intent_id: str) -> Optional[IntentRecord]:
        row = self._one(self._GET_INTENT, (intent_id,))
        return self._intent(row) if row else None

    def open_intents(self) -> list[IntentRecord]:
        return [self._intent(r) for r in self._all(self._OPEN_INTENTS)]

    def history(self, limit: int = 100, offset: int = 0) -> list[IntentRecord]:
        return [self._intent(r) for r in self._all(self._HISTORY, (limit, offset))]

    def decisions(self, where: DecisionFilter, limit: int = 100) -> list[tuple[int, IntentRecord]]:
        terms, params = [], []
        for column, value in (("leader", where.leader.lower()), ("condition_id", where.market)):
            if value:
                terms.append(f"{column} = ?")
                params.append(value)
        if where.outcome:
            terms.append(_OUTCOME_SQL[where.outcome])
        if where.since is not None:
            terms.append("created_at >= ?")
            params.append(self._encode(where.since))
        if where.until is not None:
            terms.append("created_at < ?")
            params.append(self._encode(where.until))
        if where.before is not None:  # keyset paging: the index is entered at the previous page's end
            terms.append("(created_at < ? OR (created_at = ? AND seq < ?))")
            at = self._encode(where.before[0])
            params.extend((at, at, where.before[1]))
        sql = (f"SELECT seq, {', '.join(_INTENT_FIELDS)} FROM intents"
               + (f" WHERE {' AND '.join(terms)}" if terms else "")
               + " ORDER BY created_at DESC, seq DESC LIMIT ?").replace("?", self.PARAM)
        return [(int(row[0]), self._intent(row[1:])) for row in self._all(sql, (*params, limit))]

    def intents_in(self, settlement: Settlement, limit: Optional[int] = None) -> list[IntentRecord]:
        sql = {Settlement.PROVISIONAL: self._PROVISIONAL, Settlement.REVERSED: self._REVERSED}[settlement]
        return [self._intent(r) for r in self._all(sql, (self.NO_LIMIT if limit is None else limit,))]

    def order_times_since(self, since: datetime, limit: Optional[int] = None) -> list[datetime]:
        rows = self._all(self._ORDER_TIMES, (self._encode(since), self.NO_LIMIT if limit is None else limit))
        time = self._decode_time
        return [time(r[0]) for r in reversed(rows)]

    # -- positions ----------------------------------------------------------------
    def put_position(self, position: Position) -> None:
        self._write(self._PUT_POSITION, _position_values(position) + (position.is_open,))

    def positions(self, include_closed: bool = False) -> list[Position]:
        rows = self._all(self._ALL_POSITIONS if include_closed else self._OPEN_POSITIONS)
        return [self._position(row) for row in rows]

    def put_leader_holding(self, key: PositionKey, size: Decimal) -> None:
        self._write(self._PUT_HOLDING, (*key, size))

    def leader_holdings(self) -> dict[PositionKey, Decimal]:
        num = self._decode_num
        return {(leader, token): num(size) for leader, token, size in self._all(self._HOLDINGS)}

    def put_daily_realised(self, day: str, realised: Decimal) -> None:
        self._write(self._PUT_DAILY, (day, realised))

    def daily_realised(self, day: str) -> Decimal:
        row = self._peek(self._DAILY, (day,))
        return self._decode_num(row[0]) if row else Decimal(0)

    def realised_total(self) -> Decimal:
        # Summed in Python, exactly (called once at start-up; SQLite keeps text).
        num = self._decode_num
        return sum((num(r[0]) for r in self._all(self._REALISED)), start=Decimal(0))

    # -- redemptions -----------------------------------------------------------------
    def put_redemption(self, redemption: Redemption) -> None:
        self._write(self._PUT_REDEMPTION, (redemption.id, redemption.condition_id, redemption.state,
                                           json.dumps(redemption.to_json(), sort_keys=True),
                                           (redemption.updated_at or redemption.requested_at).isoformat()))

    def get_redemption(self, redemption_id: str) -> Optional[Redemption]:
        row = self._one(self._GET_REDEMPTION, (redemption_id,))
        return Redemption.from_json(json.loads(row[0])) if row else None

    def redemptions(self, unfinished: bool = False) -> list[Redemption]:
        sql = self._UNFINISHED_REDEMPTIONS if unfinished else self._REDEMPTIONS
        return [Redemption.from_json(json.loads(row[0])) for row in self._all(sql)]

    # -- leaders ------------------------------------------------------------------
    def put_leader(self, leader: LeaderSettings) -> None:
        self._write(self._PUT_LEADER, (leader.address, leader.name, leader.multiplier, leader.budget_usdc))

    def remove_leader(self, address: str) -> bool:
        found = self._one(self._HAS_LEADER, (address.lower(),)) is not None
        self._write(self._REMOVE_LEADER, (address.lower(),))
        return found

    def leaders(self) -> list[LeaderSettings]:
        num = self._decode_num
        return [LeaderSettings(a, n, num(m), num(b)) for a, n, m, b in self._all(self._LEADERS)]

    # -- state --------------------------------------------------------------------
    def get_state(self) -> StoredState:
        row = self._peek(self._GET_STATE)
        if not row:
            return StoredState(TradingState.ACTIVE)
        return StoredState(TradingState(row[0]), row[1], self._decode_time(row[2]))

    def set_state(self, state: StoredState) -> None:
        self._write(self._SET_STATE, (state.state, state.reason, state.since))

    # -- control ------------------------------------------------------------------
    def put_control(self, action: ControlAction) -> None:
        self._write(self._PUT_CONTROL, (action.at, action.follower, action.action, action.target, action.reason,
                                        action.source))

    def controls(self, limit: int = 100, since: Optional[datetime] = None,
                 until: Optional[datetime] = None) -> list[ControlAction]:
        terms, params = [], []
        if since is not None:
            terms.append("at >= ?")
            params.append(self._encode(since))
        if until is not None:
            terms.append("at < ?")
            params.append(self._encode(until))
        sql = ("SELECT at, follower, action, target, reason, source FROM control_actions"
               + (f" WHERE {' AND '.join(terms)}" if terms else "")
               + " ORDER BY at DESC, id DESC LIMIT ?").replace("?", self.PARAM)
        time = self._decode_time
        return [ControlAction(time(at), f, a, t, r, s) for at, f, a, t, r, s in self._all(sql, (*params, limit))]

    def pause_leader(self, address: str, at: datetime, reason: str) -> None:
        self._write(self._PAUSE_LEADER, (address.lower(), at, reason))

    def resume_leader(self, address: str) -> bool:
        found = self.leader_paused(address)
        self._write(self._RESUME_LEADER, (address.lower(),))
        return found

    def paused_leaders(self) -> dict[str, tuple[datetime, str]]:
        time = self._decode_time
        return {address: (time(since), reason) for address, since, reason in self._all(self._PAUSED)}

    def leader_paused(self, address: str) -> bool:
        return self._peek(self._IS_PAUSED, (address,)) is not None

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
