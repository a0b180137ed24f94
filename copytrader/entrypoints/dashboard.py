"""Wiring of the control use case and the dashboard: which store each
follower's control call opens, and (``copytrader dashboard``, ``serve``) the
web adapter over the read model."""
from __future__ import annotations

from typing import Mapping

from ..application.control import Control
from .config import Config


def control_for(configs: Mapping[str, Config], create: bool = False) -> Control:
    """A Control over the followers' stores: each call opens the follower's store
    afresh (its own connection, without the single-writer lock, as a command next to a
    running engine does) and closes it. ``create``: a missing database is created
    (``copytrader halt --create``) instead of refused."""
    from ..adapters.clock import SystemClock
    from .container import build_container

    def opener(cfg: Config):
        return lambda: build_container(cfg, "control", create=create).store()

    return Control({name: opener(cfg) for name, cfg in configs.items()}, SystemClock(),
                   leaders={name: cfg.engine.leaders for name, cfg in configs.items()})
