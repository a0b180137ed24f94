"""`copytrader backtest --jobs N`: the config and its --compare-configs, or each input file (--each-file),
replayed in parallel processes give the databases and summaries of the same runs one after the other."""
from __future__ import annotations

import json
import sqlite3

import pytest

from copytrader.entrypoints.config import SAMPLE_ACTIVITY, SAMPLE_MARKETS

from .conftest import invoke
from .test_backtest import _read_pty


def rows(db) -> dict[str, list]:
    """Every table's rows; the backtest's own mark (telemetry) without the pid of the process that wrote it."""
    with sqlite3.connect(db) as con:
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out = {t: con.execute(f"SELECT * FROM {t}").fetchall() for t in tables if t != "telemetry"}
        marks = [json.loads(d) for (d,) in con.execute("SELECT data FROM telemetry WHERE key = 'backtest'")]
    for mark in marks:
        assert isinstance(mark.pop("pid"), int)
    return {**out, "backtest": marks}


def analyses(path) -> list[dict]:
    """summary.json's runs without what names the process or the file (the database's path)."""
    runs = json.loads(path.read_text())["runs"]
    for run in runs:
        run["meta"].pop("pid")
        run["meta"].pop("database")
    return runs


@pytest.fixture
def halves(tmp_path):
    """The sample's rows as two files."""
    lines = SAMPLE_ACTIVITY.read_text().splitlines(keepends=True)
    a, b = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    a.write_text("".join(lines[:40]))
    b.write_text("".join(lines[40:]))
    return a, b


def test_compare_configs_in_parallel_equal_the_runs_one_after_the_other(tmp_path):
    for name, cap in (("tight", 4), ("tighter", 2)):
        (tmp_path / f"{name}.toml").write_text(f"[risk]\nmax_trade_usdc = {cap}\n")
    compare = ["--compare-config", str(tmp_path / "tight.toml"), "--compare-config", str(tmp_path / "tighter.toml")]
    got = {}
    for jobs in ("1", "3"):
        db = tmp_path / jobs / "bt.db"
        res = invoke("backtest", "--sample", "--db", str(db), *compare, "--jobs", jobs, "--out",
                     str(tmp_path / jobs / "out"), "--json")
        assert res.exit_code == 0, res.output
        result = json.loads(res.stdout)
        dbs = [db, db.with_suffix(".compare.db"), db.with_suffix(".compare2.db")]
        assert [r["db"] for r in result["runs"]] == [str(d) for d in dbs]
        assert [r["label"] for r in result["runs"]] == ["backtest", "tight", "tighter"]
        got[jobs] = ([rows(d) for d in dbs], analyses(tmp_path / jobs / "out" / "summary.json"),
                     [{k: v for k, v in r.items() if k not in ("db", "elapsed_s", "rows_per_s")}
                      for r in result["runs"]])
    assert got["1"] == got["3"]
    dbs, summaries, _ = got["3"]
    assert dbs[0] != dbs[1] != dbs[2]  # the caps make other copies: three runs, not one three times
    assert [s["counts"]["copied"] for s in summaries] == [64, 63, 30]


def test_each_file_is_its_own_backtest_with_one_summary_table(tmp_path, halves):
    got = {}
    for jobs in ("1", "2"):
        out = tmp_path / jobs
        res = invoke("backtest", *map(str, halves), "--markets", str(SAMPLE_MARKETS), "--each-file", "--db",
                     str(tmp_path / "unused.db"), "--out", str(out), "--jobs", jobs)
        assert res.exit_code == 0, res.output
        lines = res.stdout.splitlines()  # the quarantined row's warning aside
        assert lines[0].split()[:3] == ["file", "rows", "copied"]
        assert [line.split()[0] for line in lines[1:3]] == ["first", "second"]
        assert lines[1].split()[-1] == str(out / "first.db") and lines[-1] == f"summary: {out / 'summary.json'}"
        got[jobs] = [rows(out / "first.db"), rows(out / "second.db")], analyses(out / "summary.json")
    assert got["1"] == got["2"]
    assert not (tmp_path / "unused.db").exists()
    # each database is the plain backtest of its file alone
    for i, f in enumerate(halves):
        alone = tmp_path / "alone" / f"{f.stem}.db"
        res = invoke("backtest", str(f), "--markets", str(SAMPLE_MARKETS), "--db", str(alone), "--no-report")
        assert res.exit_code == 0, res.output
        plain = rows(alone)
        assert [m.pop("label") for m in plain["backtest"]] == ["backtest"]
        each = got["2"][0][i]
        assert [m.pop("label") for m in each["backtest"]] == [f.stem]
        assert plain == each
    summaries = got["2"][1]
    assert [s["label"] for s in summaries] == ["first", "second"]
    assert sum(s["counts"]["leader_trades"] for s in summaries) == 67  # the sample's leader trades, split


def test_each_file_json_and_without_report(tmp_path, halves):
    res = invoke("backtest", *map(str, halves), "--each-file", "--db", str(tmp_path / "bt.db"), "--json")
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert [r["db"] for r in result["runs"]] == [str(tmp_path / "first.db"), str(tmp_path / "second.db")]
    report = tmp_path / "bt-report" / "summary.json"
    assert result["report"] == {"json": str(report)} and len(analyses(report)) == 2
    res = invoke("backtest", *map(str, halves), "--each-file", "--db", str(tmp_path / "x" / "bt.db"), "--no-report")
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[1].split()[-3:] == ["-", "-", str(tmp_path / "x" / "first.db")]
    assert not (tmp_path / "x" / "bt-report").exists()


def test_bad_combinations_are_one_sentence_exit_2(tmp_path, halves):
    cfg = tmp_path / "tight.toml"
    cfg.write_text("[risk]\nmax_trade_usdc = 4\n")
    (tmp_path / "other").mkdir()
    twin = tmp_path / "other" / "first.jsonl"
    twin.write_text(halves[0].read_text())
    for args, says in ((["--each-file", "--compare-config", str(cfg)], "give one of them"),
                       (["--each-file", str(twin)], "rename one")):
        res = invoke("backtest", *map(str, halves), "--db", str(tmp_path / "bt.db"), *args)
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and says in lines[0], res.output
    assert not list(tmp_path.glob("*.db"))


def test_a_database_another_run_wrote_is_refused_in_a_worker_too(tmp_path, halves):
    paper = tmp_path / "second.db"
    sqlite3.connect(paper).execute("CREATE TABLE t (x)").connection.commit()
    res = invoke("backtest", *map(str, halves), "--each-file", "--db", str(tmp_path / "bt.db"), "--jobs", "2")
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and str(paper) in lines[0] and "--overwrite" in lines[0], res.output


def test_progress_bar_over_the_runs_on_a_terminal_only(tmp_path, halves):
    pytest.importorskip("tqdm")
    args = ["backtest", *map(str, halves), "--each-file", "--db", "bt.db", "--no-report", "--jobs", "2"]
    shown = _read_pty(args, tmp_path)
    assert "100%|" in shown and "2/2" in shown and "runs" in shown
    quiet = _read_pty([*args, "--json"], tmp_path)
    assert "%|" not in quiet


class Echo:
    """A worker's job: its item doubled, with the pids of the worker and of the process it was forked from."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __call__(self, item: int) -> tuple:
        import os

        return self.tag, item * 2, os.getpid(), os.getppid()


def test_workers_are_forks_of_a_one_thread_process_if_asked_else_of_the_forkserver():
    import os
    import threading

    from copytrader.entrypoints.backtest import workers

    with workers(Echo, ("t",), 2) as work:  # the default: the forkserver's
        served = list(work(range(6)))
    assert [r[:2] for r in served] == [("t", 2 * i) for i in range(6)] and os.getpid() not in {r[3] for r in served}
    with workers(Echo, ("t",), 2, fork=True) as work:
        plain = list(work(range(6)))
    assert [r[:2] for r in plain] == [r[:2] for r in served]
    assert all(r[2] != os.getpid() for r in plain)
    if threading.active_count() == 1:  # (another test's server thread may still run: then the forkserver's)
        assert {r[3] for r in plain} == {os.getpid()}  # forked from here: its imports are made
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        with workers(Echo, ("t",), 2, fork=True) as work:
            threaded = list(work(range(6)))
    finally:
        stop.set()
        thread.join()
    assert [r[:2] for r in threaded] == [r[:2] for r in plain]
    assert os.getpid() not in {r[3] for r in threaded}  # a fork of a process with threads: never
