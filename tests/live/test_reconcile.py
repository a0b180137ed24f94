"""Reconciliation with the chain: the RPC stand-in's balances (balanceOf and
balanceOfBatch on Conditional Tokens and PositionManager, pUSD), `copytrader
reconcile` against the CLOB and RPC stand-ins (each likely cause of a planted
drift, nothing otherwise, CTF and Protocol V2 tokens, JSON, RPC faults), and
serve's periodic check (engine clock, gauge, one alert per drift)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from click.testing import CliRunner

from copytrader.adapters.alerts.log import RecordingAlerter
from copytrader.adapters.clock import ManualClock
from copytrader.adapters.execution.polymarket.chain import BATCH, PolygonChain
from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.application.chain_reconcile import Cause, Drift, DriftWatch, Reconciliation
from copytrader.domain.model import IntentRecord, IntentStatus, Settlement
from copytrader.domain.portfolio import Position
from copytrader.entrypoints.cli import main
from copytrader.testing import v2_position_id
from tests.standins.rpc import RpcStandIn

from .conftest import ADDRESS, KEY

CTF = "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"
POSITION_MANAGER = "0x006F54F7f9A22e0000CC2AB60031000000ae9fEF"
PUSD = "0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB"
A, B, C = str(10**70 + 1), str(10**70 + 2), str(10**70 + 3)  # CTF token ids
V2 = v2_position_id(0xC0FFEE, 0)
COND_A, COND_V2 = "0x" + "a1" * 32, "0x" + "b2" * 32
LEADERS = ("0x" + "11" * 20, "0x" + "22" * 20)
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
MICRO = 10**6


@pytest.fixture
def rpc(clob):
    with RpcStandIn() as server:
        clob.chain = server
        yield server


# -- the stand-in's balances, read through web3 --------------------------------------
def test_batch_balances_on_both_ledgers_in_chunks(rpc):
    ids = [str(10**70 + i) for i in range(2 * BATCH + 50)]
    for i, token in enumerate(ids):
        rpc.set_balance(CTF, ADDRESS, token, i * 1000)
    rpc.set_balance(POSITION_MANAGER, ADDRESS, V2, 7 * MICRO)
    rpc.set_balance(POSITION_MANAGER, ADDRESS, ids[3], 99)  # the other ledger's id: not CTF's balance
    rpc.set_balance(PUSD, ADDRESS, None, 25_500_000)
    chain = PolygonChain(rpc.url)
    assert chain.erc1155_balances(CTF, ADDRESS, ids) == [i * 1000 for i in range(len(ids))]
    assert rpc.batch_sizes == [BATCH, BATCH, 50]
    assert chain.erc1155_balances(POSITION_MANAGER, ADDRESS, [V2, ids[3], ids[4]]) == [7 * MICRO, 99, 0]
    assert chain.erc1155_balances(CTF, "0x" + "99" * 20, ids[:2]) == [0, 0]  # another owner holds nothing
    assert chain.erc20_balance(PUSD, ADDRESS) == Decimal("25.5")
    single = chain.w3.eth.contract(chain._checksum(POSITION_MANAGER), abi=[{
        "name": "balanceOf", "type": "function", "stateMutability": "view",
        "inputs": [{"name": "a", "type": "address"}, {"name": "id", "type": "uint256"}],
        "outputs": [{"name": "", "type": "uint256"}]}]).functions.balanceOf(ADDRESS, int(V2)).call()
    assert single == 7 * MICRO


def test_batch_read_faults_raise(rpc):
    chain = PolygonChain(rpc.url, timeout_s=2)
    rpc.inject("rpc-error")
    with pytest.raises(Exception):
        chain.erc1155_balances(CTF, ADDRESS, [A])
    rpc.set_balance(CTF, ADDRESS, A, 5)
    rpc.inject("500")
    assert chain.erc1155_balances(CTF, ADDRESS, [A]) == [5]  # one 5xx: web3 asks again
    rpc.inject(*["500"] * 20)
    with pytest.raises(Exception):
        chain.erc1155_balances(CTF, ADDRESS, [A])
    rpc.faults.clear()
    assert chain.erc1155_balances(CTF, ADDRESS, [A]) == [5]


# -- `copytrader reconcile` -----------------------------------------------------------
def _position(leader, token, size, condition=COND_A, **kw):
    return Position(leader, token, condition, size=Decimal(size), cost=Decimal(size) / 2, bought=Decimal(size), **kw)


def _intent(n, token, status=IntentStatus.FILLED, settlement=Settlement.FINAL, filled="0"):
    return IntentRecord(f"i{n}", f"t{n}", "default", LEADERS[0], token, COND_A, "BUY", Decimal(10), Decimal("0.5"),
                        T0, "approved" if status is not IntentStatus.SKIPPED else "rejected", status,
                        filled_size=Decimal(filled), settlement=settlement, updated_at=T0)


@pytest.fixture
def book(tmp_path):
    """Our book: CTF token A held through two leaders (6 + 4 shares), a Protocol V2 position (5 shares)."""
    path = tmp_path / "ct.db"
    store = SqliteStore(path)
    with store.transaction():
        store.put_position(_position(LEADERS[0], A, "6", title="Will A?"))
        store.put_position(_position(LEADERS[1], A, "4", title="Will A?"))
        store.put_position(_position(LEADERS[0], V2, "5", condition=COND_V2))
    store.close()
    return path


def _plant(path, *positions, intents=()):
    store = SqliteStore(path)
    with store.transaction():
        for p in positions:
            store.put_position(p)
        for r in intents:
            store.put_intent(r)
    store.close()


def _equal(rpc):
    rpc.set_balance(CTF, ADDRESS, A, 10 * MICRO)
    rpc.set_balance(POSITION_MANAGER, ADDRESS, V2, 5 * MICRO)


def reconcile(clob, rpc, db, *extra, env=None):
    base = {"COPYTRADER_CONFIG": None, "COPYTRADER_LIVE__HOST": clob.url, "COPYTRADER_LIVE__GAMMA_HOST": clob.url,
            "COPYTRADER_LIVE__TIMEOUT_S": "2", "COPYTRADER_LIVE__RPC_URL": rpc.url, "COPYTRADER_PRIVATE_KEY": KEY}
    res = CliRunner().invoke(main, ["--log-level", "error", "--db", str(db), "reconcile", *extra], env={**base, **(env or {})})
    assert KEY[2:] not in res.output
    return res


def _json(res):
    return json.loads(res.stdout)


def test_a_book_equal_to_the_chain_has_no_drift(clob, rpc, book):
    _equal(rpc)
    res = reconcile(clob, rpc, book)
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"no drift(s) in 2 token(s) of wallet {ADDRESS} (our book against the chain and the CLOB)"
    data = _json(reconcile(clob, rpc, book, "--json"))
    assert data == {"funder": ADDRESS, "checked": 2, "drifts": [], "clob_errors": 0}
    asked = {k[2] for k in clob.balance_cache if len(k) == 3}  # the CLOB was asked for each token, by its ledger
    assert {(k[1], k[2]) for k in clob.balance_cache if len(k) == 3} == {("CONDITIONAL", A), ("CONDITIONAL-V2", V2)}
    assert asked == {A, V2}


def test_chain_below_ours_after_a_provisional_fill(clob, rpc, book):
    _equal(rpc)
    rpc.set_balance(CTF, ADDRESS, A, 6 * MICRO)  # 4 shares of a matched trade not (or never) on chain
    _plant(book, intents=[_intent(1, A, settlement=Settlement.PROVISIONAL, filled="4")])
    res = reconcile(clob, rpc, book, "--json")
    assert res.exit_code == 1, res.output
    (drift,) = _json(res)["drifts"]
    assert drift == {"token_id": A, "ledger": "ConditionalTokens", "title": "Will A?", "ours": "10", "chain": "6",
                     "clob": "6", "difference": "-4", "cause": "failed_trade",
                     "explanation": "a provisional fill's trade may still fail on chain, or failed"}


@pytest.mark.parametrize("token,ledger,chain", [(A, CTF, 12), (A, CTF, 7), (V2, POSITION_MANAGER, 9)])
def test_chain_other_than_ours_without_a_provisional_fill_is_a_trade_outside(clob, rpc, book, token, ledger, chain):
    _equal(rpc)
    rpc.set_balance(ledger, ADDRESS, token, chain * MICRO)
    res = reconcile(clob, rpc, book)
    assert res.exit_code == 1, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("1 drift(s) in 2 token(s)")
    ours = 10 if token == A else 5
    assert lines[0].startswith("manual_trade") and f"ours {ours}, chain {chain}, CLOB {chain}, difference " \
        f"{chain - ours} shares" in lines[0], lines[0]
    assert ("PositionManager" if token == V2 else "ConditionalTokens") in lines[0]


def test_winning_token_gone_from_the_chain_was_redeemed(clob, rpc, book):
    _equal(rpc)
    clob.set_book(A, market=COND_A, bids=[("0.99", "10")])
    clob.resolved[COND_A] = A  # resolved, A won
    rpc.set_balance(CTF, ADDRESS, A, 0)
    (drift,) = _json(reconcile(clob, rpc, book, "--json"))["drifts"]
    assert (drift["cause"], drift["ours"], drift["chain"], drift["difference"]) == ("redeemed", "10", "0", "-10")
    clob.resolved[COND_A] = B  # A lost: tokens gone from the chain are then not a redemption's payout
    clob.set_book(B, market=COND_A)
    (drift,) = _json(reconcile(clob, rpc, book, "--json"))["drifts"]
    assert drift["cause"] == "manual_trade"


def test_resolved_in_our_book_and_still_in_the_wallet_is_unredeemed(clob, rpc, book):
    _equal(rpc)
    _plant(book, _position(LEADERS[0], V2, "5", condition=COND_V2).resolve(Decimal(1)))
    (drift,) = _json(reconcile(clob, rpc, book, "--json"))["drifts"]
    assert (drift["token_id"], drift["cause"], drift["ours"], drift["chain"]) == (V2, "unredeemed", "0", "5")


def test_a_token_we_never_held_is_not_ours(clob, rpc, book):
    _equal(rpc)
    _plant(book, intents=[_intent(2, C, status=IntentStatus.SKIPPED)])  # a leader trade we did not copy
    res = reconcile(clob, rpc, book)
    assert res.exit_code == 0, res.output  # nothing of C in the wallet: no drift
    rpc.set_balance(CTF, ADDRESS, C, 3_500_000)
    clob.balance_cache.clear()
    (drift,) = _json(reconcile(clob, rpc, book, "--json"))["drifts"]
    assert (drift["token_id"], drift["cause"], drift["ours"], drift["chain"]) == (C, "not_ours", "0", "3.5")


def test_the_clobs_view_alone_differs(clob, rpc, book):
    _equal(rpc)
    assert reconcile(clob, rpc, book).exit_code == 0  # the CLOB has read the chain
    clob.balance_cache[(ADDRESS.lower(), "CONDITIONAL-V2", V2)]["balance"] = "4000000"  # its cache lags
    (drift,) = _json(reconcile(clob, rpc, book, "--json"))["drifts"]
    assert (drift["token_id"], drift["cause"], drift["chain"], drift["clob"], drift["difference"]) == \
        (V2, "clob_view", "5", "4", "-1")


def test_a_clob_fault_leaves_the_chain_comparison(clob, rpc, book):
    _equal(rpc)
    clob.inject("GET /balance-allowance", "500", "malformed")
    res = reconcile(clob, rpc, book, "--json")
    assert res.exit_code == 0, res.output
    assert _json(res)["clob_errors"] == 2


@pytest.mark.parametrize("fault", ["500", "rpc-error", "malformed"])
def test_an_rpc_fault_is_one_sentence(clob, rpc, book, fault):
    _equal(rpc)
    rpc.inject(*[fault] * 20)
    res = reconcile(clob, rpc, book)
    assert res.exit_code == 1, res.output
    assert res.output.count("\n") == 1 and "Traceback" not in res.output
    assert res.output.startswith(f"Error: cannot read the wallet's token balances from live.rpc_url {rpc.url}") or \
        res.output.startswith(f"Error: cannot read approvals from live.rpc_url {rpc.url}"), res.output


def test_bad_input_exits_2(clob, rpc, book, tmp_path):
    res = reconcile(clob, rpc, book, env={"COPYTRADER_LIVE__RPC_URL": ""})
    assert res.exit_code == 2 and "live.rpc_url" in res.output and res.output.count("\n") == 1
    res = reconcile(clob, rpc, book, env={"COPYTRADER_PRIVATE_KEY": ""})
    assert res.exit_code == 2 and "private key" in res.output
    res = reconcile(clob, rpc, tmp_path / "missing.db")
    assert res.exit_code == 2 and "missing.db" in res.output
    assert not (tmp_path / "missing.db").exists()


def test_reconcile_never_changes_the_book(clob, rpc, book):
    rpc.set_balance(CTF, ADDRESS, A, 0)
    before = book.read_bytes()
    assert reconcile(clob, rpc, book).exit_code == 1
    assert book.read_bytes() == before
    assert not [c for c in rpc.calls if c == "eth_sendRawTransaction"] and not clob.posts


def test_help_names_the_exit_codes():
    res = CliRunner().invoke(main, ["reconcile", "--help"])
    assert res.exit_code == 0 and "Exit 0 no drift, 1 a drift" in " ".join(res.output.split())


# -- serve's periodic reconciliation ---------------------------------------------------
def _drift(token, chain, cause=Cause.MANUAL_TRADE):
    return Drift(token, Decimal(10), Decimal(chain), Decimal(chain), cause)


def test_drift_watch_is_paced_by_the_engine_clock_and_alerts_once_per_drift():
    from copytrader.adapters.metrics.prometheus import Metrics

    clock, alerter, metrics = ManualClock(T0), RecordingAlerter(), Metrics()
    answers = [[_drift(A, 12)], [_drift(A, 12)], [_drift(A, 12), _drift(V2, 3)], [_drift(V2, 3)], [], [_drift(V2, 3)]]
    reads = []

    def read():
        reads.append(clock.now())
        return Reconciliation(2, tuple(answers[len(reads) - 1]))

    watch = DriftWatch(read, clock, 600, alerter, lambda t, s: metrics.drift("alice", t, float(s)))
    gauge = lambda token: metrics.registry.get_sample_value(  # noqa: E731
        "copytrader_position_drift", {"follower": "alice", "token": token})
    for _ in range(len(answers)):
        watch.step()
        clock.advance(599)
        assert watch.step() is None  # not due yet: no read
        clock.advance(1)
        if len(reads) == 1:
            assert gauge(A) == 2.0 and alerter.kinds() == ["drift"]
    assert reads == [T0 + timedelta(seconds=600 * i) for i in range(len(answers))]
    # A: one alert while it lasts; V2: alerted, gone (gauge back to 0), alerted again when it came back
    assert [a.data["token_id"] for a in alerter.sent] == [A, V2, V2]
    assert gauge(A) == 0.0 and gauge(V2) == -7.0
    assert "manual_trade" in alerter.sent[0].message


def test_drift_watch_off_and_failing_reads():
    clock, alerter = ManualClock(T0), RecordingAlerter()
    calls = []
    assert DriftWatch(lambda: calls.append(1), clock, 0, alerter).step() is None and not calls  # 0: off

    def boom():
        calls.append(1)
        raise RuntimeError("node down")
    watch = DriftWatch(boom, clock, 60, alerter)
    assert watch.step() is None and watch.step() is None and calls == [1]  # tried again at the next interval
    clock.advance(60)
    watch.step()
    assert calls == [1, 1] and not alerter.sent


@pytest.mark.parametrize("interval", [600, 0])
def test_serve_runs_the_reconciliation_with_gauge_and_alert(clob, rpc, tmp_path, interval):
    """A live follower with live.rpc_url: its worker reconciles between feed items
    (the replay's clock), exports the drift and alerts it once."""
    from copytrader.adapters.metrics.prometheus import Metrics
    from copytrader.entrypoints.fleet import Fleet, load_fleet
    from copytrader.testing import CONDITION, LEADER, TOKEN
    from tests.standins.data_api import activity_row

    rows = tmp_path / "activity.jsonl"
    rows.write_text("\n".join(json.dumps(activity_row(LEADER, 1_790_000_000 + 700 * n, n, asset=TOKEN,
                                                      condition=CONDITION, size=40.0, price=0.5))
                              for n in range(3)) + "\n")
    clob.set_book(TOKEN, market=CONDITION, bids=[("0.49", "500")], asks=[("0.50", "500")])
    path = tmp_path / "live.toml"
    path.write_text(f"""
profile = "live"
[store]
path = "{tmp_path / 'data' / 'ct.db'}"
[feed]
kind = "replay"
path = "{rows}"
[live]
host = "{clob.url}"
gamma_host = "{clob.url}"
rpc_url = "{rpc.url}"
timeout_s = "2"
[service]
reconcile_interval_s = {interval}
""")
    spec = load_fleet(str(path), environ={"COPYTRADER_PRIVATE_KEY": KEY})
    alerters, metrics = [], Metrics()
    fleet = Fleet(spec, metrics=metrics, make_alerter=lambda s: alerters.append(RecordingAlerter()) or alerters[-1])
    fleet.start()
    assert fleet.wait(120)
    assert [w.status.worker for w in fleet.workers] == ["finished"], [w.status.error for w in fleet.workers]
    drifts = [a for a in alerters[0].sent if a.kind == "drift"]
    if interval == 0:  # off: no reconciliation, no chain reads
        assert not drifts and "eth_call" not in rpc.calls
        assert b"copytrader_position_drift{" not in metrics.render()[0]
        return
    # the stand-in CLOB matched our orders but the chain never got the tokens: a drift on TOKEN
    assert len(drifts) >= 1 and {a.data["token_id"] for a in drifts} == {TOKEN}
    keys = [(a.data["cause"], a.data["difference"]) for a in drifts]
    assert len(keys) == len(set(keys))  # each drift alerted once
    value = metrics.registry.get_sample_value("copytrader_position_drift", {"follower": "default", "token": TOKEN})
    assert value is not None and value < 0
    assert b"copytrader_position_drift" in metrics.render()[0]


def test_the_interval_setting_defaults_to_600_and_is_checked():
    from copytrader.entrypoints.config import load_config

    assert load_config(None).values["service"]["reconcile_interval_s"] == 600
    res = CliRunner().invoke(main, ["config", "check", "--json"], env={"COPYTRADER_CONFIG": None,
                                                                      "COPYTRADER_SERVICE__RECONCILE_INTERVAL_S": "-1"})
    assert res.exit_code == 2 and "COPYTRADER_SERVICE__RECONCILE_INTERVAL_S: expected a whole number >= 0" in res.output
