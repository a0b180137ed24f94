"""Polymarket CLOB V2 executor: builds and signs V2 orders with the official
``py-clob-client-v2`` SDK; in dry-run it stops before the POST, in live it
posts. Nothing here imports the SDK, web3 or eth_account until an executor is
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
