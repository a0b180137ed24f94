"""Parsing Data API ``/activity`` rows into ``LeaderTrade``.

Numbers are read with ``parse_float=Decimal`` so no float ever touches an
amount. A row that cannot be parsed becomes ``Quarantined``; a row that parses
but makes no sense (price 1.7, side "HOLD") becomes a trade that validation
rejects with a recorded reason.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Union

from ...domain.model import LeaderTrade
from ...ports import Quarantined

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
_TOKEN = re.compile(r"^[0-9]{1,80}$")
TRADE_FIELDS = ("asset", "side", "size", "price")
MAX_TIMESTAMP = 32_503_680_000  # 3000-01-01: later "timestamps" are garbage (and overflow datetime)


def loads(text: str) -> Any:
    return json.loads(text, parse_float=Decimal, parse_constant=Decimal)


def _decimal(row: dict[str, Any], key: str) -> Decimal:
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise ValueError(f"{key} is not a number: {value!r}")
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{key} is not a number: {value!r}") from None


def parse_activity_row(row: Any, source: str) -> Union[LeaderTrade, Quarantined]:
    try:
        if not isinstance(row, dict):
            raise ValueError(f"row is a {type(row).__name__}, not an object")
        missing = [k for k in ("proxyWallet", "timestamp", "type", "transactionHash", "conditionId") if k not in row]
        kind = str(row.get("type", "")).upper()
        if kind == "TRADE":
            missing += [k for k in TRADE_FIELDS if k not in row]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        leader = str(row["proxyWallet"])
        if not _ADDRESS.match(leader):
            raise ValueError(f"proxyWallet is not an address: {leader!r}")
        tx = str(row["transactionHash"])
        if not _HASH.match(tx):
            raise ValueError(f"transactionHash is malformed: {tx!r}")
        ts = row["timestamp"]
        if (isinstance(ts, bool) or not isinstance(ts, (int, Decimal)) or (isinstance(ts, Decimal) and not ts.is_finite())
                or ts != int(ts) or ts < 0):
            raise ValueError(f"timestamp is not whole seconds: {ts!r}")
        if ts >= MAX_TIMESTAMP:
            raise ValueError(f"timestamp is not a date before the year 3000: {ts!r}")
        token = str(row.get("asset") or "")
        if kind == "TRADE" and not _TOKEN.match(token):
            raise ValueError(f"asset is not a token id: {token!r}")
        side = row.get("side") or ""
        if not isinstance(side, str):
            raise ValueError(f"side is not text: {side!r}")
        return LeaderTrade(
            leader=leader, token_id=token, condition_id=str(row["conditionId"]).lower(), side=side,
            size=_decimal(row, "size") if "size" in row else Decimal(0),
            price=_decimal(row, "price") if "price" in row else Decimal(0),
            usdc_size=_decimal(row, "usdcSize") if "usdcSize" in row else Decimal(0),
            timestamp=int(ts), tx_hash=tx, outcome=str(row.get("outcome") or ""),
            title=str(row.get("title") or ""), kind=kind or "TRADE",
        )
    except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
        raw = row if isinstance(row, str) else json.dumps(row, default=str, sort_keys=True)
        return Quarantined(source=source, raw=raw[:4000], reason=str(exc)[:300])
