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


# What the live adapters import lazily, for ``preload``.
_LAZY = ("eth_account", "web3", "polymarket.clients.secure", "polymarket._internal.actions.orders.typed_data",
         "polymarket._internal.actions.orders.orders", "polymarket._internal.actions.orders.post",
         "polymarket._internal.actions.orders.context", "polymarket._internal.wallet", "polymarket._internal.eoa.rpc",
         "polymarket._internal.l1_auth", "polymarket._internal.hmac", "polymarket._internal.environment")


def preload() -> None:
    """Import the SDK and the chain libraries now, in this thread. Follower threads
    that import them for the first time at once can deadlock in the SDK's import
    cycles (seen: ``_DeadlockError`` on ``polymarket._internal.eoa.rpc``), so a
    fleet with live or dry-run followers loads them before starting its workers."""
    import importlib

    for name in _LAZY:
        importlib.import_module(name)


def make_executor(*args: Any, **kwargs: Any) -> "PolymarketExecutor":
    from .executor import PolymarketExecutor

    return PolymarketExecutor(*args, **kwargs)


__all__ = ["LiveSettings", "SignatureType", "make_executor", "preload"]
