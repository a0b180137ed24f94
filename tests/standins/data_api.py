"""A loopback stand-in of the Polymarket Data API ``GET /activity``: rows in
the real wire format, filtered and paged like the real one (limit ≤ 500,
offset ≤ 5000, start/end inclusive, ascending by timestamp), with knobs for
duplicates, out-of-order pages, late rows and injected faults. It also
answers ``GET /v2/resolutions?condition_id=`` (``{"data": [...]}``, payouts in
millionths of a pUSD per share) from ``resolutions``, ``GET /v1/leaderboard``
(``category``, ``timePeriod``, ``orderBy``, ``limit`` <= 50, ``offset`` <= 1000)
from ``leaderboard``, and ``GET /trades?market=<condition ids>`` (a market's
taker trades, newest first, ``limit`` and ``offset`` <= 10000) from ``trades``."""
from __future__ import annotations

import json
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from . import LoopbackServer, common_fault, send_raw


def activity_row(leader: str, ts: int, n: int, *, side: str = "BUY", size: float = 100.0, price: float = 0.5,
                 asset: str = "1" * 40, condition: str = "0x" + "cd" * 32, kind: str = "TRADE") -> dict:
    return {"proxyWallet": leader, "timestamp": ts, "conditionId": condition, "type": kind, "size": size,
            "usdcSize": round(size * price, 6), "transactionHash": "0x" + f"{n:064x}", "price": price,
            "asset": asset if kind == "TRADE" else "", "side": side if kind == "TRADE" else "",
            "outcomeIndex": 0, "outcome": "Yes", "title": "stand-in market", "slug": "stand-in",
            "eventSlug": "stand-in", "icon": "", "name": "", "pseudonym": "", "bio": "", "profileImage": "",
            "profileImageOptimized": ""}


def leaderboard_row(rank: int, wallet: str, pnl: float, vol: float, name: str = "") -> dict:
    """A ``GET /v1/leaderboard`` row, as the API sends it (rank as text)."""
    return {"rank": str(rank), "proxyWallet": wallet, "userName": name or f"user{rank}", "xUsername": "",
            "verifiedBadge": False, "vol": vol, "pnl": pnl, "profileImage": ""}


def trade_row(wallet: str, ts: int, n: int, **kw: Any) -> dict:
    """A ``GET /trades`` row: an activity TRADE row without ``type`` (and without usdcSize's neighbours' fields)."""
    row = activity_row(wallet, ts, n, **kw)
    del row["type"]
    return row


def resolution_row(condition: str, payouts=(1_000_000, 0), status: str = "resolved") -> dict:
    """A ``GET /v2/resolutions`` row (the fields the SDK's ``Resolution`` reads)."""
    return {"condition_id": condition, "question_id": "0x" + "00" * 32, "status": status, "extended_review": False,
            "was_disputed": False, "new_version_q": False, "last_update_timestamp": 1_793_491_200,
            "payouts": list(payouts) if status == "resolved" else None}


class DataApiStandIn(LoopbackServer):
    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {}  # lower-case user -> rows (any order; served sorted)
        self.faults: deque = deque()
        self.requests: list[dict[str, str]] = []
        self.reverse_pages = False  # serve each page in descending order (out-of-order delivery)
        self.duplicate_every = 0  # repeat every n-th row of a page
        self.shift_pages = False  # pages overlap by one row, as when new rows shift the offsets
        self.resolutions: list[dict] = []  # GET /v2/resolutions rows
        self.leaderboard: list[dict] = []  # GET /v1/leaderboard rows, in rank order (any category and period)
        self.trades: list[dict] = []  # GET /trades rows of every market (served newest first)
        super().__init__()

    def add(self, *rows: dict) -> None:
        for row in rows:
            self.rows.setdefault(row["proxyWallet"].lower(), []).append(row)

    def inject(self, *faults: str) -> None:
        """Any of ``standins.FAULTS``, or "empty" (an empty page)."""
        self.faults.extend(faults)

    def _page(self, q: dict[str, str]) -> tuple[int, Any]:
        try:
            limit, offset = int(q.get("limit", 100)), int(q.get("offset", 0))
        except ValueError:
            return 400, {"error": "bad limit/offset"}
        if limit > 500 or offset > 5000:
            return 400, {"error": "limit must be <= 500 and offset <= 5000"}
        start, end = int(q.get("start", 0)), int(q.get("end", 2**40))
        types = set(q.get("type", "TRADE").split(","))
        rows = [r for r in self.rows.get(q.get("user", "").lower(), [])
                if start <= r["timestamp"] <= end and r["type"] in types]
        rows.sort(key=lambda r: r["timestamp"])
        first = max(0, offset - 1) if self.shift_pages else offset
        page = rows[first:first + limit]
        if self.duplicate_every:
            page = [r for i, r in enumerate(page) for _ in range(2 if i % self.duplicate_every == 0 else 1)]
        if self.reverse_pages:
            page = list(reversed(page))
        return 200, page

    def _leaderboard(self, q: dict[str, str]) -> tuple[int, Any]:
        limit, offset = int(q.get("limit", 25)), int(q.get("offset", 0))
        if not 1 <= limit <= 50 or not 0 <= offset <= 1000:
            return 400, {"error": "limit must be 1..50 and offset 0..1000"}
        if q.get("timePeriod", "DAY").upper() not in ("DAY", "WEEK", "MONTH", "ALL") \
                or q.get("orderBy", "PNL").upper() not in ("PNL", "VOL"):
            return 400, {"error": "bad timePeriod or orderBy"}
        key = "pnl" if q.get("orderBy", "PNL").upper() == "PNL" else "vol"
        rows = sorted(self.leaderboard, key=lambda r: -r[key])
        return 200, [{**r, "rank": str(i + 1)} for i, r in enumerate(rows)][offset:offset + limit]

    def _trades(self, q: dict[str, str]) -> tuple[int, Any]:
        limit, offset = int(q.get("limit", 100)), int(q.get("offset", 0))
        if not 0 <= limit <= 10000 or not 0 <= offset <= 10000:
            return 400, {"error": "limit and offset must be 0..10000"}
        markets = {m.lower() for m in q.get("market", "").split(",") if m}
        rows = [r for r in self.trades if not markets or r["conditionId"].lower() in markets]
        rows.sort(key=lambda r: -r["timestamp"])
        return 200, rows[offset:offset + limit]

    def _handler(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                stand_in.requests.append(q)
                fault = stand_in.faults.popleft() if stand_in.faults else None
                if common_fault(self, fault):
                    return None
                if fault == "empty":
                    return send_raw(self, 200, b"[]")
                if parsed.path == "/v2/resolutions":
                    rows = [r for r in stand_in.resolutions if r["condition_id"] == q.get("condition_id", "").lower()]
                    return send_raw(self, 200, json.dumps({"data": rows}).encode())
                if parsed.path == "/v1/leaderboard":
                    status, body = stand_in._leaderboard(q)
                    return send_raw(self, status, json.dumps(body).encode())
                if parsed.path == "/trades":
                    status, body = stand_in._trades(q)
                    return send_raw(self, status, json.dumps(body).encode())
                if parsed.path != "/activity":
                    return send_raw(self, 404, b'{"error": "not found"}')
                status, body = stand_in._page(q)
                return send_raw(self, status, json.dumps(body).encode())

        return Handler
