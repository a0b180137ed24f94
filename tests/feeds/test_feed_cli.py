"""`run`, `watch` and `leaders` with the live feeds, against the stand-ins."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from copytrader.adapters.execution.polymarket.settings import V2_EXCHANGE
from copytrader.entrypoints.cli import main
from tests.standins.data_api import DataApiStandIn, activity_row
from tests.standins.rpc import RpcStandIn, fill_log

A = "0x" + "a1" * 20
B = "0x" + "b2" * 20


@pytest.fixture
def api():
    with DataApiStandIn() as server:
        yield server


@pytest.fixture
def cli(tmp_path, api):
    def invoke(*args, env=None):
        base = {"COPYTRADER_CONFIG": None, "COPYTRADER_FEED__URL": api.url, "COPYTRADER_FEED__LOOKBACK_S": "100000000",
                "COPYTRADER_FEED__TIMEOUT_S": "2", "COPYTRADER_FOLLOWER__MAX_TRADE_AGE_S": "1000000000"}
        return CliRunner().invoke(main, ["--log-level", "error", "--db", str(tmp_path / "ct.db"), *args],
                                  env={**base, **(env or {})})
    return invoke


def test_leaders_add_list_remove(cli):
    assert cli("leaders", "add", A.upper().replace("0X", "0x"), "--name", "alpha", "--budget", "50",
               "--create").exit_code == 0
    rows = json.loads(cli("leaders", "list", "--json", env={"COPYTRADER_LEADERS": B}).stdout)
    assert [(r["address"], r["source"]) for r in rows] == [(B, "config"), (A, "added")]
    assert rows[1]["budget_usdc"] == "50" and rows[1]["name"] == "alpha"
    res = cli("leaders", "remove", B, env={"COPYTRADER_LEADERS": B})
    assert res.exit_code == 2 and "config file" in res.output
    assert cli("leaders", "remove", A).exit_code == 0
    assert json.loads(cli("leaders", "list", "--json").stdout) == []
    assert cli("leaders", "add", "0x123").exit_code == 2


def test_run_on_the_data_api_copies_each_row_once(cli, api, tmp_path):
    api.add(*(activity_row(A, 1_793_500_000 + i, i, asset="7" * 40) for i in range(3)))
    markets = tmp_path / "markets.json"
    markets.write_text(json.dumps({"markets": [{"condition_id": "0x" + "cd" * 32, "tokens": [
        {"token_id": "7" * 40, "book": {"asks": [["0.50", "1000"]], "bids": [["0.49", "1000"]]}}]}]}))
    cli("leaders", "add", A, "--create")
    first = json.loads(cli("run", "--feed", "data_api", "--markets", str(markets), "--once", "--json").stdout)
    assert first["copied"] == 3
    api.add(activity_row(A, 1_793_500_010, 10, asset="7" * 40))
    second = json.loads(cli("run", "--feed", "data_api", "--markets", str(markets), "--once", "--json").stdout)
    assert second["copied"] == 1 and second["outcomes"].get("duplicate", 0) == 0


def test_watch_prints_fills_with_their_delay_and_trades_nothing(cli, api, tmp_path):
    api.add(activity_row(A, 1_793_500_000, 1), activity_row(A, 1_793_500_001, 2, side="SELL"))
    res = cli("watch", "--feed", "data_api", "--once", "--json", env={"COPYTRADER_LEADERS": A})
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [line["side"] for line in lines] == ["BUY", "SELL"] and all(line["delay_s"] > 0 for line in lines)
    assert not (tmp_path / "ct.db").exists()  # watching opened no database, so traded nothing


def test_offline_feed_is_one_line_exit_1(cli):
    res = cli("run", "--feed", "data_api", "--once", env={
        "COPYTRADER_LEADERS": A, "COPYTRADER_FEED__URL": "http://127.0.0.1:9"})
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "GET http://127.0.0.1:9/activity" in lines[0] and "Traceback" not in res.output


def test_a_live_feed_without_leaders_is_a_clear_error(cli):
    res = cli("run", "--feed", "data_api", "--once")
    assert res.exit_code == 2 and "needs leaders" in res.output


def test_watch_onchain_fills(cli):
    with RpcStandIn() as rpc:
        start = rpc.block + 1
        rpc.mine(1_795_000_000, [fill_log(V2_EXCHANGE, A, B, 0, 42, 5_000_000, 10_000_000, "0x" + "01" * 32)])
        res = cli("watch", "--feed", "onchain", "--once", "--json", env={
            "COPYTRADER_LEADERS": A, "COPYTRADER_FEED__RPC_URL": rpc.url, "COPYTRADER_FEED__CONFIRMATIONS": "0",
            "COPYTRADER_FEED__START_BLOCK": str(start)})
        assert res.exit_code == 0, res.output
        [line] = [json.loads(x) for x in res.stdout.splitlines()]
        assert (line["side"], Decimal(line["size"]), Decimal(line["price"]), line["token_id"]) == ("BUY", 10, Decimal("0.5"), "42")


def test_both_feeds_copy_each_fill_once_and_read_redeems_from_the_data_api(cli, api, tmp_path):
    token = str(10**70 + 42)
    markets = tmp_path / "markets.json"
    markets.write_text(json.dumps({"markets": [{"condition_id": "0x" + "cd" * 32, "tokens": [
        {"token_id": token, "book": {"asks": [["0.50", "1000"]], "bids": [["0.49", "1000"]]}}]}]}))
    tx = "0x" + "01" * 32
    # the same fill, as the Data API and the chain report it, plus a REDEEM only the Data API has
    api.add(activity_row(A, 1_795_000_000, 1, asset=token, size=10.0, price=0.5),
            {**activity_row(A, 1_795_000_100, 2, kind="REDEEM"), "transactionHash": "0x" + "02" * 32})
    api.rows[A][0]["transactionHash"] = tx
    with RpcStandIn() as rpc:
        start = rpc.block + 1
        rpc.mine(1_795_000_000, [fill_log(V2_EXCHANGE, A, B, 0, int(token), 5_000_000, 10_000_000, tx)])
        res = cli("run", "--feed", "both", "--markets", str(markets), "--once", "--json", env={
            "COPYTRADER_LEADERS": A, "COPYTRADER_FEED__RPC_URL": rpc.url, "COPYTRADER_FEED__CONFIRMATIONS": "0",
            "COPYTRADER_FEED__START_BLOCK": str(start)})
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["copied"] == 1 and summary["outcomes"]["observed"] == 1
    assert api.requests[0]["type"] == "REDEEM,MERGE,SPLIT"
