"""The live engine redeeming by itself (live.auto_redeem, on by default on the
live profile), end to end against the CLOB, Polygon JSON-RPC and relayer
stand-ins, for each wallet route: `copytrader run` copies two markets; they
resolve, one for our side and one against it; the next run notices, redeems
the winner exactly once (the EOA's own transaction, or a gasless one through
the relayer), clears the loser without a transaction, and ends with pUSD up by
the payout and realised PnL equal to payout minus cost. A third run sends
nothing. Without an RPC URL, the run still trades and says why it cannot redeem."""
from __future__ import annotations

import json
import time
from decimal import Decimal as D

import pytest
from click.testing import CliRunner

from copytrader.entrypoints.cli import main
from tests.standins.relayer import RelayerStandIn

from .conftest import ADDRESS, KEY
from .test_doctor import PUSD, _fund, rpc, wallets  # noqa: F401 (the rpc fixture)

CTF = "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"
LEADER = "0x" + "a7" * 20
WIN, WIN_OTHER = str(10**70 + 11), str(10**70 + 12)  # our side wins
LOSE, LOSE_OTHER = str(10**70 + 21), str(10**70 + 22)  # our side loses
COND_WIN, COND_LOSE = "0x" + "e1" * 32, "0x" + "e2" * 32
MICRO = 10**6


def _rows(now: int) -> list[dict]:
    return [{"proxyWallet": LEADER, "timestamp": now - 50 + i, "conditionId": cond, "type": "TRADE", "size": 40,
             "usdcSize": float(D(ask) * 40), "price": float(ask), "asset": token, "side": "BUY", "outcomeIndex": 0,
             "outcome": "Yes", "transactionHash": "0x" + f"{i + 1:064x}", "title": title}
            for i, (token, cond, ask, title) in enumerate([(WIN, COND_WIN, "0.50", "Will it rain?"),
                                                           (LOSE, COND_LOSE, "0.25", "Will it snow?")])]


def _redeem_row(now: int) -> dict:
    """The leader redeeming the winner: a hint that the market resolved."""
    return {"proxyWallet": LEADER, "timestamp": now - 5, "conditionId": COND_WIN, "type": "REDEEM", "size": 40,
            "usdcSize": 40, "price": 1, "asset": "", "side": "", "outcomeIndex": 0, "outcome": "",
            "transactionHash": "0x" + f"{77:064x}", "title": "Will it rain?"}


def _resolve(clob, rpc, funder: str, held: dict) -> None:
    """The markets resolve (CLOB and chain) with the wallet holding what we bought."""
    for token, size in held.items():
        rpc.set_balance(CTF, funder, token, int(size * MICRO))
    clob.resolved[COND_WIN], clob.resolved[COND_LOSE] = WIN, LOSE_OTHER
    rpc.resolve(COND_WIN, CTF, {WIN: D(1), WIN_OTHER: D(0)})
    rpc.resolve(COND_LOSE, CTF, {LOSE: D(0), LOSE_OTHER: D(1)})


@pytest.mark.parametrize("route", ["eoa", "relayer"])
def test_a_live_run_redeems_each_winner_once_and_clears_the_loser(route, clob, rpc, tmp_path):
    for token, other, cond, ask in [(WIN, WIN_OTHER, COND_WIN, "0.50"), (LOSE, LOSE_OTHER, COND_LOSE, "0.25")]:
        for t in (token, other):
            clob.set_book(t, asks=[(ask, "1000")], bids=[(str(D(ask) - D("0.02")), "1000")], market=cond)
    relayer = RelayerStandIn(rpc, key_owner=ADDRESS).__enter__() if route == "relayer" else None
    try:
        funder = wallets()["poly_proxy"] if relayer else ADDRESS
        if relayer:
            relayer.add_wallet(ADDRESS, funder, "poly_proxy")
        _fund(rpc, funder)
        now = int(time.time())
        feed = tmp_path / "leader.jsonl"
        feed.write_text("".join(json.dumps(r) + "\n" for r in _rows(now)))
        env = {"COPYTRADER_CONFIG": None, "COPYTRADER_PRIVATE_KEY": KEY, "COPYTRADER_LEADERS": LEADER,
               "COPYTRADER_LIVE__HOST": clob.url, "COPYTRADER_LIVE__GAMMA_HOST": clob.url,
               "COPYTRADER_LIVE__RPC_URL": rpc.url, "COPYTRADER_LIVE__TIMEOUT_S": "2",
               "COPYTRADER_LIVE__RELAYER_POLL_MS": "1", "COPYTRADER_LIVE__RELAYER_MAX_POLLS": "5",
               "COPYTRADER_FOLLOWER__SIZING__MODE": "fixed", "COPYTRADER_FOLLOWER__SIZING__FIXED_USDC": "10"}
        if relayer:
            env.update({"COPYTRADER_LIVE__SIGNATURE_TYPE": "poly_proxy", "COPYTRADER_LIVE__RELAYER_URL": relayer.url,
                        "COPYTRADER_RELAYER_API_KEY": relayer.api_key})
        cli = lambda *args: CliRunner().invoke(main, ["--db", str(tmp_path / "ct.db"), *args], env=env)  # noqa: E731

        res = cli("run", "--replay", str(feed), "--live", "--yes", "--json")
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["copied"] == 2
        held = {p["token_id"]: D(p["size"]) for p in json.loads(cli("positions", "--json").stdout)}
        cost = {p["token_id"]: D(p["cost"]) for p in json.loads(cli("positions", "--json").stdout)}
        assert set(held) == {WIN, LOSE} and held[WIN] == clob.fills(WIN)
        sends = lambda: len(relayer.submitted) if relayer else rpc.calls.count("eth_sendRawTransaction")  # noqa: E731
        assert sends() == 0  # nothing resolved yet: nothing to redeem

        _resolve(clob, rpc, funder, held)
        pusd = rpc.balances[(PUSD.lower(), funder.lower())]
        feed.write_text(feed.read_text() + json.dumps(_redeem_row(now)) + "\n")
        res = cli("run", "--replay", str(feed), "--live", "--yes", "--json")
        assert res.exit_code == 0, res.output
        assert sends() == 1 and rpc.calls.count("eth_sendRawTransaction") == (0 if relayer else 1)
        assert rpc.balances[(PUSD.lower(), funder.lower())] - pusd == int(held[WIN] * MICRO)  # the payout
        assert rpc.balance(CTF, funder, WIN) == 0 and rpc.balance(CTF, funder, LOSE) == int(held[LOSE] * MICRO)
        assert [r["paid"] for r in rpc.redeems] == [int(held[WIN] * MICRO)]  # one redeem; none for the loser

        closed = {p["token_id"]: p for p in json.loads(cli("positions", "--all", "--json").stdout)}
        assert closed[WIN]["status"] == "paid" and D(closed[WIN]["realised"]) == held[WIN] - cost[WIN]
        assert closed[LOSE]["status"] == "lost" and D(closed[LOSE]["realised"]) == -cost[LOSE]
        status = json.loads(cli("status", "--json").stdout)["resolutions"]
        assert (status["redeemed"]["positions"], status["pending"]["positions"], status["lost"]["positions"]) \
            == (1, 0, 1)

        res = cli("run", "--replay", str(feed), "--live", "--yes", "--json")  # a restart: nothing sent again
        assert res.exit_code == 0, res.output
        assert sends() == 1
        [row] = json.loads(cli("status", "--json").stdout)["redemptions"]  # the record, as status shows it
        assert row["state"] == "paid" and D(row["paid_usdc"]) == held[WIN] and row["condition_id"] == COND_WIN
        assert row["route"] == ("relayer" if relayer else "eoa") and (row["relayer_id"] != "") is bool(relayer)
        text = cli("status").output
        assert "redemptions: 1 paid, 0 under way, 0 failed" in text and f"paid {held[WIN]:.2f} pUSD" in text
    finally:
        if relayer:
            relayer.__exit__(None, None, None)


def test_without_an_rpc_url_the_run_trades_and_says_why_it_cannot_redeem(clob, rpc, tmp_path):
    clob.set_book(WIN, asks=[("0.50", "1000")], bids=[("0.48", "1000")], market=COND_WIN)
    clob.set_book(WIN_OTHER, asks=[("0.50", "1000")], market=COND_WIN)
    _fund(rpc, ADDRESS)
    now = int(time.time())
    feed = tmp_path / "leader.jsonl"
    feed.write_text(json.dumps(_rows(now)[0]) + "\n")
    env = {"COPYTRADER_CONFIG": None, "COPYTRADER_PRIVATE_KEY": KEY, "COPYTRADER_LEADERS": LEADER,
           "COPYTRADER_LIVE__HOST": clob.url, "COPYTRADER_LIVE__GAMMA_HOST": clob.url,
           "COPYTRADER_LIVE__TIMEOUT_S": "2"}
    cli = lambda *args: CliRunner().invoke(main, ["--db", str(tmp_path / "ct.db"), *args], env=env)  # noqa: E731
    assert cli("run", "--replay", str(feed), "--live", "--yes").exit_code == 0
    clob.resolved[COND_WIN] = WIN
    res = cli("run", "--replay", str(feed), "--live", "--yes", "--json")
    assert res.exit_code == 0, res.output
    assert "auto-redeem cannot send: set live.rpc_url" in res.output, res.output
    [pos] = json.loads(cli("positions", "--all", "--json").stdout)
    assert pos["status"] == "pending payout"
