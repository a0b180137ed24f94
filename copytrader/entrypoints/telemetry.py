"""Telemetry of a manual order, redacted, as plain JSON-able data."""
from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..application.manual import ManualOrder

REDACT_HEADERS = {"POLY_SIGNATURE", "POLY_API_KEY", "POLY_PASSPHRASE"}


def redact(value: Any) -> Any:
    """Mask credentials wherever they appear in a request or answer."""
    if isinstance(value, dict):
        return {k: ("***" if k in REDACT_HEADERS or k in ("owner", "secret", "passphrase", "apiKey") else redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def trade_once_telemetry(placed: ManualOrder, profile: str, executor_timings: dict, io: dict) -> dict:
    r = placed.record
    timings = {"market_lookup_ms": placed.timings_ms["market_lookup_ms"]}
    if "build_ms" in executor_timings:
        timings.update(build_ms=executor_timings["build_ms"], sign_ms=executor_timings["sign_ms"])
    else:
        timings["build_sign_ms"] = placed.timings_ms["build_sign_ms"]
    timings.update(post_ack_ms=placed.timings_ms["post_ack_ms"], fill_ms=placed.timings_ms["fill_ms"])
    payload = placed.order.payload
    return {
        "profile": profile,
        "order_hash": placed.order.order_id,
        "status": r.status.value,
        "side": r.side,
        "size": str(r.size),
        "limit_price": str(r.limit_price),
        "reference_price": str(placed.reference_price),
        "filled_size": str(r.filled_size),
        "fill_price": None if r.avg_price is None else str(r.avg_price),
        "slippage": None if r.slippage is None else str(r.slippage),  # price units, > 0 is worse for us
        "slippage_bps": None if r.slippage_bps is None else str(r.slippage_bps.quantize(Decimal("0.01"))),
        "fees": str(r.fee),
        "error": r.error,
        "market": {"token_id": r.token_id, "condition_id": r.condition_id,
                   "tick_size": str(placed.market.tick_size), "min_order_size": str(placed.market.min_order_size),
                   "neg_risk": placed.market.neg_risk, "version": placed.market.version},
        "signed_order": payload.get("order", {}),
        "order_type": payload.get("orderType", r.order_type),
        "exchange": payload.get("exchange"),
        "domain_version": payload.get("domainVersion"),  # EIP-712: "2" CTF exchanges, "3" ExchangeV3
        "negRisk": payload.get("negRisk", placed.market.neg_risk),
        "timings_ms": {k: round(v, 3) for k, v in timings.items()},
        "request": redact(io.get("request")),
        "response": redact(io.get("response")),
    }


def write_json(data: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
    return path
