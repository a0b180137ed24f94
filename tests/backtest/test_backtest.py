"""`copytrader backtest` and `copytrader report`: files written, and every
number in summary.json recomputed here straight from the database rows."""
from __future__ import annotations

import json
import sqlite3
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from decimal import Decimal as D
from html import unescape

import pytest

from copytrader.entrypoints.config import SAMPLE_ACTIVITY

from .conftest import invoke

PNGS = ("equity", "drawdown", "pnl_leader", "pnl_market", "rejections", "slippage", "tracking")
Q = D("0.000001")


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bt")
    db, out = tmp / "bt.db", tmp / "out"
    res = invoke("backtest", "--sample", "--db", str(db), "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    return db, out, json.loads(res.stdout)


def q(x: D) -> str:
    return str(x.quantize(Q))


def test_backtest_writes_html_pngs_and_json(sample_run):
    db, out, result = sample_run
    assert (out / "report.html").stat().st_size > 1000
    for name in PNGS:
        data = (out / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, name
    html = (out / "report.html").read_text()
    assert all(f"src='{name}.png'" in html for name in PNGS)
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["runs"]) == 1 and sorted(summary["charts"]) == sorted(f"{n}.png" for n in PNGS)
    rows = sum(1 for line in SAMPLE_ACTIVITY.read_text().splitlines() if line.strip())
    assert result["runs"][0]["seen"] == rows


def test_report_numbers_agree_with_the_database(sample_run):
    db, out, _ = sample_run
    r = json.loads((out / "summary.json").read_text())["runs"][0]
    con = sqlite3.connect(db)
    trades = con.execute("SELECT kind, token_id, price FROM trades ORDER BY rowid").fetchall()
    intents = con.execute("SELECT decision, status, reason, leader, side, leader_price, leader_size, filled_size, "
                          "avg_price, fee, slippage, token_id FROM intents ORDER BY seq").fetchall()
    positions = con.execute("SELECT leader, token_id, condition_id, size, cost, realised, settled, last_price "
                            "FROM positions").fetchall()

    assert r["counts"]["leader_trades"] == sum(1 for t in trades if t[0] == "TRADE")
    assert r["rejections"] == dict(Counter(i[2] for i in intents if i[0] == "rejected"))
    assert r["counts"]["not_filled"] == sum(1 for i in intents if i[1] == "rejected")
    copied = [i for i in intents if D(i[7]) > 0]
    assert r["counts"]["copied"] == len(copied) > 50

    # PnL: realised from the positions table, open positions marked at the leaders' last price
    marks = {}
    for kind, token, price in trades:
        if kind == "TRADE":
            marks[token] = D(price)
    realised = sum(D(p[5]) for p in positions)
    assert r["pnl"]["realised"] == q(realised) and r["pnl"]["replay_agrees"] is True
    unreal = defaultdict(D)
    for leader, token, _c, size, cost, _r, settled, last in positions:
        if D(size) > 0:
            mark = D(last) if settled else marks[token]
            unreal[leader] += (D(size) * mark).quantize(Q) - D(cost)
    assert r["pnl"]["unrealised"] == q(sum(unreal.values(), D(0)))
    assert r["equity"]["final"] == q(realised + sum(unreal.values(), D(0)))
    by_leader = {row["leader"]: row for row in r["pnl_by_leader"]}
    for leader in {p[0] for p in positions}:
        mine = sum(D(p[5]) for p in positions if p[0] == leader)
        assert by_leader[leader]["realised"] == q(mine)
        assert by_leader[leader]["total"] == q(mine + unreal[leader])
    assert sum(D(row["total"]) for row in r["pnl_by_market"]) == D(r["pnl"]["total"])

    # slippage of each copy against the leader's price, in basis points of the leader's price
    slips = [D(i[10]) / D(i[5]) * 10000 for i in intents if i[10] is not None]
    bps = lambda x: str(x.quantize(D("0.01")))
    assert r["slippage"]["unit"] == "bps" and r["slippage"]["count"] == len(slips) == len(copied)
    assert r["slippage"]["mean_bps"] == bps(sum(slips) / len(slips))
    assert r["slippage"]["min_bps"] == bps(min(slips)) and r["slippage"]["max_bps"] == bps(max(slips))
    assert r["slippage"]["p50_bps"] == bps(statistics.median(slips))
    assert r["slippage"]["worse_than_leader"] == sum(1 for s in slips if s > 0)
    assert not {"mean", "min", "max", "p50", "p90", "p99"} & set(r["slippage"])  # no unitless figures left
    assert r["pnl"]["unit"] == r["equity"]["unit"] == "USDC"

    # tracking: per copied trade, our return minus the leader's, to the final mark
    payout = {p[1]: D(p[7]) for p in positions if p[6]}
    diffs = []
    for i in copied:
        s = 1 if i[4] == "BUY" else -1
        m = payout.get(i[11], marks[i[11]])
        pl, pf, qty, fee = D(i[5]), D(i[8]), D(i[7]), D(i[9])
        diffs.append((s * (m - pf) / pf - fee / (qty * pf)) - s * (m - pl) / pl)
    mean = sum(diffs) / len(diffs)
    sd = (sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)).sqrt()
    assert r["tracking"]["copied_trades"] == len(diffs)
    assert r["tracking"]["mean_difference"] == q(mean)
    assert abs(D(r["tracking"]["tracking_error"]) - sd) <= Q


def test_report_command_reads_any_database_and_compares_two(tmp_path):
    paper = tmp_path / "paper.db"
    assert invoke("--db", str(paper), "run", "--sample", "--json").exit_code == 0
    cfg = tmp_path / "small.toml"
    cfg.write_text('[follower.sizing]\nmode = "fixed"\nfixed_usdc = 3\n[risk]\nmax_open_positions = 2\n')
    res = invoke("--config", str(cfg), "backtest", "--sample", "--db", str(tmp_path / "small.db"), "--no-report",
                 "--json")
    assert res.exit_code == 0, res.output
    out = tmp_path / "cmp"
    res = invoke("report", "--db", str(paper), "--compare", str(tmp_path / "small.db"), "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    runs = json.loads(res.stdout)["runs"]
    assert [r["label"] for r in runs] == ["paper", "small"]
    assert runs[0]["counts"]["leader_trades"] == runs[1]["counts"]["leader_trades"]
    assert runs[1]["rejections"].get("max_open_positions", 0) > 0
    assert runs[0]["counts"]["copied"] > runs[1]["counts"]["copied"]
    assert all((out / f"{n}.png").exists() for n in PNGS)
    assert "paper" in (out / "report.html").read_text() and "small" in (out / "report.html").read_text()


def test_backtest_with_a_second_config_reports_both(tmp_path):
    cfg = tmp_path / "tight.toml"
    cfg.write_text("[risk]\nmax_trade_usdc = 4\n")
    res = invoke("backtest", "--sample", "--db", str(tmp_path / "a.db"), "--compare-config", str(cfg),
                 "--out", str(tmp_path / "out"), "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [r["label"] for r in summary["runs"]] == ["backtest", "tight"]
    assert (tmp_path / "a.compare.db").exists()
    vol = [sum(D(x["volume"]) for x in r["pnl_by_leader"]) for r in summary["runs"]]
    assert vol[1] < vol[0]


def test_bad_input_is_one_line_exit_2(tmp_path):
    res = invoke("backtest", str(tmp_path / "missing.jsonl"), "--db", str(tmp_path / "x.db"))
    assert res.exit_code == 2 and "not found" in res.output and len(res.output.strip().splitlines()) == 1
    res = invoke("backtest", "--db", str(tmp_path / "x.db"))
    assert res.exit_code == 2 and "no input" in res.output
    res = invoke("report", "--db", str(tmp_path / "nothing.db"))
    assert res.exit_code == 2 and "does not exist" in res.output
    junk = tmp_path / "junk.db"
    junk.write_text("not a database at all " * 100)
    res = invoke("report", "--db", str(junk))
    assert res.exit_code in (1, 2) and len(res.output.strip().splitlines()) == 1


def dump(db) -> list[str]:
    with sqlite3.connect(db) as raw:
        return list(raw.iterdump())


def refused(res, db) -> bool:
    """One sentence naming the database and --overwrite, exit 2."""
    lines = res.output.strip().splitlines()
    return res.exit_code == 2 and len(lines) == 1 and str(db) in lines[0] and "--overwrite" in lines[0]


def test_backtest_never_overwrites_a_paper_database(tmp_path):
    paper = tmp_path / "paper.db"
    assert invoke("--db", str(paper), "run", "--sample").exit_code == 0
    before = dump(paper)
    res = invoke("backtest", "--sample", "--db", str(paper))
    assert refused(res, paper) and "refusing to overwrite" in res.output
    assert dump(paper) == before and sqlite3.connect(paper).execute("SELECT count(*) FROM trades").fetchone()[0] > 0


def test_backtest_refuses_a_follower_database_without_trades_unless_told_to_overwrite(tmp_path):
    follower = tmp_path / "follower.db"
    assert invoke("--db", str(follower), "leaders", "add", "0x" + "ab" * 20, "--name", "whale", "--create").exit_code == 0
    assert invoke("--db", str(follower), "halt", "--reason", "until I say so").exit_code == 0
    before = dump(follower)
    assert refused(invoke("backtest", "--sample", "--db", str(follower), "--no-report"), follower)
    assert dump(follower) == before
    res = invoke("backtest", "--sample", "--db", str(follower), "--no-report", "--overwrite", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["runs"][0]["seen"] == 71
    with sqlite3.connect(follower) as raw:  # a backtest's database now, and nothing of the follower's is left
        assert raw.execute("SELECT count(*) FROM leaders").fetchone()[0] == 0
        assert raw.execute("SELECT count(*) FROM state WHERE state = 'HALTED'").fetchone()[0] == 0
    assert invoke("backtest", "--sample", "--db", str(follower), "--no-report").exit_code == 0  # a backtest's


def test_backtest_refuses_a_file_that_is_not_a_database_unless_told_to_overwrite(tmp_path):
    notes = tmp_path / "notes.db"
    notes.write_text("my notes, not a database " * 100)
    assert refused(invoke("backtest", "--sample", "--db", str(notes), "--no-report"), notes)
    assert notes.read_text().startswith("my notes")
    assert invoke("backtest", "--sample", "--db", str(notes), "--no-report", "--overwrite").exit_code == 0


def test_an_empty_file_is_a_new_backtest_database(tmp_path):
    empty = tmp_path / "new.db"
    empty.touch()
    res = invoke("backtest", "--sample", "--db", str(empty), "--no-report", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["runs"][0]["copied"] > 0


def test_backtest_runs_afresh_each_time(tmp_path):
    db = tmp_path / "bt.db"
    first = json.loads(invoke("backtest", "--sample", "--db", str(db), "--no-report", "--json").stdout)
    again = json.loads(invoke("backtest", "--sample", "--db", str(db), "--no-report", "--json").stdout)
    assert first["runs"][0]["copied"] == again["runs"][0]["copied"] > 0
    assert sqlite3.connect(db).execute("SELECT count(*) FROM telemetry WHERE key = 'backtest'").fetchone()[0] == 1


def test_without_books_copies_fill_at_the_leaders_price(tmp_path):
    out = tmp_path / "out"
    res = invoke("backtest", str(SAMPLE_ACTIVITY), "--db", str(tmp_path / "b.db"), "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    r = json.loads((out / "summary.json").read_text())["runs"][0]
    assert r["counts"]["copied"] > 50
    assert r["slippage"]["min_bps"] == r["slippage"]["max_bps"] == "0.00"
    assert r["tracking"]["tracking_error"] == "0.000000"


PROBE = """
import sys, json
from click.testing import CliRunner
from copytrader.entrypoints.cli import main
assert CliRunner().invoke(main, ["--help"]).exit_code == 0
assert CliRunner().invoke(main, ["backtest", "--help"]).exit_code == 0
r = CliRunner().invoke(main, ["--db", sys.argv[1], "run", "--sample"])
assert r.exit_code == 0, r.output
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ("matplotlib", "tqdm", "numpy", "PIL"))))
"""


def test_help_and_paper_run_never_import_the_report_extra(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "p.db")], capture_output=True, text=True,
                         timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_report_of_an_empty_database(tmp_path):
    db = tmp_path / "empty.db"
    assert invoke("--db", str(db), "leaders", "add", "--create", "0x" + "ab" * 20).exit_code == 0
    res = invoke("report", "--db", str(db), "--out", str(tmp_path / "r"), "--json")
    assert res.exit_code == 0, res.output
    run = json.loads(res.stdout)["runs"][0]
    assert run["counts"]["leader_trades"] == 0 and run["pnl"]["realised"] == "0.000000"
    assert (tmp_path / "r" / "report.html").exists()


def _read_pty(args, cwd):
    import os
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.chdir(cwd)
        os.execv(sys.executable, [sys.executable, "-m", "copytrader.entrypoints.cli", *args])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    return out.decode(errors="replace")


def test_progress_bar_on_a_terminal_only(tmp_path):
    pytest.importorskip("tqdm")
    shown = _read_pty(["backtest", "--sample", "--db", "t.db", "--no-report"], tmp_path)
    assert "backtest:" in shown and "100%|" in shown and "rows/s" in shown and "/71.0" in shown
    quiet = _read_pty(["backtest", "--sample", "--db", "t.db", "--no-report", "--json"], tmp_path)
    assert "%|" not in quiet and json.loads(quiet[quiet.index("{"):])["runs"][0]["seen"] == 71
    piped = invoke("backtest", "--sample", "--db", str(tmp_path / "p.db"), "--no-report")
    assert piped.exit_code == 0 and "%|" not in piped.output


def test_backtest_prints_the_report_numbers_with_units(tmp_path):
    db = tmp_path / "bt.db"
    bt = invoke("backtest", "--sample", "--db", str(db), "--out", str(tmp_path / "a"))
    assert bt.exit_code == 0, bt.output
    rep = invoke("report", "--db", str(db), "--out", str(tmp_path / "b"))
    assert rep.exit_code == 0, rep.output
    lines = [line for line in rep.output.splitlines() if not line.startswith("report:")]
    assert lines and all(line in bt.output.splitlines() for line in lines)
    r = json.loads((tmp_path / "b" / "summary.json").read_text())["runs"][0]
    text = "\n".join(lines)
    assert f"total {r['pnl']['total']} USDC (marked to the leaders' last traded price" in text
    assert f"open exposure {r['pnl']['exposure']} USDC" in text
    assert f"max drawdown {r['equity']['max_drawdown']} USDC" in text
    assert f"slippage mean {r['slippage']['mean_bps']} bps" in text


def test_report_html_names_the_units(sample_run):
    _db, out, _ = sample_run
    html = unescape((out / "report.html").read_text())
    for label in ("open exposure (USDC)", "max drawdown (USDC)", "total PnL (USDC, marked to the leaders' last "
                  "traded price", "slippage mean (bps)", "slippage p50 / p90 (bps)"):
        assert label in html, label
    assert "<th>mean (bps)</th>" in html and "<th>mean</th>" not in html
