"""Issue 14, the command line as a new user meets it: conflicting options, `leaders add`,
bounds on amounts and addresses, `--log-level`, `config check`, profiles and the example config."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from copytrader.entrypoints.cli import main
from copytrader.entrypoints.config import SAMPLE_ACTIVITY, SAMPLE_MARKETS

ROOT = Path(__file__).resolve().parents[2]
A = "0x" + "a1" * 20
ZERO_ADDRESS = "0x" + "0" * 40

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _one_line_bad_input(res, *words):
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    for word in words:
        assert word in lines[0], (word, lines[0])


# -- 5.9 conflicting options are refused --------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["run", "--sample", "--feed", "data_api"], ["--sample", "--feed data_api"]),
    (["run", "--replay", str(SAMPLE_ACTIVITY), "--feed", "onchain"], ["--replay", "--feed onchain"]),
    (["run", "--sample", "--replay", str(SAMPLE_ACTIVITY)], ["--sample", "--replay"]),
    (["run", "--sample", "--once"], ["--once", "--sample"]),
    (["run", "--replay", str(SAMPLE_ACTIVITY), "--once"], ["--once", "--replay"]),
    (["run", "--feed", "replay", "--once"], ["--once", "--feed replay"]),
    (["--profile", "paper", "run", "--sample", "--live"], ["--live", "--profile paper"]),
    (["--profile", "dry-run", "trade-once", "--token-id", "1", "--side", "BUY", "--usdc", "1", "--live"],
     ["--live", "--profile dry-run"]),
    (["--profile", "paper", "serve", "--live"], ["--live", "--profile paper"]),
    (["watch", "--replay", str(SAMPLE_ACTIVITY), "--feed", "data_api"], ["--replay", "--feed data_api"]),
    (["watch", "--replay", str(SAMPLE_ACTIVITY), "--once"], ["--once", "--replay"]),
    (["watch", "--feed", "replay", "--once"], ["--once", "--feed replay"]),
])
def test_conflicting_options_are_refused_in_one_sentence(cli, args, words):
    res = cli(*args)
    _one_line_bad_input(res, *words)
    assert not Path(cli.db).exists()  # refused before anything is opened


def test_once_with_a_replay_feed_from_the_config_is_refused(cli, tmp_path):
    res = cli("run", "--once", env={"COPYTRADER_FEED__KIND": "replay", "COPYTRADER_FEED__PATH": str(SAMPLE_ACTIVITY)})
    _one_line_bad_input(res, "--once", "replay")


def test_replay_with_feed_replay_is_no_conflict(cli):
    res = cli("run", "--replay", str(SAMPLE_ACTIVITY), "--feed", "replay", "--markets", str(SAMPLE_MARKETS), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["copied"] > 0


# -- 5.6 leaders add changes only what is given ---------------------------------------
def test_leaders_add_on_a_followed_address_changes_only_the_options_given(cli):
    res = cli("leaders", "add", A, "--name", "alpha", "--multiplier", "0.5", "--budget", "50", "--create")
    assert res.exit_code == 0, res.output
    assert "alpha" in res.output and "0.5" in res.output and "50" in res.output
    res = cli("leaders", "add", A, "--budget", "80")
    assert res.exit_code == 0, res.output
    # the resulting entry is printed: address, name, multiplier, budget
    assert A in res.output and "alpha" in res.output and "x0.5" in res.output and "80 USDC" in res.output
    (row,) = json.loads(cli("leaders", "list", "--json").stdout)
    assert (row["name"], row["multiplier"], row["budget_usdc"]) == ("alpha", "0.5", "80")
    assert cli("leaders", "add", A, "--name", "beta").exit_code == 0
    (row,) = json.loads(cli("leaders", "list", "--json").stdout)
    assert (row["name"], row["multiplier"], row["budget_usdc"]) == ("beta", "0.5", "80")


def test_leaders_add_of_a_config_leader_is_refused(cli):
    res = cli("leaders", "add", A, "--budget", "5", env={"COPYTRADER_LEADERS": A})
    _one_line_bad_input(res, A, "COPYTRADER_LEADERS")


# -- bounds: amounts and the zero address -----------------------------------------------
@pytest.mark.parametrize("option", ["--usdc", "--size"])
def test_trade_once_refuses_absurd_amounts(cli, option):
    res = cli("trade-once", "--token-id", "123", "--side", "BUY", option, "1e100")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"Error: Invalid value for '{option}': '1e100' must be above 0 and at most 1000000000" in res.output
    assert cli("trade-once", "--token-id", "123", "--side", "BUY", option, "1000000001").exit_code == 2


def test_zero_address_is_refused_everywhere(cli, tmp_path):
    _one_line_bad_input(cli("leaders", "add", ZERO_ADDRESS), "zero address")
    _one_line_bad_input(cli("config", "check", env={"COPYTRADER_LEADERS": ZERO_ADDRESS}), "zero address",
                        "COPYTRADER_LEADERS")
    path = tmp_path / "zero.toml"
    path.write_text(f'[[leaders]]\naddress = "{ZERO_ADDRESS}"\n')
    _one_line_bad_input(cli("--config", str(path), "config", "check"), "leaders[0].address", "zero address")


def test_the_zero_address_in_a_feed_row_is_quarantined(cli, tmp_path):
    row = json.loads(SAMPLE_ACTIVITY.read_text().splitlines()[0])
    rows = tmp_path / "zero.jsonl"
    rows.write_text(json.dumps({**row, "proxyWallet": ZERO_ADDRESS}) + "\n")
    res = cli("run", "--replay", str(rows), "--markets", str(SAMPLE_MARKETS), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["outcomes"] == {"quarantined": 1}


# -- --log-level in any case ---------------------------------------------------------------
@pytest.mark.parametrize("level", ["DEBUG", "Info", "warning", "ERROR"])
def test_log_level_in_any_case(cli, level):
    res = cli("--log-level", level, "config", "check", "--json")
    assert res.exit_code == 0, res.output


# -- config check -----------------------------------------------------------------------------
def test_config_check_prints_toml_sections_off_and_plain_numbers(cli, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[risk]\nmax_trade_usdc = "off"\nmax_market_usdc = 12.5\n[follower.sizing]\nmode = "bankroll"\n'
                    '[[leaders]]\naddress = "' + A + '"\nname = "alpha"\nmultiplier = 0.5\n')
    res = cli("--config", str(path), "config", "check")
    assert res.exit_code == 0, res.output
    out = res.output
    assert "[follower.sizing]" in out and "\n[sizing]" not in out
    assert 'max_trade_usdc = "off"' in out and "None" not in out and "Decimal(" not in out
    assert "max_market_usdc = 12.5" in out and 'mode = "bankroll"' in out
    assert "[[leaders]]" in out and f'address = "{A}"' in out and "multiplier = 0.5" in out
    # what it prints (after "config OK") is TOML that loads back to the same settings
    printed = tomllib.loads(out.split("\n", 1)[1])
    assert printed["risk"]["max_trade_usdc"] == "off" and printed["follower"]["sizing"]["mode"] == "bankroll"
    assert printed["leaders"][0]["name"] == "alpha"


def test_an_error_from_an_environment_variable_names_the_variable(cli):
    res = cli("config", "check", env={"COPYTRADER_RISK__MAX_TRADE_USDC": "abc"})
    _one_line_bad_input(res)
    assert res.output.strip() == "Error: environment COPYTRADER_RISK__MAX_TRADE_USDC: expected a number, got 'abc'"


def test_follower_sizing_from_the_environment_as_the_toml_section_is_named(cli):
    res = cli("config", "check", "--json", env={"COPYTRADER_FOLLOWER__SIZING__MODE": "bankroll"})
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["sizing"]["mode"] == "bankroll"
    res = cli("config", "check", env={"COPYTRADER_FOLLOWER__SIZING__FIXED_USDC": "-5"})
    _one_line_bad_input(res, "environment COPYTRADER_FOLLOWER__SIZING__FIXED_USDC: expected a number > 0")
    _one_line_bad_input(cli("config", "check", env={"COPYTRADER_RISK__MAX_TRADE": "5"}),
                        "environment COPYTRADER_RISK__MAX_TRADE: unknown setting")


# -- profiles and the example config ----------------------------------------------------------
def test_one_profile_list_in_readme_example_and_the_profile_option():
    from copytrader.entrypoints.config import PROFILES

    option = next(p for p in main.params if p.name == "profile")
    assert tuple(option.type.choices) == PROFILES
    readme = (ROOT / "README.md").read_text()
    table = re.search(r"## Profiles\n(.*?)\n\n", readme, re.S).group(1)
    assert tuple(re.findall(r"^\| `([a-z-]+)`", table, re.M)) == PROFILES
    setting = re.search(r"^\| `profile` \| `paper` \| (.*) \|$", readme, re.M).group(1)
    assert tuple(re.findall(r"`([a-z-]+)`", setting)) == PROFILES
    example = (ROOT / "copytrader.example.toml").read_text()
    comment = re.search(r'^profile = "paper" +# (.*)$', example, re.M).group(1)
    assert tuple(re.findall(r"[a-z-]+(?= \(|$| \|)", comment)) == PROFILES


def test_example_config_shows_every_setting_and_loads():
    from copytrader.entrypoints.config import LEADER_SCHEMA, SCHEMA, load_config
    from copytrader.entrypoints.fleet import ALERT_KEYS, FOLLOWER_KEYS

    path = ROOT / "copytrader.example.toml"
    text = path.read_text()
    data = tomllib.loads(text)
    for section, keys in SCHEMA.items():
        table = data if section == "" else data["follower"]["sizing"] if section == "sizing" else data[section]
        assert set(keys) <= set(table), (section, set(keys) - set(table))
    assert set(LEADER_SCHEMA) <= set(data["leaders"][0]) | set(data["leaders"][1])
    # followers and alerts are shown commented out (active, they change what `serve` runs)
    commented = "\n".join(line[2:] for line in text.splitlines() if re.match(r"# (\[|[a-z_]+ = )", line))
    assert "[[followers]]" in commented and "[[alerts]]" in commented and "[[followers.alerts]]" in commented
    for key in (*FOLLOWER_KEYS, *ALERT_KEYS):
        assert re.search(rf"\b{key} = ", commented) or f"[followers.{key}]" in commented \
            or f"[[followers.{key}]]" in commented, key
    uncommented = tomllib.loads(commented)  # the commented blocks are valid TOML too
    assert uncommented["followers"][0]["name"] and uncommented["alerts"][0]["kind"]
    cfg = load_config(path, environ={})
    assert cfg.profile == "paper" and len(cfg.engine.leaders) == 3


# -- positions and history --------------------------------------------------------------------
WHALE, SWING, DEGEN = ("0x7c3db723f1d4d8cb9c550095203b686cb11e5c6b", "0x1f2e3d4c5b6a79880716253443526170f1e2d3c4",
                       "0x9a8b7c6d5e4f30211203948576a6b5c4d3e2f1a0")


@pytest.fixture
def named(cli, tmp_path):
    """The sample replayed with the leaders named: two in the config, one added with `leaders add`."""
    path = tmp_path / "named.toml"
    path.write_text(f'[[leaders]]\naddress = "{WHALE}"\nname = "whale"\n[[leaders]]\naddress = "{SWING}"\n'
                    'name = "swing"\n')

    def invoke(*args):
        return cli("--config", str(path), *args, env={"COLUMNS": "100"})  # titles wrap to the terminal
    assert invoke("leaders", "add", DEGEN, "--name", "degen", "--create").exit_code == 0
    res = invoke("--log-level", "error", "run", "--sample", "--json")
    assert res.exit_code == 0, res.output
    invoke.positions = json.loads(invoke("positions", "--all", "--json").stdout)
    return invoke


def _flat(text):
    return re.sub(r"\s+", " ", text)


def test_positions_all_has_a_true_header_and_whole_rows(named):
    res = named("positions", "--all")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    header = next(line for line in lines if "leader" in line)
    assert header.split() == ["status", "leader", "outcome", "size", "avg", "mark", "unrealised", "realised", "market"]
    assert "open, pending payout, paid, lost, closed" in lines[0]
    statuses = {p["status"] for p in named.positions}
    assert {"open", "closed"} < statuses <= {"open", "closed", "paid", "lost"}  # a replay pays at once
    settled = statuses - {"open", "closed"}
    body = res.output
    for p in named.positions:
        assert p["leader_name"] in ("whale", "swing", "degen") and p["outcome"]
        assert _flat(p["title"]) in _flat(body)  # whole titles, wrapped rather than cut
    for word in (*settled, "closed", "whale", "swing", "degen", "Yes", "Lakers"):
        assert word in body
    assert "0x7c3db723…" not in body  # names, not addresses, where a name is known
    assert not re.search(r"\d\.\d{5,}", body)  # prices 4 places, shares and USDC 2
    assert re.search(r" 0\.7000 ", body) and re.search(r" 12\.48 ", body)
    assert max(len(line) for line in lines) <= 100


def test_positions_json_has_outcome_status_and_name_and_matches_the_run_summary(named):
    run = json.loads(named("--log-level", "error", "run", "--sample", "--json").stdout)  # reads nothing new
    open_rows = json.loads(named("positions", "--json").stdout)
    assert run["positions"] == open_rows and all(p["status"] == "open" for p in open_rows)
    degen = next(p for p in named.positions if p["leader"] == DEGEN and p["title"] == "Lakers vs. Celtics")
    assert degen["outcome"] == "Lakers" and degen["leader_name"] == "degen" and degen["realised"]


def test_history_has_a_header_the_title_the_labelled_limit_and_slippage_in_bps(named):
    res = named("history", "--limit", "10")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["time", "(UTC)", "leader", "order", "result", "filled", "slippage", "market", "·",
                                "reason"]
    rows = "\n".join(lines[1:])
    assert re.search(r"(BUY|SELL) +\d+\.\d\d limit 0\.\d{4}", rows)
    assert re.search(r"[-+]\d+\.\d bps", rows)
    history = json.loads(named("history", "--limit", "10", "--json").stdout)
    for h in history:
        assert _flat(h["title"]) in _flat(rows)
    rejected = json.loads(named("history", "--limit", "1000", "--json").stdout)
    reason = next(h for h in rejected if h["decision"] == "rejected")
    text = named("history", "--limit", "1000").output
    assert reason["reason"] in text and "whale" in text


# -- watch --replay ----------------------------------------------------------------------------
def test_watch_replay_measures_the_delay_on_the_replay_clock_and_prints_a_redelivered_fill_once(cli):
    from copytrader.adapters.feeds.activity import parse_json_line

    res = cli("watch", "--replay", str(SAMPLE_ACTIVITY), "--json", env={"COPYTRADER_FEED__LATENCY_S": "7"})
    assert res.exit_code == 0, res.output
    printed = [json.loads(line) for line in res.stdout.splitlines()]
    trades = [parse_json_line(line, "sample") for line in SAMPLE_ACTIVITY.read_text().splitlines()]
    ids = {t.id for t in trades if hasattr(t, "id")}
    assert len(trades) - len(ids) >= 3  # the sample re-delivers fills (and has a bad row)
    assert len(printed) == len(ids)  # each fill once
    keys = [(p["tx_hash"], p["token_id"], p["side"], p["size"]) for p in printed]
    assert len(keys) == len(set(keys))
    # the replay clock is at each row's time plus feed.latency_s (rows in time order here)
    assert {p["delay_s"] for p in printed} == {7.0}
    text = cli("watch", "--replay", str(SAMPLE_ACTIVITY))
    assert text.exit_code == 0 and "detected after 0.0 s" in text.stdout


# -- status -----------------------------------------------------------------------------------
def test_status_reads_state_positions_pnl_feed_and_open_orders_next_to_a_running_engine(cli):
    from datetime import datetime, timedelta, timezone
    from decimal import Decimal

    from copytrader.adapters.storage.sqlite import SqliteStore
    from copytrader.domain.model import IntentRecord, IntentStatus
    from copytrader.domain.risk import day_key

    run = json.loads(cli("--log-level", "error", "run", "--sample", "--json").stdout)
    assert cli("halt", "--reason", "going to bed").exit_code == 0
    today = day_key(datetime.now(timezone.utc))
    engine = SqliteStore(cli.db)  # a running engine holds the database
    try:
        engine.put_daily_realised(today, Decimal("-3.5"))
        created = datetime.now(timezone.utc) - timedelta(seconds=90)
        engine.put_intent(IntentRecord(
            intent_id="intent-unknown-1", trade_id="t", follower="default", leader=WHALE, token_id="123",
            condition_id="c", side="BUY", leader_size=Decimal(10), leader_price=Decimal("0.5"), created_at=created,
            decision="approved", status=IntentStatus.UNKNOWN, size=Decimal(10), limit_price=Decimal("0.51"),
            order_type="FOK", execution_id="0x" + "ab" * 32, title="Will it rain?"))
        res = cli("status", "--json")
        text = cli("status")
    finally:
        engine.close()
    assert res.exit_code == 0 and text.exit_code == 0, res.output + text.output
    data = json.loads(res.stdout)
    assert data["state"]["state"] == "HALTED" and data["state"]["reason"] == "going to bed" and data["state"]["since"]
    assert data["positions"]["open"] == len(run["positions"])
    assert Decimal(data["positions"]["exposure_usdc"]) == Decimal(run["pnl"]["exposure"])
    assert Decimal(data["pnl"]["realised_total"]) == Decimal(run["pnl"]["realised"])
    assert Decimal(data["pnl"]["unrealised"]) == Decimal(run["pnl"]["unrealised"])
    assert data["pnl"]["marking"] == run["pnl"]["marking"]  # one convention for run, report and status
    if day_key(datetime.now(timezone.utc)) == today:  # not across midnight
        assert data["pnl"]["today"] == {"day": today, "realised": "-3.5"}
    newest = max(json.loads(line)["timestamp"] for line in SAMPLE_ACTIVITY.read_text().splitlines()
                 if '"timestamp":' in line and json.loads(line)["timestamp"] < 32_503_680_000)
    assert data["feed"]["newest_leader_trade"] == datetime.fromtimestamp(newest, timezone.utc).isoformat()
    assert list(data["feed"]["cursors"].values()) == ["71"]
    (order,) = data["open_orders"]
    assert order["intent_id"] == "intent-unknown-1" and order["status"] == "unknown" and order["age_s"] >= 90
    for words in ("trading state: HALTED (going to bed) since", "open positions: 4  exposure 43.59 USDC",
                  "realised -3.50 USDC" if data["pnl"]["today"]["day"] == today else "PnL today",
                  "PnL in total: realised 1.39 USDC", "orders not settled (pending or unknown): 1",
                  "unknown  intent-unknown-1", "Will it rain?"):
        assert words in text.stdout, (words, text.stdout)


def test_status_of_a_database_that_does_not_exist_is_bad_input(cli):
    _one_line_bad_input(cli("status"), "does not exist", cli.db)
    assert not Path(cli.db).exists()


# -- --help stays fast ----------------------------------------------------------------------------
HELP_PROBE = """
import json, sys
import click
before = set(sys.modules)
from copytrader.entrypoints.cli import main
try:
    main(["--help"])
except SystemExit:
    pass
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_help_loads_nothing_beyond_click_but_the_cli_and_click_own_help_formatting():
    import subprocess

    out = subprocess.run([sys.executable, "-c", HELP_PROBE], capture_output=True, text=True, timeout=60, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    ours = {"copytrader", "copytrader.entrypoints", "copytrader.entrypoints.cli"}
    clicks = {"click._textwrap", "textwrap", "locale", "_locale"}  # click wraps help text and asks gettext
    assert ours <= loaded and loaded <= ours | clicks, sorted(loaded - ours - clicks)  # no shutil, bz2, lzma...


def test_the_test_suites_own_variables_are_not_refused_as_settings():
    """Every COPYTRADER_* variable .ci/run exports for the tests is one the CLI the tests
    run leaves alone (it refuses unknown settings)."""
    import re
    from pathlib import Path

    from copytrader.entrypoints.config import NON_CONFIG_ENV, load_config

    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    exported = re.findall(r"export COPYTRADER_(\w+)=", ci)
    assert {"REQUIRE_PG", "REQUIRE_BROWSER"} <= set(exported)
    for name in exported:
        assert name in NON_CONFIG_ENV and load_config(None, environ={f"COPYTRADER_{name}": "1"}).profile == "paper"
