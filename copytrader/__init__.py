"""copytrader: copy the trades of chosen Polymarket wallets, safely.

``copytrader.connect(profile="paper", config="copytrader.toml")`` returns an
app for embedding; ``copytrader.testing`` has the fakes to test against.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from .entrypoints.api import App


def connect(*args: Any, **kwargs: Any) -> "App":
    """See :func:`copytrader.entrypoints.api.connect`."""
    from .entrypoints.api import connect as _connect

    return _connect(*args, **kwargs)


__all__ = ["connect", "__version__"]
