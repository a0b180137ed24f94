"""The Data API feed against its loopback stand-in: paging, restarts,
duplicates, late and out-of-order rows, the shared rate budget, faults."""
from __future__ import annotations

import random

import pytest
from dependency_injector import providers

from copytrader.adapters.feeds.data_api import DataApiFeed
from copytrader.adapters.feeds.http import FeedError, JsonGetter, TokenBucket
from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.ports import Quarantined
from copytrader.testing import TOKEN, book, make_app
from tests.standins.data_api import DataApiStandIn, activity_row

T = 1_793_500_000
A, B = "0x" + "a1" * 20, "0x" + "b2" * 20


class FakeTime:
    """One clock for the bucket, the retries and the poll loop: sleeping advances it."""

    def __init__(self, start: float = T) -> None:
        self.now = start
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def api():
    with DataApiStandIn() as server:
        yield server


def feed(api, leaders, clock, rate=1000.0, burst=1000, max_polls=1, **kw):
    bucket = TokenBucket(rate, burst, monotonic=clock.time, sleep=clock.sleep)
    http = JsonGetter(api.url, bucket, timeout_s=0.3, sleep=clock.sleep, rng=random.Random(7),
                      max_attempts=kw.pop("max_attempts", 5))
    return DataApiFeed(http, leaders, clock_s=clock.time, sleep=clock.sleep, max_polls=max_polls,
                       lookback_s=kw.pop("lookback_s", 10**6), **kw)


def drain(f, cursors=None):
    store = {}
    items = []
    for item in f.read(lambda key: (cursors or store).get(key)):
        store[item.key] = item.cursor
        items.append(item)
    return items, store


def test_pages_past_500_rows_once_each_in_order(api):
    api.add(*(activity_row(A, T - 2000 + i // 3, i) for i in range(1200)))
    items, _ = drain(feed(api, [A], FakeTime()))
    hashes = [i.payload.tx_hash for i in items]
    assert len(hashes) == 1200 == len(set(hashes))
    assert [r["offset"] for r in api.requests] == ["0", "500", "1000"]


def test_history_deeper_than_the_offset_cap_moves_the_window(api):
    api.add(*(activity_row(A, T - 10_000 + i, i) for i in range(5600)))
    items, _ = drain(feed(api, [A], FakeTime()))
    assert len({i.payload.tx_hash for i in items}) == 5600 == len(items)
    assert all(int(r["offset"]) <= 5000 for r in api.requests)
    assert len({r["start"] for r in api.requests}) >= 2


def test_duplicates_and_out_of_order_pages_give_each_row_once(api):
    api.add(*(activity_row(A, T - 100 + i, i) for i in range(40)))
    api.reverse_pages, api.duplicate_every, api.shift_pages = True, 3, True
    items, _ = drain(feed(api, [A], FakeTime(), page_limit=7))
    hashes = [i.payload.tx_hash for i in items]
    assert len(hashes) == 40 == len(set(hashes))


def test_a_late_row_inside_the_overlap_is_still_delivered(api):
    clock = FakeTime()
    api.add(*(activity_row(A, T - 50 + i, i) for i in range(5)))
    first, cursors = drain(feed(api, [A], clock))
    api.add(activity_row(A, T - 48, 99))  # indexed late, older than rows already seen
    second, _ = drain(feed(api, [A], clock), cursors)
    assert [i.payload.tx_hash for i in second] == ["0x" + f"{99:064x}"]


def test_restart_in_the_middle_of_a_page_misses_and_doubles_nothing(api, tmp_path):
    rows = [activity_row(A, T - 3000 + i, i, size=10 + i % 7) for i in range(700)]
    api.add(*rows)
    db = tmp_path / "ct.db"

    def engine(max_items):
        store = SqliteStore(db)
        app, fakes = make_app({"risk": {"max_orders_per_window": "off", "max_total_exposure_usdc": "off",
                                        "max_market_usdc": "off"}, "follower": {"max_trade_age_s": "100000"}},
                              store=store, environ={"COPYTRADER_LEADERS": A})
        fakes.market.put(*book(TOKEN, asks=[("0.50", "1000000")], bids=[("0.49", "1000000")]))
        app.container.feed.override(providers.Object(feed(api, [A], FakeTime())))
        summary = app.run(max_items=max_items)
        app.close()
        return summary

    first = engine(250)  # stops inside the first 500-row page
    second = engine(None)
    assert first.seen == 250 and second.seen == 450
    with SqliteStore(db, read_only=True) as store:
        history = store.history(limit=10_000)
    assert len(history) == 700 == len({r.trade_id for r in history})
    assert {r.status.value for r in history} == {"filled"}


def test_several_leaders_share_one_rate_budget(api):
    leaders = ["0x" + f"{i:040x}" for i in range(1, 13)]
    for n, leader in enumerate(leaders):
        api.add(*(activity_row(leader, T - 900 + i, n * 1000 + i) for i in range(30)))
    clock = FakeTime()
    f = feed(api, leaders, clock, rate=2.0, burst=4, max_polls=3, page_limit=10, poll_interval_s=1)
    items, _ = drain(f)
    assert len(items) == 12 * 30
    times = f.http.bucket.log
    assert len(times) == len(api.requests) >= 12 * 3
    for t in times:  # in any 10 s window: burst + rate x 10 at most
        assert sum(1 for u in times if t - 10 < u <= t) <= 4 + 2 * 10


def test_429_retry_after_and_5xx_backoff_are_honoured(api):
    api.add(*(activity_row(A, T - 10 + i, i) for i in range(3)))
    api.inject("429", "503", "malformed", "truncated", "429-bare")
    clock = FakeTime()
    f = feed(api, [A], clock, max_attempts=6)
    items, _ = drain(f)
    assert len(items) == 3
    assert f.http.waits[0] == 1.0  # Retry-After
    assert all(0 <= w <= 30 for w in f.http.waits) and len(f.http.waits) == 5


def test_persistent_failure_is_one_clear_error(api):
    api.inject(*["500"] * 3)
    with pytest.raises(FeedError) as err:
        drain(feed(api, [A], FakeTime(), max_attempts=3))
    assert str(err.value).startswith(f"GET {api.url}/activity: HTTP 500 after 3 attempts")


def test_offline_is_one_clear_error():
    f = feed(type("Gone", (), {"url": "http://127.0.0.1:9"})(), [A], FakeTime(), max_attempts=2)
    with pytest.raises(FeedError, match=r"GET http://127.0.0.1:9/activity: .*after 2 attempts"):
        drain(f)


def test_bad_rows_are_quarantined_and_foreign_rows_refused(api):
    good = activity_row(A, T - 5, 1)
    api.add(good, {**activity_row(A, T - 4, 2), "price": "abc"})
    api.rows[A].append({**activity_row(B, T - 3, 3)})  # another wallet's row in A's feed
    items, _ = drain(feed(api, [A], FakeTime()))
    kinds = [type(i.payload).__name__ for i in items]
    assert kinds == ["LeaderTrade", "Quarantined", "Quarantined"]
    assert "price is not a number" in items[1].payload.reason and "in the feed of" in items[2].payload.reason
    assert all(isinstance(i.payload, Quarantined) or i.payload.leader == A for i in items)


def test_non_trade_rows_are_read(api):
    api.add(activity_row(A, T - 5, 1), activity_row(A, T - 4, 2, kind="REDEEM"))
    items, _ = drain(feed(api, [A], FakeTime()))
    assert [i.payload.kind for i in items] == ["TRADE", "REDEEM"]
    assert api.requests[0]["type"] == "TRADE,REDEEM,MERGE,SPLIT"


def test_a_new_leader_starts_now_not_from_the_beginning(api):
    api.add(activity_row(A, T - 4000, 1), activity_row(A, T - 10, 2))
    items, _ = drain(feed(api, [A], FakeTime(), lookback_s=0, overlap_s=60))
    assert [i.payload.tx_hash for i in items] == ["0x" + f"{2:064x}"]


def test_stop_when_ends_after_the_round_and_waits_with_the_given_wait(api):
    import threading

    api.add(activity_row(A, T - 50, 1))
    clock = FakeTime()
    f = feed(api, [A], clock, max_polls=None, poll_interval_s=7.0)
    stop, waits, rounds = threading.Event(), [], []

    def should_stop():
        rounds.append(1)
        return len(rounds) >= 3 or stop.is_set()

    f.stop_when(should_stop, lambda s: waits.append(s) or stop.wait(0))
    items, _ = drain(f)
    assert len(rounds) == 3 and waits == [7.0, 7.0]  # two waits between three rounds, none after the last
    assert [i.payload.tx_hash for i in items if hasattr(i.payload, "tx_hash")] == ["0x" + f"{1:064x}"]
    assert 7.0 not in clock.slept  # the feed's own sleep is no longer used between rounds
    stop.set()
    rounds.clear()
    drain(f)  # a stop already set: one round, then the end
    assert len(rounds) == 1 and waits == [7.0, 7.0]
