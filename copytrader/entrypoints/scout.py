"""`copytrader scout`: candidates from the leaderboard (or given addresses),
their history from the Data API through the on-disk cache, each replayed by
`backtest --delay-s` (the same engine, config and paper executor) in parallel
processes, judged and ranked (``application.scout``), written as HTML with an
equity chart per candidate, JSON and a terminal table.

For each candidate the folder ``OUT/candidates/<address>/`` holds the rows it
was replayed on (``activity.jsonl``, ``trades.jsonl``). The replay itself is
kept in memory and judged from there (the scout reads no database back):
``copytrader backtest --delay-s S OUT/candidates/<a>/activity.jsonl --trades
OUT/candidates/<a>/trades.jsonl`` writes its database, with the same numbers.
"""
from __future__ import annotations

import html
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import attrs

from ..adapters.feeds.http import JsonGetter, TokenBucket
from ..adapters.feeds.scout_history import PERIOD_S, NotCached, ScoutCache, ScoutHistory, row_json
from ..adapters.market.delayed import Tape
from ..application.scout import SCORE, judge, rank, suggested_multiplier
from ..domain.sizing import LeaderSettings
from .backtest import run_backtest, terminal_bar, workers
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


def gather_one(history: ScoutHistory, cand: dict, start: int, until: int, delay_s: float, window_s: int,
               out: Path) -> list[dict]:
    """Read (from the cache, else the Data API) the candidate's activity and its markets' trades; write them
    into its folder (rows from the cache as their cached text). Its market trades (the tape) are returned."""
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
        (folder / name).write_text("".join(row_json(r) + "\n" for r in data), encoding="utf-8")
    cand.update(folder=str(folder), rows=len(rows), tape_rows=len(tape), tape_truncated=truncated)
    return tape


def replay(cfg: Config, cand: dict, delay_s: float, tape: Optional[Tape] = None) -> dict:
    """One candidate through `backtest --delay-s`, in memory, judged (``tape``: its trades file's rows, already
    read). Its report is that of the database `backtest --delay-s` of its files writes, which it does not need."""
    folder = Path(cand["folder"])
    known = cfg.engine.leaders.get(cand["address"])
    leader = known or LeaderSettings(cand["address"], name=cand.get("userName") or "")
    # the candidate is followed with the user's settings for it (or the defaults): the config's own leaders aside
    cfg = attrs.evolve(cfg, engine=attrs.evolve(cfg.engine, leaders={leader.address: leader}))
    result = run_backtest(cfg, [str(folder / "activity.jsonl")], None, label=cand["address"], delay_s=delay_s,
                          trades=[str(folder / "trades.jsonl")], tape=tape)
    assert result.analysis is not None  # a run in memory carries its analysis
    peak = Decimal(result.summary["peak_exposure_usdc"])
    row = judge(cand["address"], result.analysis.summary, peak, cand.get("board"))
    cap = cfg.engine.limits.max_total_exposure_usdc or cfg.engine.follower.bankroll
    row.update(suggested_multiplier=str(suggested_multiplier(peak, Decimal(cap))), rows=cand["rows"],
               tape_rows=cand["tape_rows"], tape_truncated=cand["tape_truncated"],
               files={"activity": str(folder / "activity.jsonl"), "trades": str(folder / "trades.jsonl")},
               rows_per_s=result.summary["rows_per_s"])
    return row


class EquityChart:
    """The small equity chart of each candidate: one Agg figure a process, its line's data replaced per
    candidate and saved with a fixed layout (a figure made, laid out "tight" and closed per candidate cost
    as much as a fifth of a 2,000-row replay). No matplotlib: None from ``make``."""

    def __init__(self, plt: Any) -> None:
        self.fig, self.ax = plt.subplots(figsize=(3.2, 1.4), dpi=90)
        self.fig.subplots_adjust(left=0.16, right=0.98, top=0.96, bottom=0.06)
        self.line, = self.ax.plot([], [], color="#1f77b4", lw=1)
        self.ax.axhline(0, color="#999", lw=0.5)
        self.ax.tick_params(labelsize=6)
        self.none = self.ax.text(0.5, 0.5, "no copies", ha="center", va="center", transform=self.ax.transAxes,
                                 fontsize=8)

    @classmethod
    def make(cls) -> Optional["EquityChart"]:
        try:
            import matplotlib
        except ImportError:
            return None
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return cls(plt)

    def save(self, points: list, path: Path) -> None:
        """``points``: [ISO time, equity] pairs (judge's ``equity``); x is the time, its ticks hidden."""
        from datetime import datetime

        self.line.set_data([datetime.fromisoformat(t).timestamp() for t, _ in points], [v for _, v in points])
        self.none.set_visible(not points)
        self.ax.relim()
        self.ax.autoscale_view()
        self.ax.set_xticks([])
        self.fig.savefig(path)


class Scouting:
    """One process's share of a scout, per candidate: its rows read from the cache (only) into its folder,
    its replay, judged, and its equity chart. One a worker process, with its own cache connection and
    matplotlib setup."""

    def __init__(self, cfg: Config, cache: Path, start: int, until: int, delay_s: float, out: Path) -> None:
        self.cfg, self.start, self.until, self.delay_s, self.out = cfg, start, until, delay_s, out
        self.cache = ScoutCache(cache)
        self.history = ScoutHistory(None, self.cache)
        self.chart = EquityChart.make()

    def __call__(self, cand: dict) -> Optional[tuple[dict, Optional[str]]]:
        """(its row, its chart's file name or None); None when the cache lacks its rows (the parent fetches
        them, writes its folder and hands it out again)."""
        tape = None
        if "folder" not in cand:
            try:
                tape = Tape.from_rows(gather_one(self.history, cand, self.start, self.until, self.delay_s,
                                                 self.cfg.values["scout"]["window_s"], self.out))
            except NotCached:
                return None
        row = replay(self.cfg, cand, self.delay_s, tape)
        if self.chart is None:
            return row, None
        path = self.out / f"equity-{row['address']}.png"
        self.chart.save(row["equity"], path)
        return row, path.name

    def close(self) -> None:
        self.cache.close()


def scout_all(cfg: Config, history: ScoutHistory, cache: Path, cands: list[dict], start: int, until: int,
              delay_s: float, out: Path, jobs: int, bar: Any = None) -> tuple[list[tuple[dict, Optional[str]]], float]:
    """Each candidate scouted by a worker from the cache; the rows the cache lacks are fetched here (one
    process: the shared token bucket), written, and those candidates handed out again. Also the seconds
    spent fetching."""
    rows_seen = [0]
    if bar is not None:
        history.on_rows = lambda n: (rows_seen.__setitem__(0, rows_seen[0] + n), bar.set_postfix(rows=rows_seen[0]))

    def tick(results: Iterator) -> list:
        done = []
        for r in results:
            if bar is not None and r is not None:
                bar.update(1)
            done.append(r)
        return done
    with workers(Scouting, (cfg, cache, start, until, delay_s, out), min(jobs, len(cands))) as scout:
        results = tick(scout(cands))
        missed = [c for c, r in zip(cands, results) if r is None]
        started = time.perf_counter()
        for cand in missed:
            gather_one(history, cand, start, until, delay_s, cfg.values["scout"]["window_s"], out)
        fetch_s = time.perf_counter() - started
        fetched = iter(tick(scout(missed)))
    return [r if r is not None else next(fetched) for r in results], fetch_s


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
    plain = attrs.evolve(cfg, private_key=None, relayer_key=None)  # workers need no secret
    try:
        history = ScoutHistory(_getter(cfg), cache)
        cands = candidates_of(history, category, period, order, top, addresses, until)
        board_s = time.perf_counter() - started
        if not cands:
            raise ConfigError("no candidates: the leaderboard answered none; give --address or another --category")
        out.mkdir(parents=True, exist_ok=True)
        bar = terminal_bar(len(cands), " candidates", "scout", scale=False) if progress else None
        try:
            scouted, fetch_s = scout_all(plain, history, cache_path, cands, start, until, delay, out, jobs, bar)
        finally:
            if bar is not None:
                bar.close()
        requests = history.requests
    finally:
        cache.close()
    rows = rank([row for row, _ in scouted])
    result = {"window": {"start": start, "end": until, "period": period}, "delay_s": delay,
              "category": category, "order_by": order, "score": SCORE, "requests": requests,
              "cache": str(cache_path), "jobs": jobs,
              # fetch: this process's reads of the Data API (the leaderboard, what the cache lacked); replay: the rest
              "seconds": {"fetch": round(board_s + fetch_s, 3),
                          "replay": round(time.perf_counter() - started - board_s - fetch_s, 3)},
              "candidates": rows}
    write_outputs(result, out, {row["address"]: png for row, png in scouted if png})
    return result


COLUMNS = (("rank", "rank"), ("address", "candidate"), ("name", "name"), ("score", "score"),
           ("copy_pnl", "copy PnL (USDC)"), ("roi", "ROI"), ("capital_used", "capital used (USDC)"),
           ("max_drawdown", "max drawdown (USDC)"), ("copied", "copied"), ("not_copied", "not copied"),
           ("slippage_mean_bps", "slippage mean (bps)"), ("slippage_p90_bps", "p90 (bps)"),
           ("tracking_error", "tracking error"), ("trades_per_day", "trades/day"),
           ("largest_market_share", "largest market"), ("leader_pnl", "leader's PnL (board)"),
           ("suggested_multiplier", "suggested multiplier"))


def write_outputs(result: dict, out: Path, pngs: dict[str, str]) -> None:
    """scout.json and scout.html (``pngs``: each candidate's chart, drawn by its worker)."""
    from .report import _table

    (out / "scout.json").write_text(json.dumps(result, indent=2, sort_keys=True), encoding="utf-8")
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
