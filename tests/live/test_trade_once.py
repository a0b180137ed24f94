"""`copytrader trade-once`: one minimal order with telemetry (prototype step 4)."""
from __future__ import annotations

import json
from decimal import Decimal
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from copytrader.entrypoints.cli import main
from copytrader.testing import TOKEN
from tests.standins.clob import V2_EXCHANGE, order_hash, recover_order_signer

from .conftest import ADDRESS, KEY

SIGNED = ["salt", "maker", "signer", "tokenId", "makerAmount", "takerAmount", "side", "signatureType",
          "timestamp", "metadata", "builder"]


@pytest.fixture
def cli(tmp_path, clob):
    def invoke(*args, key=KEY):
        env = {"COPYTRADER_CONFIG": None, "COPYTRADER_LIVE__HOST": clob.url, "COPYTRADER_LIVE__GAMMA_HOST": clob.url,
               "COPYTRADER_LIVE__TIMEOUT_S": "2",
               "COPYTRADER_PRIVATE_KEY": key}
        return CliRunner().invoke(main, ["--db", str(tmp_path / "ct.db"), *args], env=env)
    invoke.tmp = tmp_path
    invoke.host = clob.url
    return invoke


def test_dry_run_is_the_default_and_prints_the_signed_order(cli, clob):
    res = cli("trade-once", "--token-id", TOKEN, "--side", "BUY", "--usdc", "1", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["profile"] == "dry-run" and data["status"] == "filled"
    assert data["size"] == "5"  # 1 USDC is under the market's minimum of 5 shares
    order = data["signed_order"]
    assert all(f in order for f in SIGNED + ["expiration", "signature"])
    assert data["exchange"] == V2_EXCHANGE and data["negRisk"] is False
    assert order_hash(order, V2_EXCHANGE) == data["order_hash"]
    assert recover_order_signer(order, V2_EXCHANGE) == ADDRESS
    assert set(data["timings_ms"]) == {"market_lookup_ms", "build_ms", "sign_ms", "post_ack_ms", "fill_ms"}
    assert data["request"]["sent"] is False and not any(m == "POST" for m, _ in clob.requests)
    path = Path(data["telemetry_file"])
    assert json.loads(path.read_text())["order_hash"] == data["order_hash"]
    assert os.stat(path).st_mode & 0o777 == 0o600
    for text in (res.output, path.read_text()):
        assert KEY not in text and KEY[2:] not in text


def test_live_needs_the_flag_and_confirmation(cli, clob):
    res = cli("--profile", "live", "trade-once", "--token-id", TOKEN, "--side", "BUY", "--size", "5")
    assert res.exit_code == 2 and "--live" in res.output
    res = cli("trade-once", "--token-id", TOKEN, "--side", "BUY", "--size", "5", "--live")
    assert res.exit_code == 2 and "--yes" in res.output
    assert clob.posts == []


def test_live_trade_once_posts_and_records_telemetry(cli, clob):
    res = cli("trade-once", "--token-id", TOKEN, "--side", "BUY", "--size", "5", "--max-price", "0.51",
              "--live", "--yes", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["status"] == "filled" and Decimal(data["fill_price"]) == Decimal("0.5") and len(clob.posts) == 1
    assert data["request"]["body"]["owner"] == "***" and data["response"]["status"] == "matched"
    assert data["slippage"] == "0.000000" and data["slippage_bps"] == "0.00"  # filled at the best ask seen when building
    creds = next(iter(clob.creds.values()))
    text = Path(data["telemetry_file"]).read_text()
    for secret in (creds["secret"], creds["passphrase"], creds["apiKey"], KEY[2:]):
        assert secret not in text and secret not in res.output
    from copytrader.adapters.storage.sqlite import SqliteStore
    with SqliteStore(cli.tmp / "ct.db", read_only=True) as store:
        [(key, _, stored)] = store.telemetry()
        assert key == "trade-once" and stored["order_hash"] == data["order_hash"]


def test_refused_order_is_exit_2_with_the_reason(cli, clob):
    clob.set_book(TOKEN, asks=[("0.985", "100")], bids=[("0.98", "100")], tick_size="0.001")
    res = cli("trade-once", "--token-id", TOKEN, "--side", "BUY", "--size", "5")
    assert res.exit_code == 2 and "price_band" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("args, text", [
    (["--side", "BUY", "--size", "5", "--usdc", "3"], "exactly one"),
    (["--side", "BUY"], "exactly one"),
    (["--side", "HOLD", "--size", "5"], "--side"),
])
def test_bad_arguments(cli, args, text):
    res = cli("trade-once", "--token-id", TOKEN, *args)
    assert res.exit_code == 2 and text in res.output


def test_missing_key_is_a_clear_error(cli):
    res = cli("trade-once", "--token-id", TOKEN, "--side", "BUY", "--size", "5", key=None)
    assert res.exit_code == 2 and "private key" in res.output


def test_key_file_must_be_0600(cli, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    os.chmod(key_file, 0o644)
    env_args = ["trade-once", "--token-id", TOKEN, "--side", "BUY", "--size", "5"]
    res = CliRunner().invoke(main, ["--db", str(tmp_path / "k.db"), *env_args], env={
        "COPYTRADER_CONFIG": None, "COPYTRADER_PRIVATE_KEY": None, "COPYTRADER_LIVE__KEY_FILE": str(key_file),
        "COPYTRADER_LIVE__HOST": cli.host, "COPYTRADER_LIVE__GAMMA_HOST": cli.host})
    assert res.exit_code == 2 and "must be 0600" in res.output and KEY[2:] not in res.output
    os.chmod(key_file, 0o600)
    res = CliRunner().invoke(main, ["--db", str(tmp_path / "k.db"), *env_args], env={
        "COPYTRADER_CONFIG": None, "COPYTRADER_PRIVATE_KEY": None, "COPYTRADER_LIVE__KEY_FILE": str(key_file),
        "COPYTRADER_LIVE__HOST": cli.host, "COPYTRADER_LIVE__GAMMA_HOST": cli.host})
    assert res.exit_code == 0, res.output


def test_dry_run_and_live_copy_a_replayed_leader(cli, clob, tmp_path):
    rows = [{"proxyWallet": "0x" + "ab" * 20, "timestamp": 1793534400 + i, "conditionId": "0x" + "cd" * 32,
             "type": "TRADE", "size": size, "usdcSize": 1, "transactionHash": "0x" + f"{i:064x}", "price": 0.5,
             "asset": TOKEN, "side": side, "title": "stand-in market"}
            for i, (side, size) in enumerate([("BUY", 100), ("BUY", 50), ("SELL", 75)])]
    replay = tmp_path / "leader.jsonl"
    replay.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    dry = json.loads(cli("--profile", "dry-run", "run", "--replay", str(replay), "--json").stdout)
    assert dry["copied"] == 3 and clob.posts == []
    (tmp_path / "ct.db").unlink()
    live = json.loads(cli("run", "--replay", str(replay), "--json", "--live", "--yes").stdout)
    assert live["copied"] == 3 and len(clob.posts) == 3 and clob.rejections == []
    # the same decisions and sizes; live prices differ as its orders consumed the stand-in's book
    assert live["outcomes"] == dry["outcomes"]
    assert [Decimal(p["size"]) for p in live["positions"]] == [Decimal(p["size"]) for p in dry["positions"]]
    assert Decimal(live["positions"][0]["size"]) == clob.fills(TOKEN)


def test_a_protocol_v2_market_is_signed_for_exchange_v3_with_domain_3(cli, clob):
    from copytrader.testing import v2_position_id
    from tests.standins.clob import EXCHANGE_V3

    token = v2_position_id(0x77, 1)
    clob.set_book(token, bids=[("0.40", "500")], asks=[("0.41", "500")], market="0x" + "77" * 32, version="v2")
    res = cli("trade-once", "--token-id", token, "--side", "BUY", "--size", "5", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert (data["exchange"], data["domain_version"], data["market"]["version"]) == (EXCHANGE_V3, "3", "v2")
    order = data["signed_order"]
    assert order["tokenId"] == token and order_hash(order, EXCHANGE_V3, version="3") == data["order_hash"]
    assert recover_order_signer(order, EXCHANGE_V3, version="3") == ADDRESS
    res = cli("trade-once", "--token-id", token, "--side", "BUY", "--size", "5", "--live", "--yes", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["status"] == "filled" and clob.rejections == [] and clob.fills(token) == 5


def test_an_id_of_the_wrong_position_system_is_refused_before_signing(cli, clob):
    from copytrader.testing import v2_position_id

    token = v2_position_id(0x78, 0)
    clob.set_book(token, bids=[("0.40", "500")], asks=[("0.41", "500")], market="0x" + "78" * 32, version="v1")
    res = cli("trade-once", "--token-id", token, "--side", "BUY", "--size", "5", "--live", "--yes")
    assert res.exit_code == 2 and "token_version_mismatch: " in res.output and "ValueError" not in res.output
    assert clob.posts == []
    res = cli("trade-once", "--token-id", "0x" + token, "--side", "BUY", "--size", "5")
    assert res.exit_code == 2 and "must be a decimal token id" in res.output
