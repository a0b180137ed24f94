"""`copytrader scout` against the Data API stand-in: leaderboard, activity, market trades, faults, cache."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from copytrader.entrypoints.cli import main
from tests.standins.data_api import DataApiStandIn, activity_row, leaderboard_row, trade_row

UNTIL = 1_790_000_000 // 60 * 60
T0 = UNTIL - 2 * 86_400
GOOD, SMALL, BAD = "0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "c3" * 20
COND = {w: "0x" + c * 32 for w, c in ((GOOD, "d1"), (SMALL, "d2"), (BAD, "d3"))}
TOKEN = {w: str(10**70 + i) for i, w in enumerate((GOOD, SMALL, BAD))}
OTHER = "0x" + "ee" * 20
CONFIG = ('[follower]\nmax_slippage = "0.05"\n[follower.sizing]\nmode = "proportional"\nmultiplier = "0.1"\n'
          '[scout]\ncache = "{cache}"\n')


def _leader(api, wallet, trades):
    """trades: (offset s, side, price, size); each also prints on the tape, and others print 2 s later."""
    for n, (dt, side, price, size) in enumerate(trades):
        ts, kw = T0 + dt, {"asset": TOKEN[wallet], "condition": COND[wallet]}
        api.add(activity_row(wallet, ts, n, side=side, price=price, size=size, **kw))
        api.trades.append(trade_row(wallet, ts, n, side=side, price=price, size=size, **kw))
        later = round(price + (0.01 if side == "BUY" else -0.01), 2)
        api.trades.append(trade_row(OTHER, ts + 2, 1000 + n, side=side, price=later, size=5000, **kw))


@pytest.fixture
def api():
    with DataApiStandIn() as api:
        _leader(api, GOOD, [(0, "BUY", 0.40, 1000), (3600, "SELL", 0.60, 1000), (7200, "BUY", 0.30, 500)])
        # copies below the minimum size (0.1 x 20 = 2 shares) and a buy above the price band (0.97)
        _leader(api, SMALL, [(0, "BUY", 0.50, 20), (100, "BUY", 0.98, 1000), (200, "BUY", 0.50, 200)])
        _leader(api, BAD, [(0, "BUY", 0.70, 1000), (3600, "SELL", 0.40, 1000)])
        api.leaderboard = [leaderboard_row(1, GOOD, 5000.0, 9e4, "good"), leaderboard_row(2, SMALL, 100.0, 1e3),
                           leaderboard_row(3, BAD, -300.0, 2e4, "bad")]
        yield api


def _scout(tmp_path, api, *args):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(cache=tmp_path / "cache.db") + f'[feed]\nurl = "{api.url}"\n')
    res = CliRunner().invoke(main, ["--config", str(cfg), "--db", str(tmp_path / "ct.db"), "scout", "--period",
                                    "WEEK", "--top", "3", "--until", str(UNTIL), "--delay-s", "2", "--jobs", "2",
                                    "--out", str(tmp_path / "out"), *args], env={"COPYTRADER_CONFIG": None})
    assert res.exit_code == 0, res.output
    return res


def test_scout_ranks_candidates_with_html_png_and_json(tmp_path, api):
    res = _scout(tmp_path, api, "--json")
    result = json.loads(res.stdout)
    rows = {r["address"]: r for r in result["candidates"]}
    assert [r["address"] for r in result["candidates"]][0] == GOOD
    assert [r["rank"] for r in result["candidates"]] == [1, 2, 3]
    scores = [Decimal(r["score"]) for r in result["candidates"]]
    assert scores == sorted(scores, reverse=True)
    assert Decimal(rows[GOOD]["copy_pnl"]) > 0 > Decimal(rows[BAD]["copy_pnl"])
    assert rows[GOOD]["leader_pnl"] == "5000.0" and rows[GOOD]["name"] == "good"
    # 2 s late the copies meet the other takers' prints, 0.01 worse: 250 bps of 0.40 on the first buy
    assert Decimal(rows[GOOD]["slippage_mean_bps"]) > 0
    # SMALL: copies below the market's minimum size and a buy above the price band are not copied
    assert rows[SMALL]["not_copied_by_reason"] == {"below_min_size": 1, "price_band": 1}, rows[SMALL]
    assert rows[SMALL]["copied"] == 1
    out = tmp_path / "out"
    assert (out / "scout.html").read_text().count("<img") == 3
    for r in result["candidates"]:
        assert (out / f"equity-{r['address']}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "scout.json").read_text())["candidates"] == result["candidates"]


def test_second_scout_hits_the_cache_only_and_faults_are_survived(tmp_path, api, monkeypatch):
    monkeypatch.setattr("copytrader.adapters.feeds.http.time.sleep", lambda s: None)  # Retry-After without waiting
    api.inject("429", "503", "truncated")
    first = json.loads(_scout(tmp_path, api, "--json").stdout)
    n = len(api.requests)
    assert not api.faults  # 429 (Retry-After), 503 and a truncated page were each answered and retried
    assert n > 3 and first["requests"] > 0
    second = json.loads(_scout(tmp_path, api, "--json").stdout)
    assert len(api.requests) == n and second["requests"] == 0
    assert [(r["address"], r["score"]) for r in second["candidates"]] == \
           [(r["address"], r["score"]) for r in first["candidates"]]


def test_the_json_equals_a_plain_backtest_with_delay(tmp_path, api):
    result = json.loads(_scout(tmp_path, api, "--json").stdout)
    row = next(r for r in result["candidates"] if r["address"] == GOOD)
    cfg = tmp_path / "c.toml"
    res = CliRunner().invoke(main, ["--config", str(cfg), "--db", str(tmp_path / "plain.db"), "backtest",
                                    row["files"]["activity"], "--delay-s", "2", "--trades", row["files"]["trades"],
                                    "--out", str(tmp_path / "rep"), "--json"], env={"COPYTRADER_CONFIG": None})
    assert res.exit_code == 0, res.output
    plain = json.loads(res.stdout)
    report = json.loads((tmp_path / "rep" / "summary.json").read_text())["runs"][0]
    assert Decimal(plain["runs"][0]["peak_exposure_usdc"]) == Decimal(row["capital_used"]) > 0
    assert report["pnl"]["total"] == row["copy_pnl"] and report["equity"]["max_drawdown"] == row["max_drawdown"]
    assert report["counts"]["copied"] == row["copied"]
    assert report["slippage"]["mean_bps"] == row["slippage_mean_bps"]
    assert report["slippage"]["p90_bps"] == row["slippage_p90_bps"]


def test_follow_adds_the_candidate_with_its_suggested_multiplier(tmp_path, api):
    _scout(tmp_path, api)
    res = _scout(tmp_path, api, "--follow", GOOD, "--create")
    assert "suggested multiplier x" in res.output and f"following {GOOD}" in res.output
    listed = CliRunner().invoke(main, ["--db", str(tmp_path / "ct.db"), "leaders", "list", "--json"],
                                env={"COPYTRADER_CONFIG": None})
    assert GOOD in listed.output


def test_terminal_table(tmp_path, api):
    res = _scout(tmp_path, api)
    lines = res.stdout.splitlines()  # (a log line of another test's thread may reach stderr)
    assert lines[0].startswith("scout: 3 candidates, WEEK window, copies 2.0 s late")
    assert lines[2].split()[:2] == ["1", GOOD[:12]]


def test_candidates_the_cache_holds_are_read_by_the_workers_and_only_the_rest_is_fetched(tmp_path, api):
    (tmp_path / "cold").mkdir()
    cold = json.loads(_scout(tmp_path / "cold", api, "--json").stdout)
    _scout(tmp_path, api, "--top", "0", "--address", GOOD)  # the cache now holds GOOD's rows and its market's
    n = len(api.requests)
    warm = json.loads(_scout(tmp_path, api, "--json").stdout)
    asked = api.requests[n:]
    assert not [q for q in asked if q.get("user") == GOOD or q.get("market") == COND[GOOD]], asked
    assert {q.get("user") for q in asked if "user" in q} == {SMALL, BAD}
    assert warm["requests"] == len(asked)
    same = ("address", "score", "copy_pnl", "copied", "not_copied_by_reason", "rows", "tape_rows")
    assert [[r[k] for k in same] for r in warm["candidates"]] == [[r[k] for k in same] for r in cold["candidates"]]
    for r in warm["candidates"]:
        assert (tmp_path / "out" / f"equity-{r['address']}.png").is_file()


def test_a_cache_written_with_rows_as_one_json_array_is_still_read(tmp_path, api):
    """Caches from before rows were kept a line each (their JSON text, copied into the candidate's files)."""
    import sqlite3

    (tmp_path / "fresh").mkdir()
    fresh = json.loads(_scout(tmp_path / "fresh", api, "--json").stdout)
    _scout(tmp_path, api)
    db = sqlite3.connect(tmp_path / "cache.db")
    with db:
        for table, key in (("activity", "user"), ("tapes", "market"), ("boards", "key")):
            for k, text in db.execute(f"SELECT {key}, rows FROM {table}").fetchall():
                assert not text.startswith("[")
                rows = [json.loads(line) for line in text.splitlines()]
                db.execute(f"UPDATE {table} SET rows = ? WHERE {key} = ?", (json.dumps(rows), k))
    db.close()
    n = len(api.requests)
    old = json.loads(_scout(tmp_path, api, "--json").stdout)
    assert api.requests[n:] == [] and old["requests"] == 0
    def same(rows):  # all but the paths and the speed
        return [{k: v for k, v in r.items() if k not in ("files", "rows_per_s")} for r in rows]
    assert same(old["candidates"]) == same(fresh["candidates"])
