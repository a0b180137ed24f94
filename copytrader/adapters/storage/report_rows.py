"""Reads a copytrader database (paper, live or backtest) for reports: a
SQLite file here, a PostgreSQL follower schema in ``postgres`` (both behind
``open_report_source``).

Read-only (``connect_read_only``), so it works next to a running engine and
on files this user cannot write. Rows are streamed with cursors in the order
they were written: leader trades by insertion order, each with the intent it
produced (LEFT JOIN: REDEEM and other non-trade rows have none).
"""
from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, Optional

from ...domain.portfolio import Position
from .sqlite import (_INTENT_FIELDS, _POSITION_FIELDS, BadStoreError, connect_read_only, intent_from_row,
                     position_from_row)


_TRADE_COLS = ("kind", "leader", "token_id", "condition_id", "side", "size", "price", "timestamp", "title")


def is_postgres_url(target: str | Path) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def open_report_source(target: str | Path, schema: str = "copytrader") -> Any:
    """A SQLite file path, or a PostgreSQL URL and follower schema."""
    if is_postgres_url(target):
        from .postgres import PostgresReportSource

        return PostgresReportSource(str(target), schema)
    return ReportSource(target)


class ReportSource:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self._db = connect_read_only(self.path)
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"trades", "intents", "positions"} <= tables:
            self._db.close()
            raise BadStoreError(f"{self.path} is not a copytrader database (no trades/intents/positions tables)")

    def events(self) -> Iterator[tuple[dict[str, Any], Optional[Any]]]:
        """(trade, intent record or None) in the order trades were recorded."""
        tcols = ", ".join(f"t.{c}" for c in _TRADE_COLS)
        icols = ", ".join(f"i.{c}" for c in _INTENT_FIELDS)
        rows = self._db.execute(
            f"SELECT {tcols}, i.intent_id IS NOT NULL, {icols} FROM trades t "
            "LEFT JOIN intents i ON i.trade_id = t.id ORDER BY t.rowid, i.seq")
        n = len(_TRADE_COLS)
        for row in rows:
            trade = dict(zip(_TRADE_COLS, row[:n]))
            trade["price"] = Decimal(trade["price"])
            trade["size"] = Decimal(trade["size"])
            yield trade, (intent_from_row(row[n + 1:]) if row[n] else None)

    def orphan_intents(self) -> Iterator[Any]:
        """Intents without a leader trade (``trade-once``), oldest first."""
        rows = self._db.execute(
            f"SELECT {', '.join(_INTENT_FIELDS)} FROM intents WHERE trade_id NOT IN (SELECT id FROM trades) "
            "ORDER BY seq")
        for row in rows:
            yield intent_from_row(row)

    def positions(self) -> list[Position]:
        rows = self._db.execute(f"SELECT {', '.join(_POSITION_FIELDS)} FROM positions ORDER BY rowid")
        return [position_from_row(row) for row in rows]

    def leader_names(self) -> dict[str, str]:
        """Names given with `copytrader leaders add` (address -> name)."""
        try:
            rows = self._db.execute("SELECT address, name FROM leaders WHERE name != ''").fetchall()
        except sqlite3.OperationalError:  # a database from before leaders were stored
            return {}
        return dict(rows)

    def meta(self) -> dict[str, Any]:
        """What the backtest that wrote this database recorded about itself."""
        try:
            row = self._db.execute(
                "SELECT data FROM telemetry WHERE key = 'backtest' ORDER BY id DESC LIMIT 1").fetchone()
        except sqlite3.OperationalError:
            return {}
        return json.loads(row[0]) if row else {}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ReportSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
