"""Issue 20's workload, measured in a fresh process: `python -m bench.workload [--callgrind] JOBS` (JOBS: a JSON list of
``{"kind": ..., **arguments}``) pins itself to one CPU, runs each job and prints a JSON list of results.

The same file measures today's tree and the baseline commit: the baseline is run with its ``copytrader``
extracted next to a copy of this package (bench/__main__.py), so this module and bench/data.py use only
APIs that exist in both (the container, ``runner.run``, ``FilesFeed``, ``parse_activity_row``, the stores).
"""
from __future__ import annotations

import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from bench import data

KEY = "0x" + "4c" * 32  # a throwaway test key: nothing is ever sent
OPEN_LIMITS = {
    "risk": {"max_trade_usdc": "off", "max_market_usdc": "off", "max_total_exposure_usdc": "off",
             "max_open_positions": "off", "daily_loss_limit_usdc": "off", "max_orders_per_window": "off",
             "max_slippage": "1"},
    "follower": {"max_trade_age_s": 10**9},
}
LIMITS = {"open": OPEN_LIMITS, "default": {}}  # default: the config's own limits (most trades rejected)
SEED, ROWS, TOKENS, WINDOW = 42, 20_000, 400, 1000  # the harness-shaped workload


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def engine(store: str, db: Optional[Path], n_tokens: int, profile: str = "paper", limits: Optional[dict] = None):
    """A wired engine on ``profile`` (paper, dry-run, test) with static market data and no alerts;
    ``limits``: config overrides (default: OPEN_LIMITS)."""
    from dependency_injector import providers

    from copytrader.adapters.alerts.log import NullAlerter
    from copytrader.entrypoints.config import load_config
    from copytrader.entrypoints.container import build_container

    overrides: dict[str, Any] = {**(OPEN_LIMITS if limits is None else limits), "": {"profile": profile},
                                 "store": {"kind": store, "path": str(db or "unused.db")},
                                 "feed": {"kind": "replay", "path": str(Path(__file__).parent / "__init__.py")},
                                 "market": {"kind": "static"}}
    env = {"COPYTRADER_PRIVATE_KEY": KEY} if profile == "dry-run" else {}
    cfg = load_config(None, environ=env, overrides=overrides)
    c = build_container(cfg)
    market = data.market(n_tokens)
    market.clock = c.clock()
    c.market.override(providers.Object(market))
    c.alerter.override(providers.Object(NullAlerter()))
    return c


# -- replay: the engine from a file of activity rows ---------------------------------------------
def replay(store: str, n: int = ROWS, limits: str = "open", commit_every: int = 1, profile: str = "paper",
           seed: int = SEED, n_tokens: int = TOKENS, window: int = WINDOW, src: Optional[str] = None,
           keep: Optional[str] = None, beside: Optional[Callable[[Path], Any]] = None) -> dict[str, Any]:
    """``n`` rows through ``run(service, FilesFeed, commit_every=)``: trades per second (wall and
    this thread's CPU) and the CPU per trade of the last ``window`` trades against the first.
    ``src``: an existing input file (else written first, not timed); ``keep``: where to write the
    database (kept); ``beside(db)``: a context entered around the run once the database exists."""
    from copytrader.adapters.feeds.files import FilesFeed
    from copytrader.application.runner import run

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(src) if src else data.write_jsonl(Path(tmp) / "activity.jsonl", n, n_tokens, seed)
        db = Path(keep) if keep else Path(tmp) / "replay.db"
        c = engine(store, db, n_tokens, profile, LIMITS[limits])
        c.store()  # made now: what runs beside it may open it
        feed = FilesFeed([path], clock=c.clock())
        stamps: list[float] = []
        cpu: list[float] = []

        def note(outcome: Any) -> None:
            stamps.append(time.perf_counter())
            cpu.append(time.thread_time())

        service = c.service()
        with beside(db) if beside else nullcontext() as extra:
            t0, c0 = time.perf_counter(), time.thread_time()
            summary = run(service, feed, on_outcome=note, commit_every=commit_every)
            elapsed, cpu_s = time.perf_counter() - t0, time.thread_time() - c0
        c.store().close()
    window = min(window, max(1, len(stamps) // 2))
    per = [b - a for a, b in zip([t0] + stamps[:-1], stamps)]
    per_cpu = [b - a for a, b in zip([c0] + cpu[:-1], cpu)]
    first, last = statistics.fmean(per[:window]), statistics.fmean(per[-window:])
    first_cpu, last_cpu = statistics.fmean(per_cpu[:window]), statistics.fmean(per_cpu[-window:])
    return {"store": store, "limits": limits, "profile": profile, "trades": summary.seen, "copied": summary.copied,
            "rejected": sum(summary.rejected.values()), "commit_every": commit_every,
            "seconds": round(elapsed, 3), "cpu_seconds": round(cpu_s, 3), "trades_per_s": round(summary.seen / elapsed),
            "trades_per_cpu_s": round(summary.seen / cpu_s), "window": window,
            # wall clock: includes I/O waits and whatever else the machine runs
            "first_mean_us": round(first * 1e6, 1), "last_mean_us": round(last * 1e6, 1),
            "flat_ratio_wall": round(last / first, 3),
            # CPU time of this thread: the cost of our own work per trade
            "first_cpu_us": round(first_cpu * 1e6, 1), "last_cpu_us": round(last_cpu * 1e6, 1),
            "flat_ratio": round(last_cpu / first_cpu, 3), "wall_us": round(elapsed / summary.seen * 1e6, 1),
            "cpu_us": round(cpu_s / summary.seen * 1e6, 1), **({"beside": extra} if isinstance(extra, dict) else {})}


# -- floors: the input alone, and the engine's rows written by bare sqlite3 ------------------------
def feed_floor(n: int = ROWS, seed: int = SEED, n_tokens: int = TOKENS) -> dict[str, Any]:
    """Rows per second of the replay feed alone: read, decode, validate, LeaderTrade (no engine)."""
    from copytrader.adapters.feeds.files import FilesFeed

    with tempfile.TemporaryDirectory() as tmp:
        src = data.write_jsonl(Path(tmp) / "activity.jsonl", n, n_tokens, seed)
        t0, c0 = time.perf_counter(), time.thread_time()
        rows = sum(1 for _ in FilesFeed([src]).read(lambda key: None))
        elapsed, cpu_s = time.perf_counter() - t0, time.thread_time() - c0
    return {"rows": rows, "rows_per_s": round(rows / elapsed), "rows_per_cpu_s": round(rows / cpu_s)}


def _table(db: sqlite3.Connection, sql: str) -> tuple[list[str], list[tuple]]:
    cur = db.execute(sql)
    return [d[0] for d in cur.description], cur.fetchall()


def _insert(table: str, columns: list[str], key: tuple[str, ...] = ()) -> str:
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    if key:
        sql += f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET " + ", ".join(
            f"{c} = excluded.{c}" for c in columns if c not in key)
    return sql


def engine_rows(db_path: str) -> list[list[tuple[str, tuple]]]:
    """The statements of each leader trade, read back from the engine's database of a replay, in the
    engine's order: the trade, the leader's holding, the cursor, then the intent (after the position
    of a fill; a rejection's intent before the cursor). The trades and intents are the rows the
    engine wrote; a position and a holding, written at each trade that moved them, take the final
    values of their row (the same sizes of statement); the cursor is the feed's row count."""
    src = sqlite3.connect(db_path)
    try:
        t_cols, trades = _table(src, "SELECT * FROM trades ORDER BY rowid")
        i_cols, intents = _table(src, "SELECT * FROM intents ORDER BY seq")
        p_cols, positions = _table(src, "SELECT * FROM positions")
        h_cols, holdings = _table(src, "SELECT * FROM leader_holdings")
        (feed, _), = src.execute("SELECT feed, cursor FROM cursors").fetchall()
    finally:
        src.close()
    i_keep = [k for k, c in enumerate(i_cols) if c != "seq"]  # the engine lets SQLite number intents
    add_trade, add_intent = _insert("trades", t_cols), _insert("intents", [i_cols[k] for k in i_keep])
    put_position = _insert("positions", p_cols, ("leader", "token_id"))
    put_holding, set_cursor = _insert("leader_holdings", h_cols, ("leader", "token_id")), _insert(
        "cursors", ["feed", "cursor"], ("feed",))
    col = lambda cols, *names: [cols.index(n) for n in names]
    pos_of = {tuple(r[k] for k in col(p_cols, "leader", "token_id")): r for r in positions}
    held = {tuple(r[k] for k in col(h_cols, "leader", "token_id")): r for r in holdings}
    trade_id, status = col(i_cols, "trade_id", "status")
    intent_of = {r[trade_id]: r for r in intents}
    t_id, t_leader, t_token = col(t_cols, "id", "leader", "token_id")
    work = []
    for k, t in enumerate(trades, start=1):
        key = (t[t_leader], t[t_token])
        steps = [(add_trade, t), (put_holding, held.get(key, (*key, "0")))]
        intent = intent_of.get(t[t_id])
        values = tuple(intent[j] for j in i_keep) if intent else None
        fill = intent is not None and intent[status] in ("filled", "partial") and key in pos_of
        if intent is not None and not fill:
            steps.append((add_intent, values))
        steps.append((set_cursor, (feed, str(k))))
        if fill:
            steps += [(put_position, pos_of[key]), (add_intent, values)]
        work.append(steps)
    return work


def sqlite_floor(db: str, commit_every: int) -> dict[str, Any]:
    """Bare sqlite3, no engine: the rows the engine wrote for this workload (``engine_rows`` of its
    database ``db``), in our schema (a fresh SqliteStore's), values prepared up front, one
    transaction per ``commit_every`` trades, checkpointed every 1,000 trades (the engine
    checkpoints every 5,000 statements, about as often), WAL with synchronous=NORMAL as the engine."""
    from copytrader.adapters.storage.sqlite import SqliteStore

    work = engine_rows(db)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "floor.db"
        SqliteStore(path).close()  # our schema
        out = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=0"):
            out.execute(f"PRAGMA {pragma}")
        t0, c0 = time.perf_counter(), time.thread_time()
        for k, steps in enumerate(work, start=1):
            if k % commit_every == 1 or commit_every == 1:
                out.execute("BEGIN IMMEDIATE")
            for statement, params in steps:
                out.execute(statement, params)
            if k % commit_every == 0 or k == len(work):
                out.execute("COMMIT")
            if k % 1000 == 0:
                out.execute("PRAGMA wal_checkpoint(PASSIVE)")
        elapsed, cpu_s = time.perf_counter() - t0, time.thread_time() - c0
        out.close()
    return {"trades": len(work), "commit_every": commit_every, "statements": sum(map(len, work)),
            "trades_per_s": round(len(work) / elapsed), "trades_per_cpu_s": round(len(work) / cpu_s)}


# -- live latency: feed event -> signed order ready to post --------------------------------------
def sdk_signing(n: int, signature_type: int) -> list[float]:
    """The SDK's bare order signing, as its SecureClient does it (typed data, eth_account
    signature, the POLY_1271 trailer for a deposit wallet), plus the order hash we store."""
    from eth_account import Account
    from eth_utils import keccak
    from polymarket._internal.actions.orders import typed_data
    from polymarket._internal.actions.orders.types import BYTES32_ZERO, UnsignedOrder

    account = Account.from_key(KEY)
    out = []
    for i in range(n + 50):
        order = UnsignedOrder(chain_id=137, builder=BYTES32_ZERO, exchange_address="0xE111180000d2663C0091e4f400237545B87B996B",
                              expiration=0, maker=account.address, maker_amount=9_996_000, metadata=BYTES32_ZERO,
                              order_type="FOK", salt=i, side="BUY", signature_type=signature_type,
                              signer=account.address, taker_amount=19_600_000, timestamp=1_793_491_200_000 + i,
                              token_id=data.token(i % 50))
        t0 = time.perf_counter()
        signed = account.sign_typed_data(full_message=typed_data.build_order_typed_data(order))
        typed_data.build_order_signature(order, "0x" + signed.signature.hex())
        keccak(b"\x19\x01" + bytes.fromhex(typed_data._app_domain_separator(order, protocol_version="2")[2:])
               + typed_data._order_contents_hash(order))
        out.append(time.perf_counter() - t0)
    return out[50:]


def latency(n: int, limits: str = "open", sdk: bool = True, seed: int = SEED,
            n_tokens: int = TOKENS) -> dict[str, Any]:
    """Each of ``n`` rows parsed and handled by the dry-run (live prepare path, test key) engine on
    SQLite: the time from the row to the executor's submit, for the rows that lead to an order (the
    first 50 orders are a warm-up); with ``sdk``, the SDK's bare signing next to it."""
    from copytrader.adapters.feeds.activity import parse_activity_row

    us = lambda x: round(x * 1e6, 1)
    with tempfile.TemporaryDirectory() as tmp:
        c = engine("sqlite", Path(tmp) / "lat.db", n_tokens, "dry-run", LIMITS[limits])
        service, clock, executor = c.service(), c.clock(), c.executor()
        ready: list[tuple[float, float]] = []
        submit = executor.submit

        def timed_submit(order, intent, market):
            ready.append((time.perf_counter(), time.thread_time()))
            return submit(order, intent, market)

        executor.submit = timed_submit
        service.start()
        lat, lat_cpu = [], []
        for row in data.rows(n, n_tokens, seed):
            clock.advance_to(datetime.fromtimestamp(row["timestamp"], tz=timezone.utc) + timedelta(seconds=1))
            t0, c0 = time.perf_counter(), time.thread_time()
            trade = parse_activity_row(row, "bench")
            before = len(ready)
            service.handle(trade)
            if len(ready) > before:
                lat.append(ready[-1][0] - t0)
                lat_cpu.append(ready[-1][1] - c0)
        c.store().close()
    if len(lat) > 100:  # the first orders are a warm-up
        lat, lat_cpu = lat[50:], lat_cpu[50:]
    out: dict[str, Any] = {"limits": limits, "rows": n, "n": len(lat), "store": "sqlite (WAL, synchronous=NORMAL)",
                           "executor": "dry-run (live prepare path, test key)"}
    if not lat:
        return out
    out.update({"p50_us": us(pct(lat, 0.5)), "p99_us": us(pct(lat, 0.99)),
                # CPU time of the thread over the same span: what the shared machine's other work does not move
                "cpu_p50_us": us(pct(lat_cpu, 0.5)), "cpu_p99_us": us(pct(lat_cpu, 0.99))})
    if sdk:
        bare, bare_1271 = sdk_signing(len(lat), signature_type=0), sdk_signing(len(lat), signature_type=3)
        out.update({"bare_p50_us": us(pct(bare, 0.5)), "bare_p99_us": us(pct(bare, 0.99)),
                    "ratio_p99": round(pct(lat, 0.99) / pct(bare, 0.99), 2),
                    "ratio_p50": round(pct(lat, 0.5) / pct(bare, 0.5), 2),
                    "bare_1271_p50_us": us(pct(bare_1271, 0.5)), "bare_1271_p99_us": us(pct(bare_1271, 0.99))})
    return out


JOBS: dict[str, Callable[..., dict[str, Any]]] = {"replay": replay, "feed_floor": feed_floor,
                                                  "sqlite_floor": sqlite_floor, "latency": latency}


def pin() -> Optional[int]:
    """This process on one CPU (the lowest it may use): the replays measure one core."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def main(argv: list[str]) -> int:
    """``[--callgrind] JOBS``; ``--callgrind`` (bench/callgrind.py): not pinned (no load moves an
    instruction count), and ``os.getppid()`` before each job and after the last, the mark at which
    callgrind dumps its counts (``--dump-before=os_getppid``), so each job is counted alone."""
    import copytrader

    counted = argv[:1] == ["--callgrind"]
    cpu = None if counted else pin()
    mark = os.getppid if counted else (lambda: None)
    out = []
    for job in json.loads(argv[-1]):
        job = dict(job)
        mark()
        result = JOBS[job.pop("kind")](**job)
        out.append({**result, "cpu": cpu, "copytrader": str(Path(copytrader.__file__).parent)})
    mark()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
