"""The read model behind the dashboard, its JSON API and ``copytrader history``:
queries over the followers' stores (read-only, next to running engines), as
plain JSON-ready data (money as exact decimal text, in USDC; times ISO-8601
UTC). The PnL is ``status``'s and ``report``'s (``application.report``): one
marking, no second computation."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, ContextManager, Mapping, Optional, Union

import attrs

from ..domain.model import IntentRecord, micro
from ..domain.portfolio import Position
from ..domain.risk import RiskLimits
from ..domain.sizing import LeaderSettings
from ..ports import Clock, ControlAction, DecisionFilter, Store
from .report import UNIT, analyse, latest_marks, mark_of
from .status import follower_status

Entry = Union[IntentRecord, ControlAction]
OUTCOMES = ("copied", "rejected", "unfilled", "open")
MAX_PAGE = 5000
QUIET_S = 60.0  # an overview whose store shows no change is read again after this long


def history_page(store: Store, limit: int, offset: int = 0) -> list[Entry]:
    """A page of ``store.history(limit, offset)`` with the control actions recorded
    between its decisions (and, on the first page, after the newest), newest first.
    Each page takes the actions from its oldest decision up to the oldest of the page
    before, so paging shows every action once; the last page takes the older ones too."""
    if offset:
        rows = store.history(limit + 1, offset - 1)
        until, rows = (rows[0].created_at if rows else None), rows[1:]
        if until is None:  # past the end
            return []
    else:
        rows, until = store.history(limit, 0), None
    since = rows[-1].created_at if len(rows) == limit else None
    controls = store.controls(100_000, since=since, until=until)
    return sorted([*rows, *controls], key=lambda e: e.created_at if isinstance(e, IntentRecord) else e.at,
                  reverse=True)


def _iso(when: Optional[datetime]) -> Optional[str]:
    return when.astimezone(timezone.utc).isoformat(timespec="seconds") if when is not None else None


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def position_row(p: Position, mark: Optional[Any], outcome: str = "", name: str = "") -> dict[str, Any]:
    """A position as `positions --json` and the API show it."""
    return {"leader": p.leader, "leader_name": name, "token_id": p.token_id, "condition_id": p.condition_id,
            "title": p.title, "outcome": outcome,
            "status": p.status,  # open, pending payout, paid, lost, closed
            "size": str(p.size), "avg_cost": _text(p.avg_cost), "cost": str(p.cost),
            "mark": str(micro(mark)) if mark is not None else None,
            "unrealised": str(p.unrealised(mark)), "realised": str(p.realised), "fees": str(p.fees),
            "settled": p.settled, "payout": _text(p.payout), "pending_usdc": str(p.pending_cash)}


def decision_row(cursor: Optional[int], r: IntentRecord) -> dict[str, Any]:
    return {"cursor": cursor, "kind": "decision", "at": _iso(r.created_at), "intent_id": r.intent_id,
            "trade_id": r.trade_id, "leader": r.leader, "token_id": r.token_id, "condition_id": r.condition_id,
            "title": r.title, "side": r.side, "leader_size": str(r.leader_size), "leader_price": str(r.leader_price),
            "decision": r.decision, "status": r.status.value, "reason": r.reason, "detail": r.detail,
            "size": _text(r.size), "limit_price": _text(r.limit_price), "filled_size": str(r.filled_size),
            "avg_price": _text(r.avg_price), "fee": str(r.fee),
            "slippage_bps": None if r.slippage_bps is None else f"{r.slippage_bps:.2f}", "error": r.error,
            "settlement": r.settlement.value}


def control_row(a: ControlAction) -> dict[str, Any]:
    return {"kind": "control", "at": _iso(a.at), "follower": a.follower, "action": a.action, "target": a.target,
            "reason": a.reason, "source": a.source}


@attrs.frozen
class FollowerSource:
    """What the dashboard reads of one follower: ``store()`` opens its store read-only for
    one query (closed after the block); ``report()`` its report source (``analyse``'s
    input); ``worker()`` its worker's status in ``serve`` (``{}``: no worker)."""

    name: str
    store: Callable[[], ContextManager[Store]]
    report: Callable[[], ContextManager[Any]]
    limits: RiskLimits = RiskLimits()
    leaders: Mapping[str, LeaderSettings] = attrs.field(factory=dict)
    worker: Callable[[], dict[str, Any]] = dict


class UnknownFollower(LookupError):
    """A follower name the dashboard does not know (one sentence)."""


class Dashboard:
    """The queries. ``stats_ttl_s``: the statistics and the equity series (a pass over
    the whole history, as ``report`` makes) are computed again at most this often, and
    an overview is kept at most this long while its follower's store shows no change."""

    def __init__(self, followers: Mapping[str, FollowerSource], clock: Clock, stats_ttl_s: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._followers = dict(followers)
        self.clock = clock
        self._ttl = stats_ttl_s
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, Any, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def parse_before(text: str) -> tuple[datetime, int]:
        return parse_before(text)

    def _source(self, name: str) -> FollowerSource:
        try:
            return self._followers[name]
        except KeyError:
            raise UnknownFollower(f"no follower named {name!r} (followers: {', '.join(self._followers)})") from None

    # -- overview -----------------------------------------------------------------
    def followers(self) -> list[dict[str, Any]]:
        out = []
        for name, src in self._followers.items():
            with src.store() as store:
                state = store.get_state()
            out.append({"name": name, "worker": src.worker(), "trading_state": state.state.value,
                        "reason": state.reason, "since": _iso(state.since)})
        return out

    def overview(self) -> dict[str, Any]:
        now = self.clock.now()
        return {"at": _iso(now), "unit": UNIT, "followers": [self._overview(src, now)
                                                             for src in self._followers.values()]}

    def _overview(self, src: FollowerSource, now: datetime) -> dict[str, Any]:
        """A follower's overview. ``status``'s reading of the store (a pass over its positions
        and trades) is made again at once when the trading state or the control actions
        changed, else when the newest decision did and the last reading is ``stats_ttl_s``
        old (an engine trading without pause costs one reading per ``stats_ttl_s``, not one
        per refresh of every open page), and at least every ``QUIET_S`` (a position resolved
        or settled without a new decision); the worker's status is read fresh."""
        with src.store() as store:
            newest = store.decisions(DecisionFilter(), 1)
            control = (store.get_state(), store.controls(1))
            trades = (newest[0][0], newest[0][1].updated_at) if newest else None
            at = self._monotonic()
            with self._lock:
                cached = self._cache.get(f"overview:{src.name}")
            if cached is not None and cached[1][0] == control and (
                    at - cached[0] < self._ttl or (cached[1][1] == trades and at - cached[0] < QUIET_S)):
                return {**cached[2], "worker": src.worker()}
            key = (control, trades)
            status = follower_status(store, now)
            latest = [newest[0][1]] if newest else []
            trade = store.get_trade(latest[0].trade_id) if latest else None
        limits = src.limits
        last = None
        if latest:
            r = latest[0]
            traded = datetime.fromtimestamp(trade.timestamp, timezone.utc) if trade is not None else None
            last = {**decision_row(None, r), "leader_time": _iso(traded),
                    "delay_s": round((r.created_at - traded).total_seconds(), 1) if traded is not None else None}
        out = {
            "name": src.name, "worker": src.worker(), "state": status["state"], "pnl": status["pnl"],
            "positions": status["positions"], "resolutions": status["resolutions"],
            "limits": {
                "exposure_usdc": status["positions"]["exposure_usdc"],
                "max_total_exposure_usdc": _text(limits.max_total_exposure_usdc),
                "open_positions": status["positions"]["open"], "max_open_positions": limits.max_open_positions,
                "realised_today_usdc": status["pnl"]["today"]["realised"],
                "daily_loss_limit_usdc": _text(limits.daily_loss_limit_usdc),
                "max_trade_usdc": _text(limits.max_trade_usdc), "max_market_usdc": _text(limits.max_market_usdc),
            },
            "last_leader_trade": last,
            "feed": status["feed"],
            "open_orders": len(status["open_orders"]), "provisional_fills": len(status["provisional_fills"]),
        }
        with self._lock:
            self._cache[f"overview:{src.name}"] = (at, key, out)
        return out

    def health(self) -> dict[str, Any]:
        """Stream health: each follower's worker (state, last poll) and feed (cursors, newest trade)."""
        now = self.clock.now()
        out = []
        for name, src in self._followers.items():
            with src.store() as store:
                newest = store.newest_trade_timestamp()
                latest = store.history(limit=1)
                cursors = store.cursors()
            worker = src.worker()
            out.append({"name": name, "worker": worker, "cursors": cursors,
                        "newest_leader_trade": _iso(datetime.fromtimestamp(newest, timezone.utc))
                        if newest is not None else None,
                        "last_decision": _iso(latest[0].created_at) if latest else None,
                        "last_decision_age_s": round((now - latest[0].created_at).total_seconds(), 1)
                        if latest else None})
        return {"at": _iso(now), "followers": out}

    # -- one follower -------------------------------------------------------------
    def positions(self, name: str, include_closed: bool = False) -> list[dict[str, Any]]:
        src = self._source(name)
        with src.store() as store:
            rows = [p for p in store.positions(True) if include_closed or p.is_open or p.is_pending]
            tokens = {p.token_id for p in rows}
            marks = latest_marks(store.trade_prices_newest_first(tokens), tokens)
            outcomes = store.token_outcomes(tokens) if hasattr(store, "token_outcomes") else {}
            names = {l.address: l.name for l in store.leaders() if l.name}
        names.update({a: l.name for a, l in src.leaders.items() if l.name})
        return [position_row(p, mark_of(p, marks), outcomes.get(p.token_id, ""), names.get(p.leader, ""))
                for p in rows]

    def decisions(self, name: str, where: DecisionFilter, limit: int = 100) -> dict[str, Any]:
        """A page of decisions newest first; without leader/market/outcome filters the control
        actions recorded in the page's span come with it. ``next``: the ``before`` of the next page."""
        if where.outcome and where.outcome not in OUTCOMES:
            raise ValueError(f"outcome: expected one of {', '.join(OUTCOMES)}, got {where.outcome!r}")
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit: expected 1 to {MAX_PAGE}, got {limit}")
        src = self._source(name)
        with src.store() as store:
            page = store.decisions(where, limit)
            controls: list[ControlAction] = []
            if not (where.leader or where.market or where.outcome):
                newer = where.before[0] if where.before else where.until
                older = page[-1][1].created_at if len(page) == limit else where.since
                controls = store.controls(MAX_PAGE, since=older, until=newer)
        rows = [decision_row(c, r) for c, r in page]
        nxt = f"{page[-1][1].created_at.isoformat()}~{page[-1][0]}" if len(page) == limit else None
        merged = sorted([*rows, *(control_row(a) for a in controls)], key=lambda d: d["at"], reverse=True)
        return {"follower": name, "decisions": merged, "next": nxt, "limit": limit}

    def leaders(self, name: str) -> list[dict[str, Any]]:
        """Followed leaders with their settings, whether paused, and their latest decision."""
        src = self._source(name)
        with src.store() as store:
            added = {l.address: l for l in store.leaders()}
            paused = store.paused_leaders()
            every = {**added, **src.leaders}  # the config's settings win
            seen = {a for a in paused if a not in every}
            if not every:  # following every wallet the feed delivers: those we hold positions from
                seen |= {p.leader for p in store.positions(include_closed=True) if p.leader != "manual"}
            out = []
            for address in [*every, *sorted(seen)]:
                l = every.get(address, LeaderSettings(address))
                last = store.decisions(DecisionFilter(leader=address), 1)
                since, why = paused.get(address, (None, ""))
                out.append({"address": address, "name": l.name, "multiplier": str(l.multiplier),
                            "budget_usdc": _text(l.budget_usdc),
                            "source": "config" if address in src.leaders else "added" if address in added else "seen",
                            "paused": address in paused, "paused_since": _iso(since), "paused_reason": why,
                            "last_decision": _iso(last[0][1].created_at) if last else None})
        return out

    def stats(self, name: str) -> dict[str, Any]:
        """Per-leader and per-market statistics (copied, rejected by reason, PnL, slippage), as `report`."""
        s = self._analysis(name)
        return {"follower": name, "unit": UNIT, "counts": s["counts"], "pnl": s["pnl"],
                "by_leader": s["pnl_by_leader"], "by_market": s["pnl_by_market"], "rejections": s["rejections"],
                "not_filled": s["not_filled"], "slippage": s["slippage"]}

    def equity(self, name: str) -> dict[str, Any]:
        """PnL over time (equity, marked as `report` marks it) and drawdown from the running peak, in USDC."""
        e = self._analysis(name)["equity"]
        return {"follower": name, "unit": UNIT, "final": e["final"], "peak": e["peak"],
                "max_drawdown": e["max_drawdown"], "points": e["points"], "drawdown": e["drawdown_points"]}

    def _analysis(self, name: str) -> dict[str, Any]:
        src = self._source(name)
        with src.store() as store:  # what changed: the newest decision and the positions' fills
            newest = store.decisions(DecisionFilter(), 1)
            key = (newest[0][0], newest[0][1].updated_at) if newest else None
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(name)
            if cached is not None and (cached[1] == key or now - cached[0] < self._ttl):
                return cached[2]
        names = {a: l.name for a, l in src.leaders.items() if l.name}
        with src.report() as report:
            known = {**report.leader_names(), **names}
            summary = analyse(report.events(), report.positions(), report.orphan_intents(), label=name,
                              names=known).summary
        with self._lock:
            self._cache[name] = (now, key, summary)
        return summary


def parse_before(text: str) -> tuple[datetime, int]:
    """The ``next`` of a decisions page back as a ``DecisionFilter.before``."""
    try:
        at, seq = text.rsplit("~", 1)
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError
        return when, int(seq)
    except ValueError:
        raise ValueError(f"before: expected the next value of the previous page, got {text!r}") from None


__all__ = ["MAX_PAGE", "OUTCOMES", "Dashboard", "FollowerSource", "UnknownFollower", "control_row", "decision_row",
           "history_page", "parse_before", "position_row"]
