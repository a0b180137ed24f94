"""Single writer, across real processes: while one copytrader process holds a
database, a second one refuses to write it (clear message, nothing changed);
a holder killed with SIGKILL leaves no stale lock, and the database passes
SQLite's integrity check."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from copytrader.adapters.storage.sqlite import SqliteStore

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
