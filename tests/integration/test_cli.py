"""The command line, through click's CliRunner, on SQLite files in tmp dirs."""
from __future__ import annotations

import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from copytrader.entrypoints.cli import main
from copytrader.entrypoints.config import SAMPLE_ACTIVITY, SAMPLE_MARKETS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path):
    runner = CliRunner()
    db = str(tmp_path / "ct.db")

    def invoke(*args, env=None):
        return runner.invoke(main, ["--db", db, *args], env={"COPYTRADER_CONFIG": None, **(env or {})},
                             catch_exceptions=False)
    invoke.db = db
    return invoke


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
    assert len(text.strip().splitlines()) == 5


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
    assert res.exit_code == 2 and "risk.max_open_positions" in res.output


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
