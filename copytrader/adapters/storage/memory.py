"""In-memory store: the same port as SQLite, for tests and embedding."""
from __future__ import annotations

import bisect
from datetime import datetime
from decimal import Decimal
from typing import Any, Collection, Iterator, Optional

from ...domain.model import IntentRecord, IntentStatus, LeaderTrade, PreparedOrder, Settlement, TradingState
from ...domain.portfolio import Position, PositionKey
from ...domain.redemption import Redemption
from ...domain.sizing import LeaderSettings
from ...ports import ControlAction, DecisionFilter, Quarantined, StoredState
from .sql import OUTCOME_STATUSES, quarantine_key
from .unit import NestedTransactions

_MISSING = object()
_ACTIVE = StoredState(TradingState.ACTIVE)  # the state of a store nobody halted
_SKIPPED = IntentStatus.SKIPPED  # read per intent written (see domain.model.BUY)
_OPEN = frozenset(s for s in IntentStatus if s.is_open)  # IntentStatus.is_open without the property


class MemoryStore(NestedTransactions):
    """Dicts plus an undo log: a failed transaction restores exactly the keys
    it wrote, so a rollback costs what the transaction wrote, not the history."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[Any, Any]] = {
            name: {} for name in ("trades", "intents", "positions", "holdings", "daily", "cursors", "state", "orders", "leaders",
                                                                                                "redemptions", "paused")}
        self._seq: dict[str, int] = {}  # intent id -> insertion order
        self._open: set[str] = set()
        self._order_times: list[tuple[datetime, str]] = []  # sorted (created_at, intent id) of sent intents
        self._quarantine: list[tuple[datetime, Quarantined]] = []
        self._quarantine_keys: set[str] = set()
        self._telemetry: list[tuple[str, datetime, dict]] = []
        self._controls: list[ControlAction] = []
        self._undo: Optional[list[tuple[str, Any, Any]]] = None
        self._depth = 0

    # -- unit of work (transaction() from NestedTransactions) -------------
    def _begin(self) -> None:
        self._undo = []

    def _commit(self) -> None:
        self._undo = None

    def _rollback(self) -> None:
        undo, self._undo = self._undo or [], None
        for table, key, old in reversed(undo):
            if table == "quarantine":
                self._quarantine.pop()
                self._quarantine_keys.discard(key)
            elif table == "telemetry":
                self._telemetry.pop()
            elif table == "controls":
                self._controls.pop()
            elif table == "order_times":
                self._order_times.remove(key)
            else:
                self._raw_put(table, key, old)

    def _raw_put(self, table: str, key: Any, value: Any) -> None:
        rows = self._tables[table]
        if value is _MISSING:
            rows.pop(key, None)
        else:
            rows[key] = value
        if table == "intents":
            if value is _MISSING:
                self._seq.pop(key, None)
                self._open.discard(key)
            elif value.status.is_open:
                self._open.add(key)
            else:
                self._open.discard(key)

    def _put(self, table: str, key: Any, value: Any) -> None:
        rows = self._tables[table]
        if self._undo is not None:
            self._undo.append((table, key, rows.get(key, _MISSING)))
        if value is _MISSING or table == "intents":
            self._raw_put(table, key, value)
        else:  # the common write: one store into the table
            rows[key] = value

    # -- feed -------------------------------------------------------------
    def get_cursor(self, feed: str) -> Optional[str]:
        return self._tables["cursors"].get(feed)

    def set_cursor(self, feed: str, cursor: str) -> None:
        self._put("cursors", feed, cursor)

    def cursors(self) -> dict[str, str]:
        return dict(sorted(self._tables["cursors"].items()))

    def newest_trade_timestamp(self) -> Optional[int]:
        return max((t.timestamp for t in self._tables["trades"].values()), default=None)

    def has_trade(self, trade_id: str) -> bool:
        return trade_id in self._tables["trades"]

    def get_trade(self, trade_id: str) -> Optional[LeaderTrade]:
        return self._tables["trades"].get(trade_id)

    def add_trade(self, trade: LeaderTrade) -> None:
        self._put("trades", trade.id, trade)

    def trade_prices_newest_first(self, token_ids: Collection[str]) -> Iterator[tuple[str, Decimal]]:
        tokens = set(token_ids)
        return ((t.token_id, t.price) for t in reversed(self._tables["trades"].values())
                if t.kind == "TRADE" and t.token_id in tokens)

    def token_outcomes(self, token_ids: Collection[str]) -> dict[str, str]:
        tokens = set(token_ids)
        return {t.token_id: t.outcome for t in self._tables["trades"].values() if t.outcome and t.token_id in tokens}

    def quarantine(self, item: Quarantined, at: datetime) -> None:
        key = quarantine_key(item.raw)
        if key in self._quarantine_keys:
            return
        self._quarantine.append((at, item))
        self._quarantine_keys.add(key)
        if self._undo is not None:
            self._undo.append(("quarantine", key, None))

    def quarantined(self, limit: int = 100) -> list[tuple[datetime, Quarantined]]:
        return list(reversed(self._quarantine[-limit:]))

    # -- orders and telemetry ---------------------------------------------
    def put_order(self, order: PreparedOrder, at: datetime) -> None:
        self._put("orders", order.order_id, order)

    def get_order(self, order_id: str) -> Optional[PreparedOrder]:
        return self._tables["orders"].get(order_id)

    def put_telemetry(self, key: str, at: datetime, data: dict) -> None:
        self._telemetry.append((key, at, data))
        if self._undo is not None:
            self._undo.append(("telemetry", None, None))

    def telemetry(self, limit: int = 100) -> list[tuple[str, datetime, dict]]:
        return list(reversed(self._telemetry[-limit:]))

    # -- intents ----------------------------------------------------------
    def put_intent(self, record: IntentRecord) -> None:
        key = record.intent_id
        undo = self._undo
        if key not in self._seq:
            self._seq[key] = len(self._seq)
            if record.status is not _SKIPPED:
                entry = (record.created_at, key)
                times = self._order_times
                if not times or times[-1] <= entry:  # in time order (a feed's rows): insort's place is the end
                    times.append(entry)
                else:
                    bisect.insort(times, entry)
                if undo is not None:
                    undo.append(("order_times", entry, None))
        # _put and _raw_put of an intent in one (the write of every leader trade)
        rows = self._tables["intents"]
        if undo is not None:
            undo.append(("intents", key, rows.get(key, _MISSING)))
        rows[key] = record
        if record.status in _OPEN:
            self._open.add(key)
        else:
            self._open.discard(key)

    def get_intent(self, intent_id: str) -> Optional[IntentRecord]:
        return self._tables["intents"].get(intent_id)

    def open_intents(self) -> list[IntentRecord]:
        rows = self._tables["intents"]
        return sorted((rows[k] for k in self._open), key=lambda r: self._seq[r.intent_id])

    def intents_in(self, settlement: Settlement, limit: Optional[int] = None) -> list[IntentRecord]:
        rows = sorted((r for r in self._tables["intents"].values() if r.settlement is settlement),
                      key=lambda r: self._seq[r.intent_id])
        return rows if limit is None else rows[:limit]

    def history(self, limit: int = 100, offset: int = 0) -> list[IntentRecord]:
        rows = sorted(self._tables["intents"].values(),
                      key=lambda r: (r.created_at, self._seq[r.intent_id]), reverse=True)
        return rows[offset:offset + limit]

    def decisions(self, where: DecisionFilter, limit: int = 100) -> list[tuple[int, IntentRecord]]:
        statuses = OUTCOME_STATUSES[where.outcome] if where.outcome else None
        rows = sorted(((r.created_at, self._seq[r.intent_id], r) for r in self._tables["intents"].values()
                       if (not where.leader or r.leader == where.leader.lower())
                       and (not where.market or r.condition_id == where.market)
                       and (statuses is None or r.status.value in statuses)
                       and (where.since is None or r.created_at >= where.since)
                       and (where.until is None or r.created_at < where.until)), key=lambda t: t[:2], reverse=True)
        if where.before is not None:
            rows = [t for t in rows if t[:2] < where.before]
        return [(seq, r) for _, seq, r in rows[:limit]]

    def order_times_since(self, since: datetime, limit: Optional[int] = None) -> list[datetime]:
        start = bisect.bisect_left(self._order_times, (since, ""))
        times = [t for t, _ in self._order_times[start:]]
        return times[-limit:] if limit else times

    # -- positions --------------------------------------------------------
    def put_position(self, position: Position) -> None:
        self._put("positions", (position.leader, position.token_id), position)  # its key, without the property

    def positions(self, include_closed: bool = False) -> list[Position]:
        rows = self._tables["positions"].values()
        return [p for p in rows if include_closed or p.is_open]

    def put_leader_holding(self, key: PositionKey, size: Decimal) -> None:
        self._put("holdings", key, size)

    def leader_holdings(self) -> dict[PositionKey, Decimal]:
        return dict(self._tables["holdings"])

    def put_daily_realised(self, day: str, realised: Decimal) -> None:
        self._put("daily", day, realised)

    def daily_realised(self, day: str) -> Decimal:
        return self._tables["daily"].get(day, Decimal(0))

    def realised_total(self) -> Decimal:
        return sum((p.realised for p in self._tables["positions"].values()), start=Decimal(0))

    # -- redemptions ------------------------------------------------------
    def put_redemption(self, redemption: Redemption) -> None:
        self._put("redemptions", redemption.id, redemption)

    def get_redemption(self, redemption_id: str) -> Optional[Redemption]:
        return self._tables["redemptions"].get(redemption_id)

    def redemptions(self, unfinished: bool = False) -> list[Redemption]:
        rows = [self._tables["redemptions"][k] for k in sorted(self._tables["redemptions"])]
        return [r for r in rows if not (unfinished and r.finished)]

    # -- leaders ----------------------------------------------------------
    def put_leader(self, leader: LeaderSettings) -> None:
        self._put("leaders", leader.address, leader)

    def remove_leader(self, address: str) -> bool:
        found = address.lower() in self._tables["leaders"]
        if found:
            self._put("leaders", address.lower(), _MISSING)
        return found

    def leaders(self) -> list[LeaderSettings]:
        return sorted(self._tables["leaders"].values(), key=lambda l: l.address)

    # -- state ------------------------------------------------------------
    def get_state(self) -> StoredState:
        return self._tables["state"].get("state", _ACTIVE)

    def set_state(self, state: StoredState) -> None:
        self._put("state", "state", state)

    # -- control ----------------------------------------------------------
    def put_control(self, action: ControlAction) -> None:
        self._controls.append(action)
        if self._undo is not None:
            self._undo.append(("controls", None, None))

    def controls(self, limit: int = 100, since: Optional[datetime] = None,
                 until: Optional[datetime] = None) -> list[ControlAction]:
        rows = [a for a in reversed(self._controls)
                if (since is None or a.at >= since) and (until is None or a.at < until)]
        return sorted(rows, key=lambda a: a.at, reverse=True)[:limit]

    def pause_leader(self, address: str, at: datetime, reason: str) -> None:
        self._put("paused", address.lower(), (at, reason))

    def resume_leader(self, address: str) -> bool:
        found = address.lower() in self._tables["paused"]
        if found:
            self._put("paused", address.lower(), _MISSING)
        return found

    def paused_leaders(self) -> dict[str, tuple[datetime, str]]:
        return dict(sorted(self._tables["paused"].items()))

    def leader_paused(self, address: str) -> bool:
        return address in self._tables["paused"]

    def close(self) -> None:
        pass
