"""`copytrader status`: what a follower's store says now, read-only (it works
next to a running engine): trading state, open positions and exposure, PnL
today and in total, the latest feed activity, and orders whose outcome is
not known yet."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from ..domain.model import ZERO
from ..domain.risk import day_key

# How `status` marks open positions: each at the last price it traded at
# (our last fill, or a market's payout once resolved), as stored.
MARKING = "open positions at their stored marks: the last price each traded at"


def _iso(when: Optional[datetime]) -> Optional[str]:
    return when.astimezone(timezone.utc).isoformat(timespec="seconds") if when is not None else None


def follower_status(store: Any, now: datetime) -> dict[str, Any]:
    """Plain data (money as exact decimal text) from ``store`` at ``now`` (wall clock, UTC)."""
    state = store.get_state()
    positions = store.positions(include_closed=False)
    realised_total = store.realised_total()
    unrealised = sum((p.unrealised() for p in positions), start=ZERO)
    today = day_key(now)
    newest = store.newest_trade_timestamp()
    latest = store.history(limit=1)
    opened = store.open_intents()
    return {
        "state": {"state": state.state.value, "reason": state.reason, "since": _iso(state.since)},
        "positions": {"open": len(positions), "exposure_usdc": str(sum((p.cost for p in positions), start=ZERO))},
        "pnl": {
            "today": {"day": today, "realised": str(store.daily_realised(today))},
            "realised_total": str(realised_total),
            "unrealised": str(unrealised),
            "total": str(realised_total + unrealised),
            "marking": MARKING,
        },
        "feed": {
            "newest_leader_trade": _iso(datetime.fromtimestamp(newest, timezone.utc)) if newest is not None else None,
            "last_decision": _iso(latest[0].created_at) if latest else None,
            "cursors": store.cursors(),
        },
        "open_orders": [
            {"intent_id": r.intent_id, "status": r.status.value, "execution_id": r.execution_id,
             "created_at": _iso(r.created_at), "age_s": round((now - r.created_at).total_seconds(), 1),
             "side": r.side, "size": None if r.size is None else str(r.size),
             "limit_price": None if r.limit_price is None else str(r.limit_price), "token_id": r.token_id,
             "title": r.title, "error": r.error}
            for r in opened],
    }


__all__ = ["MARKING", "follower_status"]
