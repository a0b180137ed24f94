"""Redemption across kill -9: a live engine (tests.reliability.child, auto-redeem
on) copies two markets, they resolve (one for our side), and the next
processes are SIGKILLed just before or just after each commit of their
start-up and redemption pass (before the record, after it, after sending,
after mining, before booking the payout), or at a random moment, and
restarted until one runs to its end. Whatever was killed, for each wallet
route (the EOA's own transaction, the relayer's gasless one), the winner is
redeemed by exactly one send, pUSD rises by the payout once, the loser is
cleared without a transaction, and realised PnL is payout minus cost."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account

from copytrader.adapters.storage.sqlite import SqliteStore
from tests.live.test_auto_redeem import COND_LOSE, COND_WIN, CTF, LOSE, LOSE_OTHER, WIN, WIN_OTHER, _resolve, _rows
from tests.live.test_doctor import PUSD, _fund
from tests.reliability import FIGURES
from tests.reliability.crash import KEY, ROOT
from tests.standins.clob import ClobStandIn
from tests.standins.relayer import RelayerStandIn
from tests.standins.rpc import RpcStandIn

ADDRESS = Account.from_key(KEY).address
MICRO = 10**6


def _config(folder: Path, clob, rpc, relayer) -> Path:
    path = folder / "copytrader.toml"
    relayed = f'signature_type = "poly_proxy"\nrelayer_url = "{relayer.url}"\n' if relayer else ""
    path.write_text(f"""
profile = "live"
log_level = "error"
[store]
path = "{folder / 'ct.db'}"
[feed]
kind = "replay"
path = "{folder / 'leader.jsonl'}"
[market]
kind = "clob"
book_ttl_s = "0"
[live]
host = "{clob.url}"
gamma_host = "{clob.url}"
rpc_url = "{rpc.url}"
timeout_s = "2"
relayer_poll_ms = 1
relayer_max_polls = 5
{relayed}[follower]
max_trade_age_s = 100000000
[follower.sizing]
mode = "fixed"
fixed_usdc = "10"
""")
    return path


def _environ(relayer) -> dict:
    env = {**os.environ, "COPYTRADER_PRIVATE_KEY": KEY, "PYTHONPATH": str(ROOT)}
    env.pop("COPYTRADER_CONFIG", None)
    if relayer:
        env["COPYTRADER_RELAYER_API_KEY"] = relayer.api_key
    return env


def child(config: Path, env: dict, point: str = "", kill_after_s: float = 0.0) -> int:
    proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.child", str(config), point], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_after_s:
        try:
            proc.wait(timeout=kill_after_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode in (0, -9), err.decode()[-2000:]
    return proc.returncode


def _book(db: Path) -> tuple[dict, list]:
    with SqliteStore(db, read_only=True) as store:
        return ({p.token_id: p for p in store.positions(include_closed=True)}, store.redemptions())


# each process commits once and is killed: just after that commit, or just before the next one
@pytest.mark.parametrize("point", ["txn-after:1", "txn-before:2", "timer"])
@pytest.mark.parametrize("route", ["eoa", "relayer"])
def test_a_kill_anywhere_in_a_redemption_ends_paid_once_with_one_send(tmp_path, route, point):
    from polymarket._internal.environment import PRODUCTION_CONFIG
    from polymarket._internal.wallet import derive_proxy_wallet_address

    with ClobStandIn() as clob, RpcStandIn() as rpc:
        clob.chain = rpc
        relayer = RelayerStandIn(rpc, key_owner=ADDRESS).__enter__() if route == "relayer" else None
        try:
            funder = derive_proxy_wallet_address(ADDRESS, PRODUCTION_CONFIG.wallet_derivation) if relayer else ADDRESS
            if relayer:
                relayer.add_wallet(ADDRESS, funder, "poly_proxy")
            for token, other, cond, ask in [(WIN, WIN_OTHER, COND_WIN, "0.50"), (LOSE, LOSE_OTHER, COND_LOSE, "0.25")]:
                for t in (token, other):
                    clob.set_book(t, asks=[(ask, "1000")], bids=[(str(Decimal(ask) - Decimal("0.02")), "1000")],
                                  market=cond)
            _fund(rpc, funder)
            (tmp_path / "leader.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(int(time.time()))))
            config, env = _config(tmp_path, clob, rpc, relayer), _environ(relayer)
            started = time.monotonic()
            assert child(config, env) == 0  # copied; nothing resolved yet
            whole_run_s = time.monotonic() - started  # this machine's start-up and run: where a timer kills
            clob.advance_trades(2)  # the trades CONFIRMED on chain
            positions, _ = _book(tmp_path / "ct.db")
            held = {t: p.size for t, p in positions.items()}
            cost = {t: p.cost for t, p in positions.items()}
            assert set(held) == {WIN, LOSE}
            _resolve(clob, rpc, funder, held)
            pusd = rpc.balances[(PUSD.lower(), funder.lower())]

            rpc.hold = True  # a sent transaction waits in the mempool until time passes

            def time_passes() -> None:  # what was accepted is mined (the relayer runs it)
                relayer.execute_pending() if relayer else rpc.mine_pending()

            rng, kills, n = random.Random(f"{route}-{point}"), 0, 0
            while True:
                n += 1
                assert n < 60, [(r.state, r.reason) for r in _book(tmp_path / "ct.db")[1]]
                code = child(config, env, *((("", whole_run_s * rng.uniform(0.15, 1.5)) if point == "timer" else (point,))))
                kills += code == -9
                if n % 2 == 0:  # a restart finds every other send still unmined
                    time_passes()
                if code == 0 and [r.state for r in _book(tmp_path / "ct.db")[1]] == ["paid"]:
                    break
            assert kills >= 3 or point == "timer"
            assert child(config, env) == 0  # and once more: nothing left to do
            positions, records = _book(tmp_path / "ct.db")
        finally:
            if relayer:
                relayer.__exit__(None, None, None)
        sends = len(relayer.submitted) if relayer else rpc.calls.count("eth_sendRawTransaction")
    FIGURES["kill -9 during redemptions"] += kills
    assert sends == 1, (sends, [(r.state, r.reason) for r in records])
    [record] = records
    assert record.state == "paid" and record.condition_id == COND_WIN and record.paid == int(held[WIN] * MICRO)
    assert rpc.balances[(PUSD.lower(), funder.lower())] - pusd == int(held[WIN] * MICRO)
    assert rpc.balance(CTF, funder, WIN) == 0 and len(rpc.redeems) == 1
    assert positions[WIN].status == "paid" and positions[WIN].realised == held[WIN] - cost[WIN]
    assert positions[LOSE].status == "lost" and positions[LOSE].realised == -cost[LOSE]
