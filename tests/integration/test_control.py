"""The control use case (application.control) on real stores, next to a real
engine: every action recorded with its source, a pause that stops a leader's
buys (and survives a restart), and the CLI's halt/resume going through it."""
from __future__ import annotations

import json
from contextlib import nullcontext
from datetime import timedelta

import pytest
from click.testing import CliRunner

from copytrader.adapters.clock import ManualClock
from copytrader.adapters.storage.memory import MemoryStore
from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.application.control import Control, ControlError
from copytrader.domain.model import TradingState
from copytrader.entrypoints.cli import main
from copytrader.testing import LEADER, T0, TOKEN, book, make_app, make_trade

OTHER = "0x" + "ef" * 20


def sqlite_opener(path):
    return lambda: SqliteStore(path, lock=False, create=False)  # as `copytrader halt` opens it


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request, tmp_path):
    """Two followers' stores, opened afresh by each control call as a running engine's would be."""
    if request.param == "sqlite":
        paths = {name: tmp_path / f"{name}.db" for name in ("alice", "bob")}
        for p in paths.values():
            SqliteStore(p).close()
        yield {name: sqlite_opener(p) for name, p in paths.items()}
    else:
        from copytrader.adapters.storage.postgres import PostgresStore

        url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
        names = {"alice": f"{schema}_a", "bob": f"{schema}_b"}
        yield {name: (lambda s=s: PostgresStore(url, s, lock=False)) for name, s in names.items()}
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            for s in names.values():
                conn.execute(f'DROP SCHEMA IF EXISTS "{s}" CASCADE')


def test_actions_set_the_stored_state_and_are_recorded_newest_first(stores):
    clock = ManualClock(T0)
    control = Control(stores, clock, leaders={"alice": [LEADER], "bob": [LEADER, OTHER]})
    assert control.followers() == ["alice", "bob"]
    [act] = control.halt("alice", "risk desk", "dashboard")
    assert (act.follower, act.action, act.reason, act.source, act.at) == ("alice", "halt", "risk desk",
                                                                            "dashboard", T0)
    clock.advance(1)
    assert [a.follower for a in control.reduce_only(None, "wind down", "api")] == ["alice", "bob"]
    clock.advance(1)
    control.pause_leader("bob", OTHER.upper().replace("0X", "0x"), "telegram")
    clock.advance(1)
    control.resume("alice", "cli")
    with stores["alice"]() as s:
        assert s.get_state().state is TradingState.ACTIVE
    with stores["bob"]() as s:
        assert (s.get_state().state, s.get_state().reason) == (TradingState.REDUCING, "wind down")
        assert s.leader_paused(OTHER) and list(s.paused_leaders()) == [OTHER]
    assert [(a.follower, a.action, a.target, a.source) for a in control.actions()] == [
        ("alice", "resume", "", "cli"), ("bob", "pause_leader", OTHER, "telegram"),
        ("alice", "reduce_only", "", "api"), ("bob", "reduce_only", "", "api"), ("alice", "halt", "", "dashboard")]
    assert [a.action for a in control.actions("bob", limit=1)] == ["pause_leader"]


def test_bad_targets_are_refused_in_one_sentence_and_change_nothing(stores):
    control = Control(stores, ManualClock(T0), leaders={"alice": [LEADER], "bob": [LEADER]})
    with pytest.raises(ControlError, match="^no follower named 'carol' \\(followers: alice, bob\\)$"):
        control.halt("carol", "x", "cli")
    with pytest.raises(ControlError, match=f"^no leader {OTHER} in follower 'alice'$"):
        control.pause_leader("alice", OTHER, "dashboard")
    with pytest.raises(ControlError, match=f"^no follower follows leader {OTHER}$"):
        control.pause_leader(None, OTHER, "dashboard")
    with pytest.raises(ControlError, match="^leader address: leader address must be 0x"):
        control.pause_leader("alice", "0x12", "dashboard")
    with pytest.raises(ControlError, match=f"^leader {LEADER} is not paused in follower 'alice'$"):
        control.resume_leader("alice", LEADER, "dashboard")
    with pytest.raises(ControlError, match="^unknown control source 'web'"):
        control.halt("alice", "x", "web")
    assert control.actions() == []


def test_a_leader_added_at_run_time_can_be_paused(tmp_path):
    path = tmp_path / "ct.db"
    with SqliteStore(path) as s:
        from copytrader.domain.sizing import LeaderSettings

        s.put_leader(LeaderSettings(OTHER))
    control = Control({"default": sqlite_opener(path)}, ManualClock(T0), leaders={"default": [LEADER]})
    assert [a.target for a in control.pause_leader(None, OTHER, "api")] == [OTHER]


def engine_on(path):
    app, fakes = make_app(store=SqliteStore(path), overrides={"risk": {"max_trade_usdc": "50"}})
    for token in (TOKEN, "2" * 40):
        fakes.market.put(*book(token, bids=[("0.49", "500")], asks=[("0.51", "500")]))
    return app, fakes


def test_a_paused_leader_s_buys_are_not_copied_its_sells_are_and_the_pause_survives_a_restart(tmp_path):
    path = tmp_path / "ct.db"
    app, _ = engine_on(path)
    control = Control({"default": sqlite_opener(path)}, ManualClock(T0))  # follows every wallet
    try:
        assert app.process(make_trade(seq=1)).status == "filled"
        control.pause_leader(None, LEADER, "dashboard")  # another connection, while the engine holds the lock
        out = app.process(make_trade(seq=2))
        assert (out.status, out.reason) == ("rejected", "leader_paused")
        assert app.process(make_trade(leader=OTHER, token_id="2" * 40, seq=3)).status == "filled"
        assert app.process(make_trade(side="SELL", seq=4)).status == "filled"  # we exit with the leader
    finally:
        app.close()
    app, _ = engine_on(path)  # a restart: still paused
    try:
        assert app.process(make_trade(seq=5)).reason == "leader_paused"
        control.resume_leader(None, LEADER, "dashboard")
        assert app.process(make_trade(seq=6)).status == "filled"
        rejected = [r for r in app.history() if r.decision == "rejected"]
        assert [r.reason for r in rejected] == ["leader_paused", "leader_paused"]
        assert "buys not copied" in rejected[0].detail
    finally:
        app.close()


def test_a_halt_from_the_control_stops_the_running_engine_before_its_next_trade(tmp_path):
    path = tmp_path / "ct.db"
    app, fakes = engine_on(path)
    control = Control({"default": sqlite_opener(path)}, ManualClock(T0))
    try:
        assert app.process(make_trade(seq=1)).status == "filled"
        control.halt(None, "stop now", "dashboard")
        assert app.process(make_trade(seq=2)).reason == "trading_halted"
        control.resume(None, "dashboard")
        assert app.process(make_trade(seq=3)).status == "filled"
        # the engine tells its alert channels, as for a state it sets itself
        assert [a.message for a in fakes.alerter.sent if a.kind == "state"] == [
            "trading state HALTED: stop now", "trading state ACTIVE: resumed"]
    finally:
        app.close()


def test_memory_store_honours_the_same_contract():
    store = MemoryStore()
    control = Control({"default": lambda: nullcontext(store)}, ManualClock(T0))
    control.halt(None, "x", "api")
    control.pause_leader(None, LEADER, "api")
    assert store.get_state().state is TradingState.HALTED and store.leader_paused(LEADER)
    assert [a.action for a in control.actions()] == ["pause_leader", "halt"]


def test_cli_halt_and_resume_go_through_the_control_and_show_in_history(tmp_path):
    db = str(tmp_path / "ct.db")
    run = lambda *a: CliRunner().invoke(main, ["--db", db, *a], env={"COPYTRADER_CONFIG": None})
    assert run("halt").exit_code == 2  # no database: refused, nothing created
    res = run("halt", "--create", "--reason", "operator")
    assert res.exit_code == 0 and res.stdout == "trading state: HALTED (operator)\n"
    assert run("halt", "--reduce-only", "--reason", "wind").stdout == "trading state: REDUCING (wind)\n"
    assert run("resume").stdout == "trading state: ACTIVE\n"
    with SqliteStore(db, read_only=True) as s:
        assert s.get_state().state is TradingState.ACTIVE
        assert [(a.action, a.source) for a in s.controls()] == [("resume", "cli"), ("reduce_only", "cli"),
                                                                ("halt", "cli")]
    out = run("history").stdout
    assert "control: cli" in out and "halt" in out and "default · operator" in out
    data = json.loads(run("history", "--json").stdout)
    assert [(d["kind"], d["action"], d["source"]) for d in data] == [
        ("control", "resume", "cli"), ("control", "reduce_only", "cli"), ("control", "halt", "cli")]


def test_history_pages_show_each_control_action_once(tmp_path):
    from copytrader.application.dashboard import history_page
    from copytrader.ports import ControlAction
    from tests.contract.test_stores import record

    with SqliteStore(tmp_path / "ct.db") as s:
        for i in range(5):
            s.put_intent(record(i, at=T0 + timedelta(minutes=i)))
        for m in (-1, 1.5, 3.5, 9):  # before all, between, after all
            s.put_control(ControlAction(T0 + timedelta(minutes=m), "default", "halt", "", f"at {m}", "cli"))
        pages = [history_page(s, 2, off) for off in (0, 2, 4, 6)]
    seen = [e.reason if isinstance(e, ControlAction) else e.intent_id for page in pages for e in page]
    assert seen == ["at 9", "intent-4", "at 3.5", "intent-3", "intent-2", "at 1.5", "intent-1", "intent-0",
                    "at -1"]
    assert pages[3] == []
