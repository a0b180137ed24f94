"""The fast paths keep behaviour: direct constructors equal attrs.evolve, one
transaction per paper trade rolls back whole, SQLite checkpoints happen, the
leader-price market follows the leaders."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import attrs
import pytest
from dependency_injector import providers
from hypothesis import given
from hypothesis import strategies as st

from copytrader.adapters.feeds.memory import MemoryFeed
from copytrader.adapters.market.leader_price import LeaderPriceMarket
from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.domain.model import ExecStatus, ExecutionResult, IntentRecord, IntentStatus, Side
from copytrader.domain.portfolio import Position
from copytrader.testing import CONDITION, LEADER, T0, TOKEN, RecordingAlerter, book, make_app, make_trade


def test_with_result_and_fill_equal_attrs_evolve_field_for_field():
    rec = IntentRecord("i", "t", "f", LEADER, TOKEN, CONDITION, "BUY", D("100"), D("0.5"), T0, "reduced",
                       IntentStatus.PENDING, reason="max_trade_usdc", detail="d", size=D("10"),
                       limit_price=D("0.51"), order_type="FOK", execution_id="0xabc", title="m")
    result = ExecutionResult("i", ExecStatus.PARTIAL, filled_size=D("4"), avg_price=D("0.505"), fee=D("0.01"),
                             execution_id="", error="e")
    fast = rec.with_result(result, IntentStatus.PARTIAL, T0 + timedelta(seconds=1))
    slow = attrs.evolve(rec, status=IntentStatus.PARTIAL, filled_size=D("4"), avg_price=D("0.505"), fee=D("0.01"),
                        slippage=D("0.005"), execution_id="0xabc", error="e", updated_at=T0 + timedelta(seconds=1))
    assert attrs.asdict(fast) == attrs.asdict(slow)
    pos = Position(LEADER, TOKEN, CONDITION, size=D("10"), cost=D("5"), realised=D("1"), fees=D("0.1"),
                   bought=D("12"), sold=D("2"), last_price=D("0.5"), settled=False, title="m")
    for side, size in ((Side.BUY, D("3")), (Side.SELL, D("4"))):
        new = pos.fill(side, size, D("0.6"), D("0.02"))
        changed = {f for f in attrs.fields_dict(Position) if getattr(new, f) != getattr(pos, f)}
        assert changed <= {"size", "cost", "realised", "fees", "bought", "sold", "last_price"}
        assert new.title == "m" and new.leader == LEADER and new.condition_id == CONDITION


def test_a_paper_trade_is_one_transaction_a_failure_at_the_fill_rolls_all_back():
    app, fakes = make_app()
    fakes.market.put(*book(TOKEN, asks=[("0.51", "300")], bids=[("0.49", "300")]))
    store = fakes.store
    original = store.put_position

    def failing(position):
        raise OSError("disk full")

    store.put_position = failing  # fails after the intent was written, inside the same transaction
    feed = MemoryFeed([make_trade()])
    with pytest.raises(OSError):
        app.run(feed=feed)
    store.put_position = original
    assert not store.has_trade(make_trade().id) and store.get_cursor("memory") is None and app.history() == []
    assert app.run(feed=feed).copied == 1 and len(app.history()) == 1
    assert app.positions()[0].size > 0
    app.close()


def test_sqlite_checkpoints_in_idle_and_by_itself_past_the_hard_cap(tmp_path):
    store = SqliteStore(tmp_path / "c.db")
    store.CHECKPOINT_EVERY, store.CHECKPOINT_HARD = 3, 7
    store._written = 0  # the migration at open wrote
    for i in range(2):
        with store.transaction():
            store.set_cursor("f", str(i))
    store.idle()
    assert store._written == 2  # not yet
    with store.transaction():
        store.set_cursor("f", "x")
    store.idle()
    assert store._written == 0
    for i in range(7):  # nobody calls idle(): the seventh commit checkpoints
        with store.transaction():
            store.set_cursor("f", str(i))
    assert store._written == 0
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    store.close()


def test_leader_price_market_books_the_last_price_and_finest_tick():
    m = LeaderPriceMarket()
    assert m.market(TOKEN) is None and m.book(TOKEN) is None
    m.observe(make_trade(price="0.5"))
    assert m.market(TOKEN).tick_size == D("0.01") and m.book(TOKEN).best_ask == D("0.5")
    m.observe(make_trade(price="0.017", seq=2))
    assert m.market(TOKEN).tick_size == D("0.001") and m.book(TOKEN).best_bid == D("0.017")
    m.observe(make_trade(price="0.25", seq=3))  # a coarser price never coarsens the tick
    assert m.market(TOKEN).tick_size == D("0.001") and m.market(TOKEN).condition_id == CONDITION
    m.observe(make_trade(price="1.5", seq=4))  # nonsense prices are ignored
    assert m.book(TOKEN).best_ask == D("0.25")


def test_positions_in_a_market_come_from_the_index():
    from copytrader.domain.portfolio import Portfolio

    p = Portfolio()
    for i, (token, cond) in enumerate((("1", "c1"), ("2", "c1"), ("3", "c2"))):
        p.apply_fill(LEADER, token, cond, Side.BUY, D("10"), D("0.5"), D("0"), "d")
    assert [x.token_id for x in p.positions_in("c1")] == ["1", "2"]
    assert [x.token_id for x in p.positions_in("c2")] == ["3"] and p.positions_in("none") == []
    p.apply_fill(LEADER, "1", "c1", Side.SELL, D("10"), D("0.5"), D("0"), "d")
    assert [x.token_id for x in p.positions_in("c1")] == ["2"]


@given(st.integers(-10**12, 10**12), st.integers(0, 14),
       st.sampled_from(["1", "0.1", "0.01", "0.001", "0.0001", "0.010", "0.05", "0.25", "1E+1", "10"]))
def test_round_down_and_up_equal_the_general_formula_for_every_step(units, places, step_text):
    from decimal import ROUND_DOWN, ROUND_UP

    from copytrader.domain.model import round_down, round_up

    value, step = D(units).scaleb(-places), D(step_text)  # a fresh step object: no cached answer to lean on
    for fast, rounding in ((round_down, ROUND_DOWN), (round_up, ROUND_UP)):
        general = ((value / step).to_integral_value(rounding=rounding) * step).quantize(step)
        got = fast(value, step)
        assert got == general and str(got) == str(general)  # same value and the same exponent
        assert fast(value, D(step_text)) == got


def test_a_paper_trade_writes_no_order_row_and_a_feeless_buy_leaves_the_days_pnl_row_alone():
    app, fakes = make_app(profile="paper")
    fakes.market.put(*book(TOKEN, asks=[("0.51", "300")], bids=[("0.49", "300")]))
    writes: list[str] = []
    store = fakes.store
    for name in ("put_order", "put_daily_realised"):
        original = getattr(store, name)
        setattr(store, name, lambda *a, _n=name, _o=original: (writes.append(_n), _o(*a))[1])
    app.run(feed=MemoryFeed([make_trade(), make_trade(side="SELL", size="100", price="0.49", seq=2)]))
    buy, sell = reversed(app.history())
    assert buy.status is sell.status is IntentStatus.FILLED
    assert buy.execution_id and sell.execution_id  # the paper order ids are on the intents
    assert writes == ["put_daily_realised"]  # no order rows; the day's row only for the sell's loss
    assert store.daily_realised(T0.date().isoformat()) < 0
    app.close()


def test_a_silent_alerter_is_told_nothing_and_a_real_one_everything():
    from copytrader.adapters.alerts.log import NullAlerter

    for alerter, expected in ((NullAlerter(), 0), (RecordingAlerter(), 2)):
        sent: list[str] = []
        original = alerter.send
        alerter.send = lambda kind, message, _o=original, **data: (sent.append(kind), _o(kind, message, **data))
        app, fakes = make_app(profile="paper")
        app.container.alerter.override(providers.Object(alerter))
        fakes.market.put(*book(TOKEN, asks=[("0.51", "300")], bids=[("0.49", "300")]))
        summary = app.run(feed=MemoryFeed([make_trade(), make_trade(price="1.5", seq=2)]))
        assert summary.copied == 1 and summary.rejected["invalid_price"] == 1
        assert len(sent) == expected and (not sent or sent == ["fill", "rejected"])
        app.close()


def _replay_rows(n: int) -> list:
    from copytrader.ports import Quarantined

    rows = []
    for i in range(n):
        if i % 7 == 3:
            rows.append(Quarantined(f"f:{i}", "{}", "missing proxyWallet"))
        else:
            sell = i % 5 == 4
            rows.append(make_trade(side="SELL" if sell else "BUY", size="40" if sell else "100",
                                   price="0.49" if sell else "0.50", seq=i + 1))
    return rows


def _state(store):
    return ([attrs.astuple(r) for r in reversed(store.history(1000))], store.positions(include_closed=True),
            store.get_cursor("memory"), store.leader_holdings())


def test_commits_in_chunks_give_the_same_database_as_a_commit_per_row(tmp_path):
    from copytrader.application.runner import run

    rows = _replay_rows(40)
    states = []
    for every in (1, 6):
        app, fakes = make_app(profile="paper", store=SqliteStore(tmp_path / f"c{every}.db"),
                              overrides={"risk": {"max_orders_per_window": "off"}})
        fakes.market.put(*book(TOKEN, asks=[("0.51", "100000")], bids=[("0.49", "100000")]))
        summary = run(app.service, MemoryFeed(rows), commit_every=every)
        assert summary.seen == 40 and summary.copied > 20
        states.append(_state(fakes.store))
        app.close()
    assert states[0] == states[1] and states[0][2] == "40"


def test_a_failure_inside_a_chunk_rolls_the_chunk_back_and_the_rerun_ends_the_same(tmp_path):
    from copytrader.application.runner import run

    rows = _replay_rows(30)
    app, fakes = make_app(profile="paper", store=SqliteStore(tmp_path / "ref.db"),
                          overrides={"risk": {"max_orders_per_window": "off"}})
    fakes.market.put(*book(TOKEN, asks=[("0.51", "100000")], bids=[("0.49", "100000")]))
    run(app.service, MemoryFeed(rows))
    expected = _state(fakes.store)
    app.close()

    app, fakes = make_app(profile="paper", store=SqliteStore(tmp_path / "chunks.db"),
                          overrides={"risk": {"max_orders_per_window": "off"}})
    fakes.market.put(*book(TOKEN, asks=[("0.51", "100000")], bids=[("0.49", "100000")]))
    store, original, calls = fakes.store, fakes.store.put_position, []

    def failing_once(position):
        calls.append(1)
        if len(calls) == 15:
            raise OSError("disk full")
        original(position)

    store.put_position = failing_once
    with pytest.raises(OSError):
        run(app.service, MemoryFeed(rows), commit_every=10)
    assert store.get_cursor("memory") == "10"  # the first chunk committed; the failing one left nothing
    assert len(store.history(1000)) == 10 - sum(1 for r in rows[:10] if not hasattr(r, "side"))
    app.container.service.reset()  # a restart: caches reload from the store
    assert run(app.container.service(), MemoryFeed(rows), commit_every=10).seen == 20
    assert _state(store) == expected
    app.close()


def test_batched_commits_refuse_an_executor_whose_orders_leave_the_process():
    app, fakes = make_app(profile="paper")
    assert app.service.executor.simulated

    class Sending:
        simulated = False

    app.container.executor.override(providers.Object(Sending()))
    app.container.service.reset()
    with pytest.raises(ValueError, match="simulated executor"):
        with app.container.service().batch():
            pass
    app.close()


@given(st.lists(st.text(max_size=12), min_size=1, max_size=9))
def test_text_id_is_stable_id_of_the_same_texts(parts):
    from copytrader.domain.model import stable_id, text_id

    assert text_id(*parts) == stable_id(*parts)


def test_remembered_answers_are_the_computed_ones():
    from copytrader.domain.model import Side, dec_str
    from copytrader.domain.positions import parse_id
    from copytrader.domain.risk import RiskLimits, day_key
    from copytrader.domain.sizing import _limit_price, limit_price

    for text in ("1.50", "1.5", "0", "-0", "-0.00", "1E+3", "0.000001", "NaN", "-Infinity"):
        value = D(text)
        assert dec_str(value) == dec_str(value) == (format(value.normalize(), "f") if value.is_finite() else text)
    assert dec_str(D("-0.00")) == "-0" and dec_str(D("0.0")) == "0"
    for token in ("123", "0123", "12a", "", " 1", str(2**256), str(2**256 - 1), "１２"):
        first = parse_id(token)
        assert parse_id(token) == first
    assert parse_id("0123") is None and parse_id(str(2**256)) is None and parse_id(str(2**256 - 1)) == 2**256 - 1
    # 0.01 and 0.010 are equal keys, but the limit's text follows the tick it was made for
    for tick in (D("0.01"), D("0.010"), D("0.01"), D("0.05")):
        for side in (Side.BUY, Side.SELL):
            got = limit_price(side, D("0.51"), D("0.02"), tick)
            assert str(got) == str(_limit_price(side, D("0.51"), D("0.02"), tick))
    assert str(limit_price(Side.BUY, D("0.51"), D("0.02"), D("0.010"))) == "0.520"
    assert RiskLimits(window_s=90).window == timedelta(seconds=90) and RiskLimits().window == timedelta(seconds=60)
    assert day_key(T0) == T0.date().isoformat() == day_key(T0 + timedelta(hours=1))
