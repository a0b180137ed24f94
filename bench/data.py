"""Synthetic leader activity and markets for the benchmarks (deterministic)."""
from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Iterator

from copytrader.adapters.market.static import StaticMarketData
from copytrader.domain.model import MarketInfo, OrderBook, PriceLevel

T0 = 1_793_491_200  # 2026-11-01
LEADERS = ["0x" + f"{i:040x}" for i in range(1, 9)]


def token(i: int) -> str:
    return str(10**70 + i)


def condition(i: int) -> str:
    return "0x" + f"{i // 2:064x}"  # two tokens per market


def market(n_tokens: int) -> StaticMarketData:
    """Deep books around 0.50 for every token: every copy fills."""
    m = StaticMarketData()
    levels = lambda prices: tuple(PriceLevel(Decimal(p), Decimal("1000000")) for p in prices)
    for i in range(n_tokens):
        m.put(MarketInfo(token(i), condition(i)),
              OrderBook(token(i), bids=levels(("0.49", "0.48", "0.47")), asks=levels(("0.51", "0.52", "0.53"))))
    return m


def rows(n: int, n_tokens: int, seed: int = 8) -> Iterator[dict]:
    """``n`` Data API /activity TRADE rows: leaders buy, and later sell part of what they bought."""
    rnd = random.Random(seed)
    held: dict[tuple[str, int], int] = {}
    for k in range(n):
        leader = LEADERS[rnd.randrange(len(LEADERS))]
        t = rnd.randrange(n_tokens)
        have = held.get((leader, t), 0)
        sell = have >= 40 and rnd.random() < 0.35
        size = rnd.choice((20, 40, 60, 100)) if not sell else have // 2
        held[(leader, t)] = have - size if sell else have + size
        price = "0.49" if sell else "0.51"
        yield {"proxyWallet": leader, "timestamp": T0 + k, "conditionId": condition(t), "type": "TRADE",
               "size": size, "usdcSize": str(Decimal(price) * size), "transactionHash": "0x" + f"{k + 1:064x}",
               "price": price, "asset": token(t), "side": "SELL" if sell else "BUY", "title": f"market {t // 2}",
               "outcome": "Yes"}


def write_jsonl(path: Path, n: int, n_tokens: int, seed: int = 8) -> Path:
    with path.open("w") as fh:
        for r in rows(n, n_tokens, seed):
            fh.write(json.dumps(r) + "\n")
    return path
