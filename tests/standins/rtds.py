"""A loopback stand-in of Polymarket's activity socket (RTDS, ``wss://ws-live-data.polymarket.com``).

The real wire format: a client subscribes with
``{"action":"subscribe","subscriptions":[{"topic":"activity","type":"trades"}, ...]}``
and sends the text ``ping`` (answered ``pong``); every trade of every wallet is
broadcast to each subscribed client as
``{"connection_id","payload":{...},"timestamp":ms,"topic":"activity","type":"trades"}``,
the payload a Data API activity row without ``type`` and ``usdcSize``, its
``proxyWallet`` in mixed case (as captured from production). ``trades`` carries
the taker and the makers of a match, ``orders_matched`` the taker again.

Faults: those of :class:`~tests.standins.ws.WsStandIn` (``drop``, ``silent`` =
the stall users report: connected, answering pings, delivering nothing; ``gap``,
``reorder``, ``duplicate``, ``malformed``, ``refuse``) plus ``mute``: nothing at
all, not even pongs (a socket gone quiet).
"""
from __future__ import annotations

import itertools
import json
import random
from typing import Optional

from .data_api import activity_row
from .ws import WsClient, WsStandIn

_PAYLOAD_DROPPED = ("type", "usdcSize", "profileImageOptimized")


def mixed_case(address: str) -> str:
    """An address in mixed case, as the socket sends a checksummed one (not EIP-55: any case must do)."""
    return "0x" + "".join(c.upper() if i % 2 and c.isalpha() else c for i, c in enumerate(address[2:].lower()))


def rtds_payload(row: dict) -> dict:
    """The socket's payload of a Data API activity row of a fill."""
    payload = {k: v for k, v in row.items() if k not in _PAYLOAD_DROPPED}
    payload["proxyWallet"] = mixed_case(row["proxyWallet"])
    return payload


def rtds_frame(row: dict, kind: str = "trades", sent_ms: Optional[int] = None, connection: str = "gXseIO-NQWeIKEhJwA==") -> str:
    return json.dumps({"connection_id": connection, "payload": rtds_payload(row),
                       "timestamp": sent_ms if sent_ms is not None else row["timestamp"] * 1000,
                       "topic": "activity", "type": kind}, separators=(",", ":"))


class RtdsStandIn(WsStandIn):
    ping_text = "ping"
    pong_text = "pong"

    def __init__(self, seed: int = 7) -> None:
        super().__init__()
        self._rng = random.Random(seed)
        self._n = itertools.count(10**6)
        self.sent_frames = 0

    @staticmethod
    def subscriptions(client: WsClient) -> set:
        """What a client subscribed to, from every frame it sent (a stalled server swallows
        the frames but keeps the subscriptions: delivery resumes when the stall ends)."""
        subs: set = set()
        for text in list(client.received):
            try:
                msg = json.loads(text)
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            for sub in msg.get("subscriptions") or ():
                pair = (sub.get("topic"), sub.get("type"))
                if msg.get("action") == "subscribe":
                    subs.add(pair)
                elif msg.get("action") == "unsubscribe":
                    subs.discard(pair)
        return subs

    def subscribed(self, n: int = 1, timeout_s: float = 5.0) -> bool:
        """Wait until ``n`` connected clients subscribed to activity trades (bounded)."""
        return self.wait_for(lambda: sum(("activity", "trades") in self.subscriptions(c)
                                         for c in self.clients) >= n, timeout_s)

    def trade(self, row: dict, taker: bool = True) -> int:
        """Broadcast one fill (a Data API activity row): under ``trades``, and under
        ``orders_matched`` too when the wallet was the taker. Returns frames sent."""
        sent = 0
        for kind in ("trades", "orders_matched") if taker else ("trades",):
            frame = rtds_frame(row, kind)
            sent += self.push(frame, where=lambda c, k=kind: ("activity", k) in self.subscriptions(c))
        self.sent_frames += sent
        return sent

    def noise(self, n: int, ts: int) -> None:
        """``n`` fills of wallets nobody follows (the socket sends every wallet's)."""
        for _ in range(n):
            wallet = "0x" + "".join(self._rng.choice("0123456789abcdef") for _ in range(40))
            self.trade(activity_row(wallet, ts, next(self._n), asset=str(10**70 + self._rng.randrange(10**6)),
                                    size=float(self._rng.randrange(1, 500)), price=0.5), taker=self._rng.random() < .5)

    def inject(self, fault: str, text: str = '{"topic":"activity","type":"trades","payload":[unterminated') -> None:
        if fault == "mute":
            self.fault, self.pong_text = "silent", None
            return
        super().inject(fault, text)

    def clear(self) -> None:
        super().clear()
        self.pong_text = type(self).pong_text
