"""Today's exchange end to end: a live replay against the loopback stand-ins
(CLOB with its Gamma route), with a CTF market, a neg-risk market and two
Protocol V2 markets in its feed, for each wallet type. Every posted order is
checked by the stand-in's own EIP-712 verification (typed data rebuilt with
eth_account's generic encoder: exchange and domain version chosen by the id,
POLY_1271 wrapper and trailer), and a trade that FAILS on chain leaves no
position once the next run resumes the settlement watch."""
from __future__ import annotations

import json
from decimal import Decimal as D

import pytest
from click.testing import CliRunner

from copytrader.entrypoints.cli import main
from copytrader.testing import v2_position_id
from tests.standins.clob import EXCHANGE_V3, V2_EXCHANGE, V2_NEG_RISK_EXCHANGE, exchange_of, order_hash, recover_order_signer

from .conftest import ADDRESS, KEY

LEADER = "0x" + "a7" * 20
FAILING = str(10**70 + 7)  # a CTF market whose trade fails on chain
MARKETS = {  # token -> (condition, neg_risk, version, ask)
    FAILING: ("0x" + "07" * 32, False, "v1", "0.40"),
    str(10**70 + 1): ("0x" + "01" * 32, False, "v1", "0.50"),
    str(10**70 + 2): ("0x" + "02" * 32, True, "v1", "0.30"),
    v2_position_id(0xBEEF, 0): ("0x" + "03" * 32, False, "v2", "0.60"),
    v2_position_id(0xCAFE, 1, module=2): ("0x" + "04" * 32, True, "v2", "0.20"),
}
EXPECTED_EXCHANGE = {FAILING: V2_EXCHANGE, str(10**70 + 1): V2_EXCHANGE, str(10**70 + 2): V2_NEG_RISK_EXCHANGE}


def rows(now: int) -> list[dict]:
    out = []
    for i, (token, (condition, _, _, ask)) in enumerate(MARKETS.items()):
        out.append({"proxyWallet": LEADER, "timestamp": now - 50 + i, "conditionId": condition, "type": "TRADE",
                    "size": 40, "usdcSize": float(D(ask) * 40), "price": float(ask), "asset": token, "side": "BUY",
                    "outcomeIndex": 0, "outcome": "Yes", "transactionHash": "0x" + f"{i + 1:064x}",
                    "title": f"market {i}"})
    out.append({**out[3], "timestamp": now - 30, "side": "SELL", "price": 0.58, "usdcSize": 0.58 * 20, "size": 20,
                "transactionHash": "0x" + f"{99:064x}"})
    return out


def funder_for(kind: str, clob) -> str:
    from polymarket._internal.environment import PRODUCTION_CONFIG as P
    from polymarket._internal.wallet import derive_proxy_wallet_address, derive_safe_wallet_address

    from tests.live.test_signing import deposit_wallet_of

    if kind == "deposit_wallet":
        wallet = deposit_wallet_of(ADDRESS)
        clob.deposit_wallets[wallet] = ADDRESS
        return wallet
    return {"eoa": ADDRESS, "poly_proxy": derive_proxy_wallet_address(ADDRESS, P.wallet_derivation),
            "gnosis_safe": derive_safe_wallet_address(ADDRESS, P.wallet_derivation)}[kind]


@pytest.mark.parametrize("kind", ["eoa", "poly_proxy", "gnosis_safe", "deposit_wallet"])
def test_a_live_replay_copies_ctf_neg_risk_and_v2_markets_for_each_wallet_type(kind, clob, tmp_path):
    import time

    for token, (condition, neg_risk, version, ask) in MARKETS.items():
        bid = str(D(ask) - D("0.02"))
        clob.set_book(token, asks=[(ask, "1000")], bids=[(bid, "1000")], market=condition, neg_risk=neg_risk,
                      version=version)
    funder = funder_for(kind, clob)
    feed = tmp_path / "leader.jsonl"
    feed.write_text("\n".join(json.dumps(r) for r in rows(int(time.time()))) + "\n")
    env = {"COPYTRADER_CONFIG": None, "COPYTRADER_PRIVATE_KEY": KEY, "COPYTRADER_LEADERS": LEADER,
           "COPYTRADER_LIVE__HOST": clob.url, "COPYTRADER_LIVE__GAMMA_HOST": clob.url,
           "COPYTRADER_LIVE__TIMEOUT_S": "2", "COPYTRADER_LIVE__SIGNATURE_TYPE": kind,
           "COPYTRADER_LIVE__FUNDER": funder if kind == "deposit_wallet" else "",  # proxy and safe: derived
           "COPYTRADER_FOLLOWER__SIZING__MODE": "fixed", "COPYTRADER_FOLLOWER__SIZING__FIXED_USDC": "10"}
    cli = lambda *args: CliRunner().invoke(main, ["--db", str(tmp_path / "ct.db"), *args], env=env)

    clob.fail_next_trades(1)  # the first order's trade (FAILING's) goes RETRYING -> FAILED
    res = cli("run", "--replay", str(feed), "--live", "--yes", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert clob.rejections == [] and len(clob.posts) == 6, (clob.rejections, [(h["side"], h["token_id"][-6:], h["status"], h["reason"], h["detail"], h["error"]) for h in json.loads(cli("history", "--json").stdout)])
    assert summary["copied"] == 6 and summary["rejected_by_reason"] == {}, json.dumps(summary)
    assert clob.rejections == [] and len(clob.posts) == 6, (clob.rejections, cli("history", "--json").stdout[-1500:])
    for post in clob.posts:
        order = post["order"]
        token = order["tokenId"]
        exchange, version = exchange_of(token, MARKETS[token][1])
        assert exchange == EXPECTED_EXCHANGE.get(token, EXCHANGE_V3) and version == ("3" if MARKETS[token][2] == "v2"
                                                                                    else "2")
        assert recover_order_signer(order, exchange, version=version) == ADDRESS  # independent of the SDK
        assert order_hash(order, exchange, version=version) in clob.orders
        assert order["maker"] == funder and order["signatureType"] == {
            "eoa": 0, "poly_proxy": 1, "gnosis_safe": 2, "deposit_wallet": 3}[kind]
        assert order["signer"] == (funder if kind == "deposit_wallet" else ADDRESS)

    clob.advance_trades(2)  # on chain: CONFIRMED, the failing one FAILED
    assert sorted(clob.trade_statuses()) == ["CONFIRMED"] * 5 + ["FAILED"]
    res = cli("run", "--replay", str(feed), "--live", "--yes", "--json")  # nothing new; the watch resumes
    assert res.exit_code == 0, res.output
    res = cli("positions", "--json")
    assert res.exit_code == 0, res.output
    held = {p["token_id"]: D(p["size"]) for p in json.loads(res.stdout)}
    assert FAILING not in held and clob.fills(FAILING) == 0
    assert held == {t: clob.fills(t) for t in list(MARKETS)[1:]}
    res = cli("status", "--json")
    status = json.loads(res.stdout)
    assert status["provisional_fills"] == [] and [r["token_id"] for r in status["reversed_fills"]] == [FAILING]
