"""The post-trade audit's probes: the evidence for the six kill criteria,
judged by ``application.audit``.

parity break        paper and dry-run replay the bundled sample; decisions and accounting must match
risk violation      every fill in the store is replayed against the configured limits
import leakage      a fresh interpreter builds the paper app and trades; no live SDK may be loaded
dependency sprawl   the distributions the core install and each extra bring, from installed metadata
non-determinism     the bundled replay run twice must give identical digests
operational fragility  unknown orders and faulted orders over those sent, from the store
"""
from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import re
import subprocess
import sys
from typing import Any, Optional

import attrs

from ..application import audit as judge
from ..application.audit import Closure, Criterion
from .config import SAMPLE_ACTIVITY, SAMPLE_MARKETS, Config

LIVE_MODULES = ("polymarket", "web3", "eth_account")
AUDIT_KEY = "0x" + hashlib.sha256(b"copytrader audit key: signs nothing that is ever sent").hexdigest()


def _replay(profile: str) -> Any:
    """The bundled sample through a fresh in-memory engine, its fills and rejections not logged (they are
    the probe's, not the user's)."""
    import logging

    from .api import connect

    overrides = {"store": {"kind": "memory"}, "feed": {"kind": "replay", "path": str(SAMPLE_ACTIVITY)},
                 "market": {"kind": "static", "path": str(SAMPLE_MARKETS)}}
    env = {"COPYTRADER_PRIVATE_KEY": AUDIT_KEY} if profile == "dry-run" else {}
    app = connect(profile=profile, overrides=overrides, environ=env)
    logging.disable(logging.WARNING)
    try:
        app.run()
    finally:
        logging.disable(logging.NOTSET)
    return app


def _view(app: Any) -> tuple[list, list]:
    fields = ("trade_id", "decision", "reason", "status", "size", "limit_price", "filled_size", "avg_price", "fee")
    records = [tuple(str(getattr(r, f)) for f in fields) for r in app.history(limit=10**6)]
    positions = sorted(tuple(str(v) for v in attrs.astuple(p)) for p in app.positions(include_closed=True))
    return records, positions


def parity() -> Criterion:
    try:
        paper, dry = _view(_replay("paper")), _view(_replay("dry-run"))
    except ImportError as exc:
        return judge.parity(None, None, f"dry-run cannot run: {exc} (pip install 'copytrader[live]')")
    return judge.parity(paper, dry)


PROBE = (
    "import sys, json\n"
    "from copytrader.testing import make_app, make_trade, book\n"
    "app, fakes = make_app()\n"
    "fakes.market.put(*book(asks=[('0.51', '500')], bids=[('0.49', '500')]))\n"
    "assert app.process(make_trade()).status == 'filled'\n"
    "from copytrader.entrypoints import cli\n"
    f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {LIVE_MODULES!r})))\n"
)


def import_leakage() -> Criterion:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        return judge.import_leakage(None, LIVE_MODULES, (out.stderr.strip().splitlines() or ["no output"])[-1])
    return judge.import_leakage(json.loads(out.stdout.strip().splitlines()[-1]), LIVE_MODULES)


def _requirement_class() -> Any:
    """PEP 508 requirements with markers: ``packaging``, or the copy every pip carries."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        try:
            from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
        except ImportError:
            return None
    return Requirement


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(extra: str = "", root: str = "copytrader", requirement: Any = None) -> Closure:
    """What ``pip install root[extra]`` brings, from installed metadata: each
    requirement followed recursively with its own extras (``psycopg[binary]``)
    and markers evaluated here; a requirement not installed is counted and
    named, but its own requirements cannot be."""
    requirement = requirement or _requirement_class()
    seen: set[tuple[str, frozenset]] = set()
    installed: set[str] = set()
    missing: set[str] = set()
    todo: list[tuple[str, frozenset]] = [(root, frozenset([extra]) if extra else frozenset())]
    while todo:
        name, extras = todo.pop()
        if (_canonical(name), extras) in seen:
            continue
        seen.add((_canonical(name), extras))
        try:
            texts = md.requires(name) or []
        except md.PackageNotFoundError:
            missing.add(_canonical(name))
            continue
        if _canonical(name) != _canonical(root):
            installed.add(_canonical(name))
        for text in texts:
            req = requirement(text)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                continue
            todo.append((req.name, frozenset(req.extras)))
    return Closure(extra, tuple(sorted(installed)), tuple(sorted(missing - installed)))


def dependency_sprawl(cfg: Config) -> Criterion:
    budget = cfg.values["audit"]
    budgets = {"": budget["max_core_dependencies"], "live": budget["max_live_dependencies"]}
    try:
        extras = md.metadata("copytrader").get_all("Provides-Extra") or []
    except md.PackageNotFoundError:
        return judge.dependency_sprawl(None, budgets, "copytrader is not installed as a distribution: its "
                                                      "metadata cannot be read (pip install .)")
    requirement = _requirement_class()
    if requirement is None:
        return judge.dependency_sprawl(None, budgets, "cannot read requirement markers: pip install packaging")
    closures = {extra: closure(extra, requirement=requirement) for extra in ("", *extras)}
    return judge.dependency_sprawl(closures, budgets)


def determinism() -> Criterion:
    return judge.determinism([hashlib.sha256(json.dumps(_view(_replay("paper"))).encode()).hexdigest()
                              for _ in range(2)])


def run_audit(cfg: Config, store: Optional[Any], where: str) -> list[Criterion]:
    """``store``: the follower's store (None when there is no database yet; ``where`` names it)."""
    records = store.history(limit=10**7) if store is not None else []
    return [parity(), judge.risk_violations(records, cfg.engine.limits, where), import_leakage(),
            dependency_sprawl(cfg), determinism(),
            judge.fragility(records, cfg.values["audit"]["max_error_rate"], where)]


def render_markdown(criteria: list[Criterion], verdict: str) -> str:
    lines = [f"# copytrader audit: {verdict}", "", "| criterion | result | evidence |", "|---|---|---|"]
    lines += [f"| {c.name} | {c.result} | {c.evidence} |" for c in criteria]
    return "\n".join(lines) + "\n"
