"""Several followers in one deployment: config, isolation, the lease, metrics."""
from __future__ import annotations

import json
import threading
from collections import Counter

import httpx
import pytest

from copytrader.adapters.alerts.log import RecordingAlerter
from copytrader.adapters.metrics.prometheus import Metrics
from copytrader.adapters.metrics.server import StatusServer
from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.domain.model import TradingState
from copytrader.entrypoints.config import SAMPLE_ACTIVITY, SAMPLE_MARKETS, ConfigError
from copytrader.entrypoints.fleet import Fleet, load_fleet
from copytrader.ports import StoredState

KEY_A = "0x" + "11" * 32
KEY_B = "0x" + "22" * 32


def _config(tmp_path, body: str, store: str = "") -> str:
    path = tmp_path / "ct.toml"
    path.write_text(f"""
profile = "paper"
[store]
path = "{tmp_path / 'data' / 'ct.db'}"
{store}
[feed]
kind = "replay"
path = "{SAMPLE_ACTIVITY}"
[market]
path = "{SAMPLE_MARKETS}"
[service]
lease_retry_s = 0.02
restart_backoff_s = 0.02
{body}
""")
    return str(path)


TWO = """
[[followers]]
name = "alice"
key_env = "ALICE_KEY"
bankroll = 500
[followers.risk]
max_trade_usdc = 7

[[followers]]
name = "bob"
key_file = "{key_file}"
[[followers.alerts]]
kind = "telegram"
token_env = "BOB_TG"
chat_id = "42"
events = ["halt", "error"]
"""


def _two(tmp_path):
    key_file = tmp_path / "bob.key"
    key_file.write_text(KEY_B)
    key_file.chmod(0o600)
    return _config(tmp_path, TWO.format(key_file=key_file))


ENV = {"ALICE_KEY": KEY_A, "BOB_TG": "777:secret-bot-token"}


def test_followers_inherit_override_and_get_their_own_store(tmp_path):
    fleet = load_fleet(_two(tmp_path), environ=ENV)
    alice, bob = fleet.followers
    assert (alice.name, bob.name) == ("alice", "bob")
    assert alice.config.engine.follower.id == "alice" and alice.config.engine.follower.bankroll == 500
    assert str(alice.config.engine.limits.max_trade_usdc) == "7"
    assert str(bob.config.engine.limits.max_trade_usdc) == "100"  # the default, inherited
    assert alice.config.store_path.endswith("ct-alice.db") and bob.config.store_path.endswith("ct-bob.db")
    assert alice.config.private_key.reveal() == KEY_A and bob.config.private_key.reveal() == KEY_B
    assert alice.alerts == () and bob.alerts[0].kind == "telegram" and bob.alerts[0].events == ("halt", "error")
    shown = repr(fleet)
    assert KEY_A[4:] not in shown and KEY_B[4:] not in shown and "secret-bot-token" not in shown


def test_postgres_followers_get_a_schema_each(tmp_path):
    path = _config(tmp_path, '[[followers]]\nname = "alice"\n[[followers]]\nname = "bob"\n',
                   store='url = "postgresql://ct:pw@127.0.0.1:5432/ct"')
    a, b = load_fleet(path, environ={}).followers
    assert (a.config.store_kind, a.config.values["store"]["schema"]) == ("postgres", "copytrader_alice")
    assert b.config.values["store"]["schema"] == "copytrader_bob"


@pytest.mark.parametrize("body, env, message", [
    ('[[followers]]\nname = "Alice!"\n', {}, "followers[0].name: expected lower-case"),
    ('[[followers]]\nname = "a"\n[[followers]]\nname = "a"\n', {}, "followers[1].name: a is listed twice"),
    ('[[followers]]\nname = "a"\nbankrol = 5\n', {}, "followers[0].bankrol: unknown setting"),
    ('[[followers]]\nname = "a"\n[followers.risk]\nmax_trade_usdc = -1\n', {},
     "config followers[0].risk.max_trade_usdc: expected"),
    ('[[followers]]\nname = "a"\nkey_env = "NOPE"\n', {}, "followers[0].key_env: environment variable NOPE"),
    ('[[followers]]\nname = "a"\nkey_env = "K"\n[[followers]]\nname = "b"\nkey_env = "K2"\n',
     {"K": KEY_A, "K2": KEY_A}, "followers[1]: uses the same private key as follower a"),
    ('[[followers]]\nname = "a"\n[[followers.alerts]]\nkind = "discord"\nurl_env = "D"\n', {"D": "ftp://x/secretpath"},
     "followers[0].alerts[0].url: expected an http(s) webhook URL"),
    ('[[followers]]\nname = "a"\n[[followers.alerts]]\nkind = "slack"\nurl = "https://h/x"\nevents = ["fills"]\n',
     {}, "followers[0].alerts[0].events: expected some of"),
    ('[[followers]]\nname = "a"\n[[followers.alerts]]\nkind = "telegram"\ntoken = "t"\n', {},
     "followers[0].alerts[0].chat_id: telegram alerts need a chat_id"),
])
def test_bad_follower_config_is_one_line_naming_the_field(tmp_path, body, env, message):
    with pytest.raises(ConfigError) as err:
        load_fleet(_config(tmp_path, body), environ=env)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "secretpath" not in str(err.value) and KEY_A[4:] not in str(err.value)


def test_live_followers_each_need_their_own_key(tmp_path):
    path = _config(tmp_path, '[[followers]]\nname = "a"\n').replace("", "")
    text = open(path).read().replace('profile = "paper"', 'profile = "dry-run"')
    open(path, "w").write(text)
    with pytest.raises(ConfigError, match="followers\\[0\\]: profile dry-run needs a private key"):
        load_fleet(path, environ={})


def _recording():
    alerters = {}

    def make(spec):
        alerters[spec.name] = RecordingAlerter()
        return alerters[spec.name]
    return alerters, make


def _history(cfg):
    with SqliteStore(cfg.store_path, read_only=True) as s:
        return s.history(limit=1000)


def test_a_halted_follower_does_not_stop_the_other(tmp_path):
    spec = load_fleet(_two(tmp_path), environ=ENV)
    alice, bob = spec.followers
    with SqliteStore(bob.config.store_path) as s:
        s.set_state(StoredState(TradingState.HALTED, "manual halt"))
    alerters, make = _recording()
    metrics = Metrics()
    fleet = Fleet(spec, metrics=metrics, make_alerter=make).start()
    assert fleet.wait(120), "followers did not finish the replay"
    statuses = {w.name: w.status for w in fleet.workers}
    assert statuses["alice"].worker == "finished" and statuses["bob"].worker == "finished"
    assert statuses["bob"].trading_state == "HALTED" and statuses["alice"].trading_state == "ACTIVE"
    alice_status = Counter(r.status.value for r in _history(alice.config))
    bob_reasons = Counter(r.reason for r in _history(bob.config))
    assert alice_status["filled"] > 50
    assert bob_reasons["trading_halted"] > 30 and set(bob_reasons) <= {"trading_halted", "no_position"}
    assert not any(r.filled_size for r in _history(bob.config))
    assert all(r.follower == "alice" for r in _history(alice.config))
    assert "fill" in alerters["alice"].kinds() and "fill" not in alerters["bob"].kinds()
    assert metrics.registry.get_sample_value("copytrader_trading_state", {"follower": "bob", "state": "HALTED"}) == 1
    assert metrics.registry.get_sample_value("copytrader_trades_copied_total", {"follower": "alice"}) > 50
    assert metrics.registry.get_sample_value("copytrader_trades_copied_total", {"follower": "bob"}) == 0


def test_a_failing_follower_is_restarted_and_never_stops_the_other(tmp_path):
    spec = load_fleet(_two(tmp_path), environ=ENV)
    attempts = Counter()
    retried = threading.Event()

    def customize(name, container):
        attempts[name] += 1
        if name == "alice":
            if attempts[name] >= 3:  # restarted twice after failing: seen enough
                retried.set()
            raise RuntimeError("market data down for alice")

    alerters, make = _recording()
    fleet = Fleet(spec, customize=customize, make_alerter=make).start()
    bob = next(w for w in fleet.workers if w.name == "bob")
    bob.thread.join(120)
    assert bob.status.worker == "finished"
    alice = next(w for w in fleet.workers if w.name == "alice")
    assert retried.wait(60), "alice was not restarted"  # bob may finish before alice's first restart
    assert fleet.stop(30)
    assert attempts["alice"] >= 2 and alice.status.failures >= 2 and alice.status.worker == "stopped"
    assert "failed" in alice.status.history
    assert alerters["alice"].kinds() == ["error"], [a.message for a in alerters["alice"].sent]  # the same failure again and again: alerted once
    ok, health = fleet.health()
    assert health["followers"]["bob"]["worker"] == "finished"
    # the lease (the SQLite file lock) is free again after the stop
    SqliteStore(spec.followers[0].config.store_path).close()


def test_health_and_metrics_over_loopback(tmp_path):
    spec = load_fleet(_two(tmp_path), environ=ENV)
    metrics = Metrics()
    fleet = Fleet(spec, metrics=metrics, make_alerter=_recording()[1]).start()
    assert fleet.wait(120)
    server = StatusServer("127.0.0.1", 0, fleet.health, metrics.render).start()
    try:
        with httpx.Client(timeout=5) as http:
            text = http.get(server.url + "/metrics").text
            health = http.get(server.url + "/healthz")
            missing = http.get(server.url + "/nope")
    finally:
        server.close()
    assert 'copytrader_trades_seen_total{follower="alice"}' in text
    assert 'copytrader_trades_rejected_total{follower="bob",reason="trading_halted"}' not in text  # not halted here
    assert 'copytrader_order_latency_seconds_count{follower="alice"}' in text
    assert 'copytrader_feed_lag_seconds{follower="bob"}' in text
    assert 'copytrader_trading_state{follower="alice",state="ACTIVE"} 1.0' in text
    assert health.status_code == 200
    body = health.json()
    assert body["followers"]["alice"]["worker"] == "finished" and body["followers"]["alice"]["last_poll_age_s"] >= 0
    assert missing.status_code == 404


def test_health_is_503_when_a_follower_failed_or_its_feed_is_stale(tmp_path):
    spec = load_fleet(_two(tmp_path), environ=ENV)
    now = [1_000_000.0]
    fleet = Fleet(spec, make_alerter=_recording()[1], wall=lambda: now[0])
    alice, bob = fleet.workers
    alice.status.worker, alice.status.last_poll = "running", now[0] - 5
    bob.status.worker = "standby"
    assert fleet.health()[0] is True
    now[0] += 500  # no poll for 500 s
    ok, body = fleet.health()
    assert ok is False and body["followers"]["alice"]["healthy"] is False
    assert body["followers"]["bob"]["healthy"] is True  # another worker holds bob: fine for this one
    alice.status.worker, alice.status.last_poll = "failed", now[0]
    assert fleet.health()[0] is False


def test_two_workers_competing_for_one_follower_never_both_trade(tmp_path, pg_url, pg_schema):
    path = _config(tmp_path, '[[followers]]\nname = "alice"\n',
                   store=f'url = "{pg_url}"\nschema = "{pg_schema}"')
    spec = load_fleet(path, environ={})
    in_flight, lock, submitted = [0], threading.Lock(), []
    peak = [0]

    def customize(worker_id):
        def hook(name, container):
            inner = container.executor()

            class Guard:
                def __getattr__(self, attr):
                    return getattr(inner, attr)

                def submit(self, order, intent, market):
                    with lock:
                        in_flight[0] += 1
                        peak[0] = max(peak[0], in_flight[0])
                        submitted.append((worker_id, intent.id))
                    try:
                        return inner.submit(order, intent, market)
                    finally:
                        with lock:
                            in_flight[0] -= 1
            from dependency_injector import providers
            container.executor.override(providers.Object(Guard()))
        return hook

    workers = [Fleet(spec, customize=customize(n), make_alerter=_recording()[1]) for n in (1, 2)]
    for w in workers:
        w.start()
    try:
        assert all(w.wait(120) for w in workers)
    finally:
        for w in workers:
            w.stop(30)
    histories = [w.workers[0].status.history for w in workers]
    assert peak[0] == 1
    ids = [i for _, i in submitted]
    assert len(ids) == len(set(ids)) > 50, "an intent was sent twice"
    assert any("standby" in h for h in histories), histories  # the loser waited for the lease
    assert all(h[-1] == "finished" for h in histories)  # and took over (finding nothing new) when it was free
    from copytrader.adapters.storage.postgres import PostgresStore
    with PostgresStore(pg_url, f"{pg_schema}_alice", read_only=True) as s:
        sent = [r.intent_id for r in s.history(limit=1000) if r.status.value != "skipped"]
    assert sorted(sent) == sorted(ids)  # every order sent once, by one worker, and recorded
    import psycopg
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{pg_schema}_alice" CASCADE')


def test_a_daily_summary_is_sent_when_the_day_changes(tmp_path):
    from decimal import Decimal
    from types import SimpleNamespace

    from copytrader.application.service import Outcome

    spec = load_fleet(_two(tmp_path), environ=ENV)
    day1 = 1_764_028_800.0  # 2025-11-25 00:00 UTC
    now = [day1 + 3600]
    fleet = Fleet(spec, make_alerter=_recording()[1], wall=lambda: now[0])
    worker = fleet.workers[0]
    worker.alerter = RecordingAlerter()
    service = SimpleNamespace(state=StoredState(TradingState.ACTIVE),
                              store=SimpleNamespace(daily_realised=lambda day: Decimal("-1.25"),
                                                    get_state=lambda: StoredState(TradingState.ACTIVE)))
    worker._heartbeat(service)
    for status in ("filled", "filled", "rejected"):
        worker._outcome(Outcome("t", status, reason="price_band"), service)
    worker._heartbeat(service)
    assert worker.alerter.sent == []
    now[0] += 86_400
    worker._heartbeat(service)
    [alert] = worker.alerter.sent
    assert alert.kind == "summary"
    assert alert.message == ("2025-11-25: seen 3, copied 2, rejected 1, realised PnL -1.25 USDC, state ACTIVE")


def test_a_standby_worker_stays_healthy_while_it_waits_then_takes_over(tmp_path):

    from copytrader.entrypoints.container import build_container

    spec = load_fleet(_two(tmp_path), environ=ENV)
    alice_cfg = spec.followers[0].config
    other_worker = SqliteStore(alice_cfg.store_path)  # holds alice's single-writer lock
    builds = Counter()
    enough = threading.Event()

    def build(cfg):
        builds[cfg.engine.follower.id] += 1
        if builds["alice"] >= 10:
            enough.set()
        return build_container(cfg)

    fleet = Fleet(spec, build=build, make_alerter=_recording()[1]).start()
    try:
        assert enough.wait(60), "alice did not retry"
        alice = fleet.workers[0]
        assert alice.status.worker == "standby" and "in use by another copytrader process" in alice.status.error
        assert list(alice.status.history) == ["standby"]  # no flapping through "starting"
        assert fleet.health()[1]["followers"]["alice"]["healthy"] is True
        other_worker.close()  # the other worker goes away: alice takes over
        alice.thread.join(60)
        assert alice.status.worker == "finished" and list(alice.status.history)[-2:] == ["running", "finished"]
    finally:
        other_worker.close()
        fleet.stop(30)
    assert len(_history(alice_cfg)) > 50


def test_config_check_validates_and_shows_the_followers(tmp_path):
    from click.testing import CliRunner

    from copytrader.entrypoints.cli import main

    path = _two(tmp_path)
    env = {"COPYTRADER_CONFIG": None, **ENV}
    res = CliRunner().invoke(main, ["--config", path, "config", "check", "--json"], env=env)
    assert res.exit_code == 0, res.output
    followers = json.loads(res.stdout)["followers"]
    assert followers["alice"]["max_trade_usdc"] == "7" and followers["alice"]["private_key"] == "***redacted***"
    assert followers["bob"]["alerts"] == ["telegram (halt, error)"]
    assert KEY_A[4:] not in res.output and "secret-bot-token" not in res.output
    bad = CliRunner().invoke(main, ["--config", path, "config", "check"], env={"COPYTRADER_CONFIG": None})
    assert bad.exit_code == 2 and "followers[0].key_env: environment variable ALICE_KEY is not set" in bad.output


def test_a_follower_that_recovers_says_so_once(tmp_path):
    spec = load_fleet(_two(tmp_path), environ=ENV)
    spec = type(spec)(spec.base, spec.followers[:1])  # alice only
    calls = Counter()

    def customize(name, container):
        calls[name] += 1
        if calls[name] <= 3:
            raise RuntimeError("CLOB unreachable")

    alerters, make = _recording()
    fleet = Fleet(spec, customize=customize, make_alerter=make).start()
    assert fleet.wait(120)
    alice = fleet.workers[0]
    assert alice.status.worker == "finished" and alice.status.failures == 3
    errors = [a.message for a in alerters["alice"].sent if a.kind == "error"]
    assert errors == ["worker failed, restarting: RuntimeError: CLOB unreachable",
                      "worker running again after 3 failure(s)"]


def test_a_restarted_follower_closes_the_market_data_and_executor_of_the_failed_attempt(tmp_path):
    from dependency_injector import providers

    spec = load_fleet(_two(tmp_path), environ=ENV)
    spec = type(spec)(spec.base, spec.followers[:1])  # alice only
    attempts, closed = Counter(), []

    class Closing:
        """Market data or executor that notes its close; everything else passes through."""

        def __init__(self, inner, name):
            self._inner, self._name = inner, name

        def close(self):
            closed.append((self._name, attempts["alice"]))

        def __getattr__(self, name):
            return getattr(self._inner, name)

    class FailingFeed:
        def __init__(self, inner):
            self.inner, self.name = inner, inner.name

        def read(self, cursors):
            if attempts["alice"] <= 2:
                raise RuntimeError("feed broke")
            return self.inner.read(cursors)

    def customize(name, container):
        attempts[name] += 1
        container.market.override(providers.Object(Closing(container.market(), "market")))
        container.executor.override(providers.Object(Closing(container.executor(), "executor")))
        container.feed.override(providers.Object(FailingFeed(container.feed())))

    fleet = Fleet(spec, customize=customize, make_alerter=_recording()[1]).start()
    assert fleet.wait(120)
    assert fleet.workers[0].status.worker == "finished" and attempts["alice"] == 3
    # each attempt closed its own, the failed ones and the one that finished
    assert sorted(closed) == sorted((n, a) for a in (1, 2, 3) for n in ("executor", "market"))
