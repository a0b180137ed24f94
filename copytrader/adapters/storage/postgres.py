"""PostgreSQL store (psycopg 3, imported lazily): the same contract as SQLite,
and the same Store methods and SQL (``SqlStore`` in ``sql``).

Each follower lives in its own schema (``schema``, default ``copytrader``),
so the Store port stays a view of one follower's data. Money is NUMERIC and
times are TIMESTAMPTZ (microseconds, UTC): values round-trip exactly.

Transactions: one connection per store, in autocommit mode between our own
``BEGIN``/``COMMIT``; nested ``transaction()`` joins the outer one, as in
SQLite. Writes outside a transaction commit at once.

The single writer: with ``lock=True`` the store takes a session advisory lock
(``pg_try_advisory_lock``) for its schema on the connection it writes with,
so two workers (on any hosts) never write for the same follower. Closing the
store, or losing the connection, releases it; since the lock and the writes
share one session, a worker whose session is gone cannot commit anything
either (no split brain). ``lease_alive()`` tells a worker it still holds it.
"""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterator, Optional
from urllib.parse import urlsplit, urlunsplit

from ...domain.model import IntentRecord, IntentStatus, Settlement, TradingState
from ...domain.portfolio import Position
from .sql import (_INTENT_FIELDS, _POSITION_FIELDS, CONTROL_TABLES, PAYOUT_COLUMN, REDEMPTIONS_TABLE,
                  RENAME_REASONS, SETTLEMENT_COLUMNS, BadStoreError,
                  SqlStore, StoreError, StoreLockedError, StoreMissingError)

__all__ = ["MIGRATIONS", "PostgresReportSource", "PostgresStore", "StoreError", "StoreLockedError",
           "lease_key", "redact_url"]

SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

MIGRATIONS: list[str] = [
    # 1: the schema of SQLite's migrations 1-3
    """
    CREATE TABLE trades (
        id TEXT PRIMARY KEY, leader TEXT NOT NULL, token_id TEXT NOT NULL, condition_id TEXT NOT NULL,
        side TEXT NOT NULL, size NUMERIC NOT NULL, price NUMERIC NOT NULL, usdc_size NUMERIC NOT NULL,
        timestamp BIGINT NOT NULL, tx_hash TEXT NOT NULL, kind TEXT NOT NULL, outcome TEXT NOT NULL,
        title TEXT NOT NULL, log_index INTEGER);
    CREATE TABLE intents (
        seq BIGSERIAL PRIMARY KEY, intent_id TEXT NOT NULL UNIQUE, trade_id TEXT NOT NULL,
        follower TEXT NOT NULL, leader TEXT NOT NULL, token_id TEXT NOT NULL, condition_id TEXT NOT NULL,
        side TEXT NOT NULL, leader_size NUMERIC NOT NULL, leader_price NUMERIC NOT NULL,
        created_at TIMESTAMPTZ NOT NULL, decision TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
        detail TEXT NOT NULL, size NUMERIC, limit_price NUMERIC, order_type TEXT NOT NULL,
        filled_size NUMERIC NOT NULL, avg_price NUMERIC, fee NUMERIC NOT NULL, slippage NUMERIC,
        execution_id TEXT NOT NULL, error TEXT NOT NULL, updated_at TIMESTAMPTZ, title TEXT NOT NULL);
    CREATE INDEX intents_open ON intents(status) WHERE status IN ('pending', 'unknown');
    CREATE INDEX intents_created ON intents(created_at, seq);
    CREATE INDEX intents_sent ON intents(created_at) WHERE status != 'skipped';
    CREATE TABLE positions (
        seq BIGSERIAL NOT NULL, leader TEXT NOT NULL, token_id TEXT NOT NULL, condition_id TEXT NOT NULL,
        size NUMERIC NOT NULL, cost NUMERIC NOT NULL, realised NUMERIC NOT NULL, fees NUMERIC NOT NULL,
        bought NUMERIC NOT NULL, sold NUMERIC NOT NULL, last_price NUMERIC, settled BOOLEAN NOT NULL,
        title TEXT NOT NULL, is_open BOOLEAN NOT NULL, PRIMARY KEY (leader, token_id));
    CREATE INDEX positions_open ON positions(is_open);
    CREATE TABLE leader_holdings (leader TEXT NOT NULL, token_id TEXT NOT NULL, size NUMERIC NOT NULL,
        PRIMARY KEY (leader, token_id));
    CREATE TABLE daily_pnl (day TEXT PRIMARY KEY, realised NUMERIC NOT NULL);
    CREATE TABLE cursors (feed TEXT PRIMARY KEY, cursor TEXT NOT NULL);
    CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL, reason TEXT NOT NULL,
        since TIMESTAMPTZ);
    CREATE TABLE quarantine (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL, source TEXT NOT NULL,
        raw TEXT NOT NULL, reason TEXT NOT NULL);
    CREATE TABLE orders (order_id TEXT PRIMARY KEY, intent_id TEXT NOT NULL, venue TEXT NOT NULL,
        payload TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL);
    CREATE INDEX orders_intent ON orders(intent_id);
    CREATE TABLE telemetry (id BIGSERIAL PRIMARY KEY, key TEXT NOT NULL, at TIMESTAMPTZ NOT NULL,
        data TEXT NOT NULL);
    CREATE INDEX telemetry_key ON telemetry(key);
    CREATE TABLE leaders (address TEXT PRIMARY KEY, name TEXT NOT NULL, multiplier NUMERIC NOT NULL,
        budget_usdc NUMERIC);
    """,
    # 2: quarantine keyed by the row's content (sql.quarantine_key, computed here in SQL): a bad
    # row read again is kept once; of the copies an older copytrader stored, the first stays
    """
    ALTER TABLE quarantine ADD COLUMN key TEXT;
    UPDATE quarantine SET key = left(encode(sha256(convert_to('quarantine' || chr(31) || raw, 'UTF8')), 'hex'), 32);
    DELETE FROM quarantine q USING quarantine first WHERE q.key = first.key AND q.id > first.id;
    ALTER TABLE quarantine ALTER COLUMN key SET NOT NULL;
    ALTER TABLE quarantine ADD CONSTRAINT quarantine_key UNIQUE (key);
    """,
    # 3: reasons take the names of the settings that give them (max_trade_usdc, not max_trade_notional)
    RENAME_REASONS,
    # 4: a fill is provisional until its trades are CONFIRMED on chain, reversed if they FAIL
    SETTLEMENT_COLUMNS,
    # 5: a resolved position's payout per share (pending until redeemed, lost, paid)
    PAYOUT_COLUMN.format(type="NUMERIC"),
    # 6: redemptions, committed before anything is sent
    REDEMPTIONS_TABLE,
    # 7: control actions with their source, paused leaders, indexes for filtered decision pages
    CONTROL_TABLES.format(serial="BIGSERIAL", time="TIMESTAMPTZ"),
]



def redact_url(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username}:***@{host}" if parts.username else f"***@{host}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "postgresql://(unparsable url)"


def lease_key(schema: str) -> int:
    """A stable signed 64-bit advisory lock key for a follower's schema."""
    digest = hashlib.sha256(f"copytrader:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _enc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    if isinstance(value, (IntentStatus, TradingState, Settlement)):
        return value.value
    return value


def _utc(value: Optional[datetime]) -> Optional[datetime]:
    return value.astimezone(timezone.utc) if value is not None else None


def _same(value: Any) -> Any:
    return value


def _intent(row: tuple[Any, ...]) -> IntentRecord:
    data = dict(zip(_INTENT_FIELDS, row))
    data["created_at"] = _utc(data["created_at"])
    data["updated_at"] = _utc(data["updated_at"])
    data["status"] = IntentStatus(data["status"])
    data["settlement"] = Settlement(data["settlement"])
    return IntentRecord(**data)


def _position(row: tuple[Any, ...]) -> Position:
    return Position(**dict(zip(_POSITION_FIELDS, row)))


class PostgresStore(SqlStore):
    # the dialect (see SqlStore): NUMERIC and TIMESTAMPTZ come back as Decimal and datetime
    PARAM = "%s"
    NO_LIMIT = None
    POSITIONS_ORDER = "seq"
    INTENTS_CREATED = ""
    # the reverse of PostgresReportSource.events(): the last price per token is the report's mark
    TRADES_JOIN = " LEFT JOIN intents i ON i.trade_id = t.id"
    TRADES_NEWEST_FIRST = "t.timestamp DESC, i.seq DESC NULLS LAST, t.id DESC"
    _encode = staticmethod(_enc)
    _decode_num = staticmethod(_same)
    _decode_time = staticmethod(_utc)
    _intent = staticmethod(_intent)
    _position = staticmethod(_position)

    def __init__(self, url: str, schema: str = "copytrader", read_only: bool = False, lock: bool = True,
                 connect_timeout_s: int = 10, create: bool = True) -> None:
        """``create=False`` (always when ``read_only``): a follower schema that
        does not exist is refused (``StoreMissingError``), not created."""
        if not SCHEMA_RE.match(schema):
            raise BadStoreError(f"store schema {schema!r}: expected lower-case letters, digits and _")
        try:
            import psycopg
        except ImportError:  # pragma: no cover - depends on the install
            raise BadStoreError("store.url is a PostgreSQL URL: install the extra (pip install "
                                "'copytrader[postgres]')") from None
        self._psycopg = psycopg
        self.url_shown = redact_url(url)
        self.schema = schema
        self.read_only = read_only
        self._depth = 0
        self._db: Any = None
        self._leased = lock and not read_only
        try:
            self._db = self._connect(url, connect_timeout_s)
            if self._leased:
                # the lease is a session lock on the connection that writes: if that session dies, its
                # open transaction dies with it, and only then can another worker take the follower over
                got = self._db.execute("SELECT pg_try_advisory_lock(%s)", (lease_key(schema),)).fetchone()[0]
                if not got:
                    raise StoreLockedError(f"follower schema {schema!r} on {self.url_shown} is in use by another "
                                           "copytrader worker (advisory lock held)")
            self._db.execute("SET TIME ZONE 'UTC'")
            if (read_only or not create) and self._db.execute(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None:
                raise StoreMissingError(f"follower schema {schema} does not exist on {self.url_shown}")
            if read_only:
                self._db.execute("SET default_transaction_read_only = on")
            self._migrate()
        except self._psycopg.Error as exc:
            self.close()
            lines = str(exc).strip().splitlines()
            why = " ".join(lines[0].split())[:200] if lines else type(exc).__name__
            raise StoreError(f"database {self.url_shown} schema {schema}: {why}") from None
        except BaseException:
            self.close()
            raise

    def _connect(self, url: str, timeout: int) -> Any:
        try:
            return self._psycopg.connect(url, autocommit=True, connect_timeout=timeout,
                                         application_name="copytrader")
        except self._psycopg.Error as exc:
            # libpq's first line says why (refused, authentication failed, ...); the password is scrubbed
            # in case a message ever quotes the conninfo
            lines = str(exc).strip().splitlines()
            why = " ".join(lines[0].split())[:200] if lines else type(exc).__name__
            try:
                password = urlsplit(url).password
            except ValueError:
                password = None
            if password:
                why = why.replace(password, "***")
            raise StoreError(f"cannot connect to {self.url_shown}: {why}") from None

    # -- schema -----------------------------------------------------------------
    @property
    def _where(self) -> str:
        return f"database {self.url_shown} schema {self.schema}"

    def _migrate(self) -> None:
        s = self.schema
        latest = len(MIGRATIONS)
        if self._needs_migration(self._version(), latest):
            with self.transaction():
                # one migrator at a time, whichever worker gets here first
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (lease_key(f"migrate:{s}"),))
                self._db.execute(f'CREATE SCHEMA IF NOT EXISTS "{s}"')
                self._db.execute(f'CREATE TABLE IF NOT EXISTS "{s}".schema_version (version INTEGER NOT NULL)')
                row = self._db.execute(f'SELECT version FROM "{s}".schema_version').fetchone()
                current = int(row[0]) if row else 0
                self._db.execute(f'SET LOCAL search_path TO "{s}"')
                for sql in MIGRATIONS[current:]:
                    self._run_script(sql)
                self._db.execute(f'DELETE FROM "{s}".schema_version')
                self._db.execute(f'INSERT INTO "{s}".schema_version (version) VALUES (%s)', (latest,))
        self._db.execute(f'SET search_path TO "{s}"')

    def _version(self) -> int:
        exists = self._db.execute("SELECT to_regclass(%s)", (f'"{self.schema}".schema_version',)).fetchone()[0]
        if exists is None:
            return 0
        row = self._db.execute(f'SELECT version FROM "{self.schema}".schema_version').fetchone()
        return int(row[0]) if row else 0

    # -- lease --------------------------------------------------------------------
    def lease_alive(self) -> bool:
        """True while this store holds its follower's advisory lock (for a
        store opened without the lock: while it is open and writable)."""
        if self._db is None or self._db.closed:
            return False
        if not self._leased:
            return not self.read_only
        try:
            # a session advisory lock lives exactly as long as its connection, and we never unlock it
            self._db.execute("SELECT 1").fetchone()
            return True
        except self._psycopg.Error:
            return False

    # -- unit of work (SqlStore.transaction) -----------------------------------------
    def _begin(self) -> None:
        self._db.execute("BEGIN")

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except self._psycopg.Error:
            pass  # the connection is gone: the server rolls back on its own

    def _commit(self) -> None:
        self._db.execute("COMMIT")

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        if self.read_only:
            raise StoreError(f"database {self.url_shown} is open read-only")
        self._db.execute(sql, tuple(_enc(p) for p in params))

    def realised_total(self) -> Decimal:
        row = self._one("SELECT sum(realised) FROM positions")
        return row[0] if row and row[0] is not None else Decimal(0)

    def integrity_check(self) -> str:
        return "ok"

    def close(self) -> None:
        for name in ("_db",):
            conn = getattr(self, name, None)
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # pragma: no cover - closing a broken connection
                    pass
                setattr(self, name, None)

    def __repr__(self) -> str:
        return f"PostgresStore({self.url_shown!r}, schema={self.schema!r})"



_REPORT_TRADE_COLS = ("kind", "leader", "token_id", "condition_id", "side", "size", "price", "timestamp", "title")


class PostgresReportSource:
    """The report's reading of one follower schema (see ``report_rows``):
    read-only and without the lease, so it works next to a running worker.
    Leader trades come in time order (PostgreSQL keeps no insertion order),
    each with the intent it produced."""

    def __init__(self, url: str, schema: str = "copytrader") -> None:
        self._store = PostgresStore(url, schema, read_only=True, lock=False)
        self.name = f"{self._store.url_shown} schema {schema}"

    def events(self) -> Iterator[tuple[dict[str, Any], Optional[IntentRecord]]]:
        tcols = ", ".join(f"t.{c}" for c in _REPORT_TRADE_COLS)
        icols = ", ".join(f"i.{c}" for c in _INTENT_FIELDS)
        n = len(_REPORT_TRADE_COLS)
        rows = self._store._db.cursor().stream(
            f"SELECT {tcols}, i.intent_id IS NOT NULL, {icols} FROM trades t LEFT JOIN intents i "
            "ON i.trade_id = t.id ORDER BY t.timestamp, i.seq NULLS FIRST, t.id")
        for row in rows:
            yield dict(zip(_REPORT_TRADE_COLS, row[:n])), (PostgresStore._intent(row[n + 1:]) if row[n] else None)

    def orphan_intents(self) -> Iterator[IntentRecord]:
        rows = self._store._db.cursor().stream(
            f"{PostgresStore._SELECT_INTENT} WHERE trade_id NOT IN (SELECT id FROM trades) ORDER BY seq")
        return (PostgresStore._intent(row) for row in rows)

    def positions(self) -> list[Position]:
        return self._store.positions(include_closed=True)

    def leader_names(self) -> dict[str, str]:
        return {leader.address: leader.name for leader in self._store.leaders() if leader.name}

    def meta(self) -> dict[str, Any]:
        row = self._store._one("SELECT data FROM telemetry WHERE key = 'backtest' ORDER BY id DESC LIMIT 1")
        return json.loads(row[0]) if row else {}

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> "PostgresReportSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
