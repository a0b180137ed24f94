"""`python -m bench [--quick] [--json PATH] [--only GROUP,...]`: see bench/__init__.py.

Issue 20's targets, each next to its floor measured in the same run, on the harness-shaped
workload (20,000 Data API rows of bench/data.py, seed 42, 400 tokens), for both limit sets:
``open`` (bench.workload.OPEN_LIMITS: every trade copied) and ``default`` (the config's own
limits: most trades rejected). Each replay runs in a fresh process pinned to one CPU
(bench/workload.py), 3 rounds of every run one after the other; rates are trades per
CPU-second of that process's thread (its wall-clock rate, noisier on a shared machine, is in
the JSON), the median of the rounds; a ratio is the median of each round's ratio.

- backtest: SQLite output, ``run(..., commit_every=1000)``, >= 0.6x the bare-sqlite floor: bare
  sqlite3, our schema, the rows the engine wrote for this workload (read back from its output
  database: trades, intents, positions, leader holdings, the cursor), inserted or upserted in the
  engine's order, values prepared up front, one transaction per 1,000 trades.
- memory: the memory store on the test profile, >= 40,000 trades/s and >= 0.5x the feed alone
  (FilesFeed reading, decoding and validating the same rows, no engine).
- durable run: SQLite, a commit per trade as `copytrader run` does, >= 2x the baseline commit
  (e1cbd7b, before issue 20) measured in the same run (its ``copytrader`` extracted with
  ``git archive`` and run by the same workload code), and >= 0.7x the commit-per-trade floor
  (the same bare rows, one transaction per trade).
- across cores: ``copytrader backtest --each-file --jobs 2`` over 4 files against ``--jobs 1``,
  >= 1.8x (wall clock, not pinned); the scout's ``--jobs 2`` against ``--jobs 1`` is bench/scout.py's row.
- flat: CPU per trade of the last 1,000 trades against the first 1,000, <= 1.3x, for the backtest,
  the durable run and the memory replay.
- live latency, feed event -> signed order (the dry-run executor's live prepare path, SQLite):
  p50 and p99 next to the baseline commit's; target: the p99 of the thread's CPU time <= 1.1x the
  baseline's; and the p99 against the SDK's bare build+sign.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from bench import data, scout, streams_activity, streams_book, streams_chain
from bench.workload import LIMITS, ROWS, SEED, TOKENS, pct, replay

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BASELINE = "e1cbd7b"  # before issue 20
PATHS = {  # issue 20's replays: the arguments of their bench.workload job
    "backtest": {"store": "sqlite", "commit_every": 1000},
    "durable": {"store": "sqlite", "commit_every": 1},
    "memory": {"store": "memory", "profile": "test"},
}


# -- the baseline commit and the jobs of bench/workload.py --------------------------------------
def baseline_tree(folder: Path) -> tuple[Optional[Path], str]:
    """``copytrader`` at BASELINE (``git archive`` of this repository) in ``folder``, next to a copy
    of this package (the workload code of this tree): (the folder, "") or (None, why not)."""
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE, "copytrader"], capture_output=True,
                                 check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        why = getattr(exc, "stderr", b"") or str(exc).encode()
        return None, f"baseline unavailable: git archive {BASELINE}: {why.decode(errors='replace').strip()[:200]}"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder)
    shutil.copytree(HERE, folder / "bench", ignore=shutil.ignore_patterns("*.json", "__pycache__"))
    return folder, ""


def jobs(tree: Path, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``specs`` run by ``python -m bench.workload`` in a fresh process whose ``copytrader`` and
    ``bench`` are ``tree``'s (pinned to one CPU by the workload itself)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("COPYTRADER_CONFIG", None)
    res = subprocess.run([sys.executable, "-m", "bench.workload", json.dumps(specs)], cwd=tree, env=env,
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"bench.workload in {tree} failed: {res.stderr.strip()[-1500:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for result in out:
        if not result["copytrader"].startswith(str(tree)):  # an installed copytrader would shadow the tree's
            raise RuntimeError(f"bench.workload in {tree} imported copytrader from {result['copytrader']}")
    return out


def bench_issue20(quick: bool, groups: set[str]) -> dict[str, Any]:
    """The replays (each path, both limit sets, this tree and the baseline), their floors, and the
    latency, in that order of processes: one job a process (``--quick``: all of a tree's in one)."""
    n, runs = (300, 1) if quick else (ROWS, 3)
    lat_rows = {"open": 60 if quick else 2000, "default": 300 if quick else ROWS}
    out: dict[str, Any] = {"rows": n, "seed": SEED, "tokens": TOKENS, "runs": runs}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base, why = baseline_tree(tmp / "baseline")
        out["baseline"] = {"commit": BASELINE, "available": base is not None, "reason": why}
        trees = {"today": ROOT, **({"baseline": base} if base else {})}
        plan: list[tuple[str, dict[str, Any], list]] = []  # (tree, job, where its result goes)
        if "replay" in groups:
            out["feed_floor"] = []
            for limits in LIMITS:
                out[limits] = {**{p: {t: [] for t in trees} for p in PATHS}, "floor_chunked": [],
                               "floor_per_trade": []}
            for r in range(runs):
                for limits in LIMITS:
                    R, kept = out[limits], str(tmp / f"{limits}.db")
                    for path, args in PATHS.items():
                        for t in trees:
                            keep = {"keep": kept} if (path, t, r) == ("backtest", "today", 0) else {}
                            plan.append((t, {"kind": "replay", "n": n, "limits": limits, **args, **keep}, R[path][t]))
                    plan.append(("today", {"kind": "sqlite_floor", "db": kept, "commit_every": 1000},
                                 R["floor_chunked"]))
                    plan.append(("today", {"kind": "sqlite_floor", "db": kept, "commit_every": 1}, R["floor_per_trade"]))
                plan.append(("today", {"kind": "feed_floor", "n": n}, out["feed_floor"]))
        if "latency" in groups:
            out["latency"] = {limits: {t: [] for t in trees} for limits in LIMITS}
            for limits in LIMITS:
                for t in trees:
                    plan.append((t, {"kind": "latency", "n": lat_rows[limits], "limits": limits,
                                     "sdk": t == "today" and limits == "open"}, out["latency"][limits][t]))
        if quick:  # a process a tree: all its jobs, in order
            batches = [[step for step in plan if step[0] == t] for t in trees]
        else:  # a process a job, in the plan's order: the trees alternate, so the machine's noise hits both
            batches = [[step] for step in plan]
        for batch in batches:
            t = batch[0][0]
            if t == "baseline" and not out["baseline"]["available"]:
                continue
            try:
                results = jobs(trees[t], [job for _, job, _ in batch])
            except RuntimeError as exc:
                if t == "today":
                    raise
                out["baseline"].update(available=False, reason=f"baseline failed: {str(exc)[-300:]}")
                continue
            for (_, _, into), result in zip(batch, results):
                into.append(result)
                out.setdefault("cpu", result["cpu"])  # the same CPU for every job
    return out


# -- across cores: backtest --jobs over several files ---------------------------------------------
def bench_cores(quick: bool) -> dict[str, Any]:
    """``copytrader backtest --each-file`` of 4 files (5,000 rows each, seeds 42 to 45) with ``--jobs 1``
    and ``--jobs 2``, both limit sets: the command's wall clock (start-up and the worker pool
    included, not pinned: it is the use of both cores), median of 3 each. A CLI without these
    options gets "n/a"."""
    n_files = 4
    n, runs = (100, 1) if quick else (ROWS // n_files, 3)
    cli = [sys.executable, "-m", "copytrader.entrypoints.cli"]
    env = dict(os.environ)
    env.pop("COPYTRADER_CONFIG", None)
    out: dict[str, Any] = {"files": n_files, "rows_per_file": n, "cores": os.cpu_count(), "runs": runs}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        usage = subprocess.run(cli + ["backtest", "--help"], capture_output=True, text=True, env=env, cwd=tmp).stdout
        missing = [option for option in ("--jobs", "--each-file") if option not in usage]
        if missing:
            return {**out, "available": False, "reason": f"copytrader backtest has no {' or '.join(missing)}"}
        files = [str(data.write_jsonl(tmp / f"leader{i}.jsonl", n, TOKENS, SEED + i)) for i in range(n_files)]
        (tmp / "open.toml").write_text("".join(f"[{section}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in
                                                                       values.items())
                                               for section, values in LIMITS["open"].items()))
        for limits in LIMITS:
            config = ["--config", str(tmp / "open.toml")] if limits == "open" else []
            walls: dict[int, list[float]] = {1: [], 2: []}
            for r in range(runs):
                for j in walls:
                    db = tmp / f"{limits}-{j}-{r}" / "backtest.db"
                    db.parent.mkdir()
                    t0 = time.perf_counter()
                    res = subprocess.run(cli + config + ["backtest", *files, "--each-file", "--jobs", str(j), "--db",
                                                         str(db), "--no-report", "--json"],
                                         capture_output=True, text=True, env=env, cwd=tmp)
                    walls[j].append(time.perf_counter() - t0)
                    if res.returncode != 0:
                        raise RuntimeError(f"copytrader backtest --jobs {j} failed: {res.stderr.strip()[-800:]}")
                    seen = sum(run["seen"] for run in json.loads(res.stdout)["runs"])
            one, two = statistics.median(walls[1]), statistics.median(walls[2])
            out[limits] = {"jobs1_s": round(one, 2), "jobs2_s": round(two, 2), "speedup": round(one / two, 2),
                           "rows": seen, "walls": {j: [round(w, 2) for w in ws] for j, ws in walls.items()}}
    return {**out, "available": True}


# -- dashboard: API latency on a big history, and what an open dashboard costs the engine --
def _dashboard_server(db: Path, refresh_s: float = 1.0) -> Any:
    from copytrader.entrypoints.config import load_config
    from copytrader.entrypoints.dashboard import web_server

    cfg = load_config(None, environ={}, overrides={"store": {"path": str(db)}, "dashboard": {"refresh_s": refresh_s}})
    return web_server({"default": cfg}, {**cfg.values["dashboard"], "port": 0}, "127.0.0.1", environ={})


def _streaming(db: Path) -> Any:
    """The dashboard open on ``db`` with one page streaming its overview (server-sent
    events, the default refresh of 1 s), as a browser would, for the block."""
    import contextlib
    import threading

    import httpx

    @contextlib.contextmanager
    def block():
        server = _dashboard_server(db).start()
        stop, seen = threading.Event(), {"events": 0}

        def read() -> None:
            with httpx.Client(timeout=None) as http, http.stream("GET", server.url + "/api/v1/stream") as res:
                for line in res.iter_lines():
                    if line.startswith("event: overview"):
                        seen["events"] += 1
                    if stop.is_set():
                        return
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            yield seen
        finally:
            stop.set()
            server.close()
            reader.join(5)
    return block()


def bench_dashboard(n_history: int, n_engine: int, repeat: int) -> dict[str, Any]:
    """API latency (loopback HTTP, keep-alive) of the overview and of 1,000-row decision pages
    on a database of ``n_history`` leader trades written by the engine (backtest commits), each
    against the same read-model call without HTTP; then the engine's cost per trade (commit per
    trade, SQLite) with the dashboard open and streaming against without, in alternating runs."""
    import httpx

    from copytrader.entrypoints.config import load_config
    from copytrader.entrypoints.dashboard import dashboard_for
    from copytrader.ports import DecisionFilter

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "history.db"
        made = replay("sqlite", n_history, commit_every=1000, window=min(1000, n_history // 2), keep=str(db))
        out["history_trades"] = made["trades"]
        cfg = load_config(None, environ={}, overrides={"store": {"path": str(db)}})
        model = dashboard_for({"default": cfg})
        from copytrader.adapters.storage.sqlite import SqliteStore

        with SqliteStore(db, read_only=True) as store:  # the cursor of the row half-way back
            seq, record = store.decisions(DecisionFilter(), n_history // 2)[-1]
        deep = f"{record.created_at.isoformat()}~{seq}"
        leader = data.LEADERS[3]
        queries = {"overview": ("/api/v1/overview", model.overview),
                   "decisions": ("/api/v1/followers/default/decisions?limit=1000",
                                 lambda: model.decisions("default", DecisionFilter(), 1000)),
                   "decisions_deep": (f"/api/v1/followers/default/decisions?limit=1000&before={deep}",
                                      lambda: model.decisions("default", DecisionFilter(before=model.parse_before(deep)),
                                                              1000)),
                   "decisions_leader": (f"/api/v1/followers/default/decisions?limit=1000&leader={leader}",
                                        lambda: model.decisions("default", DecisionFilter(leader=leader), 1000))}
        server = _dashboard_server(db).start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                for name, (path, direct) in queries.items():
                    n = repeat if name == "overview" else max(5, repeat // 4)
                    api, floor = [], []
                    for i in range(n + 3):
                        t0 = time.perf_counter()
                        res = http.get(path.replace("+", "%2B"))
                        t1 = time.perf_counter()
                        direct()
                        t2 = time.perf_counter()
                        assert res.status_code == 200, res.text[:300]
                        if i >= 3:  # warm-up
                            api.append(t1 - t0)
                            floor.append(t2 - t1)
                    rows = len(res.json().get("decisions", ())) if name != "overview" else None
                    ms = lambda x: round(x * 1000, 2)
                    out[name] = {"n": n, "rows": rows, "p50_ms": ms(pct(api, 0.5)), "p99_ms": ms(pct(api, 0.99)),
                                 "floor_p50_ms": ms(pct(floor, 0.5)), "floor_p99_ms": ms(pct(floor, 0.99))}
        finally:
            server.close()
        cold = []
        for _ in range(max(5, repeat // 10)):  # what a change in the store costs the next overview
            model._cache.clear()
            t0 = time.perf_counter()
            model.overview()
            cold.append(time.perf_counter() - t0)
        out["overview_cold"] = {"n": len(cold), "p50_ms": round(pct(cold, 0.5) * 1000, 2),
                                "p99_ms": round(pct(cold, 0.99) * 1000, 2)}
    runs: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    for _ in range(repeat and 3 if n_engine > 1000 else 1):  # alternating: the machine's noise hits both
        runs["without"].append(replay("sqlite", n_engine, window=n_engine // 4))
        runs["with"].append(replay("sqlite", n_engine, window=n_engine // 4, beside=_streaming))
    med = lambda key, which: statistics.median(r[key] for r in runs[which])
    out["engine"] = {"trades": n_engine, "runs": len(runs["with"]),
                     "wall_us": med("wall_us", "without"), "wall_us_streaming": med("wall_us", "with"),
                     "cpu_us": med("cpu_us", "without"), "cpu_us_streaming": med("cpu_us", "with"),
                     "stream_events": [r["beside"]["events"] for r in runs["with"]]}
    e = out["engine"]
    e["ratio_wall"] = round(e["wall_us_streaming"] / e["wall_us"], 3)
    e["ratio_cpu"] = round(e["cpu_us_streaming"] / e["cpu_us"], 3)
    return out



# -- 3. start-up -----------------------------------------------------------------
def _time_cmd(cmd: list[str], repeat: int, cwd: Optional[str] = None) -> float:
    times = []
    env = dict(os.environ)
    env.pop("COPYTRADER_CONFIG", None)
    # As after an install: byte code cached (pip compiles installed packages;
    # elsewhere the first run writes it, unless this variable forbids it).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(cmd, check=True, capture_output=True, cwd=cwd, env=env)  # the first run caches it
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=cwd, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def _installed(folder: Path) -> tuple[str, str, str]:
    """copytrader installed as a user installs it: ``pip install .`` (not
    editable, byte code compiled) into a fresh venv. Its dependencies are this
    environment's, reached by a ``.pth`` line (nothing downloaded; that
    environment's own ``.pth`` files, such as an editable install's finder,
    are not run). Returns (python, the copytrader script, how it was installed)."""
    import sysconfig

    venv = folder / "venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                        "--no-deps", "--compile", str(HERE.parent)], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        reason = (exc.stderr or "").strip().splitlines()[-1:] or [str(exc)]
        exe = shutil.which("copytrader", path=str(Path(sys.executable).parent)) or ""
        return sys.executable, exe, f"this environment (pip install . into a venv failed: {reason[0]})"
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], check=True, capture_output=True, text=True).stdout.strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_bench_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return str(venv / "bin" / "python"), str(venv / "bin" / "copytrader"), "pip install . into a fresh venv"


def bench_startup(repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        python, exe, installed = _installed(Path(tmp))
        cli = [exe] if exe else [python, "-m", "copytrader.entrypoints.cli"]
        one = data.write_jsonl(Path(tmp) / "one.jsonl", 1, 1)
        markets = Path(tmp) / "m.json"
        markets.write_text(json.dumps({"markets": [{"condition_id": data.condition(0), "tokens": [
            {"token_id": data.token(0), "book": {"asks": [["0.51", "1000"]], "bids": [["0.49", "1000"]]}}]}]}))
        out = {
            "python_ms": _time_cmd([python, "-c", "pass"], repeat),
            "click_import_ms": _time_cmd([python, "-c", "import click"], repeat),
            "help_ms": _time_cmd(cli + ["--help"], repeat),
            "paper_ms": _time_cmd(cli + ["--db", str(Path(tmp) / "p.db"), "run", "--replay", str(one), "--markets",
                                         str(markets), "--json"], repeat, cwd=tmp),
            "sdk_import_ms": _time_cmd([python, "-c", "import polymarket"], repeat),
        }
    return {**{k: round(v, 1) for k, v in out.items()}, "repeat": repeat, "installed": installed}


# -- 4. on-chain decoding --------------------------------------------------------
def bench_onchain(n: int) -> dict[str, Any]:
    """Every other log is an ExchangeV3 fill of a Protocol V2 position id, the
    rest CTF exchange V2 fills of CTF token ids: the watcher reads both."""
    from eth_abi import encode
    from hexbytes import HexBytes
    from web3.datastructures import AttributeDict

    from copytrader.adapters.execution.polymarket.settings import EXCHANGE_V3, V2_EXCHANGE
    from copytrader.adapters.feeds.onchain import ORDER_FILLED, OnchainFeed

    feed = OnchainFeed("http://127.0.0.1:9", [data.LEADERS[0]], [V2_EXCHANGE, EXCHANGE_V3])
    pad = lambda a: HexBytes("0x" + "00" * 12 + a[2:])
    logs = []
    for i in range(n):
        v3 = i % 2 == 1
        token = (1 << 248) | ((10**30 + i) << 104) | (i // 2 % 2) if v3 else 10**70 + i
        body = encode(feed.types, [i // 2 % 2, token, 5_100_000 + i, 10_000_000, 0, b"\0" * 32, b"\0" * 32])
        logs.append(AttributeDict({
            "address": EXCHANGE_V3 if v3 else V2_EXCHANGE, "blockHash": HexBytes("0x" + "11" * 32),
            "blockNumber": 1000 + i // 10, "data": HexBytes(body), "logIndex": i % 10, "removed": False,
            "topics": [HexBytes(feed.topic0), HexBytes("0x" + f"{i:064x}"), pad(data.LEADERS[0]), pad(data.LEADERS[1])],
            "transactionHash": HexBytes("0x" + f"{i + 7:064x}"), "transactionIndex": 0}))
    t0 = time.perf_counter()
    for entry in logs:
        feed.decode(entry, 1_793_491_200)
    ours = n / (time.perf_counter() - t0)
    out: dict[str, Any] = {"logs": n, "v3_logs": n // 2, "logs_per_s": round(ours)}
    try:  # baseline: web3's own contract-event decoding of the same logs, same event ABI
        abi = [{"type": "event", "name": "OrderFilled", "anonymous": False,
                "inputs": [{"name": name, "type": kind, "indexed": indexed} for name, kind, indexed in ORDER_FILLED]}]
        event = feed.w3.eth.contract(abi=abi).events.OrderFilled()
        t0 = time.perf_counter()
        for entry in logs:
            event.process_log(entry)
        out["web3_logs_per_s"] = round(n / (time.perf_counter() - t0))
    except Exception as exc:  # pragma: no cover - a web3 API change
        out["web3_error"] = f"{type(exc).__name__}: {exc}"[:200]
    return out


# -- table ---------------------------------------------------------------------------
def _median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run whose ``key`` is the median of ``runs`` (the upper one of an even count)."""
    return sorted(runs, key=lambda r: r[key])[len(runs) // 2]


def issue20_rows(r: dict[str, Any]) -> list[tuple]:
    """(measure, value, baseline, ratio, target, pass) rows of issue 20's targets."""
    if "issue20" not in r:
        return []
    I, out = r["issue20"], []
    core = "1 core" if I.get("cpu") is None else f"1 core: CPU {I['cpu']}"
    base = I["baseline"]
    have_base = base["available"]
    key = "trades_per_cpu_s"
    rate = lambda runs: _median_run(runs, key)[key] if runs else None
    ratio = lambda a, b: round(a / b, 2) if a is not None and b else ""
    today = lambda value: f"; {BASELINE} {value:,}/s" if value is not None and have_base else ""

    def paired(runs: list[dict[str, Any]], floors: list[dict[str, Any]], floor_key: str = key) -> float:
        """The median of the ratios of the runs of each round to its floor's (or baseline's): runs
        made one after the other see about the same machine."""
        return round(statistics.median(a[key] / b[floor_key] for a, b in zip(runs, floors)), 2)

    if "feed_floor" in I:
        feed = statistics.median(f["rows_per_cpu_s"] for f in I["feed_floor"])
        for limits in LIMITS:
            R = I[limits]
            tag = f"{limits} limits, {I['rows']:,} trades, {core}"
            value = lambda path, tree="today": rate(R[path].get(tree))
            b, chunked, per_trade = value("backtest"), rate(R["floor_chunked"]), rate(R["floor_per_trade"])
            x = paired(R["backtest"]["today"], R["floor_chunked"])
            out.append((f"backtest, sqlite, commit per 1,000 ({tag})", f"{b:,} trades/s",
                        f"bare sqlite3, same rows and chunk {chunked:,}/s{today(value('backtest', 'baseline'))}",
                        x, "≥ 0.6× floor", x >= 0.6))
            m, x = value("memory"), paired(R["memory"]["today"], I["feed_floor"], "rows_per_cpu_s")
            out.append((f"replay, memory store, test profile ({tag})", f"{m:,} trades/s",
                        f"feed alone {feed:,}/s{today(value('memory', 'baseline'))}", x,
                        "≥ 40,000/s, ≥ 0.5× feed", m >= 40_000 and x >= 0.5))
            d, d0 = value("durable"), value("durable", "baseline") if have_base else None
            x = paired(R["durable"]["today"], R["durable"]["baseline"]) if d0 else ""
            out.append((f"durable run, sqlite, commit per trade ({tag})", f"{d:,} trades/s",
                        f"{BASELINE}, same run {d0:,}/s" if d0 else base["reason"] or "baseline unavailable",
                        x, f"≥ 2× {BASELINE}", x >= 2 if d0 else None))
            x = paired(R["durable"]["today"], R["floor_per_trade"])
            out.append(("  same, against bare sqlite3 commit per trade", f"{d:,} trades/s",
                        f"bare sqlite3, same rows, a commit each {per_trade:,}/s", x, "≥ 0.7× floor", x >= 0.7))
        for limits in LIMITS:
            for path, label in (("backtest", "backtest"), ("durable", "durable run"), ("memory", "memory")):
                runs = I[limits][path]
                F = _median_run(runs["today"], "flat_ratio")
                was = _median_run(runs["baseline"], "flat_ratio")["flat_ratio"] if have_base and runs.get("baseline") \
                    else None
                out.append((f"CPU/trade, last vs first {F['window']:,} of {F['trades']:,}, {label} ({limits} limits, "
                            f"median of {len(runs['today'])})", f"{F['last_cpu_us']} µs",
                            f"first {F['first_cpu_us']} µs" + (f"; {BASELINE} {was}×" if was is not None else ""),
                            F["flat_ratio"], "≤ 1.3×", F["flat_ratio"] <= 1.3))
    if "latency" in I:
        sdk = I["latency"]["open"]["today"][0]
        for limits in LIMITS:
            L = I["latency"][limits]["today"][0]
            if "p50_us" not in L:
                out.append((f"feed event → signed order ({limits} limits)", "no order", "", "", "", None))
                continue
            B = I["latency"][limits]["baseline"][0] if have_base and I["latency"][limits].get("baseline") else {}
            was = lambda key: f"{BASELINE} {B[key]} µs" if key in B else base["reason"] or "baseline unavailable"
            tag = f"{limits} limits, {L['n']:,} orders, {core}"
            out.append((f"feed event → signed order, p50 ({tag})", f"{L['p50_us']} µs", was("p50_us"),
                        ratio(L["p50_us"], B.get("p50_us")), "", None))
            out.append(("  same, p99", f"{L['p99_us']} µs", was("p99_us"), ratio(L["p99_us"], B.get("p99_us")), "", None))
            out.append(("  same, CPU time of the thread, p99", f"{L['cpu_p99_us']} µs", was("cpu_p99_us"),
                        ratio(L["cpu_p99_us"], B.get("cpu_p99_us")), f"≤ 1.1× {BASELINE}",
                        L["cpu_p99_us"] <= 1.1 * B["cpu_p99_us"] if "cpu_p99_us" in B else None))
            out.append(("  same, p99 against the SDK's bare build+sign", f"{L['p99_us']} µs",
                        f"SDK build+sign {sdk['bare_p99_us']} µs", ratio(L["p99_us"], sdk["bare_p99_us"]),
                        "≤ 2.0× SDK p99", L["p99_us"] <= 2.0 * sdk["bare_p99_us"]))
        out.append(("SDK signing, deposit wallet (POLY_1271), p50", f"{sdk['bare_1271_p50_us']} µs",
                    f"EOA {sdk['bare_p50_us']} µs", ratio(sdk["bare_1271_p50_us"], sdk["bare_p50_us"]), "", None))
    return out


def cores_rows(r: dict[str, Any]) -> list[tuple]:
    """Issue 20's across-cores rows of ``backtest --jobs`` (the scout's are bench/scout.py's)."""
    if "cores" not in r:
        return []
    C, out = r["cores"], []
    for limits in LIMITS:
        label = (f"backtest --each-file --jobs 2, {C['files']} files x {C['rows_per_file']:,} rows ({limits} limits, "
                 f"{C['cores']} cores)")
        if not C["available"]:
            out.append((label, "n/a", C["reason"], "", "≥ 1.8×", None))
            continue
        E = C[limits]
        out.append((label, f"{E['jobs2_s']} s", f"--jobs 1 {E['jobs1_s']} s", E["speedup"], "≥ 1.8×",
                    E["speedup"] >= 1.8))
    return out


def rows_of(r: dict[str, Any]) -> list[dict[str, Any]]:
    out = []

    def add(measure, value, baseline, ratio, target, ok):
        out.append({"measure": measure, "value": value, "baseline": baseline, "ratio": ratio, "target": target,
                    "pass": ok})

    for row in issue20_rows(r) + cores_rows(r):
        add(*row)
    if "startup" in r:
        S = r["startup"]
        add(f"copytrader --help (installed, median of {S['repeat']})", f"{S['help_ms']} ms",
            f"import click {S['click_import_ms']} ms", round(S["help_ms"] / S["click_import_ms"], 2), "≤ 150 ms",
            S["help_ms"] <= 150)
        add("  same, against python -c pass", f"{S['help_ms']} ms", f"python -c pass {S['python_ms']} ms",
            round(S["help_ms"] / S["python_ms"], 2), "", None)
        add("paper start-up (run 1 row)", f"{S['paper_ms']} ms", f"import CLOB SDK {S['sdk_import_ms']} ms",
            round(S["paper_ms"] / S["sdk_import_ms"], 2), "", None)
    if "dashboard" in r:
        D = r["dashboard"]
        for key, label in (("overview", "overview"), ("decisions", "decisions page, 1,000 rows, newest"),
                           ("decisions_deep", "  same, half-way back (cursor)"),
                           ("decisions_leader", "  same, one leader's (index)")):
            q = D[key]
            add(f"API {label}, p50 ({D['history_trades']:,} trades)", f"{q['p50_ms']} ms",
                f"same query, no HTTP {q['floor_p50_ms']} ms", round(q["p50_ms"] / q["floor_p50_ms"], 2), "", None)
            add(f"API {label}, p99", f"{q['p99_ms']} ms", f"no HTTP {q['floor_p99_ms']} ms",
                round(q["p99_ms"] / q["floor_p99_ms"], 2), "", None)
        C = D["overview_cold"]
        add("  overview recomputed after a change (no HTTP), p50", f"{C['p50_ms']} ms", f"cached {D['overview']['floor_p50_ms']} ms",
            round(C["p50_ms"] / D["overview"]["floor_p50_ms"], 1), "", None)
        E = D["engine"]
        add(f"engine per trade, dashboard open and streaming (sqlite, median of {E['runs']})",
            f"{E['wall_us_streaming']} µs", f"without {E['wall_us']} µs", E["ratio_wall"], "≤ 1.05×",
            E["ratio_wall"] <= 1.05)
        add("  same, CPU of the engine thread", f"{E['cpu_us_streaming']} µs", f"without {E['cpu_us']} µs",
            E["ratio_cpu"], "", None)
    if "streams_book" in r:
        for row in streams_book.table_rows(r["streams_book"]):
            add(*row)
    if "onchain" in r:
        O = r["onchain"]
        base = O.get("web3_logs_per_s")
        add("on-chain OrderFilled decode", f"{O['logs_per_s']:,} logs/s",
            f"web3 process_log {base:,} logs/s" if base else O.get("web3_error", "n/a"),
            round(O["logs_per_s"] / base, 1) if base else "", "≥ 1× web3", bool(base) and O["logs_per_s"] >= base)
    for row in streams_chain.rows(r):
        add(*row)
    out.extend(streams_activity.rows(r))
    for row in scout.rows(r):
        add(*row)
    return out


def table(rows: list[dict[str, Any]]) -> str:
    heads = ("measure", "value", "baseline", "ratio", "target", "pass")
    cells = [[str(r[h]) if h != "pass" else {True: "pass", False: "FAIL", None: ""}[r[h]] for h in heads]
             for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    line = lambda cs: "| " + " | ".join(c.ljust(w) for c, w in zip(cs, widths)) + " |"
    return "\n".join([line(heads), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)])


def machine() -> dict[str, Any]:
    model = ""
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model or platform.processor(), "python": platform.python_version(),
            "platform": platform.platform()}


def footer(results: dict[str, Any]) -> str:
    """Where and how the table was measured (printed under it, and under README's)."""
    m, I = results["machine"], results.get("issue20", {})
    text = (f"Run {results['at']} on {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, {m['platform']}; "
            "a shared machine, so expect noise.")
    if I:
        text += (f" Issue 20's replays and latency: each run in a fresh process pinned to CPU {I['cpu']}, rates per "
                 "CPU-second of its thread, " + (f"the baseline {BASELINE} measured in the same run"
                                                 if I["baseline"]["available"] else I["baseline"]["reason"]) + ".")
    return text + ("  (--quick: sizes too small to mean anything)" if results["quick"] else "")


GROUPS = ("replay", "latency", "cores", "startup", "onchain", "dashboard", "streams", "scout")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: proves the suite runs (numbers meaningless)")
    ap.add_argument("--json", dest="json_path", default=str(HERE / "results.json"), help="where to write the JSON")
    ap.add_argument("--only", default="", help=f"comma-separated: {','.join(GROUPS)} (flat: the replay's runs)")
    args = ap.parse_args(argv)
    q = args.quick
    only = {"replay" if g == "flat" else g for g in filter(None, args.only.split(","))} or set(GROUPS)
    if only - set(GROUPS):
        ap.error(f"no such group: {', '.join(sorted(only - set(GROUPS)))} (groups: {', '.join(GROUPS)}, flat)")
    steps: dict[str, tuple[str, Callable[[], Any]]] = {  # name: (group, measurement)
        "issue20": ("replay" if "replay" in only else "latency", lambda: bench_issue20(q, only)),
        "cores": ("cores", lambda: bench_cores(q)),
        "startup": ("startup", lambda: bench_startup(1 if q else 10)),
        "onchain": ("onchain", lambda: bench_onchain(200 if q else 20_000)),
        "dashboard": ("dashboard", lambda: bench_dashboard(2000 if q else 100_000, 300 if q else 5000, 20 if q else 200)),
        "streams_chain": ("streams", lambda: streams_chain.bench(q)),
        "streams_activity": ("streams", lambda: streams_activity.bench(q)),
        "streams_book": ("streams", lambda: streams_book.bench_streams_book(q)),
        "scout": ("scout", lambda: scout.bench(q)),
    }
    results: dict[str, Any] = {"machine": machine(), "quick": q,
                               "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    for name, (group, fn) in steps.items():
        if group in only:
            print(f"… {name}", file=sys.stderr, flush=True)
            results[name] = fn()
    results["table"] = rows_of(results)
    text = table(results["table"])
    print(text)
    print("\n" + footer(results))
    Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_path).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"results: {args.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
