"""dependency-injector, imported without the integrations it probes for when it loads.

``dependency_injector.providers`` imports pydantic (for ``Configuration.from_pydantic``) and
``dependency_injector.wiring`` imports FastAPI, Starlette, Werkzeug and fast-depends (for ``@inject``
markers) whenever they are installed: ~90 ms of every command's start-up (measured: 170 ms to import
the two modules with the live extras installed, 80 ms without the probes), for features the container
never uses. Import ``containers`` and ``providers`` from here: while dependency-injector loads, those
packages are hidden unless already imported; afterwards anyone may import them as usual.
"""
from __future__ import annotations

import sys
from typing import Any, Optional

_PROBED = frozenset({"pydantic", "pydantic_settings", "fastapi", "fast_depends", "starlette", "werkzeug"})


class _Hidden:
    """A finder that reports the probed packages missing (Cython's imports look in ``sys.modules``
    first, so a ``None`` there would be taken for the module)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Optional[Any]:
        if name.partition(".")[0] in _PROBED:
            raise ModuleNotFoundError(f"{name} is not needed by copytrader's container", name=name)
        return None


def _load() -> tuple[Any, Any]:
    hidden = _Hidden()
    sys.meta_path.insert(0, hidden)
    try:
        from dependency_injector import containers, providers
    finally:
        sys.meta_path.remove(hidden)
    return containers, providers


containers, providers = _load()

__all__ = ["containers", "providers"]
