"""Judging candidates for `copytrader scout`: what copying each one would have
earned us, from the report of its backtest (``application.report``), and the
order they are ranked in.

Per candidate: copy PnL (marked as every report marks), the capital it used
(the peak open exposure of its copies, cost basis), ROI = PnL / capital used,
max drawdown of the copy equity, copied and not-copied trades with reasons,
slippage against the leader at the modelled delay (mean and p90, bps),
tracking error, leader trades per day, the share of our copy volume in the
largest market, and the leader's own PnL (the leaderboard's, for its period)
and return on the copied trades beside ours.

Score (the ranking, highest first): ``(PnL − max drawdown) / capital used``,
the return left after the worst fall the copies went through; a candidate
with nothing copied scores 0 and ranks last among equals; ties go to more
copied trades.

Suggested multiplier: the largest multiplier (down to 0.01, at most 1) that
keeps the candidate's simulated peak exposure within the follower's total
exposure cap (``risk.max_total_exposure_usdc``, else ``follower.bankroll``):
``min(1, cap / peak exposure)``, rounded down to 0.01.
"""
from __future__ import annotations

from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any, Optional

ZERO, ONE = Decimal(0), Decimal(1)
Q = Decimal("0.000001")
SCORE = "(copy PnL - max drawdown) / capital used (peak open exposure); 0 when nothing was copied"


def _d(value: Any) -> Decimal:
    return ZERO if value in (None, "") else Decimal(str(value))


def _days(period: dict) -> Decimal:
    if not period.get("first") or not period.get("last"):
        return ONE
    span = datetime.fromisoformat(period["last"]) - datetime.fromisoformat(period["first"])
    return max(ONE, Decimal(span.total_seconds()) / Decimal(86_400))


def judge(address: str, report: dict, peak_exposure: Decimal, board: Optional[dict] = None) -> dict[str, Any]:
    """The scout's row of one candidate from its report summary (``analyse``)."""
    c, p, e, sl, t = report["counts"], report["pnl"], report["equity"], report["slippage"], report["tracking"]
    pnl, dd = _d(p["total"]), _d(e["max_drawdown"])
    volumes = [_d(m["volume"]) for m in report["pnl_by_market"]]
    total_volume = sum(volumes, ZERO)
    roi = (pnl / peak_exposure).quantize(Q) if peak_exposure > 0 else None
    score = ((pnl - dd) / peak_exposure).quantize(Q) if peak_exposure > 0 and c["copied"] else ZERO
    not_copied = {**report["rejections"], **{f"not filled: {k}": v for k, v in report["not_filled"].items()}}
    return {
        "address": address,
        "name": (board or {}).get("userName") or "",
        "score": str(score),
        "copy_pnl": p["total"], "capital_used": str(peak_exposure.quantize(Q)),
        "roi": None if roi is None else str(roi),
        "max_drawdown": e["max_drawdown"],
        "leader_trades": c["leader_trades"], "copied": c["copied"],
        "not_copied": sum(not_copied.values()), "not_copied_by_reason": not_copied,
        "slippage_mean_bps": sl["mean_bps"], "slippage_p90_bps": sl["p90_bps"],
        "tracking_error": t["tracking_error"],
        "trades_per_day": str((Decimal(c["leader_trades"]) / _days(report["period"])).quantize(Decimal("0.01"))),
        "largest_market_share": str((max(volumes) / total_volume).quantize(Decimal("0.0001"))) if total_volume else None,
        "leader_pnl": None if board is None or board.get("pnl") is None else str(board["pnl"]),
        "leader_return": t["return_leader"], "our_return": t["return_ours"],
        "equity": e["points"],
    }


def suggested_multiplier(peak_exposure: Decimal, cap: Decimal) -> Decimal:
    if peak_exposure <= 0:
        return ONE
    return max(Decimal("0.01"), min(ONE, (cap / peak_exposure).quantize(Decimal("0.01"), ROUND_DOWN)))


def rank(rows: list[dict]) -> list[dict]:
    ordered = sorted(rows, key=lambda r: (-Decimal(r["score"]), -r["copied"], r["address"]))
    for i, r in enumerate(ordered, start=1):
        r["rank"] = i
    return ordered


__all__ = ["SCORE", "judge", "rank", "suggested_multiplier"]
