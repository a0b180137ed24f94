"""Telegram chat control against a loopback Bot API stand-in (real wire format):
each command's answer from a real engine's store, the allow-list, confirmation
within 60 s on the engine clock, 429 retry_after and 5xx retries, replayed
update ids (across a restart too), config validation, and `serve` with the bot."""
from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from copytrader.adapters.alerts.telegram_bot import BotApi
from copytrader.adapters.clock import ManualClock
from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.application.chat_control import ChatControl, ChatPoller
from copytrader.application.control import Control
from copytrader.domain.model import TradingState, micro
from copytrader.domain.sizing import LeaderSettings
from copytrader.entrypoints.config import ConfigError
from copytrader.entrypoints.fleet import load_fleet
from copytrader.testing import LEADER, T0, book, make_app, make_trade
from tests.standins import FakeTime
from tests.standins.telegram import BOT_TOKEN, TelegramStandIn

TOKEN = str(10**70 + 1)  # a CTF outcome token id
OWNER, DESK, STRANGER = 111, -1001234567890, 999
SECRET = BOT_TOKEN.split(":", 1)[1]


@pytest.fixture
def tg():
    with TelegramStandIn() as server:
        yield server


def engine_on(path, token=TOKEN):
    app, fakes = make_app(store=SqliteStore(path), overrides={"risk": {"max_trade_usdc": "50"}})
    fakes.market.put(*book(token, bids=[("0.49", "500")], asks=[("0.51", "500")]))
    return app, fakes


def opener(path):
    return lambda: SqliteStore(path, lock=False, create=False)  # as control_for opens a follower's store


class Rig:
    """An engine holding a position, a Control and ChatControl over its store, and a poller."""

    def __init__(self, tg, path, chats=(OWNER, DESK)):
        self.tg, self.path = tg, path
        self.app, self.fakes = engine_on(path)
        assert self.app.process(make_trade(token_id=TOKEN, seq=1, title="Fed cut in December?")).status == "filled"
        self.clock = ManualClock(T0)
        self.control = Control({"alice": opener(path)}, self.clock, leaders={"alice": [LEADER]})
        self.chat = ChatControl(self.control, {"alice": {str(c) for c in chats}},
                                leaders={"alice": {LEADER: LeaderSettings(LEADER, name="whale")}})
        self.time = FakeTime(1000.0)
        self.poller = self.new_poller()

    def new_poller(self):
        bot = BotApi(BOT_TOKEN, self.tg.url, min_interval_s=0, backoff_s=0.25, timeout_s=2,
                     clock=self.time.time, sleep=self.time.sleep)
        self.sleeps = []
        bot._sleep = lambda s: (self.sleeps.append(s), self.time.sleep(s))
        return ChatPoller(bot, self.chat, ["alice"], poll_timeout_s=0)

    def say(self, chat, *texts):
        """``texts`` written in ``chat``, one poll; the answers sent there."""
        before = len(self.tg.texts(chat))
        for text in texts:
            self.tg.message(chat, text)
        assert self.poller.poll_once() == len(texts)
        return self.tg.texts(chat)[before:]

    def state(self):
        with opener(self.path)() as s:
            return s.get_state()


@pytest.fixture
def rig(tg, tmp_path):
    r = Rig(tg, tmp_path / "alice.db")
    yield r
    r.app.close()
    r.poller.bot.close()


def test_read_commands_answer_with_the_engine_s_real_numbers(rig):
    [position] = rig.app.positions()
    mark = rig.app.marks({TOKEN})[TOKEN]
    unrealised = micro(position.size * mark) - position.cost
    help_, status, positions, pnl, leaders = rig.say(OWNER, "/help", "/status", "/positions@ct_bot", "/pnl",
                                                     "/leaders")
    assert "/halt [reason]" in help_ and "/yes within 60 s" in help_ and "/positions" in help_
    assert status.startswith("alice: ACTIVE")
    assert f"open positions 1, exposure {position.cost:.2f} USDC" in status
    assert f"total {unrealised:.2f} USDC" in status
    assert "positions 1" in status and "newest leader trade 2026-11-01T12:00:00+00:00" in status
    assert f"• - {position.size:.2f} @ {position.avg_cost:.4f} -> {mark:.4f}  {unrealised:.2f} USDC" in positions
    assert "Fed cut in December?" in positions and "(whale)" in positions
    assert f"total {unrealised:.2f} USDC = realised 0.00 + unrealised {unrealised:.2f}" in pnl
    assert f"whale {LEADER} x1 no budget (config)" in leaders
    assert rig.say(OWNER, "/frobnicate") == ["unknown command /frobnicate: send /help for the list"]
    assert rig.say(OWNER, "just chatting") == []  # not a command: no answer
    assert rig.state().state is TradingState.ACTIVE  # reading changes nothing


def test_a_chat_not_allow_listed_gets_nothing_and_changes_nothing(rig, caplog):
    caplog.set_level(logging.INFO)
    rig.tg.message(STRANGER, "/halt")
    rig.tg.message(STRANGER, "/yes")
    rig.tg.message(STRANGER, "/status")
    assert rig.poller.poll_once() == 3
    assert rig.tg.sent == []
    assert rig.state().state is TradingState.ACTIVE and rig.control.actions() == []
    assert caplog.text.count(f"ignored a message from chat {STRANGER}") == 3
    assert rig.app.process(make_trade(token_id=TOKEN, seq=2)).status == "filled"
    # a /yes from an allowed chat does not confirm the stranger's /halt either
    assert rig.say(OWNER, "/yes") == ["nothing to confirm: send /halt, /reduce or /resume first"]


def test_halt_needs_yes_from_the_same_chat_within_60_s_then_really_halts(rig):
    [ask] = rig.say(OWNER, "/halt risk desk")
    assert ask == "halt alice -> HALTED (reason: risk desk)? reply /yes within 60 s to apply it, /no to cancel"
    rig.clock.advance(61)  # the engine clock: no waiting
    [late] = rig.say(OWNER, "/yes")
    assert late.startswith("too late: /halt asked at 12:00:00 UTC") and "nothing changed" in late
    assert rig.state().state is TradingState.ACTIVE and rig.control.actions() == []

    rig.say(OWNER, "/halt")
    assert rig.say(OWNER, "/no") == ["cancelled /halt; nothing changed"]
    assert rig.say(OWNER, "/yes") == ["nothing to confirm: send /halt, /reduce or /resume first"]

    rig.say(OWNER, "/halt stop now")
    rig.clock.advance(59)
    assert rig.say(DESK, "/yes") == ["nothing to confirm: send /halt, /reduce or /resume first"]  # another chat
    assert rig.state().state is TradingState.ACTIVE
    assert rig.say(OWNER, "/yes") == ["done. alice: HALTED"]
    state = rig.state()
    assert (state.state, state.reason) == (TradingState.HALTED, "stop now")
    assert [(a.action, a.source, a.reason) for a in rig.control.actions()] == [("halt", "telegram", "stop now")]
    out = rig.app.process(make_trade(token_id=TOKEN, seq=2))  # the running engine's next leader trade
    assert (out.status, out.reason) == ("rejected", "trading_halted")

    rig.say(OWNER, "/reduce winding down")
    assert rig.say(OWNER, "/yes") == ["done. alice: REDUCING (sells only)"]
    assert rig.state().state is TradingState.REDUCING
    rig.say(OWNER, "/resume")
    assert rig.say(OWNER, "/yes") == ["done. alice: ACTIVE"]
    assert rig.app.process(make_trade(token_id=TOKEN, seq=3)).status == "filled"
    assert [a.action for a in rig.control.actions()] == ["resume", "reduce_only", "halt"]


def test_a_replayed_update_is_not_handled_twice_even_after_a_restart(rig):
    first = rig.tg.message(OWNER, "/halt")
    assert rig.poller.poll_once() == 1
    with opener(rig.path)() as s:
        assert s.get_cursor("telegram:987654321") == str(first + 1)
    rig.tg.redeliver(first)  # Telegram serves it again
    assert rig.poller.poll_once() == 0
    assert len(rig.tg.texts(OWNER)) == 1

    rig.poller.bot.close()
    rig.chat = ChatControl(rig.control, {"alice": {str(OWNER)}})  # a restart: nothing in memory
    rig.poller = rig.new_poller()
    rig.tg.redeliver(first)
    assert rig.poller.poll_once() == 0
    method, params = rig.tg.requests[-1]
    assert method == "getUpdates" and params["offset"] == first + 1 and params["allowed_updates"] == ["message"]
    assert len(rig.tg.texts(OWNER)) == 1
    assert rig.say(OWNER, "/yes") == ["nothing to confirm: send /halt, /reduce or /resume first"]
    assert rig.poller.handled == 1


def test_429_retry_after_is_honoured_and_5xx_retried_with_bounded_backoff(rig, caplog):
    caplog.set_level(logging.DEBUG)
    rig.tg.inject("429:3")  # on getUpdates
    rig.tg.message(OWNER, "/status")
    assert rig.poller.poll_once() == 1
    assert rig.sleeps == [3.0] and rig.tg.texts(OWNER)[0].startswith("alice: ACTIVE")

    rig.sleeps.clear()
    rig.tg.message(OWNER, "/pnl")
    rig.tg.inject(None, "429:7", "502")  # getUpdates answers; its reply is refused twice, then sent
    assert rig.poller.poll_once() == 1
    assert rig.sleeps == [7.0, 0.5] and rig.tg.texts(OWNER)[1].startswith("alice: PnL today")
    assert [m for m, _ in rig.tg.requests[-4:]] == ["getUpdates", "sendMessage", "sendMessage", "sendMessage"]

    rig.sleeps.clear()
    rig.tg.inject("500", "503", "500", "502")  # every attempt fails: the poll gives up, bounded
    assert rig.poller.poll_once() is None
    assert rig.sleeps == [0.25, 0.5, 1.0]
    assert "getUpdates of telegram bot" in caplog.text and "failed after 4 attempts: HTTP 502" in caplog.text
    assert SECRET not in caplog.text and SECRET not in repr(rig.poller) and SECRET not in repr(rig.poller.bot)


def test_the_poll_loop_backs_off_after_failed_polls_then_resets(rig, caplog):
    rig.tg.inject("409", "500", "500", "500", "500")  # another getUpdates consumer; then 5xx past the retries
    rig.tg.message(OWNER, "/status")
    waits = []
    rig.poller.run(lambda: rig.poller.handled >= 1, lambda seconds: waits.append(seconds) and False)
    assert waits == [1.0, 2.0]  # the loop's own pauses (injected), growing; the retries' are rig.sleeps
    assert rig.sleeps == [0.25, 0.5, 1.0]
    assert "getUpdates of telegram bot …cret refused: HTTP 409 (not retried)" in caplog.text
    assert rig.tg.texts(OWNER)[0].startswith("alice: ACTIVE")


def test_the_poller_thread_answers_and_stops_with_close(tg, tmp_path):
    rig = Rig(tg, tmp_path / "alice.db")
    try:
        poller = ChatPoller(BotApi(BOT_TOKEN, tg.url, min_interval_s=0), rig.chat, ["alice"], poll_timeout_s=1)
        poller.start()
        tg.message(OWNER, "/pnl")
        assert tg.wait_for_texts(OWNER, 1)[0].startswith("alice: PnL today")
        poller.close()
        assert not poller._thread.is_alive() and poller._thread.daemon
    finally:
        rig.app.close()


def test_answers_are_at_least_min_interval_apart(tg):
    fake, sleeps = FakeTime(1000.0), []
    bot = BotApi(BOT_TOKEN, tg.url, min_interval_s=1.0, clock=fake.time,
                 sleep=lambda s: (sleeps.append(s), fake.sleep(s)))
    assert bot.send_message(str(OWNER), "one") and bot.send_message(str(OWNER), "two")
    fake.sleep(5)
    assert bot.send_message(str(OWNER), "three")
    assert sleeps == [1.0] and tg.texts(OWNER) == ["one", "two", "three"]
    assert bot.send_message(str(OWNER), "x" * 5000) and len(tg.texts(OWNER)[-1]) == 4096  # cut to the limit
    bot.close()


def test_several_followers_one_bot_each_chat_controls_its_own(tg, tmp_path):
    paths = {name: tmp_path / f"{name}.db" for name in ("alice", "bob")}
    apps = {name: engine_on(p)[0] for name, p in paths.items()}
    try:
        control = Control({n: opener(p) for n, p in paths.items()}, ManualClock(T0))
        chat = ChatControl(control, {"alice": {str(OWNER), str(DESK)}, "bob": {str(OWNER)}})
        poller = ChatPoller(BotApi(BOT_TOKEN, tg.url, min_interval_s=0), chat, ["alice", "bob"], poll_timeout_s=0)

        def say(chat_id, text):
            before = len(tg.texts(chat_id))
            tg.message(chat_id, text)
            poller.poll_once()
            return tg.texts(chat_id)[before:]

        [help_] = say(OWNER, "/help")
        assert "/halt [follower] [reason]" in help_ and "acts on all of alice, bob" in help_
        assert say(DESK, "/halt bob now") == ["follower bob is not controlled from this chat"]
        assert say(OWNER, "/halt bob desk says so") == [
            "halt bob -> HALTED (reason: desk says so)? reply /yes within 60 s to apply it, /no to cancel"]
        assert say(OWNER, "/yes") == ["done. bob: HALTED"]
        states = {n: SqliteStore(p, lock=False, create=False) for n, p in paths.items()}
        assert {n: s.get_state().state for n, s in states.items()} == {"alice": TradingState.ACTIVE,
                                                                      "bob": TradingState.HALTED}
        for s in states.values():
            assert s.get_cursor("telegram:987654321") is not None  # the offset is kept with each follower
            s.close()
        say(OWNER, "/halt")
        assert say(OWNER, "/yes") == ["done. alice: HALTED; bob: HALTED"]
        poller.bot.close()
    finally:
        for app in apps.values():
            app.close()


# -- config ----------------------------------------------------------------------------
def _cfg(tmp_path, alert: str) -> str:
    path = tmp_path / "ct.toml"
    path.write_text(f'profile = "paper"\n[store]\npath = "{tmp_path / "ct.db"}"\n[feed]\nkind = "data_api"\n'
                    f'[[followers]]\nname = "alice"\n[[followers.alerts]]\n{alert}\n')
    return str(path)


GOOD = 'kind = "telegram"\ntoken_env = "TG"\nchat_id = "111"\ncommands = true\n'


def test_commands_config_is_parsed(tmp_path):
    spec = load_fleet(_cfg(tmp_path, GOOD + 'allowed_chat_ids = [-1001234567890, "222"]\npoll_timeout_s = 10'),
                      environ={"TG": BOT_TOKEN})
    [alert] = spec.followers[0].alerts
    assert (alert.commands, alert.chats, alert.poll_timeout_s) == (True, ("111", "-1001234567890", "222"), 10)
    assert SECRET not in repr(spec)
    from copytrader.entrypoints.fleet import describe_followers

    shown = describe_followers(_cfg(tmp_path, GOOD), environ={"TG": BOT_TOKEN})["followers"]["alice"]["alerts"]
    assert shown == ["telegram (fill, rejection, halt, error, summary), commands from chats 111"]


@pytest.mark.parametrize("extra, env, message", [
    ('commands = "yes"', None, "alerts[0].commands: expected true or false, got 'yes'"),
    ('allowed_chat_ids = [1]', None, "alerts[0].allowed_chat_ids: only with commands = true"),
    ('commands = true\nallowed_chat_ids = ["@desk"]', None,
     "alerts[0].allowed_chat_ids: expected a list of numeric chat ids"),
    ('commands = true\npoll_timeout_s = 0', None, "alerts[0].poll_timeout_s: expected whole seconds from 1 to 50"),
    ('commands = true', {"TG": "not-a-token"}, "alerts[0].token: expected a bot token like 123456:ABC-xyz"),
])
def test_bad_commands_config_is_one_sentence(tmp_path, extra, env, message):
    alert = 'kind = "telegram"\ntoken_env = "TG"\nchat_id = "111"\n' + extra
    with pytest.raises(ConfigError) as err:
        load_fleet(_cfg(tmp_path, alert), environ=env or {"TG": BOT_TOKEN})
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "not-a-token" not in str(err.value) and SECRET not in str(err.value)


def test_commands_need_a_numeric_chat_and_a_telegram_alert(tmp_path):
    with pytest.raises(ConfigError, match="alerts\\[0\\].chat_id: commands need the chat's numeric id"):
        load_fleet(_cfg(tmp_path, GOOD.replace('"111"', '"@desk"')), environ={"TG": BOT_TOKEN})
    with pytest.raises(ConfigError, match="alerts\\[0\\].commands: chat commands are answered by telegram"):
        load_fleet(_cfg(tmp_path, 'kind = "slack"\nurl = "https://hooks.example/x"\ncommands = true'), environ={})


def test_a_bad_commands_setting_exits_2_in_one_line(tmp_path):
    from click.testing import CliRunner

    from copytrader.entrypoints.cli import main

    res = CliRunner().invoke(main, ["--config", _cfg(tmp_path, GOOD + "poll_timeout_s = 99"), "serve"],
                             env={"COPYTRADER_CONFIG": None, "TG": BOT_TOKEN})
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert "poll_timeout_s: expected whole seconds from 1 to 50, got 99" in res.output


# -- serve -----------------------------------------------------------------------------
def test_serve_answers_commands_and_halts_the_engine_from_telegram(tg, tmp_path):
    from copytrader.entrypoints.serve import serve
    from tests.standins.data_api import DataApiStandIn, activity_row

    with DataApiStandIn() as api:
        now = int(time.time())
        api.add(activity_row(LEADER, now - 30, 1, asset=TOKEN))
        markets = tmp_path / "markets.json"
        markets.write_text(json.dumps({"markets": [{
            "condition_id": "0x" + "cd" * 32, "question": "stand-in market", "tick_size": "0.01",
            "min_order_size": "5", "closed": False, "tokens": [{"token_id": TOKEN, "outcome": "Yes", "book": {
                "bids": [["0.49", "500"]], "asks": [["0.51", "500"]]}}]}]}))
        path = tmp_path / "serve.toml"
        path.write_text(f"""
profile = "paper"
leaders = ["{LEADER}"]
[store]
path = "{tmp_path / 'data' / 'ct.db'}"
[feed]
kind = "data_api"
url = "{api.url}"
poll_interval_s = 0.1
lookback_s = 600
[market]
path = "{markets}"
[service]
metrics_port = 0
[[followers]]
name = "alice"
[[followers.alerts]]
kind = "telegram"
token_env = "ALICE_TG"
chat_id = "{OWNER}"
api_url = "{tg.url}"
events = ["error"]
min_interval_s = 0
commands = true
poll_timeout_s = 1
""")
        spec = load_fleet(str(path), environ={"ALICE_TG": BOT_TOKEN})
        db = tmp_path / "data" / "ct-alice.db"
        stop, lines = threading.Event(), []
        t = threading.Thread(target=lambda: lines.append(serve(spec, echo=lines.append, stop=stop,
                                                               install_signals=False)), daemon=True)
        t.start()
        try:
            def history():
                deadline = time.monotonic() + 30
                while True:
                    try:
                        with SqliteStore(db, read_only=True) as s:
                            rows = s.history()
                        return rows
                    except Exception:  # noqa: BLE001 - not created yet
                        assert time.monotonic() < deadline
                        time.sleep(0.05)

            deadline = time.monotonic() + 30
            while not history():
                assert time.monotonic() < deadline
                time.sleep(0.05)
            tg.message(OWNER, "/status")
            [status] = tg.wait_for_texts(OWNER, 1)
            assert status.startswith("alice: ACTIVE") and "open positions" in status
            tg.message(STRANGER, "/halt")
            tg.message(OWNER, "/halt from the phone")
            tg.wait_for_texts(OWNER, 2)
            tg.message(OWNER, "/yes")
            assert tg.wait_for_texts(OWNER, 3)[2] == "done. alice: HALTED"
            assert tg.texts(STRANGER) == []
            with SqliteStore(db, read_only=True) as s:
                assert (s.get_state().state, s.get_state().reason) == (TradingState.HALTED, "from the phone")
                assert [(a.action, a.source) for a in s.controls()] == [("halt", "telegram")]
            api.add(activity_row(LEADER, int(time.time()), 2, asset=TOKEN))  # the next leader trade
            deadline = time.monotonic() + 30
            while len(rows := history()) < 2:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert rows[0].reason == "trading_halted" and rows[0].decision == "rejected"
        finally:
            stop.set()
            t.join(30)
    assert not t.is_alive() and lines[-1] == 0
    assert any("telegram commands: telegram bot …cret for alice" in str(line) for line in lines)
    assert not any(SECRET in str(line) for line in lines)


def test_readme_telegram_example_is_a_valid_config(tmp_path):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Telegram control", 1)[1].split("\n### ", 1)[0]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    spec = load_fleet(_cfg(tmp_path, example.replace("[[followers.alerts]]\n", "")),
                      environ={"ALICE_TELEGRAM_TOKEN": BOT_TOKEN})
    [alert] = spec.followers[0].alerts
    assert alert.commands and alert.chats == ("-1001234567890", "123456789") and alert.poll_timeout_s == 30
    for command in ("/status", "/positions", "/pnl", "/leaders", "/halt", "/reduce", "/resume", "/help", "/yes"):
        assert f"`{command}" in section
