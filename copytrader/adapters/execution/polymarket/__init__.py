"""Polymarket CLOB executor: builds and signs orders (CTF, neg-risk and Protocol V2
markets; EOA, proxy, safe and deposit wallets) with the official unified SDK
``polymarket-client``; in dry-run it stops before the POST, in live it posts.
Nothing here imports the SDK, httpx or eth_account until an executor is
constructed (``make_executor``), so the paper profile never loads them."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import LiveSettings, SignatureType

if TYPE_CHECKING:  # pragma: no cover
    from .executor import PolymarketExecutor


def make_executor(*args: Any, **kwargs: Any) -> "PolymarketExecutor":
    from .executor import PolymarketExecutor

    return PolymarketExecutor(*args, **kwargs)


__all__ = ["LiveSettings", "SignatureType", "make_executor"]
