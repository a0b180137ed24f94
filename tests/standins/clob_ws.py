"""The CLOB market channel stand-in (``/ws/market``), on the ws base, linked to a ClobStandIn.

Wire format as the SDK reads it (``polymarket/models/clob/market_events.py``): flat
objects with ``event_type``; a subscription is answered with a JSON array of ``book``
snapshots (``market``, ``asset_id``, ``bids``/``asks`` as ``{"price", "size"}`` strings,
``hash``, ``timestamp`` in ms, ``tick_size``); a change of a book on the REST stand-in
(``set_book``, an order's match) is pushed as one ``price_change`` (``price_changes``:
``asset_id``, ``price``, ``size`` (the level's new aggregate, "0" = gone), ``side``
BUY/SELL, ``hash``, ``best_bid``, ``best_ask``). ``PING`` is answered ``PONG``.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from decimal import Decimal
from typing import Any, Optional

from .ws import WsClient, WsStandIn


def _num(d: Decimal) -> str:
    return f"{d.normalize():f}"


class ClobMarketWs(WsStandIn):
    paths = ("/ws/market",)

    def __init__(self, clob: Any) -> None:
        super().__init__()
        self.clob = clob
        self._sent: dict[str, tuple[dict, dict]] = {}  # token -> (bids, asks) as last pushed
        self._ts = int(time.time() * 1000)
        self._ts_lock = threading.Lock()
        clob.book_listeners.append(self.book_changed)

    @property
    def url(self) -> str:  # type: ignore[override]
        return super().url + "/ws/market"

    def _stamp(self) -> str:
        with self._ts_lock:
            self._ts = max(self._ts + 1, int(time.time() * 1000))
            return str(self._ts)

    def _levels(self, token: str) -> tuple[dict, dict]:
        book = self.clob.books.get(token) or {"bids": [], "asks": []}
        return ({p: s for p, s in book["bids"]}, {p: s for p, s in book["asks"]})

    def snapshot(self, token: str) -> Optional[dict]:
        book = self.clob.books.get(token)
        if book is None:
            return None
        bids, asks = self._levels(token)
        self._sent[token] = (bids, asks)
        return {"event_type": "book", "market": book["market"], "asset_id": token,
                "bids": [{"price": _num(p), "size": _num(s)} for p, s in sorted(bids.items())],
                "asks": [{"price": _num(p), "size": _num(s)} for p, s in sorted(asks.items(), reverse=True)],
                "hash": hashlib.sha1(json.dumps([token, str(bids), str(asks)]).encode()).hexdigest(),
                "timestamp": self._stamp(), "tick_size": book["tick_size"],
                "min_order_size": book["min_order_size"], "neg_risk": book["neg_risk"]}

    # -- the protocol -------------------------------------------------------------------

    def on_message(self, client: WsClient, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            return
        assets = [str(a) for a in msg.get("assets_ids") or []]
        subs = client.state.setdefault("assets", set())
        if msg.get("type") == "market" or msg.get("operation") == "subscribe":
            subs.update(assets)
            books = [b for b in (self.snapshot(a) for a in assets) if b is not None]
            if books:
                client.send(json.dumps(books))
        elif msg.get("operation") == "unsubscribe":
            subs.difference_update(assets)

    def _to(self, token: str):
        return lambda c: token in c.state.get("assets", ())

    def book_changed(self, token: str) -> None:
        """Push what changed in the REST stand-in's book as one price_change."""
        book = self.clob.books.get(token)
        if book is None:
            return
        old_bids, old_asks = self._sent.get(token, ({}, {}))
        bids, asks = self._levels(token)
        self._sent[token] = (bids, asks)
        best_bid = _num(max(bids)) if bids else "0"
        best_ask = _num(min(asks)) if asks else "0"
        changes = []
        for side, old, new in (("BUY", old_bids, bids), ("SELL", old_asks, asks)):
            for price in sorted(set(old) | set(new)):
                if old.get(price) != new.get(price):
                    changes.append({"asset_id": token, "price": _num(price), "size": _num(new.get(price, Decimal(0))),
                                    "side": side, "hash": hashlib.sha1(f"{token}{price}{new.get(price)}".encode()).hexdigest(),
                                    "best_bid": best_bid, "best_ask": best_ask})
        if changes:
            self.push(json.dumps({"event_type": "price_change", "market": book["market"], "price_changes": changes,
                                  "timestamp": self._stamp()}), self._to(token))

    def tick_size_change(self, token: str, new: str) -> None:
        book = self.clob.books[token]
        old, book["tick_size"] = book["tick_size"], new
        self.push(json.dumps({"event_type": "tick_size_change", "market": book["market"], "asset_id": token,
                              "old_tick_size": old, "new_tick_size": new, "timestamp": self._stamp()}), self._to(token))

    def market_resolved(self, condition: str, tokens: list[str], winner: str) -> None:
        self.push(json.dumps({"event_type": "market_resolved", "id": "1", "market": condition, "assets_ids": tokens,
                              "winning_asset_id": winner, "winning_outcome": "Yes", "timestamp": self._stamp()}))

    def subscribed(self, token: str) -> bool:
        return any(token in c.state.get("assets", ()) for c in self.clients)


class ClobUserWs(WsStandIn):
    """The CLOB user channel stand-in (``/ws/user``), on the ws base, linked to a ClobStandIn.

    The first frame must authenticate as the SDK builds it (``user_protocol.build_initial_frame``:
    ``{"type": "user", "auth": {"apiKey", "secret", "passphrase"}, "markets": [condition ids]}``,
    no ``markets``: all of them) with credentials the REST stand-in issued; anything else is
    refused as the real channel does it: the connection is cut without a word (users report
    "Connection to remote host was lost"). ``{"operation": "subscribe"|"unsubscribe",
    "markets": [...]}`` changes the markets. Each of the client's trades, when made and at each
    status move (``advance_trades``, ``fail_order`` then ``advance_trades``), is pushed as a
    ``trade`` event (the docs' fields: ``event_type`` "trade", ``type`` "TRADE", ``id``,
    ``taker_order_id``, ``maker_orders``, ``market``, ``asset_id``, ``side``, ``size``, ``price``,
    plain ``status``, ``matchtime``, ``last_update``, ``timestamp``, ``owner``/``trade_owner`` = its
    API key), and its order as an ``order`` event (``type`` "UPDATE": ``size_matched``,
    ``original_size``, ``associate_trades``) when it matched and when a trade of it FAILED."""

    paths = ("/ws/user",)

    def __init__(self, clob: Any) -> None:
        super().__init__()
        self.clob = clob
        self.refused = 0           # connections refused for their credentials
        self.events: list[dict] = []   # every event pushed (before faults)
        clob.trade_listeners.append(self.trade_changed)

    @property
    def url(self) -> str:  # type: ignore[override]
        return super().url + "/ws/user"

    def _owner_of(self, auth: Any) -> Optional[str]:
        if not isinstance(auth, dict):
            return None
        for address, creds in self.clob.creds.items():
            if (auth.get("apiKey"), auth.get("secret"), auth.get("passphrase")) == (
                    creds["apiKey"], creds["secret"], creds["passphrase"]):
                return address
        return None

    def on_message(self, client: WsClient, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if "owner" not in client.state:   # the first frame authenticates, or the connection is cut
            owner = self._owner_of(msg.get("auth")) if isinstance(msg, dict) and msg.get("type") == "user" else None
            if owner is None:
                self.refused += 1
                try:
                    client.conn.socket.shutdown(__import__("socket").SHUT_RDWR)
                except OSError:
                    pass
                return
            client.state["owner"] = owner
            markets = msg.get("markets")
            client.state["markets"] = None if markets is None else {str(m).lower() for m in markets}
            return
        if not isinstance(msg, dict):
            return
        markets = {str(m).lower() for m in msg.get("markets") or ()}
        if msg.get("operation") == "subscribe" and client.state["markets"] is not None:
            client.state["markets"] |= markets
        elif msg.get("operation") == "unsubscribe" and client.state["markets"] is not None:
            client.state["markets"] -= markets

    def _to(self, owner: str, market: str):
        def ok(c: WsClient) -> bool:
            subs = c.state.get("markets", set())
            return c.state.get("owner") == owner and (subs is None or market.lower() in subs)
        return ok

    def trade_event(self, trade: dict) -> dict:
        key = self.clob.creds.get(trade["owner_address"], {}).get("apiKey", "")
        fields = ("id", "taker_order_id", "market", "asset_id", "side", "size", "price", "fee_rate_bps", "outcome",
                  "bucket_index", "maker_address", "trader_side", "transaction_hash", "last_update")
        return {"event_type": "trade", "type": "TRADE", **{k: trade[k] for k in fields if k in trade},
                "maker_orders": trade.get("maker_orders", []), "matchtime": trade.get("match_time"),
                "status": trade["_path"][trade["_step"]], "owner": key, "trade_owner": key,
                "timestamp": str(int(time.time() * 1000))}

    def order_event(self, order: dict) -> dict:
        key = self.clob.creds.get(order["owner_address"], {}).get("apiKey", "")
        return {"event_type": "order", "type": "UPDATE", "id": order["id"], "market": order["market"],
                "asset_id": order["asset_id"], "side": order["side"], "price": _num(order["price"]),
                "original_size": _num(order["original_size"]), "size_matched": _num(Decimal(order["size_matched"])),
                "associate_trades": list(order.get("associate_trades") or ()), "order_owner": key, "owner": key,
                "outcome": "Yes", "order_type": order.get("order_type"), "status": order["status"],
                "timestamp": str(int(time.time() * 1000))}

    def trade_changed(self, trade: dict, order: Optional[dict]) -> None:
        """A trade of ours was made or moved: push it (and its order when it matched or failed)."""
        where = self._to(trade["owner_address"], trade["market"])
        event = self.trade_event(trade)
        self.events.append(event)
        self.push(json.dumps(event), where)
        if order is not None and event["status"] in ("MATCHED", "FAILED") and \
                (event["status"] == "FAILED" or trade["_step"] == 0):
            update = self.order_event(order)
            self.events.append(update)
            self.push(json.dumps(update), where)
