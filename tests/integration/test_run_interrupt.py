"""A long `copytrader run --replay`: a progress bar on a terminal, and Ctrl-C
(SIGINT) or SIGTERM ending it with the partial summary, exit code 130 or
143, a consistent database, and a rerun that continues from the cursor."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backtest.test_backtest import _read_pty

ROWS = 20_000  # far more than a run gets through before the signal lands
TOKENS = [str(10**70 + i) for i in range(4)]


def _replay(path: Path, rows: int) -> Path:
    """Leader trades in four tokens: a buy, then a sell of the same shares."""
    with path.open("w") as fh:
        for n in range(rows):
            token = TOKENS[(n // 2) % len(TOKENS)]
            fh.write(json.dumps({
                "proxyWallet": "0x7c3db723f1d4d8cb9c550095203b686cb11e5c6b", "timestamp": 1793491200 + n,
                "conditionId": "0x" + f"{(n // 2) % len(TOKENS):064x}", "type": "TRADE", "size": 100,
                "usdcSize": 50, "transactionHash": "0x" + f"{n:064x}", "price": 0.5, "asset": token,
                "side": "BUY" if n % 2 == 0 else "SELL", "outcomeIndex": 0, "title": f"market {token[-1]}"}) + "\n")
    return path


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    return _replay(tmp_path_factory.mktemp("replay") / "big.jsonl", ROWS)


def _db_state(db: Path, feed: Path) -> dict:
    con = sqlite3.connect(db)
    try:
        cursor = con.execute("SELECT cursor FROM cursors WHERE feed = ?", (f"replay:{feed.resolve()}",)).fetchone()
        return {
            "cursor": int(cursor[0]) if cursor else 0,
            "hashes": [r[0] for r in con.execute("SELECT tx_hash FROM trades ORDER BY rowid")],
            "intents": con.execute("SELECT count(*), count(DISTINCT trade_id) FROM intents").fetchone(),
            "open": con.execute("SELECT count(*) FROM intents WHERE status IN ('pending', 'unknown')").fetchone()[0],
        }
    finally:
        con.close()


@pytest.mark.parametrize("sig, code, as_json", [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)])
def test_a_signal_ends_the_run_with_the_partial_summary(tmp_path, big, sig, code, as_json):
    db = tmp_path / "ct.db"
    args = [sys.executable, "-m", "copytrader.entrypoints.cli", "--db", str(db), "run", "--replay", str(big)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPYTRADER_")}
    child = subprocess.Popen(args + (["--json"] if as_json else []), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        handled = 0
        for line in child.stderr:  # one log line per leader trade handled; bounded by the file's rows
            handled += "copytrader.alerts" in line
            if handled >= 200:
                break
        assert handled >= 200, "the run ended before it was signalled"
        child.send_signal(sig)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == code, err[-2000:]
    assert "Traceback" not in err
    name = signal.Signals(sig).name
    if as_json:
        summary = json.loads(out)
        seen = summary["seen"]
        assert summary["stopped_by"] == name
    else:
        assert f"stopped by {name}" in out and "run it again to continue" in out
        assert "PnL" in out and "trading state:" in out
        seen = int(out.split("feed rows read: ")[1].split()[0])
    assert 200 <= seen < ROWS

    # every row handled is recorded once, in file order, and the cursor is right after the last one
    state = _db_state(db, big)
    assert state["cursor"] == seen == len(state["hashes"])
    assert state["hashes"] == ["0x" + f"{n:064x}" for n in range(seen)]
    assert state["intents"] == (seen, seen) and state["open"] == 0

    # a rerun continues from the cursor: no row twice, none skipped
    res = subprocess.run(args + ["--max-items", "50", "--json"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    again = json.loads(res.stdout)
    assert again["seen"] == 50 and again["outcomes"].get("duplicate", 0) == 0 and "stopped_by" not in again
    state = _db_state(db, big)
    assert state["cursor"] == seen + 50
    assert state["hashes"] == ["0x" + f"{n:064x}" for n in range(seen + 50)]


def test_progress_bar_on_a_terminal_only(tmp_path):
    pytest.importorskip("tqdm")
    feed = _replay(tmp_path / "rows.jsonl", 300)
    shown = _read_pty(["--db", "t.db", "run", "--replay", str(feed), "--max-items", "100"], tmp_path)
    assert "run:" in shown and "%|" in shown and "/300" in shown and "rows/s" in shown
    # a rerun starts the bar at the cursor and ends it at the file's end
    shown = _read_pty(["--db", "t.db", "run", "--replay", str(feed)], tmp_path)
    assert "300/300" in shown and "100%|" in shown
    quiet = _read_pty(["--db", "q.db", "run", "--replay", str(feed), "--json"], tmp_path)
    assert "%|" not in quiet and json.loads(quiet[quiet.index("{"):])["seen"] == 300
    piped = subprocess.run([sys.executable, "-m", "copytrader.entrypoints.cli", "--db", "p.db", "run", "--replay",
                            str(feed)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert piped.returncode == 0 and "%|" not in piped.stderr + piped.stdout



def test_sigterm_wakes_a_run_waiting_for_the_next_poll(tmp_path):
    """A live feed's wait between polls (here an hour) ends at once on the signal."""
    import threading

    from tests.standins.data_api import DataApiStandIn

    leader = "0x" + "a1" * 20
    with DataApiStandIn() as api:  # no rows: after its first poll the run only waits
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("COPYTRADER_")},
               "COPYTRADER_FEED__URL": api.url, "COPYTRADER_FEED__POLL_INTERVAL_S": "3600",
               "COPYTRADER_LEADERS": leader}
        child = subprocess.Popen([sys.executable, "-m", "copytrader.entrypoints.cli", "--db", str(tmp_path / "ct.db"),
                                  "run", "--feed", "data_api", "--json"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
        try:
            polled = threading.Event()
            for _ in range(3000):  # bounded: until the first poll has reached the stand-in
                if api.requests or child.poll() is not None or polled.wait(0.01):
                    break
            assert api.requests, "the run never polled"
            child.send_signal(signal.SIGTERM)  # before or during the hour's wait: either way it ends now
            out, err = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert child.returncode == 143, err[-2000:]
    summary = json.loads(out)
    assert summary["stopped_by"] == "SIGTERM" and summary["seen"] == 0
