"""Single writer, across real processes: while one copytrader process holds a
database, a second one refuses to write it (clear message, nothing changed,
not even by a second backtest); a holder killed with SIGKILL leaves no stale
lock, and the database passes SQLite's integrity check."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from copytrader.adapters.storage.sqlite import SqliteStore
from tests.standins.data_api import activity_row

ROOT = Path(__file__).resolve().parents[2]
HOLD = ("import sys; from copytrader.adapters.storage.sqlite import SqliteStore; "
        "s = SqliteStore(sys.argv[1]); print('holding', flush=True); sys.stdin.read()")


def copytrader(db: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("COPYTRADER_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "copytrader.entrypoints.cli", "--db", str(db), *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


def snapshot(db: Path) -> list[str]:
    with sqlite3.connect(db) as raw:
        assert raw.execute("pragma integrity_check").fetchone() == ("ok",)
        return list(raw.iterdump())


@pytest.fixture
def holder(tmp_path):
    db = tmp_path / "ct.db"
    assert copytrader(db, "run", "--sample").returncode == 0
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "holding"
    yield db, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def test_second_process_is_refused_and_changes_nothing(holder):
    db, proc = holder
    before = snapshot(db)
    res = copytrader(db, "run", "--sample")
    assert res.returncode == 1, res.stderr
    assert f"in use by another copytrader process (pid {proc.pid})" in res.stderr
    assert "Traceback" not in res.stderr
    assert copytrader(db, "positions", "--json").returncode == 0  # readers are welcome
    assert snapshot(db) == before
    # control commands (halt, resume, leaders) write past the lock on purpose: the kill switch must
    # reach a running engine
    assert copytrader(db, "halt", "--reason", "from another process").returncode == 0
    with SqliteStore(db, read_only=True) as store:
        assert store.get_state().state.value == "HALTED"


def test_a_killed_holder_leaves_no_stale_lock(holder):
    db, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    res = copytrader(db, "run", "--sample")
    assert res.returncode == 0, res.stderr
    assert "feed rows read: 0" in res.stdout  # the first run's cursor survived; nothing is copied twice
    snapshot(db)


def _activity(path: Path, rows: int) -> Path:
    leader = "0x" + "a1" * 20
    with path.open("w", encoding="utf-8") as fh:
        for n in range(rows):
            fh.write(json.dumps(activity_row(leader, 1_795_000_000 + n, n, side="SELL" if n % 3 == 2 else "BUY",
                                             price=0.5 + (n % 7) / 100)) + "\n")
    return path


def _files(db: Path) -> dict[str, int]:
    """The database's files and their inodes (a file deleted and made again has another)."""
    return {p.name: p.stat().st_ino for p in db.parent.iterdir() if p.name.startswith(db.name)}


def test_a_second_backtest_is_refused_before_it_touches_the_first_ones_database(tmp_path):
    rows = 20_000
    feed, db = _activity(tmp_path / "big.jsonl", rows), tmp_path / "bt.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("COPYTRADER_CONFIG", None)
    first = subprocess.Popen([sys.executable, "-m", "copytrader.entrypoints.cli", "backtest", str(feed), "--db", str(db),
                              "--no-report", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env, cwd=ROOT)
    try:
        # wait (bounded) until the first backtest holds the lock and has marked its database, then freeze it there
        for _ in range(20_000):
            if _holds(db, first.pid) or first.poll() is not None:
                break
            time.sleep(0.005)
        assert first.poll() is None, "the first backtest ended before the test could stop it: use more rows"
        os.kill(first.pid, signal.SIGSTOP)
        assert _holds(db, first.pid)
        before = _files(db)
        second = copytrader(db, "backtest", str(feed), "--no-report")
        assert second.returncode == 1, second.stderr
        assert f"in use by another copytrader process (pid {first.pid})" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
        assert _files(db) == before  # nothing deleted, nothing made anew
    finally:
        os.kill(first.pid, signal.SIGCONT)
        out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert json.loads(out)["runs"][0]["seen"] == rows
    with sqlite3.connect(db) as raw:  # the first backtest's work is in the file, whole
        assert raw.execute("pragma integrity_check").fetchone() == ("ok",)
        assert raw.execute("SELECT count(*) FROM trades").fetchone()[0] == rows


def _holds(db: Path, pid: int) -> bool:
    """Whether ``pid`` holds the database's lock and has marked it as a backtest's."""
    lock = Path(f"{db}.lock")
    if not db.exists() or not lock.exists() or lock.read_text().strip() != str(pid):
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as raw:
            return raw.execute("SELECT 1 FROM telemetry WHERE key = 'backtest'").fetchone() is not None
    except sqlite3.Error:  # not made yet
        return False
