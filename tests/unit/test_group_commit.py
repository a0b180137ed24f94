"""SQLite group commit: deferred transactions (rows that send nothing) wait in a
queue and reach the database together; everything else commits at once, with
the queue before it. A second connection shows what is on disk."""
from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.domain.model import IntentRecord, IntentStatus, PreparedOrder, TradingState
from copytrader.ports import StoredState
from copytrader.testing import CONDITION, LEADER, T0, TOKEN, book, make_app, make_trade


class Clock:
    """The store's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def db(tmp_path):
    return tmp_path / "ct.db"


@pytest.fixture
def store(db, clock):
    s = SqliteStore(db, group_rows=3, group_ms=100, clock=clock)
    yield s
    s.close()


def on_disk(db, sql: str) -> list:
    """What another connection reads."""
    with sqlite3.connect(db) as other:
        return other.execute(sql).fetchall()


def cursors(db) -> list:
    return on_disk(db, "SELECT feed, cursor FROM cursors ORDER BY feed")


def intent(n: int, status: IntentStatus = IntentStatus.SKIPPED) -> IntentRecord:
    return IntentRecord(intent_id=f"intent-{n}", trade_id=f"trade-{n}", follower="default", leader=LEADER,
                        token_id=TOKEN, condition_id=CONDITION, side="BUY", leader_size=Decimal(10),
                        leader_price=Decimal("0.5"), created_at=T0,
                        decision="rejected" if status is IntentStatus.SKIPPED else "approved", status=status)


def deferred(store, key: str, cursor: str) -> None:
    with store.transaction(defer=True):
        store.set_cursor(key, cursor)


def test_deferred_transactions_commit_together_every_group_rows(store, db):
    deferred(store, "a", "1")
    deferred(store, "b", "1")
    assert cursors(db) == []  # queued: nothing on disk, no write lock held
    deferred(store, "c", "1")
    assert cursors(db) == [("a", "1"), ("b", "1"), ("c", "1")]


def test_the_oldest_waits_at_most_group_ms(store, db, clock):
    deferred(store, "a", "1")
    clock.now = 0.099
    store.idle()
    assert cursors(db) == []
    clock.now = 0.1
    store.idle()  # the run loop asks between items and while a polling feed waits
    assert cursors(db) == [("a", "1")]
    deferred(store, "b", "1")
    clock.now = 0.25
    deferred(store, "c", "1")  # the oldest is due: the group commits as this one ends
    assert cursors(db) == [("a", "1"), ("b", "1"), ("c", "1")]


def test_one_row_a_group_commits_each_transaction(db):
    with SqliteStore(db, group_rows=1) as s:
        deferred(s, "a", "1")
        assert cursors(db) == [("a", "1")]


def test_a_queued_trade_is_a_duplicate(store, db):
    trade = make_trade(seq=1)
    with store.transaction(defer=True):
        store.add_trade(trade)
        assert store.has_trade(trade.id)  # inside its own transaction too
    assert store.has_trade(trade.id) and not store.has_trade(make_trade(seq=2).id)
    assert on_disk(db, "SELECT id FROM trades") == []


def test_reads_see_the_queue(store, db):
    deferred(store, "a", "1")
    assert store.get_cursor("a") == "1"  # a read of what deferred rows write commits them first
    assert cursors(db) == [("a", "1")]


def test_a_transaction_that_is_not_deferred_commits_the_queue_first(store, db):
    deferred(store, "a", "1")
    with store.transaction():
        store.put_intent(intent(1, IntentStatus.PENDING))
        store.put_order(PreparedOrder("intent-1", "0xorder", {}), T0)
        assert cursors(db) == []  # not committed yet
    assert cursors(db) == [("a", "1")]
    assert on_disk(db, "SELECT intent_id, status FROM intents") == [("intent-1", "pending")]


def test_a_write_that_can_lead_to_an_order_is_never_deferred(store, db):
    deferred(store, "a", "1")
    with store.transaction(defer=True):
        store.put_intent(intent(2))  # rejected: may wait
        store.put_intent(intent(1, IntentStatus.PENDING))  # may lead to an order: all of it commits now
    assert cursors(db) == [("a", "1")]
    assert on_disk(db, "SELECT intent_id FROM intents ORDER BY seq") == [("intent-2",), ("intent-1",)]


def test_a_nested_transaction_not_deferred_makes_the_outer_commit_at_once(store, db):
    with store.transaction(defer=True):
        store.set_cursor("a", "1")
        with store.transaction():
            store.set_state(StoredState(TradingState.HALTED, "test"))
    assert cursors(db) == [("a", "1")] and on_disk(db, "SELECT state FROM state") == [("HALTED",)]


def test_close_commits_the_queue(db):
    s = SqliteStore(db, group_rows=100)
    deferred(s, "a", "1")
    s.close()
    assert cursors(db) == [("a", "1")]


def test_flush_commits_the_queue_and_nothing_else(store, db):
    store.flush()  # nothing queued: nothing to do
    deferred(store, "a", "1")
    store.flush()
    assert cursors(db) == [("a", "1")]


def test_a_rolled_back_transaction_drops_its_rows_and_keeps_the_queue(store, db):
    deferred(store, "a", "1")
    with pytest.raises(RuntimeError):
        with store.transaction(defer=True):
            store.set_cursor("b", "1")
            store.add_trade(make_trade(seq=1))
            raise RuntimeError("boom")
    assert not store.has_trade(make_trade(seq=1).id)
    with pytest.raises(RuntimeError):
        with store.transaction():  # not deferred: the queue is written into it, and rolled back with it
            store.set_cursor("c", "1")
            raise RuntimeError("boom")
    assert cursors(db) == []
    store.flush()  # still queued
    assert cursors(db) == [("a", "1")]


def test_a_failed_flush_raises_and_keeps_the_queue(store, db):
    deferred(store, "a", "1")
    store._db.execute("PRAGMA busy_timeout=0")
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        store.flush()
    other.execute("ROLLBACK")
    other.close()
    store.flush()
    assert cursors(db) == [("a", "1")]


def test_the_same_cursor_or_holding_is_written_once_per_group(store, db):
    traced = []
    store._db.set_trace_callback(traced.append)
    for cursor in ("1", "2", "3"):
        deferred(store, "a", cursor)
    assert cursors(db) == [("a", "3")]
    assert sum(sql.startswith("INSERT INTO cursors") for sql in traced) == 1


def test_rows_keep_their_order(store, db):
    for n in (3, 1, 2):
        with store.transaction(defer=True):
            store.put_intent(intent(n))
            store.set_cursor("a", str(n))
    assert on_disk(db, "SELECT intent_id FROM intents ORDER BY seq") == [("intent-3",), ("intent-1",), ("intent-2",)]
    assert cursors(db) == [("a", "2")]


def test_changed_says_when_another_connection_or_a_control_write_committed(store, db):
    assert store.changed()  # the first time: cannot know
    assert not store.changed()
    deferred(store, "a", "1")
    store.flush()
    assert not store.changed()  # our own rows that send nothing
    with SqliteStore(db, lock=False) as control:  # `copytrader halt`
        with control.transaction():
            control.set_state(StoredState(TradingState.HALTED, "operator"))
    assert store.changed() and not store.changed()
    with store.transaction():
        store.pause_leader(LEADER, T0, "test")
    assert store.changed() and not store.changed()
    with store.transaction(defer=True):  # a deferred transaction whose write makes it commit at once
        store.resume_leader(LEADER)
    assert store.changed()


@pytest.fixture
def engine(db):
    s = SqliteStore(db, group_rows=256)
    app, fakes = make_app(store=s)
    fakes.market.put(*book(TOKEN, bids=[("0.49", "5000")], asks=[("0.51", "5000")]))
    yield app, fakes
    s.close()


def test_a_halt_from_another_process_applies_to_the_next_trade(engine, db):
    app, _ = engine
    assert app.process(make_trade(seq=1)).status == "filled"
    with SqliteStore(db, lock=False) as control:
        with control.transaction():
            control.set_state(StoredState(TradingState.HALTED, "operator"))
    assert app.process(make_trade(seq=3)).reason == "trading_halted"


def test_a_pause_from_another_process_applies_to_the_next_buy(engine, db):
    app, _ = engine
    assert app.process(make_trade(seq=1)).status == "filled"
    with SqliteStore(db, lock=False) as control:
        with control.transaction():
            control.pause_leader(LEADER, T0, "operator")
    assert app.process(make_trade(seq=2)).reason == "leader_paused"
    with SqliteStore(db, lock=False) as control:
        with control.transaction():
            control.resume_leader(LEADER)
    assert app.process(make_trade(seq=3)).status == "filled"


def test_rejections_wait_and_a_copy_commits_them_first(engine, db):
    app, fakes = engine
    app.service.halt("test")
    app.process(make_trade(seq=1))
    app.process(make_trade(seq=2))
    assert on_disk(db, "SELECT count(*) FROM intents") == [(0,)]  # rejected: queued
    app.service.resume()
    assert app.process(make_trade(seq=3)).status == "filled"
    statuses = on_disk(db, "SELECT status FROM intents ORDER BY seq")
    assert statuses == [("skipped",), ("skipped",), ("filled",)]


@pytest.mark.parametrize("with_stop", [False, True])
def test_a_polling_feeds_wait_commits_the_queue_first(engine, db, with_stop):
    # App.run with a stop event (the feed waits on it; the supervisor's followers too) or without
    # (the feed keeps its own sleep): either way the queued rejection is on disk before the wait.
    import threading

    from copytrader.adapters.feeds.polling import Polling
    from copytrader.ports import FeedItem

    class TwoRounds(Polling):  # a polling feed: a rejected trade, a wait, another round
        name = "rounds"

        def read(self, cursors):
            for rounds in (1, 2):
                yield FeedItem(str(rounds), make_trade(seq=rounds))
                if not self._another_round(rounds):
                    return

    waited = []

    def wait(seconds):
        waited.append((seconds, on_disk(db, "SELECT count(*) FROM intents")))

    class Stop(threading.Event):
        def wait(self, timeout=None):
            wait(timeout)
            return False

    feed = TwoRounds(5, sleep=wait, max_polls=2)
    app, _ = engine
    app.service.halt("test")
    summary = app.run(feed, stop=Stop() if with_stop else None)
    assert summary.seen == 2 and waited == [(5, [(1,)])]  # the first rejection was on disk before the wait
    assert on_disk(db, "SELECT count(*) FROM intents") == [(2,)]
