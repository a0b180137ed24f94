"""Every Store (memory, SQLite, PostgreSQL) honours the same contract."""
from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import attrs
import pytest

from copytrader.adapters.storage.memory import MemoryStore
from copytrader.adapters.storage.sqlite import _INTENT_FIELDS, MIGRATIONS, SqliteStore, StoreError, StoreLockedError
from copytrader.domain.model import IntentRecord, IntentStatus, TradingState
from copytrader.domain.portfolio import Position
from copytrader.ports import Quarantined, StoredState
from copytrader.testing import CONDITION, LEADER, T0, TOKEN, make_trade

D = Decimal


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "memory":
        s = MemoryStore()
    elif request.param == "sqlite":
        s = SqliteStore(tmp_path / "db" / "ct.db")
    else:
        from copytrader.adapters.storage.postgres import PostgresStore

        s = PostgresStore(request.getfixturevalue("pg_url"), schema=request.getfixturevalue("pg_schema"))
    yield s
    s.close()


def record(n: int = 0, status: IntentStatus = IntentStatus.PENDING, at=T0, **kw) -> IntentRecord:
    base = dict(intent_id=f"intent-{n}", trade_id=f"trade-{n}", follower="default", leader=LEADER,
                token_id=TOKEN, condition_id=CONDITION, side="BUY", leader_size=D("100.5"),
                leader_price=D("0.4321"), created_at=at, decision="approved", status=status,
                size=D("20.00"), limit_price=D("0.44"), order_type="FOK", title="Fed cut?")
    return IntentRecord(**{**base, **kw})


def test_intent_round_trip_is_exact(store):
    r = record(slippage=D("-0.001"), avg_price=D("0.439999"), fee=D("0.000001"), filled_size=D("19.99"),
               execution_id="0x" + "ab" * 32, error="x", updated_at=T0 + timedelta(microseconds=7))
    store.put_intent(r)
    assert store.get_intent(r.intent_id) == r
    sparse = record(1, IntentStatus.SKIPPED, decision="rejected", reason="stale", size=None, limit_price=None)
    store.put_intent(sparse)
    assert store.get_intent("intent-1") == sparse and store.get_intent("missing") is None


def test_put_intent_upserts_and_open_intents_follow_status(store):
    store.put_intent(record(0))
    store.put_intent(record(1, IntentStatus.SKIPPED))
    store.put_intent(record(2, IntentStatus.UNKNOWN))
    assert [r.intent_id for r in store.open_intents()] == ["intent-0", "intent-2"]
    store.put_intent(record(0, IntentStatus.FILLED))
    assert [r.intent_id for r in store.open_intents()] == ["intent-2"]
    assert store.get_intent("intent-0").status is IntentStatus.FILLED


def test_history_newest_first_with_paging(store):
    for n in range(5):
        store.put_intent(record(n, at=T0 + timedelta(seconds=n // 2)))
    ids = [r.intent_id for r in store.history(limit=10)]
    assert ids == ["intent-4", "intent-3", "intent-2", "intent-1", "intent-0"]
    assert [r.intent_id for r in store.history(limit=2, offset=1)] == ["intent-3", "intent-2"]


def test_order_times_since_excludes_skipped_old_and_honours_limit(store):
    store.put_intent(record(0, at=T0 - timedelta(minutes=5)))
    store.put_intent(record(1, IntentStatus.SKIPPED, at=T0))
    for n in (2, 3, 4):
        store.put_intent(record(n, IntentStatus.FILLED, at=T0 + timedelta(seconds=n)))
    since = T0 - timedelta(seconds=60)
    assert store.order_times_since(since) == [T0 + timedelta(seconds=n) for n in (2, 3, 4)]
    assert store.order_times_since(since, 2) == [T0 + timedelta(seconds=n) for n in (3, 4)]


def test_trades_cursors_and_quarantine(store):
    trade = make_trade()
    assert not store.has_trade(trade.id) and store.get_cursor("f") is None
    store.add_trade(trade)
    store.set_cursor("f", "7")
    store.set_cursor("f", "8")
    store.quarantine(Quarantined("file:3", '{"price": "abc"}', "price is not a number"), T0)
    assert store.has_trade(trade.id) and store.get_cursor("f") == "8"
    assert store.quarantined() == [(T0, Quarantined("file:3", '{"price": "abc"}', "price is not a number"))]


def test_quarantine_is_keyed_by_the_rows_content(store):
    bad = '{"price": "abc"}'
    store.quarantine(Quarantined("a.jsonl:3", bad, "price is not a number"), T0)
    # the same row again: from a file of another name, from the same file read from scratch, later
    store.quarantine(Quarantined("b.jsonl:9", bad, "price is not a number"), T0 + timedelta(hours=1))
    store.quarantine(Quarantined("a.jsonl:3", bad, "price is not a number"), T0 + timedelta(hours=2))
    store.quarantine(Quarantined("a.jsonl:4", bad + " ", "not JSON"), T0)  # other content: kept too
    assert store.quarantined() == [(T0, Quarantined("a.jsonl:4", bad + " ", "not JSON")),
                                   (T0, Quarantined("a.jsonl:3", bad, "price is not a number"))]
    with pytest.raises(RuntimeError):  # a row quarantined in a failed transaction is not held against it
        with store.transaction():
            store.quarantine(Quarantined("c.jsonl:1", "[1]", "row is a list"), T0)
            raise RuntimeError("boom")
    store.quarantine(Quarantined("c.jsonl:1", "[1]", "row is a list"), T0)
    assert len(store.quarantined()) == 3


def test_token_outcomes_come_from_the_trades(store):
    assert store.token_outcomes({TOKEN, "77", "88"}) == {} and store.token_outcomes(set()) == {}
    store.add_trade(attrs.evolve(make_trade(seq=1), outcome="Yes"))
    store.add_trade(attrs.evolve(make_trade(seq=2, side="SELL"), outcome="Yes"))
    store.add_trade(attrs.evolve(make_trade(seq=3, token_id="77"), outcome="Lakers"))
    store.add_trade(make_trade(seq=4, token_id="88"))  # no outcome given: none known
    assert store.token_outcomes({TOKEN, "77", "88"}) == {TOKEN: "Yes", "77": "Lakers"}
    assert store.token_outcomes({"77"}) == {"77": "Lakers"}  # only the tokens asked


def test_cursors_and_the_newest_trade_for_status(store):
    assert store.cursors() == {} and store.newest_trade_timestamp() is None
    store.set_cursor("b-feed", "2")
    store.set_cursor("a-feed", "x|9")
    store.add_trade(make_trade(seq=1, timestamp=1_700_000_500))
    store.add_trade(make_trade(seq=2, timestamp=1_700_000_100))
    assert store.cursors() == {"a-feed": "x|9", "b-feed": "2"}
    assert store.newest_trade_timestamp() == 1_700_000_500


def test_positions_holdings_daily_and_totals(store):
    open_ = Position(LEADER, TOKEN, CONDITION, size=D("10.5"), cost=D("5.25"), realised=D("-0.1"),
                     fees=D("0.1"), bought=D("10.5"), last_price=D("0.5"), title="t")
    closed = Position(LEADER, "t2", CONDITION, realised=D("2.5"), bought=D("3"), sold=D("3"), settled=True)
    store.put_position(open_)
    store.put_position(closed)
    assert store.positions() == [open_]
    assert store.positions(include_closed=True) == [open_, closed]
    store.put_position(attrs.evolve(open_, size=D("0"), cost=D("0")))
    assert store.positions() == []
    assert store.realised_total() == D("2.4")
    store.put_leader_holding((LEADER, TOKEN), D("100"))
    store.put_leader_holding((LEADER, TOKEN), D("60"))
    assert store.leader_holdings() == {(LEADER, TOKEN): D("60")}
    store.put_daily_realised("2026-11-01", D("-3.5"))
    assert store.daily_realised("2026-11-01") == D("-3.5") and store.daily_realised("2026-11-02") == 0


def test_resolved_positions_keep_their_payout_and_state(store):
    from copytrader.domain.portfolio import Portfolio

    p = Portfolio()
    for n, token in enumerate((TOKEN, str(10**70 + 1), str(10**70 + 2))):
        p.apply_fill(LEADER, token, CONDITION, "BUY", D("10"), D("0.4"), D(0), "d")
    win, lose, paid = (q.token_id for q in sorted(p.positions(), key=lambda q: q.token_id))
    p.resolve(CONDITION, {win: D("0.5"), lose: D(0), paid: D(1)}, "d", pay=False)
    p.pay(LEADER, paid, D("10"), "d")
    rows = [p.current(LEADER, t) for t in (win, lose, paid)]
    for row in rows:
        store.put_position(row)
    assert [q.status for q in rows] == ["pending payout", "lost", "paid"]
    assert {q.token_id: q for q in store.positions(include_closed=True)} == {q.token_id: q for q in rows}
    loaded = store.positions(include_closed=True)
    assert [q.payout for q in sorted(loaded, key=lambda q: q.token_id)] == [D("0.5"), D(0), D(1)]
    assert store.positions() == []  # a pending position is not open risk
    assert Portfolio(loaded).pending_cash == D("5")


def test_trading_state_defaults_to_active_and_round_trips(store):
    assert store.get_state() == StoredState(TradingState.ACTIVE)
    s = StoredState(TradingState.REDUCING, "daily loss", T0)
    store.set_state(s)
    assert store.get_state() == s


def test_transaction_commits_together(store):
    with store.transaction():
        store.add_trade(make_trade())
        store.set_cursor("f", "1")
        store.put_intent(record(0))
    assert store.has_trade(make_trade().id) and store.get_cursor("f") == "1"


def test_failed_transaction_leaves_nothing(store):
    store.set_cursor("f", "1")
    store.put_intent(record(0))
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add_trade(make_trade())
            store.set_cursor("f", "2")
            store.put_intent(record(0, IntentStatus.FILLED))
            store.put_intent(record(1, IntentStatus.FILLED))
            store.put_position(Position(LEADER, TOKEN, CONDITION, size=D(1), cost=D(1)))
            store.set_state(StoredState(TradingState.HALTED))
            store.quarantine(Quarantined("s", "r", "why"), T0)
            raise RuntimeError("boom")
    assert not store.has_trade(make_trade().id) and store.get_cursor("f") == "1"
    assert store.get_intent("intent-0").status is IntentStatus.PENDING and store.get_intent("intent-1") is None
    assert [r.intent_id for r in store.open_intents()] == ["intent-0"]
    assert store.order_times_since(T0 - timedelta(days=1)) == [T0]
    assert store.positions() == [] and store.quarantined() == []
    assert store.get_state().state is TradingState.ACTIVE


def test_nested_transaction_joins_the_outer(store):
    with pytest.raises(KeyError):
        with store.transaction():
            store.set_cursor("f", "1")
            with store.transaction():
                store.set_cursor("g", "1")
            raise KeyError("outer fails after the inner finished")
    assert store.get_cursor("f") is None and store.get_cursor("g") is None


# -- SQLite only ---------------------------------------------------------------
def test_sqlite_survives_reopen_with_wal(tmp_path):
    path = tmp_path / "ct.db"
    with SqliteStore(path) as s:
        s.put_intent(record(0))
        assert s._one("PRAGMA journal_mode")[0] == "wal"
    with SqliteStore(path) as s:
        assert s.get_intent("intent-0") == record(0)
        assert s.schema_version == len(MIGRATIONS) and s.integrity_check() == "ok"


def test_second_process_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "ct.db"
    with SqliteStore(path):
        probe = ("import sys\nfrom copytrader.adapters.storage.sqlite import SqliteStore, StoreLockedError\n"
                 f"try:\n    SqliteStore({str(path)!r})\nexcept StoreLockedError as e:\n    print(e); sys.exit(3)\n")
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
        assert out.returncode == 3
        assert "in use by another copytrader process" in out.stdout and str(path) in out.stdout
        with pytest.raises(StoreLockedError):
            SqliteStore(path)
    SqliteStore(path).close()  # released on close


def test_read_only_store_reads_next_to_the_writer_and_cannot_write(tmp_path):
    path = tmp_path / "ct.db"
    with SqliteStore(path) as writer:
        writer.put_intent(record(0))
        with SqliteStore(path, read_only=True) as reader:
            assert reader.get_intent("intent-0") == record(0)
            with pytest.raises(StoreError, match="read-only"):
                reader.set_cursor("f", "1")


def test_database_from_the_future_is_refused(tmp_path):
    path = tmp_path / "ct.db"
    with SqliteStore(path) as s:
        s._db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="schema version 99, newer"):
        SqliteStore(path)


def test_migrations_apply_once(tmp_path):
    path = tmp_path / "ct.db"
    SqliteStore(path).close()
    with SqliteStore(path) as s:  # a second open must not try to create tables again
        assert s.schema_version == len(MIGRATIONS)
        assert s._one("SELECT COUNT(*) FROM schema_version")[0] == 1


def _old_sqlite(path, version: int):
    """A SQLite database made by the migrations up to ``version``, as an older copytrader left it."""
    import sqlite3

    from copytrader.adapters.storage.sql import quarantine_key

    db = sqlite3.connect(path, isolation_level=None)
    db.create_function("quarantine_key", 1, quarantine_key, deterministic=True)  # for migration 5
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for sql in MIGRATIONS[:version]:
        for statement in filter(str.strip, sql.split(";")):
            db.execute(statement)
    db.execute("INSERT INTO schema_version VALUES (?)", (version,))
    return db


def test_version_3_database_migrates_to_fewer_pages_per_trade_and_keeps_every_row(tmp_path):
    path = tmp_path / "v3.db"
    db = _old_sqlite(path, 3)
    cols = ", ".join(("intent_id", "trade_id", "follower", "leader", "token_id", "condition_id", "side", "leader_size",
                      "leader_price", "created_at", "decision", "status", "reason", "detail", "order_type",
                      "filled_size", "fee", "execution_id", "error", "title"))
    for n in range(3):
        db.execute(f"INSERT INTO intents ({cols}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (f"i{n}", f"t{n}", "f", LEADER, TOKEN, CONDITION, "BUY", "100", "0.5",
                    T0.isoformat(timespec="microseconds"), "approved", "pending" if n == 2 else "filled", "", "",
                    "FOK", "0", "0", f"0x{n}", "", "m"))
    db.execute("INSERT INTO orders VALUES ('0x1', 'i1', 'polymarket', '{\"salt\": 1}', ?)", (T0.isoformat(),))
    db.execute("INSERT INTO leader_holdings VALUES (?, ?, '42.5')", (LEADER, TOKEN))
    db.close()
    with SqliteStore(path) as s:
        assert s.schema_version == len(MIGRATIONS) and s.integrity_check() == "ok"
        assert [r.intent_id for r in s.history(10)][::-1] == ["i0", "i1", "i2"]  # order kept (created_at, seq)
        assert [r.intent_id for r in s.open_intents()] == ["i2"]
        assert s.get_order("0x1").payload == {"salt": 1} and s.leader_holdings() == {(LEADER, TOKEN): D("42.5")}
        s.put_intent(record(7))
        assert s._one("SELECT seq FROM intents WHERE intent_id = 'intent-7'")[0] == 4
        schema = dict(s._db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
        assert "AUTOINCREMENT" not in schema["intents"]
        assert "WITHOUT ROWID" in schema["orders"] and "WITHOUT ROWID" in schema["leader_holdings"]
        indexes = {r[0] for r in s._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"intents_open", "intents_created"} <= indexes and not {"intents_sent", "orders_intent"} & indexes
        assert s.order_times_since(T0 - timedelta(seconds=1)) == [T0] * 4  # every intent not skipped


OLD_QUARANTINE = [  # (at, source, raw, reason): the same bad rows read twice, from two file names
    (T0, "a.jsonl:3", '{"price": "abc"}', "price is not a number: 'abc'"),
    (T0, "a.jsonl:5", "{not json", "not JSON: Expecting property name"),
    (T0 + timedelta(hours=1), "b.jsonl:3", '{"price": "abc"}', "price is not a number: 'abc'"),
    (T0 + timedelta(hours=1), "b.jsonl:5", "{not json", "not JSON: Expecting property name"),
    (T0 + timedelta(hours=2), "a.jsonl:3", '{"price": "abc"}', "price is not a number: 'abc'"),
]


def test_quarantine_of_an_old_sqlite_database_keeps_the_first_of_each_row(tmp_path):
    path = tmp_path / "v4.db"
    db = _old_sqlite(path, 4)
    db.executemany("INSERT INTO quarantine (at, source, raw, reason) VALUES (?, ?, ?, ?)",
                   [(at.isoformat(timespec="microseconds"), *rest) for at, *rest in OLD_QUARANTINE])
    db.close()
    with SqliteStore(path) as s:
        assert s.schema_version == len(MIGRATIONS) and s.integrity_check() == "ok"
        assert s.quarantined() == [(T0, Quarantined(*OLD_QUARANTINE[1][1:])), (T0, Quarantined(*OLD_QUARANTINE[0][1:]))]
        s.quarantine(Quarantined("c.jsonl:3", '{"price": "abc"}', "price is not a number: 'abc'"), T0)
        assert len(s.quarantined()) == 2


# the position columns before migration 8 (SQLite; PostgreSQL 5) added payout
OLD_POSITION_ROWS = [  # open, sold out, settled at 1 (paid), settled at 0 (lost)
    (LEADER, TOKEN, CONDITION, "10", "4", "0", "0", "10", "0", "0.4", False, "open", True),
    (LEADER, str(10**70 + 1), CONDITION, "0", "0", "1.5", "0", "5", "5", "0.7", False, "sold", False),
    (LEADER, str(10**70 + 2), CONDITION, "0", "0", "6", "0", "10", "0", "1", True, "won", False),
    (LEADER, str(10**70 + 3), CONDITION, "0", "0", "-3", "0", "10", "0", "0", True, "lost", False),
]
OLD_POSITION_COLUMNS = ("leader, token_id, condition_id, size, cost, realised, fees, bought, sold, last_price, "
                        "settled, title, is_open")


def assert_old_positions_kept(positions) -> None:
    got = {q.title: q for q in positions}
    assert len(got) == len(OLD_POSITION_ROWS)
    assert [(t, got[t].status, got[t].payout) for t in ("open", "sold", "won", "lost")] == [
        ("open", "open", None), ("sold", "closed", None), ("won", "paid", D(1)), ("lost", "lost", D(0))]
    assert got["open"].size == D("10") and got["open"].cost == D("4") and got["won"].realised == D("6")


def test_version_7_database_keeps_every_position_and_its_settled_rows_stay_settled(tmp_path):
    path = tmp_path / "v7.db"
    db = _old_sqlite(path, 7)
    db.executemany(f"INSERT INTO positions ({OLD_POSITION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   OLD_POSITION_ROWS)
    db.close()
    with SqliteStore(path) as s:
        assert s.schema_version == len(MIGRATIONS) >= 8 and s.integrity_check() == "ok"
        assert_old_positions_kept(s.positions(include_closed=True))
        assert [q.title for q in s.positions()] == ["open"]
        assert s.realised_total() == D("4.5")


# reasons as copytrader recorded them before they took the names of the settings (issue 14)
OLD_REASONS = {"max_trade_notional": "max_trade_usdc", "max_market_notional": "max_market_usdc",
               "max_total_exposure": "max_total_exposure_usdc", "leader_budget": "budget_usdc",
               "daily_loss_limit": "daily_loss_limit_usdc", "rate_limit": "max_orders_per_window",
               "price_band": "price_band", "": ""}


# the intent columns before migration 7 (SQLite; PostgreSQL 4) added settlement and booked
OLD_INTENT_FIELDS = _INTENT_FIELDS[:_INTENT_FIELDS.index("settlement")]


def test_old_reasons_of_an_sqlite_database_read_as_the_settings_names(tmp_path):
    path = tmp_path / "v4.db"
    db = _old_sqlite(path, 4)
    cols = ", ".join(OLD_INTENT_FIELDS)
    for n, old in enumerate(OLD_REASONS):
        db.execute(f"INSERT INTO intents ({cols}) VALUES ({', '.join('?' * len(OLD_INTENT_FIELDS))})",
                   (f"i{n}", f"t{n}", "f", LEADER, TOKEN, CONDITION, "BUY", "100", "0.5",
                    (T0 + timedelta(seconds=n)).isoformat(timespec="microseconds"), "rejected", "skipped", old,
                    "detail", None, None, "FOK", "0", None, "0", None, "", "", None, "m"))
    db.close()
    with SqliteStore(path) as s:
        assert [r.reason for r in reversed(s.history(20))] == list(OLD_REASONS.values())


def test_fills_of_a_version_6_database_are_final_after_migration_and_every_row_stays(tmp_path):
    """Migration 7 (settlement): the fills booked before it were taken as final then, and stay so."""
    from copytrader.domain.model import Settlement

    path = tmp_path / "v6.db"
    db = _old_sqlite(path, 6)
    cols = ", ".join(OLD_INTENT_FIELDS)
    for n, status in enumerate(("filled", "partial", "skipped", "unknown")):
        db.execute(f"INSERT INTO intents ({cols}) VALUES ({', '.join('?' * len(OLD_INTENT_FIELDS))})",
                   (f"i{n}", f"t{n}", "f", LEADER, TOKEN, CONDITION, "BUY", "100", "0.5",
                    (T0 + timedelta(seconds=n)).isoformat(timespec="microseconds"), "approved", status, "", "",
                    "10", "0.5", "FOK", "10" if n < 2 else "0", "0.5" if n < 2 else None, "0", None, f"0x{n}", "",
                    None, "m"))
    db.close()
    with SqliteStore(path) as s:
        assert s.schema_version == len(MIGRATIONS) and s.integrity_check() == "ok"
        rows = list(reversed(s.history(10)))
        assert [r.intent_id for r in rows] == ["i0", "i1", "i2", "i3"]
        assert [(r.status.value, r.filled_size, r.settlement) for r in rows] == [
            ("filled", D("10"), Settlement.FINAL), ("partial", D("10"), Settlement.FINAL),
            ("skipped", D("0"), Settlement.FINAL), ("unknown", D("0"), Settlement.FINAL)]
        assert [r.intent_id for r in s.open_intents()] == ["i3"]
        assert s.intents_in(Settlement.PROVISIONAL) == [] == s.intents_in(Settlement.REVERSED)
        s.put_intent(attrs.evolve(rows[0], settlement=Settlement.PROVISIONAL, booked="10 5 0 0 10 0"))
        assert [(r.intent_id, r.booked) for r in s.intents_in(Settlement.PROVISIONAL)] == [("i0", "10 5 0 0 10 0")]


def test_provisional_and_reversed_intents_round_trip(store):
    from copytrader.domain.model import Settlement

    with store.transaction():
        for n in range(4):
            settlement = (Settlement.FINAL, Settlement.PROVISIONAL, Settlement.REVERSED, Settlement.PROVISIONAL)[n]
            store.put_intent(attrs.evolve(record(n), settlement=settlement,
                                          booked="" if n % 2 == 0 else f"{n} 0.5 -0.01 0.01 {n} 0"))
    assert [r.intent_id for r in store.intents_in(Settlement.PROVISIONAL)] == ["intent-1", "intent-3"]
    assert [r.intent_id for r in store.intents_in(Settlement.PROVISIONAL, limit=1)] == ["intent-1"]
    assert [r.intent_id for r in store.intents_in(Settlement.REVERSED)] == ["intent-2"]
    assert store.get_intent("intent-3").booked == "3 0.5 -0.01 0.01 3 0"
    assert store.get_intent("intent-3").settlement is Settlement.PROVISIONAL


def test_trade_prices_come_newest_first_for_the_tokens_asked(store):
    """What the run summary marks open positions at (the report's marks): the leaders' last traded price."""
    from copytrader.application.report import latest_marks

    other = "9" * 70
    trades = [make_trade(price="0.41", seq=1, timestamp=100), make_trade(token_id=other, price="0.2", seq=2,
                                                                          timestamp=101),
              make_trade(price="0.4321", seq=3, timestamp=102), make_trade(kind="REDEEM", price="1", seq=4,
                                                                            timestamp=103),
              make_trade(token_id="elsewhere", price="0.9", seq=5, timestamp=104)]
    with store.transaction():
        for t in trades:
            store.add_trade(t)
    assert list(store.trade_prices_newest_first({TOKEN, other})) == [(TOKEN, D("0.4321")), (other, D("0.2")),
                                                                    (TOKEN, D("0.41"))]
    assert list(store.trade_prices_newest_first(set())) == []
    assert latest_marks(store.trade_prices_newest_first({TOKEN, other, "none"}), {TOKEN, other, "none"}) == \
        {TOKEN: D("0.4321"), other: D("0.2")}


def test_a_redemption_record_round_trips_and_only_unfinished_ones_are_listed_as_such(store):
    from datetime import datetime, timezone

    from copytrader.domain.redemption import PAID, SENT, Call, Redemption, redemption_id

    at = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    wallet = "0x" + "ab" * 20
    first = Redemption(redemption_id("0x" + "c1" * 32, wallet), "0x" + "c1" * 32, wallet, "eoa", "v1",
                       "0x" + "4d" * 20, (str(10**70 + 1),), (40_000_000,), 40_000_000,
                       (Call("0x" + "ad" * 20, "redeemPositions", ("a", 1), "0x01b7037c"),), requested_at=at,
                       updated_at=at, nonce=3)
    second = Redemption(redemption_id("0x" + "c2" * 32, wallet), "0x" + "c2" * 32, wallet, "relayer", "v2",
                        "0x" + "00" * 20, (str(10**70 + 2),), (1,), 1, requested_at=at)
    with store.transaction():
        store.put_redemption(first)
        store.put_redemption(second)
    with store.transaction():
        store.put_redemption(second.moved(PAID, at, paid=1))
    assert store.get_redemption(first.id) == first
    assert [r.id for r in store.redemptions(unfinished=True)] == [first.id]
    assert {r.id: r.state for r in store.redemptions()} == {first.id: "requested", second.id: PAID}
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.put_redemption(first.moved(SENT, at, tx_hash="0x" + "11" * 32))
            raise RuntimeError("crash before commit")
    assert store.get_redemption(first.id).state == "requested"  # nothing half-written
    assert redemption_id("0x" + "C1" * 32, wallet.upper()) == first.id  # one per market and wallet
