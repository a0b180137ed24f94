"""SQLite store: WAL, versioned migrations, one writer process at a time.

Decimals are stored as canonical text and datetimes as ISO-8601 UTC text, so
values round-trip exactly. Every per-trade query uses a primary key or an
index; nothing per trade scans a table.

The Store methods and their SQL are ``SqlStore``'s (``sql``), shared with
PostgreSQL; this module connects, locks, migrates, runs transactions (with
checkpoints and group commit) and encodes and decodes values.

Group commit (``group_rows`` > 1): a deferred transaction (``transaction(defer=True)``:
the engine's rows that send nothing, such as rejections) opens no SQLite
transaction; its writes are queued, encoded, and committed together in one
transaction when ``group_rows`` deferred transactions are queued or the oldest
has waited ``group_ms``, at ``idle()`` and ``flush()`` once that time has passed,
at ``close()``, and always first inside the next transaction that is not
deferred, so an intent that can lead to an order commits with everything
before it. No write lock is held while rows wait. A crash loses the queue; the
rows are read again from the feed, whose cursor moves in the same queue.
"""
from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, ClassVar, Collection, Iterator, Optional

from ...domain.model import IntentRecord, IntentStatus, LeaderTrade, Settlement, TradingState
from ...domain.portfolio import Position
from .sql import (
    _INTENT_FIELDS, _POSITION_FIELDS, CONTROL_TABLES, PAYOUT_COLUMN, REDEMPTIONS_TABLE, RENAME_REASONS,
    SETTLEMENT_COLUMNS,
    BadStoreError, SqlStore,
    StoreError, StoreLockedError, StoreMissingError, quarantine_key,
)

__all__ = ["MIGRATIONS", "BadStoreError", "SqliteStore", "StoreError", "StoreLockedError", "StoreMissingError",
           "_INTENT_FIELDS", "_POSITION_FIELDS", "connect_read_only", "intent_from_row", "position_from_row",
           "writer_lock"]


MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE trades (
        id TEXT PRIMARY KEY, leader TEXT NOT NULL, token_id TEXT NOT NULL, condition_id TEXT NOT NULL,
        side TEXT NOT NULL, size TEXT NOT NULL, price TEXT NOT NULL, usdc_size TEXT NOT NULL,
        timestamp INTEGER NOT NULL, tx_hash TEXT NOT NULL, kind TEXT NOT NULL, outcome TEXT NOT NULL,
        title TEXT NOT NULL, log_index INTEGER);
    CREATE TABLE intents (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, intent_id TEXT NOT NULL UNIQUE, trade_id TEXT NOT NULL,
        follower TEXT NOT NULL, leader TEXT NOT NULL, token_id TEXT NOT NULL, condition_id TEXT NOT NULL,
        side TEXT NOT NULL, leader_size TEXT NOT NULL, leader_price TEXT NOT NULL, created_at TEXT NOT NULL,
        decision TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,
        size TEXT, limit_price TEXT, order_type TEXT NOT NULL, filled_size TEXT NOT NULL, avg_price TEXT,
        fee TEXT NOT NULL, slippage TEXT, execution_id TEXT NOT NULL, error TEXT NOT NULL,
        updated_at TEXT, title TEXT NOT NULL);
    CREATE INDEX intents_open ON intents(status) WHERE status IN ('pending', 'unknown');
    CREATE INDEX intents_created ON intents(created_at, seq);
    CREATE INDEX intents_sent ON intents(created_at) WHERE status != 'skipped';
    CREATE TABLE positions (
        leader TEXT NOT NULL, token_id TEXT NOT NULL, condition_id TEXT NOT NULL, size TEXT NOT NULL,
        cost TEXT NOT NULL, realised TEXT NOT NULL, fees TEXT NOT NULL, bought TEXT NOT NULL,
        sold TEXT NOT NULL, last_price TEXT, settled INTEGER NOT NULL, title TEXT NOT NULL,
        is_open INTEGER NOT NULL, PRIMARY KEY (leader, token_id));
    CREATE INDEX positions_open ON positions(is_open);
    CREATE TABLE leader_holdings (leader TEXT NOT NULL, token_id TEXT NOT NULL, size TEXT NOT NULL,
        PRIMARY KEY (leader, token_id));
    CREATE TABLE daily_pnl (day TEXT PRIMARY KEY, realised TEXT NOT NULL);
    CREATE TABLE cursors (feed TEXT PRIMARY KEY, cursor TEXT NOT NULL);
    CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL, reason TEXT NOT NULL,
        since TEXT);
    CREATE TABLE quarantine (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, source TEXT NOT NULL,
        raw TEXT NOT NULL, reason TEXT NOT NULL);
    """,
    # 2: signed orders (stored before sending) and telemetry
    """
    CREATE TABLE orders (order_id TEXT PRIMARY KEY, intent_id TEXT NOT NULL, venue TEXT NOT NULL,
        payload TEXT NOT NULL, created_at TEXT NOT NULL);
    CREATE INDEX orders_intent ON orders(intent_id);
    CREATE TABLE telemetry (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, at TEXT NOT NULL,
        data TEXT NOT NULL);
    CREATE INDEX telemetry_key ON telemetry(key);
    """,
    # 3: leaders added at run time
    """
    CREATE TABLE leaders (address TEXT PRIMARY KEY, name TEXT NOT NULL, multiplier TEXT NOT NULL,
        budget_usdc TEXT);
    """,
    # 4: fewer pages written per leader trade (18 -> 10; each is a WAL frame at commit
    # and a write at checkpoint). Intents lose AUTOINCREMENT (it rewrites sqlite_sequence
    # on every insert; seq stays the rowid, intents are never deleted) and the
    # intents_sent index (the rate window reads intents_created); orders and leader
    # holdings, read only by key, become WITHOUT ROWID (one B-tree instead of two).
    """
    CREATE TABLE intents_v4 (
        seq INTEGER PRIMARY KEY, intent_id TEXT NOT NULL UNIQUE, trade_id TEXT NOT NULL,
        follower TEXT NOT NULL, leader TEXT NOT NULL, token_id TEXT NOT NULL, condition_id TEXT NOT NULL,
        side TEXT NOT NULL, leader_size TEXT NOT NULL, leader_price TEXT NOT NULL, created_at TEXT NOT NULL,
        decision TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,
        size TEXT, limit_price TEXT, order_type TEXT NOT NULL, filled_size TEXT NOT NULL, avg_price TEXT,
        fee TEXT NOT NULL, slippage TEXT, execution_id TEXT NOT NULL, error TEXT NOT NULL,
        updated_at TEXT, title TEXT NOT NULL);
    INSERT INTO intents_v4 SELECT * FROM intents ORDER BY seq;
    DROP TABLE intents;
    ALTER TABLE intents_v4 RENAME TO intents;
    CREATE INDEX intents_open ON intents(status) WHERE status IN ('pending', 'unknown');
    CREATE INDEX intents_created ON intents(created_at, seq);
    CREATE TABLE orders_v4 (order_id TEXT PRIMARY KEY, intent_id TEXT NOT NULL, venue TEXT NOT NULL,
        payload TEXT NOT NULL, created_at TEXT NOT NULL) WITHOUT ROWID;
    INSERT INTO orders_v4 SELECT order_id, intent_id, venue, payload, created_at FROM orders;
    DROP TABLE orders;
    ALTER TABLE orders_v4 RENAME TO orders;
    CREATE TABLE leader_holdings_v4 (leader TEXT NOT NULL, token_id TEXT NOT NULL, size TEXT NOT NULL,
        PRIMARY KEY (leader, token_id)) WITHOUT ROWID;
    INSERT INTO leader_holdings_v4 SELECT leader, token_id, size FROM leader_holdings;
    DROP TABLE leader_holdings;
    ALTER TABLE leader_holdings_v4 RENAME TO leader_holdings;
    """,
    # 5: quarantine keyed by the row's content (sql.quarantine_key): a bad row read again is
    # kept once; of the copies an older copytrader stored, the first stays
    """
    CREATE TABLE quarantine_v5 (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,
        at TEXT NOT NULL, source TEXT NOT NULL, raw TEXT NOT NULL, reason TEXT NOT NULL);
    INSERT OR IGNORE INTO quarantine_v5 (id, key, at, source, raw, reason)
        SELECT id, quarantine_key(raw), at, source, raw, reason FROM quarantine ORDER BY id;
    DROP TABLE quarantine;
    ALTER TABLE quarantine_v5 RENAME TO quarantine;
    """,
    # 6: reasons take the names of the settings that give them (max_trade_usdc, not max_trade_notional)
    RENAME_REASONS,
    # 7: a fill is provisional until its trades are CONFIRMED on chain, reversed if they FAIL
    SETTLEMENT_COLUMNS,
    # 8: a resolved position's payout per share (pending until redeemed, lost, paid)
    PAYOUT_COLUMN.format(type="TEXT"),
    # 9: redemptions, committed before anything is sent
    REDEMPTIONS_TABLE,
    # 10: control actions with their source, paused leaders, indexes for filtered decision pages
    CONTROL_TABLES.format(serial="INTEGER", time="TEXT"),
]

# an intent's status among the encoded values of SqlStore._PUT_INTENT
_STATUS = _INTENT_FIELDS.index("status")
_SKIPPED = IntentStatus.SKIPPED.value

_DECIMAL = {"leader_size", "leader_price", "size", "limit_price", "filled_size", "avg_price", "fee",
            "slippage", "cost", "realised", "fees", "bought", "sold", "last_price", "price", "usdc_size", "payout"}
_TIME = {"created_at", "updated_at"}


def _enc_slow(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds")
    if isinstance(value, (IntentStatus, TradingState, Settlement)):
        return value.value
    if isinstance(value, bool):
        return int(value)
    return value


_last_time: tuple[Any, str] = (None, "")  # the datetime encoded last, and its text


def _utc(value: datetime) -> str:
    # A leader trade stores the same "now" several times (intent, order, updates):
    # encode it once. The cache holds the object, so no other can take its
    # identity; it is replaced as one tuple, so threads never see half of it.
    global _last_time
    last = _last_time
    if value is last[0]:
        return last[1]
    text = value.astimezone(timezone.utc).isoformat(timespec="microseconds")
    _last_time = (value, text)
    return text


# Per-type encoders looked up by exact type (the hot path: ~90 values per
# leader trade); other types fall back to the isinstance chain.
_ENCODERS: dict[type, Any] = {
    str: None, int: None, type(None): None, float: None, bytes: None,
    Decimal: str, datetime: _utc, bool: int,
    IntentStatus: lambda v: v.value, TradingState: lambda v: v.value, Settlement: lambda v: v.value,
}


def _enc(value: Any) -> Any:
    try:
        fn = _ENCODERS[type(value)]
    except KeyError:
        return _enc_slow(value)
    return value if fn is None else fn(value)


def _time(text: Optional[str]) -> Optional[datetime]:
    return datetime.fromisoformat(text) if text else None


def _dec(text: Optional[str]) -> Optional[Decimal]:
    return Decimal(text) if text is not None else None


def intent_from_row(row: tuple[Any, ...]) -> IntentRecord:
    """An intent from its ``_INTENT_FIELDS`` columns (the store's and the report's reading)."""
    data = dict(zip(_INTENT_FIELDS, row))
    for key in data:
        if key in _DECIMAL:
            data[key] = _dec(data[key])
        elif key in _TIME:
            data[key] = _time(data[key])
    data["status"] = IntentStatus(data["status"])
    data["settlement"] = Settlement(data["settlement"])
    return IntentRecord(**data)


def position_from_row(row: tuple[Any, ...]) -> Position:
    """A position from its ``_POSITION_FIELDS`` columns."""
    data = dict(zip(_POSITION_FIELDS, row))
    for key in data:
        if key in _DECIMAL:
            data[key] = _dec(data[key])
    data["settled"] = bool(data["settled"])
    return Position(**data)


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to the database at ``path`` that creates nothing
    next to it, so it works on a file and folder this user cannot write.

    Without a ``-shm`` index, a write-ahead log (``-wal``) with anything in it
    or a journal next to the file, no engine has the database open and the
    file holds all of it: it is opened ``immutable`` (no index, no locks; an
    engine starting meanwhile writes to its new log, not to the file, until a
    checkpoint). Otherwise the read goes through the log, sharing the
    engine's index."""
    _check_path(path, must_exist=True)
    real = path.resolve()  # the log and index sit next to the file a link points to
    log = Path(f"{real}-wal")
    live = (Path(f"{real}-shm").exists() or Path(f"{real}-journal").exists()
            or (log.exists() and log.stat().st_size > 0))
    db = None
    try:
        db = sqlite3.connect(f"{real.as_uri()}?mode=ro{'' if live else '&immutable=1'}", uri=True,
                             isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return db
    except sqlite3.Error as exc:
        if db is not None:
            db.close()
        if live and _kind(exc) in ("readonly", "cantopen"):
            raise BadStoreError(f"database {path} has a write-ahead log ({path}-wal) that this user cannot read "
                                f"without creating {path}-shm: open it once as a user who can write its folder, "
                                "which folds the log into the file") from None
        raise _store_error(path, exc) from None


def _check_path(path: Path, must_exist: bool) -> None:
    if not path.exists():
        if must_exist:
            raise StoreMissingError(f"database {path} does not exist")
    elif not path.is_file():
        raise BadStoreError(f"database {path} is not a regular file: give the path of a database file")


def _kind(exc: sqlite3.Error) -> str:
    why = str(exc)
    for text, kind in (("not a database", "notadb"), ("readonly", "readonly"), ("unable to open", "cantopen")):
        if text in why:
            return kind
    return ""


def _store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """A StoreError sentence for an error SQLite gave on the database at ``path``."""
    kind = _kind(exc)
    if kind == "notadb":
        return BadStoreError(f"{path} is not a SQLite database: give the path of a copytrader database")
    if kind == "readonly":
        return BadStoreError(f"database {path} cannot be written by this user ({exc}): commands that only read "
                             "(positions, history, report) can still open it")
    if kind == "cantopen":
        return BadStoreError(f"cannot open database {path} ({exc}): check that it and its folder exist and that "
                             "this user may write them")
    return StoreError(f"database {path}: {exc}")


def _same_file(fd: int, path: Path) -> bool:
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (at_path.st_dev, at_path.st_ino)


def writer_lock(path: str | os.PathLike[str]) -> tuple[int, bool]:
    """Take the single-writer lock of the database at ``path``: an exclusive
    ``flock`` on ``<path>.lock``, which then holds our pid. Returns the lock's
    file descriptor (closing it, or the process ending, releases the lock) and
    whether the lock file was made now. ``StoreLockedError`` names the pid of
    the process that holds it; ``BadStoreError`` says the file cannot be made."""
    lock_path = Path(f"{path}.lock")
    while True:
        try:
            fd, made = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), True
        except FileExistsError:
            try:
                fd, made = os.open(lock_path, os.O_RDWR), False
            except FileNotFoundError:
                continue  # removed between the two opens: make it
            except OSError as exc:
                raise _cannot_lock(path, lock_path, exc) from None
        except OSError as exc:
            raise _cannot_lock(path, lock_path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLockedError(f"database {path} is in use by another copytrader process (pid {pid})") from None
        # A failed opener removes the lock file it made (see SqliteStore._remove_made), holding its
        # lock; a process that opened that file just before holds a lock on a file no longer there:
        # it must lock the file at the path instead, or two writers could each hold "the" lock.
        if _same_file(fd, lock_path):
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd, made


def _cannot_lock(path: Any, lock_path: Path, exc: OSError) -> BadStoreError:
    return BadStoreError(f"cannot create lock file {lock_path} for database {path} ({exc.strerror}): "
                         "choose a path in a folder you can write")


class SqliteStore(SqlStore):
    """``read_only``: open for reading next to a running engine (no lock,
    nothing created; see ``connect_read_only``). ``lock=False``: write without
    the single-writer lock; only for control commands (halt/resume) that touch
    the trading state row. ``create=False``: a database that does not exist is
    refused (``StoreMissingError``) instead of created; read-only never creates.
    ``held_lock``: the lock as ``writer_lock`` gave it, taken before the caller
    touched the files; the store owns it from now on, and releases it on close
    or if it cannot open.

    Opening fails with one ``StoreError`` sentence (``BadStoreError`` when the
    path is the problem), and leaves nothing it made behind: folders, lock
    file, database."""

    # the dialect (see SqlStore): text values, rowid order, the rate window on its index
    PARAM = "?"
    NO_LIMIT = -1
    POSITIONS_ORDER = "rowid"
    INTENTS_CREATED = " INDEXED BY intents_created"
    _encode = staticmethod(_enc)
    _decode_num = staticmethod(_dec)
    _decode_time = staticmethod(_time)
    _intent = staticmethod(intent_from_row)
    _position = staticmethod(position_from_row)
    # what a deferred transaction may queue (set below the class, from SqlStore's statements)
    _DEFERRABLE: ClassVar[frozenset[str]]
    _LAST_WINS: ClassVar[dict[str, int]]
    _CONTROL: ClassVar[frozenset[str]]  # the writes changed() reports (the state, paused leaders)
    # The page cache, in KiB (negative: a size, not a page count). SQLite's 2 MB default
    # holds less than a long replay's indexes, whose pages are then read again from the OS
    # on every insert (a backtest with open limits: the last 1,000 of 20,000 rows 1.8x
    # the CPU of the first 1,000; 1.15x with this). It is memory only as far as pages
    # are read: about 30 MB after 20,000 rows, 64 MB at most per open store.
    CACHE_KIB = -65536

    def __init__(self, path: str | os.PathLike[str], read_only: bool = False, lock: bool = True,
                 create: bool = True, held_lock: Optional[tuple[int, bool]] = None, group_rows: int = 1,
                 group_ms: float = 100, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._db: Any = None
        self._lock_fd: Optional[int] = held_lock[0] if held_lock else None
        self._depth = 0
        self._written = 0  # statements committed since the last checkpoint
        self._pending = 0  # statements in the open transaction
        # group commit (see the module's text): 1 row commits every transaction at once
        self.group_rows = group_rows
        self._group_s = group_ms / 1000
        self._clock = clock
        self._queue: list[tuple[str, tuple[Any, ...]]] = []  # encoded writes not yet committed, in order
        self._groups = 0  # deferred transactions in the queue
        self._oldest: Optional[float] = None  # when the first of them ended (``clock``)
        self._queued_trades: set[str] = set()  # trade ids in the queue, for has_trade
        self._txn_trades: list[str] = []  # trade ids the open deferred transaction queued
        self._deferring = False  # the open transaction is deferred: its writes are queued
        self._mark = 0  # the queue's length when the open transaction began (a rollback drops the rest)
        self._seen_version: Optional[int] = None  # PRAGMA data_version at the last changed()
        self._controlled = False  # this store wrote the state or a paused leader since changed()
        # folders, lock file and database this store created, in that order
        self._made: list[Path] = [Path(f"{self.path}.lock")] if held_lock and held_lock[1] else []
        try:
            self._open(lock, create)
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            self._remove_made()
            raise _store_error(self.path, exc) from None
        except BaseException:
            self._remove_made()
            raise

    # -- opening ------------------------------------------------------------
    def _open(self, lock: bool, create: bool) -> None:
        if self.read_only:
            self._db = connect_read_only(self.path)
            return
        _check_path(self.path, must_exist=not create)
        self._make_folders()
        if lock and self._lock_fd is None:
            self._lock_fd, made = writer_lock(self.path)
            if made:
                self._made.append(Path(f"{self.path}.lock"))
        existed = self.path.exists()
        self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}", uri=True,
                                   isolation_level=None, check_same_thread=False)
        if not existed:
            self._made.append(self.path)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints (which fsync) run in idle(), after an order is sent,
        # not inside the commit that makes an intent durable before sending.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.execute(f"PRAGMA cache_size={self.CACHE_KIB}")
        # a file this user cannot write opens read-only without a word: say so now, not at the first write
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute("ROLLBACK")

    def _make_folders(self) -> None:
        missing = []
        folder = self.path.parent
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                if folder.is_dir():  # made meanwhile by another store (another follower's thread): not ours
                    continue
                raise BadStoreError(f"cannot create folder {folder} for database {self.path}: a file has that "
                                    "name; choose another path") from None
            except OSError as exc:
                raise BadStoreError(f"cannot create folder {folder} for database {self.path} ({exc.strerror}): "
                                    "choose a path in a folder you can write") from None
            self._made.append(folder)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _remove_made(self) -> None:
        """Close, and remove what this store created (the lock file while still holding it)."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self.path in self._made:
            for suffix in ("-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        for made in reversed(self._made):
            try:
                if made.is_dir():
                    made.rmdir()
                else:
                    made.unlink()
            except OSError:
                pass  # a folder something else has filled meanwhile stays
        self._made.clear()
        self._unlock()

    def discard(self) -> None:
        """Close after a failure: a database this store created and nothing
        was stored in is removed, with the lock file and folders made for it,
        so a command that failed leaves nothing behind. A database that holds
        anything, or was there before, is only closed."""
        if self._db is not None and self.path in self._made and self._holds_nothing():
            self._remove_made()
        else:
            self.close()

    def _holds_nothing(self) -> bool:
        if self._depth or self._queue:
            return False
        try:
            tables = [row[0] for row in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('schema_version', "
                "'sqlite_sequence')")]
            return not any(self._db.execute(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone() for name in tables)
        except sqlite3.Error:
            return False  # cannot tell: keep it

    @property
    def _where(self) -> str:
        return f"database {self.path}"

    def _migrate(self) -> None:
        current = self._version()
        if not self._needs_migration(current, len(MIGRATIONS)):
            return
        self._db.create_function("quarantine_key", 1, quarantine_key, deterministic=True)  # for migration 5
        with self.transaction():
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            for sql in MIGRATIONS[current:]:
                self._run_script(sql)
            self._db.execute("DELETE FROM schema_version")
            self._db.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS),))

    def _version(self) -> int:
        exists = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'").fetchone()
        if not exists:
            return 0
        row = self._db.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    # -- unit of work (SqlStore.transaction) and group commit ---------------------
    def _begin(self) -> None:
        self._mark = len(self._queue)
        self._start()

    def _begin_deferred(self) -> None:
        if self.group_rows <= 1:
            self._begin()
            return
        self._mark = len(self._queue)
        self._deferring = True

    def _join_at_once(self) -> None:
        """The open deferred transaction commits at once after all: it begins in SQLite now."""
        if self._deferring:
            self._start()
            self._deferring = False

    def _start(self) -> None:
        """BEGIN IMMEDIATE, then the queued writes (the open transaction's own among them)."""
        self._db.execute("BEGIN IMMEDIATE")
        if not self._queue:
            return
        try:
            self._replay()
        except BaseException:
            self._abort()
            raise

    def _replay(self) -> None:
        """Execute the queue, one ``executemany`` per statement: each statement writes a
        table of its own (``_DEFERRABLE``) and keeps its rows' order, so the rows and
        their rowids are those of writing one by one. Of the upserts of one cursor or one
        leader holding, only the last is written (each replaces the one before)."""
        seen: set[tuple[str, tuple[Any, ...]]] = set()
        by_statement: dict[str, list[tuple[Any, ...]]] = {}
        for sql, values in reversed(self._queue):
            key_size = self._LAST_WINS.get(sql)
            if key_size:
                key = (sql, values[:key_size])
                if key in seen:
                    continue
                seen.add(key)
            by_statement.setdefault(sql, []).append(values)
        for sql, rows in by_statement.items():
            rows.reverse()
            self._db.executemany(sql, rows)
            self._pending += len(rows)

    def _commit(self) -> None:
        if not self._deferring:
            self._end()
            return
        self._deferring = False  # queued: committed with the group
        self._groups += 1
        self._queued_trades.update(self._txn_trades)
        self._txn_trades.clear()
        if self._oldest is None:
            self._oldest = self._clock()
        if self._groups >= self.group_rows or self._due():
            self.flush()

    def _rollback(self) -> None:
        if self._deferring:
            self._deferring = False
            self._drop_own()
        else:
            self._pending = 0
            self._db.execute("ROLLBACK")
            self._drop_own()

    def _drop_own(self) -> None:
        """Forget what the open transaction queued; the earlier deferred transactions stay queued."""
        del self._queue[self._mark:]
        self._txn_trades.clear()

    def _abort(self) -> None:
        """Roll back after a failed replay or commit: the queue keeps the earlier rows."""
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite rolled back already
        self._pending = 0
        self._drop_own()

    def _end(self) -> None:
        """COMMIT the open SQLite transaction, which holds the queue."""
        try:
            self._db.execute("COMMIT")
        except BaseException:
            self._abort()
            raise
        self._queue.clear()
        self._queued_trades.clear()
        self._txn_trades.clear()
        self._groups, self._oldest = 0, None
        self._written += self._pending
        self._pending = 0
        if self._written >= self.CHECKPOINT_HARD:  # nobody called idle(): keep the WAL bounded anyway
            self.idle()

    def _due(self) -> bool:
        return self._oldest is not None and self._clock() - self._oldest >= self._group_s

    def flush(self) -> None:
        """Commit the queued deferred transactions now (nothing to do inside a transaction:
        one that is not deferred holds them already, a deferred one joins them)."""
        if self._queue and not self._depth:
            self._begin()
            self._end()

    def changed(self) -> bool:
        """Whether another connection committed (``PRAGMA data_version`` moved), or this
        store wrote the trading state or a paused leader, since the last call."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        changed = version != self._seen_version or self._controlled
        self._seen_version, self._controlled = version, False
        return changed

    def _catch_up(self) -> None:
        """Before a read: the queued writes are committed (or, inside a deferred
        transaction, it begins in SQLite with them), so the read sees them."""
        if self._depth:
            self._join_at_once()
        else:
            self.flush()

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Optional[tuple[Any, ...]]:
        if self._queue:
            self._catch_up()
        return self._db.execute(sql, params).fetchone()

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self._queue:
            self._catch_up()
        return self._db.execute(sql, params).fetchall()

    def _of_tokens(self, sql: str, token_ids: Collection[str]) -> Iterator[tuple[Any, ...]]:
        if self._queue:
            self._catch_up()
        return super()._of_tokens(sql, token_ids)

    def has_trade(self, trade_id: str) -> bool:
        return (trade_id in self._queued_trades or trade_id in self._txn_trades
                or self._peek(self._HAS_TRADE, (trade_id,)) is not None)

    def add_trade(self, trade: LeaderTrade) -> None:
        super().add_trade(trade)
        if self._deferring:
            self._txn_trades.append(trade.id)

    # Statements committed between checkpoints done in idle() (about 5 per leader
    # trade, whether each trade commits alone or a replay commits a chunk). A
    # checkpoint costs an fsync and one write per distinct page in the WAL: hot
    # pages (cursor, index tails) written by many commits are copied once, so a
    # longer interval is cheaper per trade, for a WAL of up to ~40 MB.
    CHECKPOINT_EVERY = 5000
    CHECKPOINT_HARD = 20000  # statements after which a commit checkpoints itself

    def idle(self) -> None:
        """Between leader trades: commit the queue once its oldest has waited ``group_ms``;
        checkpoint the WAL every ``CHECKPOINT_EVERY`` statements."""
        if self._depth or self.read_only:
            return
        if self._queue and self._due():
            self.flush()
        if self._written >= self.CHECKPOINT_EVERY:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._written = 0

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        if self.read_only:
            raise StoreError(f"database {self.path} is open read-only")
        values = tuple(map(_enc, params))
        if self._deferring:
            if sql in self._DEFERRABLE and (sql != self._PUT_INTENT or values[_STATUS] == _SKIPPED):
                self._queue.append((sql, values))
                return
            self._join_at_once()  # anything that may lead to an order, or change the state, commits at once
        if sql in self._CONTROL:
            self._controlled = True
        self._db.execute(sql, values)
        self._pending += 1

    def integrity_check(self) -> str:
        return self._one("PRAGMA integrity_check")[0]

    def close(self) -> None:
        try:
            if self._db is not None:
                self.flush()
        finally:
            if self._db is not None:
                self._db.close()
                self._db = None
            self._unlock()


# A deferred transaction queues only rows that send nothing: the leader trade, the
# leader's holding, a rejected intent (status skipped), telemetry, feed cursors and
# quarantined rows; any other write makes it commit at once. Each statement writes a
# table of its own (see SqliteStore._replay); of the upserts of one cursor or one
# leader holding (key: the first 1 or 2 values), the last replaces the others.
SqliteStore._DEFERRABLE = frozenset((SqliteStore._ADD_TRADE, SqliteStore._PUT_HOLDING, SqliteStore._PUT_INTENT,
                                     SqliteStore._PUT_TELEMETRY, SqliteStore._SET_CURSOR, SqliteStore._QUARANTINE))
SqliteStore._LAST_WINS = {SqliteStore._SET_CURSOR: 1, SqliteStore._PUT_HOLDING: 2}
SqliteStore._CONTROL = frozenset((SqliteStore._SET_STATE, SqliteStore._PAUSE_LEADER, SqliteStore._RESUME_LEADER))
