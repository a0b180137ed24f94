"""A loopback stand-in of Polymarket's Gamma API ``GET /markets``, in the real
wire format: ``clobTokenIds`` and ``outcomes`` are JSON-encoded text,
``positionIds`` (Protocol V2 markets) an array of decimal strings, and the
market's ``version`` ("v1"/"v2") says which of the two are its outcome ids.
Markets are found by ``clob_token_ids=`` or ``position_ids=`` (repeatable),
``condition_ids=`` or ``id=``; an id no market has answers ``[]``.

Faults (``inject``): any of ``standins.FAULTS`` (5xx, 429, malformed JSON, …),
"no-version" (the markets answered lack ``version``) and "version:<text>"
(they carry that version instead, e.g. "version:v3").
"""
from __future__ import annotations

import json
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any, Optional, Sequence
from urllib.parse import parse_qs, urlparse

from . import LoopbackServer, common_fault, send_raw


def gamma_market(condition_id: str, outcome_ids: Sequence[str], *, version: Optional[str] = "v1",
                 clob_token_ids: Sequence[str] = (), neg_risk: bool = False, closed: bool = False,
                 market_id: str = "1", question: str = "stand-in market",
                 resolution_status: Optional[str] = None) -> dict:
    """One market as ``GET /markets`` lists it. ``outcome_ids`` are the ids of
    its version: ``positionIds`` for "v2" (which may still list CTF
    ``clob_token_ids`` beside them), ``clobTokenIds`` otherwise."""
    v2 = version == "v2"
    row: dict[str, Any] = {
        "id": market_id, "question": question, "conditionId": condition_id, "slug": f"stand-in-{market_id}",
        "outcomes": json.dumps(["Yes", "No"]), "outcomePrices": json.dumps(["0.5", "0.5"]),
        "clobTokenIds": json.dumps(list(clob_token_ids if v2 else outcome_ids)),
        "active": not closed, "closed": closed, "archived": False, "acceptingOrders": not closed,
        "enableOrderBook": True, "negRisk": neg_risk, "orderPriceMinTickSize": 0.01, "orderMinSize": 5,
        "volume": "0", "liquidity": "0",
    }
    if not clob_token_ids and v2:
        del row["clobTokenIds"]
    if v2:
        row["positionIds"] = list(outcome_ids)
        row["resolutionStatus"] = resolution_status or ("resolved" if closed else "active")
    if version is not None:
        row["version"] = version
    return row


def select(markets: Sequence[dict], query: dict[str, list[str]]) -> list[dict]:
    """The markets a ``GET /markets`` query names (every filter given must match)."""
    def ids(row: dict, key: str) -> list[str]:
        value = row.get(key) or []
        return json.loads(value) if isinstance(value, str) else list(value)

    out = []
    for row in markets:
        if "clob_token_ids" in query and not set(query["clob_token_ids"]) & set(ids(row, "clobTokenIds")):
            continue
        if "position_ids" in query and not set(query["position_ids"]) & set(ids(row, "positionIds")):
            continue
        if "condition_ids" in query and row["conditionId"].lower() not in {c.lower() for c in query["condition_ids"]}:
            continue
        if "id" in query and row["id"] not in query["id"]:
            continue
        out.append(row)
    return out


def faulted(rows: list[dict], fault: Optional[str]) -> list[dict]:
    """The rows as the "no-version" and "version:<text>" faults change them."""
    if fault == "no-version":
        return [{k: v for k, v in r.items() if k != "version"} for r in rows]
    if fault and fault.startswith("version:"):
        return [{**r, "version": fault.split(":", 1)[1]} for r in rows]
    return rows


class GammaStandIn(LoopbackServer):
    def __init__(self) -> None:
        self.markets: list[dict] = []
        self.faults: deque = deque()
        self.requests: list[dict[str, list[str]]] = []
        super().__init__()

    def add(self, *markets: dict) -> None:
        self.markets.extend(markets)

    def inject(self, *faults: str) -> None:
        self.faults.extend(faults)

    def _handler(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                query = parse_qs(parsed.query)
                stand_in.requests.append(query)
                fault = stand_in.faults.popleft() if stand_in.faults else None
                if common_fault(self, fault):
                    return None
                if parsed.path != "/markets":
                    return send_raw(self, 404, b'{"type": "not found error", "error": "not found"}')
                rows = faulted(select(stand_in.markets, query), fault)
                return send_raw(self, 200, json.dumps(rows).encode())

        return Handler
