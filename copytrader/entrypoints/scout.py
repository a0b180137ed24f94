"""`copytrader scout`: candidates from the leaderboard (or given addresses),
their history from the Data API through the on-disk cache, each replayed by
`backtest --delay-s` (the same engine, config and paper executor) in parallel
processes, judged and ranked (``application.scout``), written as HTML with an
equity chart per candidate, JSON and a terminal table.

For each candidate the folder ``OUT/candidates/<address>/`` holds the rows it
was replayed on (``activity.jsonl``, ``trades.jsonl``) and its backtest
database: ``copytrader backtest --delay-s S OUT/candidates/<a>/activity.jsonl
--trades OUT/candidates/<a>/trades.jsonl`` gives the same numbers.
"""
from __future__ import annotations

import html
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional, Sequence

import attrs

from ..adapters.feeds.http import JsonGetter, TokenBucket
from ..adapters.feeds.scout_history import PERIOD_S, ScoutCache, ScoutHistory
from ..application.scout import SCORE, judge, rank, suggested_multiplier
from ..domain.sizing import LeaderSettings
from .backtest import run_backtest
from .config import Config, ConfigError

# A follower's typical delay behind the leader's fill, by feed (detection + reaction): the Data API is
# seconds to tens of seconds behind the chain, the on-chain feed a block (~2 s) per confirmation plus one,
# the activity socket a few seconds. Estimates for the default of scout.delay_s; measure yours with `watch`.
FEED_DELAY_S = {"data_api": 20.0, "replay": 20.0, "none": 20.0, "fast": 3.0}


def default_delay(cfg: Config) -> float:
    chosen = cfg.values["scout"]["delay_s"]
    if chosen is not None:
        return float(chosen)
    if cfg.feed_kind in ("onchain", "both"):
        return 2.0 * (cfg.values["feed"]["confirmations"] + 1) + 1.0
    return FEED_DELAY_S.get(cfg.feed_kind, 20.0)


def _getter(cfg: Config) -> JsonGetter:
    feed = cfg.values["feed"]
    return JsonGetter(feed["url"], TokenBucket(float(feed["rate_per_s"]), feed["burst"]),
                      timeout_s=float(feed["timeout_s"]))


def _progress(show: bool, total: int):
    if not show:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=" candidates", file=sys.stderr, desc="scout", mininterval=0.25)


def gather(cfg: Config, history: ScoutHistory, candidates: list[dict], start: int, until: int, delay_s: float,
           out: Path, bar: Any = None) -> list[dict]:
    """Fetch (or read from the cache) each candidate's activity and its markets' trades; write them."""
    window_s = cfg.values["scout"]["window_s"]
    rows_seen = [0]
    if bar is not None:
        history.on_rows = lambda n: (rows_seen.__setitem__(0, rows_seen[0] + n), bar.set_postfix(rows=rows_seen[0]))
    for cand in candidates:
        rows = history.activity(cand["address"], start, until)
        spans: dict[str, list[int]] = {}
        for r in rows:
            ts = int(r.get("timestamp", 0))
            span = spans.setdefault(str(r.get("conditionId", "")).lower(), [ts, ts])
            span[0], span[1] = min(span[0], ts), max(span[1], ts)
        tape: list[dict] = []
        truncated = []
        for market, (lo, hi) in sorted(spans.items()):
            if not market:
                continue
            got, cut = history.market_trades(market, lo, min(until, hi + int(delay_s) + window_s + 1))
            tape += got
            if cut:
                truncated.append(market)
        folder = out / "candidates" / cand["address"]
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in (("activity.jsonl", rows), ("trades.jsonl", tape)):
            (folder / name).write_text("".join(json.dumps(r, default=str) + "\n" for r in data), encoding="utf-8")
        cand.update(folder=str(folder), rows=len(rows), tape_rows=len(tape), tape_truncated=truncated)
        if bar is not None:
            bar.update(1)
    return candidates


def _replay(job: tuple[Config, dict, float]) -> dict:
    """One candidate through `backtest --delay-s` (a worker process), judged."""
    from .report import analyse_db

    cfg, cand, delay_s = job
    folder = Path(cand["folder"])
    known = cfg.engine.leaders.get(cand["address"])
    leader = known or LeaderSettings(cand["address"], name=cand.get("userName") or "")
    # the candidate is followed with the user's settings for it (or the defaults): the config's own leaders aside
    cfg = attrs.evolve(cfg, engine=attrs.evolve(cfg.engine, leaders={leader.address: leader}))
    result = run_backtest(cfg, [str(folder / "activity.jsonl")], str(folder / "backtest.db"), label=cand["address"],
                          overwrite=True, delay_s=delay_s, trades=[str(folder / "trades.jsonl")])
    report = analyse_db(folder / "backtest.db", label=cand["address"]).summary
    peak = Decimal(result.summary["peak_exposure_usdc"])
    row = judge(cand["address"], report, peak, cand.get("board"))
    cap = cfg.engine.limits.max_total_exposure_usdc or cfg.engine.follower.bankroll
    row.update(suggested_multiplier=str(suggested_multiplier(peak, Decimal(cap))), rows=cand["rows"],
               tape_rows=cand["tape_rows"], tape_truncated=cand["tape_truncated"],
               files={"activity": str(folder / "activity.jsonl"), "trades": str(folder / "trades.jsonl"),
                      "db": str(folder / "backtest.db")},
               rows_per_s=result.summary["rows_per_s"])
    return row


def replay_all(cfg: Config, candidates: list[dict], delay_s: float, jobs: int) -> list[dict]:
    work = [(cfg, c, delay_s) for c in candidates]
    if jobs <= 1 or len(work) <= 1:
        return [_replay(w) for w in work]
    with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
        return list(pool.map(_replay, work))


def candidates_of(history: ScoutHistory, category: str, period: str, order: str, top: int,
                  addresses: Sequence[str], until: int) -> list[dict]:
    out: dict[str, dict] = {}
    for a in addresses:
        try:
            address = LeaderSettings(a).address
        except ValueError as exc:
            raise ConfigError(f"--address {a}: {exc}") from None
        out.setdefault(address, {"address": address, "board": None})
    if top:
        for row in history.leaderboard(category, period, order, top, until):
            try:
                address = LeaderSettings(row["proxyWallet"]).address
            except ValueError:
                continue
            out.setdefault(address, {"address": address})["board"] = row
            out[address]["userName"] = row.get("userName") or ""
    return list(out.values())


def run_scout(cfg: Config, *, category: str, period: str, order: str, top: int, addresses: Sequence[str],
              delay_s: Optional[float], jobs: int, out: Path, until: Optional[int] = None,
              progress: bool = False) -> dict[str, Any]:
    delay = default_delay(cfg) if delay_s is None else delay_s
    until = int(until if until is not None else time.time()) // 60 * 60  # whole minutes: a rerun reuses the cache
    start = until - PERIOD_S[period]
    cache_path = Path(cfg.values["scout"]["cache"] or Path(cfg.store_path).parent / "scout-cache.db")
    cache = ScoutCache(cache_path)
    started = time.perf_counter()
    try:
        history = ScoutHistory(_getter(cfg), cache)
        cands = candidates_of(history, category, period, order, top, addresses, until)
        if not cands:
            raise ConfigError("no candidates: the leaderboard answered none; give --address or another --category")
        bar = _progress(progress, len(cands))
        try:
            gather(cfg, history, cands, start, until, delay, out, bar)
        finally:
            if bar is not None:
                bar.close()
        requests = history.requests
    finally:
        cache.close()
    fetched = time.perf_counter()
    plain = attrs.evolve(cfg, private_key=None, relayer_key=None)  # workers need no secret
    rows = rank(replay_all(plain, cands, delay, jobs))
    result = {"window": {"start": start, "end": until, "period": period}, "delay_s": delay,
              "category": category, "order_by": order, "score": SCORE, "requests": requests,
              "cache": str(cache_path), "jobs": jobs,
              "seconds": {"fetch": round(fetched - started, 3), "replay": round(time.perf_counter() - fetched, 3)},
              "candidates": rows}
    write_outputs(result, out)
    return result


def _equity_png(row: dict, path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    from datetime import datetime

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2, 1.4))
    points = row["equity"]
    if points:
        ax.plot([datetime.fromisoformat(t) for t, _ in points], [v for _, v in points], color="#1f77b4", lw=1)
    else:
        ax.text(0.5, 0.5, "no copies", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    ax.axhline(0, color="#999", lw=0.5)
    ax.set_xticks([])
    ax.tick_params(labelsize=6)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return True


COLUMNS = (("rank", "rank"), ("address", "candidate"), ("name", "name"), ("score", "score"),
           ("copy_pnl", "copy PnL (USDC)"), ("roi", "ROI"), ("capital_used", "capital used (USDC)"),
           ("max_drawdown", "max drawdown (USDC)"), ("copied", "copied"), ("not_copied", "not copied"),
           ("slippage_mean_bps", "slippage mean (bps)"), ("slippage_p90_bps", "p90 (bps)"),
           ("tracking_error", "tracking error"), ("trades_per_day", "trades/day"),
           ("largest_market_share", "largest market"), ("leader_pnl", "leader's PnL (board)"),
           ("suggested_multiplier", "suggested multiplier"))


def write_outputs(result: dict, out: Path) -> None:
    from .report import _table

    out.mkdir(parents=True, exist_ok=True)
    (out / "scout.json").write_text(json.dumps(result, indent=2, sort_keys=True), encoding="utf-8")
    pngs = {}
    for row in result["candidates"]:
        path = out / f"equity-{row['address']}.png"
        if _equity_png(row, path):
            pngs[row["address"]] = path.name
    body = []
    for row in result["candidates"]:
        cells = [row[k] for k, _ in COLUMNS]
        reasons = ", ".join(f"{k} {v}" for k, v in row["not_copied_by_reason"].items()) or "-"
        body.append([*cells, reasons])
    table = _table([h for _, h in COLUMNS] + ["not copied, by reason"], body)
    charts = "".join(f"<figure><img src='{html.escape(p)}' alt='equity {html.escape(a)}'><figcaption>#{r['rank']} "
                     f"{html.escape(a[:12])}… copy equity (USDC)</figcaption></figure>"
                     for r in result["candidates"] for a, p in [(r["address"], pngs.get(r["address"]))] if p)
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>copytrader scout</title><style>"
            "body{font-family:sans-serif;margin:1em;color:#222}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 6px;font-size:12px;text-align:right}th{background:#f3f3f3}"
            "figure{display:inline-block;margin:.3em}figcaption{font-size:11px}</style></head><body>"
            f"<h1>copytrader scout</h1><p>window {result['window']['start']} → {result['window']['end']} "
            f"({html.escape(result['window']['period'])}), copies priced {result['delay_s']} s after each leader "
            f"fill from the market's trades; score: {html.escape(result['score'])}.</p>{table}"
            + (charts or "<p><b>No charts</b>: matplotlib is not installed (<code>pip install "
                         "'copytrader[report]'</code>).</p>") + "</body></html>")
    (out / "scout.html").write_text(page, encoding="utf-8")


__all__ = ["default_delay", "run_scout"]
