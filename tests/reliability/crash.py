"""Crash-consistency harness: run the live engine against the loopback CLOB
stand-in with a scripted leader feed, SIGKILL it at chosen points, restart
it, repeat; then check that nothing was ordered twice, every leader trade is
accounted for exactly once and our positions equal the stand-in's fills;
and compare with an uninterrupted run of the same feed against a fresh
stand-in (the baseline): the same leader trades copied with the same sizes,
the same positions and realised PnL. A trade may differ only if it went
stale during the downtime (``stale_after_restart``, with its reason); one
the baseline copied and the killed run did not is a *lost intent*.

Kill points (picked by a seeded generator, so a run is reproducible):

- ``book``: while the market lookup for a trade is in flight (nothing persisted);
- ``txn-before``: just before a commit reaches SQLite (a transaction's, or a group of deferred ones');
- ``txn-after``: just after a commit (e.g. intent persisted, order not yet sent);
- ``group``: rows that send nothing (a rejection, a duplicate) queued, not committed yet;
- ``post``: mid-POST, the exchange has the request but has not acted;
- ``post-accepted``: the exchange matched the order, we never got the answer;
- ``reconcile``: during the start-up lookup of an order left unknown;
- ``timer``: an outside ``kill -9`` after a random delay.

    python -m tests.reliability.crash --kills 200 [--seed 7] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import attrs

from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.domain.model import IntentStatus
from copytrader.domain.positions import version_of
from copytrader.testing import v2_position_id
from tests.standins.clob import ClobStandIn

ROOT = Path(__file__).resolve().parents[2]
KEY = "0x" + "5e" * 32
LEADERS = ("0x" + "a1" * 20, "0x" + "b2" * 20)
TOKENS = {  # token -> (condition, asks, bids): C's thin asks make some FOK buys fail
    "1" * 40: ("0x" + "11" * 32, [("0.50", "100000")], [("0.48", "100000")]),
    "2" * 40: ("0x" + "22" * 32, [("0.30", "100000")], [("0.28", "100000")]),
    "3" * 40: ("0x" + "33" * 32, [("0.70", "25"), ("0.90", "100000")], [("0.66", "100000")]),
    # a Protocol V2 market: orders for ExchangeV3, EIP-712 domain "3" (its Gamma version "v2")
    v2_position_id(0x44, 0): ("0x" + "44" * 32, [("0.40", "100000")], [("0.38", "100000")]),
}
KINDS = ("book", "txn-before", "txn-after", "group", "post", "post-accepted", "reconcile", "timer")
OPEN = (IntentStatus.PENDING, IntentStatus.UNKNOWN)


def leader_rows(n: int, rng: random.Random, now: int, again: bool = False) -> list[dict[str, Any]]:
    """A scripted feed in the Data API /activity format: buys, then sells of what was bought;
    ``again``: every fourth row comes twice (a duplicate, as overlapping polls give), which
    sends nothing and is group-committed."""
    rows, held = [], Counter()
    for i in range(n):
        leader = LEADERS[i % 2]
        token = rng.choice(sorted(TOKENS))
        condition, asks, bids = TOKENS[token]
        sell = held[(leader, token)] > 0 and rng.random() < 0.35
        price = Decimal(bids[0][0] if sell else asks[0][0])
        size = Decimal(rng.randrange(20, 200))
        held[(leader, token)] += -1 if sell else 1
        rows.append({
            "proxyWallet": leader, "timestamp": now - n + i, "conditionId": condition, "type": "TRADE",
            "size": float(size), "usdcSize": float(size * price), "price": float(price), "asset": token,
            "side": "SELL" if sell else "BUY", "outcomeIndex": 0, "outcome": "Yes",
            "transactionHash": "0x" + f"{i:064x}", "title": f"market {token[0]}",
        })
        if again and i % 4 == 3:
            rows.append(dict(rows[-1]))
    return rows


def write_config(folder: Path, host: str, feed: Path) -> Path:
    path = folder / "copytrader.toml"
    path.write_text(f"""
profile = "live"
log_level = "error"
[store]
path = "{folder / 'ct.db'}"
[feed]
kind = "replay"
path = "{feed}"
[market]
kind = "clob"
book_ttl_s = "0"
[live]
host = "{host}"
gamma_host = "{host}"
timeout_s = "2"
[follower]
max_trade_age_s = 100000000
[follower.sizing]
mode = "fixed"
fixed_usdc = "5"
[risk]
max_trade_usdc = "off"
max_market_usdc = "off"
max_total_exposure_usdc = "off"
max_open_positions = 1000
daily_loss_limit_usdc = "off"
max_orders_per_window = 100000
max_consecutive_faults = 1000
""")
    return path


@attrs.define
class Episode:
    """One database and one stand-in, killed and restarted until the feed is done."""

    folder: Path
    rows: list[dict[str, Any]]
    kills: Counter = attrs.field(factory=Counter)
    runs: int = 0
    problems: list[str] = attrs.field(factory=list)
    exchange: Optional["Exchange"] = None
    lost: int = 0  # leader trades the baseline copied and this run did not (without a stale reason)
    stale: int = 0  # leader trades not copied because they went stale while the engine was down
    overfilled: int = 0  # intents booked with more shares than their order


@attrs.frozen
class Exchange:
    """What the stand-in saw: POST /order bodies per order salt, the signed
    orders per salt (a repost of the same order has the same signature), the
    orders it accepted (by hash) and the net shares filled per token."""

    attempts: Counter
    orders: set
    fills: dict
    signed: dict = attrs.field(factory=dict)  # salt -> set of signatures


def _aim(clob: ClobStandIn, kind: str, n: int) -> Optional[str]:
    """Arm the stand-in for a kill at the n-th matching request, or return the child's kill argument."""
    route, fault = {"book": ("GET /book", "kill"), "post": ("POST /order", "kill"),
                    "post-accepted": ("POST /order", "kill-after-accept"),
                    "reconcile": ("GET /data/order/", "kill")}.get(kind, (None, None))
    if route is None:
        return f"{kind}:{n}" if kind.startswith("txn") or kind == "group" else ""
    clob.faults.clear()
    clob.inject(route, *(["pass"] * (n - 1)), fault)
    return ""


def _exchange(clob: ClobStandIn) -> Exchange:
    signed: dict[str, set] = {}
    for salt, signature in clob.signed:
        signed.setdefault(salt, set()).add(signature)
    return Exchange(Counter(clob.attempts), set(clob.orders), {t: clob.fills(t) for t in TOKENS}, signed)


def set_books(clob: ClobStandIn) -> None:
    """The books of ``TOKENS`` (a V2-shaped id's market is a Protocol V2 one)."""
    for token, (condition, asks, bids) in TOKENS.items():
        clob.set_book(token, asks=asks, bids=bids, market=condition, version=version_of(token))


def baseline(folder: Path, rows: list[dict[str, Any]], environ: dict[str, str]) -> Path:
    """The same feed, uninterrupted, against a fresh stand-in: its database."""
    folder.mkdir(parents=True, exist_ok=True)
    feed = folder / "leaders.jsonl"
    feed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with ClobStandIn() as clob:
        set_books(clob)
        config = write_config(folder, clob.url, feed)
        done = subprocess.run([sys.executable, "-m", "tests.reliability.child", str(config), ""], cwd=ROOT,
                              env=environ, capture_output=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"the baseline run failed: {done.stderr.decode()[-500:]}")
    return folder / "ct.db"


def run_episode(folder: Path, rng: random.Random, kill_budget: int, rows: int = 24,
                env: Optional[dict[str, str]] = None, plan: Optional[list[tuple[str, int]]] = None) -> Episode:
    """Kill at ``kill_budget`` random points (or at the ``plan``'s (point, n-th) in
    order), then let a last run finish the feed, check the invariants and
    compare with an uninterrupted run of the same feed."""
    folder.mkdir(parents=True, exist_ok=True)
    feed = folder / "leaders.jsonl"
    episode = Episode(folder, leader_rows(rows, rng, int(time.time()), again=True))
    feed.write_text("".join(json.dumps(r) + "\n" for r in episode.rows))
    environ = {**os.environ, **(env or {}), "COPYTRADER_PRIVATE_KEY": KEY, "PYTHONPATH": str(ROOT)}
    with ClobStandIn() as clob:
        set_books(clob)
        config = write_config(folder, clob.url, feed)
        plan = list(plan) if plan is not None else None
        left = len(plan) if plan is not None else kill_budget
        while True:
            kind, n = (plan.pop(0) if plan else (rng.choice(KINDS), rng.randint(1, 4))) if left > 0 else (None, 0)
            if kind == "reconcile" and not _has_open(folder / "ct.db"):
                kind = "post-accepted"  # leaves an order to look up at the next start
            arg = _aim(clob, kind, n if kind != "reconcile" else 1) if kind else ""
            proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.child", str(config), arg],
                                    cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            clob.kill_hook = lambda pid=proc.pid: os.kill(pid, signal.SIGKILL)
            timer = None
            if kind == "timer":
                timer = threading.Timer(rng.uniform(0.3, 2.5), lambda p=proc: p.poll() is None and p.kill())
                timer.start()
            try:
                out, err = proc.communicate(timeout=120)
            finally:
                if timer:
                    timer.cancel()
            episode.runs += 1
            clob.faults.clear()
            if proc.returncode == -signal.SIGKILL:
                episode.kills[kind or "?"] += 1
                left -= 1
                continue
            if proc.returncode != 0:
                episode.problems.append(f"run {episode.runs} exited {proc.returncode}: {err.decode()[-500:]}")
            break
        episode.exchange = _exchange(clob)
    episode.problems.extend(check(folder / "ct.db", episode.rows, episode.exchange))
    base = baseline(folder / "baseline", episode.rows, {**os.environ, "COPYTRADER_PRIVATE_KEY": KEY,
                                                        "PYTHONPATH": str(ROOT)})
    difference = compare(folder / "ct.db", base)
    episode.problems.extend(difference.problems)
    episode.lost, episode.stale, episode.overfilled = difference.lost, difference.stale, difference.overfilled
    return episode


def _has_open(db: Path) -> bool:
    if not db.exists():
        return False
    store = SqliteStore(db, read_only=True)
    try:
        return bool(store.open_intents())
    finally:
        store.close()


def check(db: Path, rows: list[dict[str, Any]], exchange: Exchange) -> list[str]:
    """The invariants after the last restart; returns what is broken. An order
    may be posted again only as the same signed order (one signature per salt)."""
    problems = [f"order salt {s} posted as {len(sigs)} different signed orders"
                for s, sigs in exchange.signed.items() if len(sigs) > 1]
    with sqlite3.connect(db) as raw:
        integrity = raw.execute("PRAGMA integrity_check").fetchone()[0]
    if integrity != "ok":
        problems.append(f"sqlite integrity_check: {integrity}")
    store = SqliteStore(db, read_only=True)
    try:
        records = store.history(limit=10 * len(rows) + 10)
        by_trade = Counter(r.trade_id for r in records)
        problems += [f"trade {t} has {n} intents" for t, n in by_trade.items() if n != 1]
        trades = len({r["transactionHash"] for r in rows})  # a row that comes again is one trade
        if len(by_trade) != trades:
            problems.append(f"{trades} leader trades, {len(by_trade)} accounted for")
        for r in records:
            if r.status in OPEN:
                problems.append(f"intent {r.intent_id} left {r.status.value}")
            if r.status is IntentStatus.SKIPPED and not r.reason:
                problems.append(f"intent {r.intent_id} rejected without a reason")
            if r.size is not None and r.filled_size > r.size:
                problems.append(f"intent {r.intent_id} booked {r.filled_size} shares for an order of {r.size}")
        hashes = {r.execution_id for r in records if r.execution_id}
        problems += [f"order {h[:12]} at the exchange is not ours" for h in exchange.orders if h not in hashes]
        ours = Counter()
        for p in store.positions(include_closed=True):
            ours[p.token_id] += p.size
        for token, filled in exchange.fills.items():
            if ours[token] != filled:
                problems.append(f"token {token[:6]}: we hold {ours[token]}, the exchange filled {filled}")
    finally:
        store.close()
    return problems


@attrs.frozen
class Difference:
    problems: list
    lost: int
    stale: int
    overfilled: int


def _copies(store: SqliteStore) -> dict[str, Any]:
    return {r.trade_id: r for r in store.history(limit=10**6)}


def compare(db: Path, base_db: Path) -> Difference:
    """The killed run against the uninterrupted one: every leader trade copied
    the same (status, shares filled), the same positions and realised PnL,
    except trades that went stale during the downtime."""
    killed, base = SqliteStore(db, read_only=True), SqliteStore(base_db, read_only=True)
    try:
        ours, theirs = _copies(killed), _copies(base)
        problems, lost, stale = [], 0, 0
        overfilled = sum(1 for r in ours.values() if r.size is not None and r.filled_size > r.size)
        for trade_id, b in sorted(theirs.items()):
            k = ours.get(trade_id)
            if k is None:
                lost += 1
                problems.append(f"trade {trade_id[:12]}: copied by the baseline, missing here")
                continue
            if k.reason == "stale_after_restart":
                stale += 1
                if not k.detail:
                    problems.append(f"trade {trade_id[:12]}: stale after restart without a reason")
                continue
            if (k.status, k.filled_size) != (b.status, b.filled_size):
                lost += b.filled_size > 0 and k.filled_size == 0
                problems.append(f"trade {trade_id[:12]}: {k.status.value} {k.filled_size} here, "
                                f"{b.status.value} {b.filled_size} uninterrupted ({k.reason or k.error})")
        if not stale:  # a copy that went stale changes what follows it: positions are compared without
            mine = {(p.leader, p.token_id): (p.size, p.cost, p.realised) for p in killed.positions(include_closed=True)}
            other = {(p.leader, p.token_id): (p.size, p.cost, p.realised) for p in base.positions(include_closed=True)}
            if mine != other:
                problems.append(f"positions differ from the uninterrupted run: {mine} vs {other}")
    finally:
        killed.close()
        base.close()
    return Difference(problems, lost, stale, overfilled)


def harness(kills: int, seed: int = 1, folder: Optional[Path] = None, per_episode: int = 10,
            env: Optional[dict[str, str]] = None) -> dict[str, Any]:
    rng = random.Random(seed)
    base = Path(folder or tempfile.mkdtemp(prefix="copytrader-crash-"))
    episodes: list[Episode] = []
    while sum(sum(e.kills.values()) for e in episodes) < kills:
        left = kills - sum(sum(e.kills.values()) for e in episodes)
        episodes.append(run_episode(base / f"episode-{len(episodes)}", rng, min(per_episode, left), env=env))
    total = Counter()
    for e in episodes:
        total.update(e.kills)
    return {
        "seed": seed, "episodes": len(episodes), "runs": sum(e.runs for e in episodes),
        "kills": sum(total.values()), "kills_by_point": dict(sorted(total.items())),
        "leader_trades": sum(len(e.rows) for e in episodes),
        "lost_intents": sum(e.lost for e in episodes),
        "stale_after_restart": sum(e.stale for e in episodes),
        "fills_above_order_size": sum(e.overfilled for e in episodes),
        "problems": [p for e in episodes for p in e.problems],
    }


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)
    result = harness(args.kills, args.seed)
    print(f"kill -9 points survived: {result['kills']} over {result['runs']} runs in {result['episodes']} "
          f"episodes ({result['leader_trades']} leader trades); by point: {result['kills_by_point']}")
    print(f"against an uninterrupted run of each feed: lost intents {result['lost_intents']}, "
          f"stale after restart {result['stale_after_restart']}, fills above order size booked "
          f"{result['fills_above_order_size']}")
    print("problems: " + ("none" if not result["problems"] else "\n  " + "\n  ".join(result["problems"])))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
