"""Leader health while trading (application.leader_health): a leader whose
copies lose more than ``pause_drawdown_usdc``, or close ``pause_loss_streak``
times in a row at a loss, is paused by the engine (its buys rejected
``leader_paused``, its sells still copied), alerted once, shown by ``status``,
and resumed by ``copytrader leaders resume``; the state survives a restart;
with the keys off nothing changes."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.application.leader_health import state_key
from copytrader.application.status import follower_status
from copytrader.entrypoints.cli import main
from copytrader.entrypoints.config import ConfigError, load_config
from copytrader.testing import LEADER, T0, book, make_app, make_trade

A, B, C = (str(10**70 + i) for i in (1, 2, 3))  # CTF-shaped token ids


def config(tmp_path, **keys) -> str:
    path = tmp_path / "ct.toml"
    extra = "".join(f"{k} = {v}\n" for k, v in keys.items())
    path.write_text(f'[risk]\nmax_trade_usdc = 50\n\n[[leaders]]\naddress = "{LEADER}"\n{extra}')
    return str(path)


def engine(tmp_path, **keys):
    app, fakes = make_app(store=SqliteStore(tmp_path / "ct.db"), config=config(tmp_path, **keys))
    for token in (A, B, C):
        price(fakes, token, "0.50")
    return app, fakes


def price(fakes, token, bid):
    """The book of ``token``: bid ``bid``, ask one cent above."""
    fakes.market.put(*book(token, bids=[(bid, "500")], asks=[(str(round(float(bid) + 0.01, 2)), "500")]))


def buy(app, token, seq, at="0.50"):
    return app.process(make_trade(token_id=token, side="BUY", price=at, seq=seq))


def sell(app, fakes, token, seq, at):
    price(fakes, token, at)
    return app.process(make_trade(token_id=token, side="SELL", price=at, seq=seq))


def cli(tmp_path, *args):
    return CliRunner().invoke(main, ["--config", config(tmp_path), "--db", str(tmp_path / "ct.db"), *args],
                              env={"COPYTRADER_CONFIG": None})


def paused_alerts(fakes):
    return [a for a in fakes.alerter.sent if a.kind == "leader_paused"]


def test_a_drawdown_past_the_limit_pauses_the_leader_once_its_sells_still_copied_and_it_survives_a_restart(tmp_path):
    app, fakes = engine(tmp_path, pause_drawdown_usdc=5)
    try:
        assert buy(app, A, 1).status == "filled" and buy(app, B, 2).status == "filled"
        assert sell(app, fakes, A, 3, "0.40").status == "filled"  # 20 shares copied: lost 2.20, within the limit
        assert paused_alerts(fakes) == []
        assert buy(app, A, 4).status == "filled"
        assert sell(app, fakes, A, 5, "0.20").status == "filled"  # lost 4.20 more: a drawdown of 6.60 (B marked -0.20), past 5
        [alert] = paused_alerts(fakes)
        assert "pause_drawdown_usdc 5" in alert.message and LEADER in alert.message
        out = buy(app, C, 6)
        assert (out.status, out.reason) == ("rejected", "leader_paused")
        assert sell(app, fakes, B, 7, "0.30").status == "filled"  # we still exit with the leader
        assert len(paused_alerts(fakes)) == 1  # another loss while paused: no second alert
        with SqliteStore(tmp_path / "ct.db", read_only=True, lock=False) as s:
            [act] = s.controls()
            assert (act.action, act.target, act.source) == ("pause_leader", LEADER, "engine")
            status = follower_status(s, T0)
        [shown] = status["paused_leaders"]
        assert shown["address"] == LEADER and "copy drawdown" in shown["reason"]
        assert not any(k.startswith("leader_health") for k in status["feed"]["cursors"])
    finally:
        app.close()
    res = cli(tmp_path, "status")
    assert res.exit_code == 0, res.output
    assert f"paused leaders (buys not copied, sells still copied): 1\n  {LEADER}" in res.stdout
    assert "pause_drawdown_usdc 5" in res.stdout

    app, fakes = engine(tmp_path, pause_drawdown_usdc=5)  # a restart: still paused
    try:
        assert buy(app, C, 8).reason == "leader_paused"
    finally:
        app.close()
    res = cli(tmp_path, "leaders", "resume", LEADER)
    assert (res.exit_code, res.stdout) == (0, f"leader {LEADER} resumed: its buys are copied again\n")
    assert "paused leaders (buys not copied, sells still copied): 0\n" in cli(tmp_path, "status").stdout

    app, fakes = engine(tmp_path, pause_drawdown_usdc=5)  # resumed while stopped: the drawdown starts again
    try:
        assert buy(app, C, 9).status == "filled"
        assert buy(app, A, 10).status == "filled"
        assert paused_alerts(fakes) == []
    finally:
        app.close()
    with SqliteStore(tmp_path / "ct.db", read_only=True, lock=False) as s:
        assert [(a.action, a.source) for a in s.controls()] == [("resume_leader", "cli"), ("pause_leader", "engine")]


def test_a_losing_streak_pauses_the_leader_a_win_starts_it_again_and_a_resume_applies_while_running(tmp_path):
    app, fakes = engine(tmp_path, pause_loss_streak=2)
    try:
        for seq, (token, exit_at) in enumerate([(A, "0.45"), (B, "0.60"), (A, "0.45")]):  # lose, win, lose
            assert buy(app, token, 10 * seq + 1).status == "filled"
            assert sell(app, fakes, token, 10 * seq + 2, exit_at).status == "filled"
            price(fakes, token, "0.50")
        assert paused_alerts(fakes) == []
        assert buy(app, C, 40).status == "filled"
        assert sell(app, fakes, C, 41, "0.45").status == "filled"  # the second loss in a row
        [alert] = paused_alerts(fakes)
        assert alert.message.endswith("2 losing closes in a row (pause_loss_streak 2)")
        assert buy(app, B, 42).reason == "leader_paused"
        res = cli(tmp_path, "leaders", "resume", LEADER)  # from another process, the engine running
        assert res.exit_code == 0, res.output
        assert buy(app, B, 43).status == "filled"
        assert sell(app, fakes, B, 44, "0.45").status == "filled"  # a loss after the resume: a streak of 1
        assert len(paused_alerts(fakes)) == 1
        assert buy(app, A, 45).status == "filled"
    finally:
        app.close()


def test_with_the_keys_off_nothing_is_paused_nor_stored(tmp_path):
    app, fakes = engine(tmp_path)
    try:
        for seq, token in enumerate((A, B, C, A)):
            assert buy(app, token, 10 * seq + 1).status == "filled"
            assert sell(app, fakes, token, 10 * seq + 2, "0.10").status == "filled"
            price(fakes, token, "0.50")
        assert buy(app, B, 50).status == "filled"
        assert paused_alerts(fakes) == []
    finally:
        app.close()
    with SqliteStore(tmp_path / "ct.db", read_only=True, lock=False) as s:
        assert s.paused_leaders() == {} and s.controls() == []
        assert s.get_cursor(state_key(LEADER)) is None


def test_the_stored_state_is_the_one_a_restart_goes_on_from(tmp_path):
    app, fakes = engine(tmp_path, pause_loss_streak=3)
    try:
        for seq, token in enumerate((A, B)):
            buy(app, token, 10 * seq + 1)
            sell(app, fakes, token, 10 * seq + 2, "0.45")
            price(fakes, token, "0.50")
        buy(app, C, 30)  # open: its round trip's start is kept
    finally:
        app.close()
    with SqliteStore(tmp_path / "ct.db", read_only=True, lock=False) as s:
        saved = json.loads(s.get_cursor(state_key(LEADER)))
    assert saved["streak"] == 2 and list(saved["base"]) == [C] and saved["paused"] is False
    app, fakes = engine(tmp_path, pause_loss_streak=3)
    try:
        sell(app, fakes, C, 31, "0.45")  # the third loss in a row, across the restart
        assert len(paused_alerts(fakes)) == 1
    finally:
        app.close()


def test_bad_health_keys_and_resuming_a_leader_not_paused_are_refused_in_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match=r"^config leaders\[0\]\.pause_loss_streak: expected a whole number >= 1"):
        load_config(config(tmp_path, pause_loss_streak=0), environ={})
    with pytest.raises(ConfigError, match=r"^config leaders\[0\]\.pause_drawdown_usdc: expected a number > 0"):
        load_config(config(tmp_path, pause_drawdown_usdc=-5), environ={})
    cfg = load_config(config(tmp_path, pause_drawdown_usdc="50.5", pause_loss_streak=4), environ={})
    [leader] = cfg.engine.leaders.values()
    assert (str(leader.pause_drawdown_usdc), leader.pause_loss_streak) == ("50.5", 4)
    assert cfg.effective()["leaders"][0]["pause_loss_streak"] == 4
    assert "pause_drawdown_usdc = 50.5" in cfg.to_toml()
    SqliteStore(tmp_path / "ct.db").close()
    res = cli(tmp_path, "leaders", "resume", LEADER)
    assert res.exit_code == 2 and res.output.strip().endswith(f"leader {LEADER} is not paused in follower 'default'")
    assert "Traceback" not in res.output
