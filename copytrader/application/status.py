"""`copytrader status`: what a follower's store says now, read-only (it works
next to a running engine): trading state, open positions and exposure, PnL
today and in total, paused leaders with why, the latest feed activity,
redemptions, and orders whose outcome is not known yet."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from ..domain.model import Settlement
from ..domain.redemption import usdc
from ..domain.risk import day_key
from .leader_health import STATE_KEY
from .report import latest_marks, marked_pnl


def _iso(when: Optional[datetime]) -> Optional[str]:
    return when.astimezone(timezone.utc).isoformat(timespec="seconds") if when is not None else None


def follower_status(store: Any, now: datetime) -> dict[str, Any]:
    """Plain data (money as exact decimal text) from ``store`` at ``now`` (wall clock, UTC)."""
    state = store.get_state()
    every = store.positions(include_closed=True)
    positions = [p for p in every if p.is_open]
    tokens = {p.token_id for p in positions}
    pnl = marked_pnl(every, latest_marks(store.trade_prices_newest_first(tokens), tokens))  # as run and report mark
    today = day_key(now)
    newest = store.newest_trade_timestamp()
    latest = store.history(limit=1)
    opened = store.open_intents()
    provisional = store.intents_in(Settlement.PROVISIONAL)
    reversed_ = store.intents_in(Settlement.REVERSED)
    redemptions = sorted(store.redemptions(), key=lambda r: (r.updated_at or now, r.id))
    cursors = store.cursors()
    return {
        "state": {"state": state.state.value, "reason": state.reason, "since": _iso(state.since)},
        # leaders whose buys are not copied (a person's pause, or leader health's), with why
        "paused_leaders": [{"address": a, "since": _iso(since), "reason": reason}
                           for a, (since, reason) in store.paused_leaders().items()],
        "positions": {"open": len(positions), "exposure_usdc": pnl["exposure"]},
        # resolved markets: pending payout (tokens not redeemed yet), redeemed, lost
        "resolutions": pnl["resolutions"],
        "pnl": {
            "today": {"day": today, "realised": str(store.daily_realised(today))},
            "realised_total": pnl["realised"],
            "unrealised": pnl["unrealised"],
            "total": pnl["total"],
            "marking": pnl["marking"],
        },
        "feed": {
            "newest_leader_trade": _iso(datetime.fromtimestamp(newest, timezone.utc)) if newest is not None else None,
            "last_decision": _iso(latest[0].created_at) if latest else None,
            "cursors": {k: v for k, v in cursors.items() if not k.startswith(STATE_KEY)},
        },
        # matched, not settled on chain yet: counted in positions, exposure and the limits, may still fail
        "provisional_fills": [
            {"intent_id": r.intent_id, "execution_id": r.execution_id, "side": r.side,
             "filled_size": str(r.filled_size), "avg_price": None if r.avg_price is None else str(r.avg_price),
             "matched_at": _iso(r.updated_at), "age_s": round((now - (r.updated_at or r.created_at)).total_seconds(), 1),
             "token_id": r.token_id, "title": r.title}
            for r in provisional],
        # fills whose trades FAILED on chain: taken back from positions and PnL
        "reversed_fills": [
            {"intent_id": r.intent_id, "execution_id": r.execution_id, "side": r.side, "at": _iso(r.updated_at),
             "token_id": r.token_id, "title": r.title, "error": r.error}
            for r in reversed_],
        # redemptions of resolved markets (``copytrader redeem``, live.auto_redeem), the latest 20
        "redemptions": [
            {"condition_id": r.condition_id, "state": r.state, "route": r.route, "burn": r.burn,
             "expected_usdc": str(usdc(r.expected)),
             "paid_usdc": str(usdc(r.paid)), "tx_hash": r.tx_hash, "relayer_id": r.relayer_id, "reason": r.reason,
             "at": _iso(r.updated_at)}
            for r in redemptions[-20:]],
        "open_orders": [
            {"intent_id": r.intent_id, "status": r.status.value, "execution_id": r.execution_id,
             "created_at": _iso(r.created_at), "age_s": round((now - r.created_at).total_seconds(), 1),
             "side": r.side, "size": None if r.size is None else str(r.size),
             "limit_price": None if r.limit_price is None else str(r.limit_price), "token_id": r.token_id,
             "title": r.title, "error": r.error}
            for r in opened],
    }


__all__ = ["follower_status"]
