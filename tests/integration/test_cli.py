"""The command line, through click's CliRunner, on SQLite files in tmp dirs."""
from __future__ import annotations

import json
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.entrypoints.cli import main
from copytrader.domain.model import Reason
from copytrader.entrypoints.config import LEADER_SCHEMA, SAMPLE_ACTIVITY, SAMPLE_MARKETS, SCHEMA

ROOT = Path(__file__).resolve().parents[2]


def _run_sample(cli):
    res = cli("run", "--sample", "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_help_lists_the_commands():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0
    for command in ("run", "positions", "history", "halt", "resume", "config"):
        assert f"  {command}" in res.output


def test_sample_replay_summary_adds_up(cli):
    r = _run_sample(cli)
    rows = sum(1 for line in SAMPLE_ACTIVITY.read_text().splitlines() if line.strip())
    assert r["seen"] == rows
    o = r["outcomes"]
    assert o["duplicate"] == 2 and o["quarantined"] == 1 and o["observed"] >= 1
    assert r["copied"] > 0 and o["rejected"] > 0
    assert sum(r["rejected_by_reason"].values()) == o["rejected"]
    assert "price_band" in r["rejected_by_reason"] and "no_position" in r["rejected_by_reason"]
    assert sum(o.values()) == r["seen"]
    exposure = sum(Decimal(p["cost"]) for p in r["positions"])
    assert Decimal(r["pnl"]["exposure"]) == exposure
    assert Decimal(r["pnl"]["total"]) == Decimal(r["pnl"]["realised"]) + Decimal(r["pnl"]["unrealised"])


def test_human_summary_names_the_numbers(cli):
    res = cli("run", "--sample")
    assert res.exit_code == 0, res.output
    for text in ("feed rows read:", "copied:", "rejected:", "open positions:", "PnL: realised", "trading state: ACTIVE"):
        assert text in res.output


def test_replaying_twice_is_idempotent(cli, tmp_path):
    first = _run_sample(cli)
    again = _run_sample(cli)
    assert again["seen"] == 0  # the cursor says it is all done
    assert again["positions"] == first["positions"]
    # the same rows under another file name: every trade is recognised
    copy = tmp_path / "copy.jsonl"
    shutil.copy(SAMPLE_ACTIVITY, copy)
    third = json.loads(cli("run", "--replay", str(copy), "--markets", str(SAMPLE_MARKETS), "--json").stdout)
    assert third["copied"] == 0 and third["outcomes"]["duplicate"] == third["seen"] - third["outcomes"]["quarantined"]
    assert third["positions"] == first["positions"]
    with SqliteStore(cli.db, read_only=True) as store:  # the bad row is kept once, as first read
        assert [q.source for _, q in store.quarantined()] == [f"{SAMPLE_ACTIVITY.name}:34"]
    hist = json.loads(cli("history", "--limit", "1000", "--json").stdout)
    ids = [h["intent_id"] for h in hist]
    assert len(ids) == len(set(ids))


def test_positions_and_history_json(cli):
    r = _run_sample(cli)
    pos = json.loads(cli("positions", "--json").stdout)
    assert pos == r["positions"]
    hist = json.loads(cli("history", "--limit", "500", "--json").stdout)
    reasons = {h["reason"] for h in hist if h["decision"] == "rejected"}
    assert reasons == set(r["rejected_by_reason"])
    assert all(h["reason"] for h in hist if h["decision"] == "rejected")
    text = cli("history", "--limit", "5").stdout
    lines = text.splitlines()
    assert "time (UTC)" in lines[0] and sum(line.startswith("  20") for line in lines) == 5  # a header, 5 records


def test_halt_and_resume_persist(cli):
    res = cli("halt", "--create", "--reason", "going to bed")  # a new database: on purpose
    assert res.exit_code == 0 and "HALTED" in res.output
    r = _run_sample(cli)
    assert r["copied"] == 0 and r["state"] == "HALTED"
    assert "trading_halted" in r["rejected_by_reason"]
    assert "ACTIVE" in cli("resume").output


def test_config_check_redacts_the_private_key(cli, tmp_path):
    key = "0x" + "4c" * 32
    res = cli("config", "check", "--json", env={"COPYTRADER_PRIVATE_KEY": key})
    assert res.exit_code == 0, res.output
    assert key not in res.output and key[2:] not in res.output
    data = json.loads(res.stdout)
    assert data["private_key"] == "***redacted***" and data["profile"] == "paper"


def test_example_config_is_valid(cli):
    res = cli("--config", str(ROOT / "copytrader.example.toml"), "config", "check", "--json")
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["leaders"]) == 3


@pytest.mark.parametrize("content, field", [
    ("[risk]\nmax_trade_usdc = 'lots'\n", "risk.max_trade_usdc"),
    ("[risk]\nmax_trade = 5\n", "risk.max_trade"),
    ("profile = 'yolo'\n", "profile"),
    ("[[leaders]]\naddress = '0x123'\n", "leaders[0].address"),
    ("[follower\n", "not valid TOML"),
    ("[risk]\nmax_trade_usdc = 1e99999999999999999999\n", "the number 1e99999999999999999999 is out of range"),
])
def test_bad_config_is_one_line_and_exit_2(cli, tmp_path, content, field):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    res = cli("--config", str(path), "config", "check")
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in res.output


def test_bad_env_value_names_the_variable(cli):
    res = cli("config", "check", env={"COPYTRADER_RISK__MAX_OPEN_POSITIONS": "many"})
    assert res.exit_code == 2 and "environment COPYTRADER_RISK__MAX_OPEN_POSITIONS: expected" in res.output


@pytest.mark.parametrize("args", [
    ["run", "--replay", "/nonexistent/rows.jsonl"],
    ["run"],
    ["run", "--sample", "--replay", "x"],
    ["run", "--sample", "--max-items", "0"],
    ["history", "--limit", "-3"],
])
def test_bad_arguments_exit_2_without_traceback(cli, args):
    res = cli(*args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output


def test_second_writer_is_refused_with_a_clear_message(cli):
    from copytrader.adapters.storage.sqlite import SqliteStore
    holder = SqliteStore(cli.db)
    try:
        res = cli("run", "--sample")
        assert res.exit_code == 1
        assert "in use by another copytrader process" in res.output
        # read commands still work while a run holds the database
        assert cli("positions", "--json").exit_code == 0
        # and the kill switch reaches the running engine's database
        assert cli("halt", "--reason", "from another shell").exit_code == 0
        assert holder.get_state().state.value == "HALTED"
        assert holder.get_state().reason == "from another shell"
    finally:
        holder.close()


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    assert command in readme


def test_readme_names_the_setting_behind_each_reason():
    """README's table "reason → setting": real reasons, real settings, and every reason named after a setting."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| reason | setting that produced it |"):].split("\n\n")[0].splitlines()[2:]
    rows = {re.match(r"\| `(\w+)` \|", line).group(1): line.split("|")[2] for line in table}
    settings = {f"{section}.{key}" if section else key for section, keys in SCHEMA.items() for key in keys}
    for reason, setting in rows.items():
        Reason(reason)  # a reason the engine gives
        named = re.findall(r"`([a-z_]+\.[a-z_]+|[a-z_]+_usdc|\[\[leaders\]\])`", setting)
        assert named and all(n in settings | set(LEADER_SCHEMA) | {"[[leaders]]"} for n in named), (reason, setting)
    leader_keys = set(LEADER_SCHEMA)
    after_a_setting = {r.value for r in Reason if r.value in {k.split(".")[-1] for k in settings} | leader_keys}
    assert after_a_setting <= set(rows)
    assert {"max_trade_usdc", "max_market_usdc", "max_total_exposure_usdc", "budget_usdc", "daily_loss_limit_usdc",
            "max_orders_per_window", "max_open_positions"} <= after_a_setting


MARKING = "marked to the leaders' last traded price"


def test_run_summary_and_report_give_one_pnl_for_one_database(cli, tmp_path):
    """One marking convention, named where the total is printed and in the JSON."""
    run = _run_sample(cli)
    res = cli("report", "--json", "--out", str(tmp_path / "r"))
    assert res.exit_code == 0, res.output
    [report] = json.loads(res.stdout)["runs"]
    for key in ("realised", "unrealised", "total", "exposure", "marking", "unit"):
        assert run["pnl"][key] == report["pnl"][key], key
    assert run["pnl"]["marking"].startswith(MARKING) and run["pnl"]["unit"] == "USDC"
    assert report["equity"]["final"] == report["pnl"]["total"]
    # the positions in the summary carry the same marks, so their unrealised PnL adds up to the total's
    assert sum(Decimal(p["unrealised"]) for p in run["positions"]) == Decimal(run["pnl"]["unrealised"])
    # and both printouts name the convention next to the same total
    text = cli("run", "--sample").output  # nothing new to read: the summary of what the database holds
    printed = cli("report", "--out", str(tmp_path / "r")).output
    assert f"total {run['pnl']['total']} USDC ({MARKING}" in text
    assert f"total {run['pnl']['total']} USDC ({MARKING}" in printed


def test_paper_replay_without_markets_fills_at_the_leaders_price_like_backtest(cli, tmp_path):
    res = cli("run", "--replay", str(SAMPLE_ACTIVITY), "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["market"] == "leader_price"
    assert r["copied"] > 50 and "unknown_market" not in r["rejected_by_reason"]
    hist = json.loads(cli("history", "--limit", "500", "--json").stdout)
    filled = [h for h in hist if Decimal(h["filled_size"]) > 0]
    assert filled and all(Decimal(h["avg_price"]) == Decimal(h["leader_price"]) for h in filled)
    # the same rows through backtest without --markets copy the same trades
    bt = json.loads(cli("backtest", str(SAMPLE_ACTIVITY), "--db", str(tmp_path / "bt.db"), "--no-report",
                        "--json").stdout)["runs"][0]
    assert bt["copied"] == r["copied"] and bt["rejected_by_reason"] == r["rejected_by_reason"]
    # and the human summary says so on its first line
    again = CliRunner().invoke(main, ["--db", str(tmp_path / "h.db"), "run", "--replay", str(SAMPLE_ACTIVITY)],
                               env={"COPYTRADER_CONFIG": None})
    first = again.stdout.splitlines()[0]
    assert "fills at the leaders' prices" in first and "--markets" in first


def test_unknown_markets_get_one_line_saying_what_to_pass(cli, tmp_path):
    books = tmp_path / "books.json"
    books.write_text('{"markets": []}')
    res = cli("run", "--replay", str(SAMPLE_ACTIVITY), "--markets", str(books))
    assert res.exit_code == 0, res.output
    assert "unknown_market" in res.stdout
    hints = [line for line in res.stdout.splitlines() if line.startswith("hint:")]
    assert len(hints) == 1 and str(books) in hints[0] and "without --markets" in hints[0]
    r = json.loads(cli("run", "--sample", "--json").stdout)  # books for every token: no hint
    assert r["market"] == "static"
    assert not any(line.startswith("hint:") for line in cli("run", "--sample").stdout.splitlines())


@pytest.mark.parametrize("profile, market, path, feed, expected", [
    ("paper", "auto", "", "replay", "leader_price"),
    ("paper", "auto", str(SAMPLE_MARKETS), "replay", "static"),
    ("paper", "auto", "", "data_api", "static"),  # only file feeds show the market each trade first
    ("dry-run", "auto", "", "replay", "clob"),
    ("dry-run", "static", "", "replay", "static"),  # real signed orders never price off the leader alone
])
def test_only_a_paper_replay_without_books_fills_at_the_leaders_price(profile, market, path, feed, expected):
    from copytrader.entrypoints.config import load_config
    from copytrader.entrypoints.container import market_kind

    cfg = load_config(None, environ={}, overrides={"": {"profile": profile}, "market": {"kind": market, "path": path},
                                                   "feed": {"kind": feed, "path": str(SAMPLE_ACTIVITY)}})
    assert market_kind(cfg) == expected
