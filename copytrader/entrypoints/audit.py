"""The post-trade audit: six kill criteria, each judged from evidence.

parity break        paper and dry-run replay the bundled sample; decisions and accounting must match
risk violation      every fill in the store is replayed against the configured limits
import leakage      a fresh interpreter builds the paper app and trades; no live SDK may be loaded
dependency sprawl   installed distributions of the core (and live) install against budgets
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
from collections import defaultdict
from decimal import Decimal
from typing import Any, Optional

import attrs

from ..domain.model import IntentStatus, micro
from .config import SAMPLE_ACTIVITY, SAMPLE_MARKETS, Config

LIVE_MODULES = ("py_clob_client_v2", "web3", "eth_account")
AUDIT_KEY = "0x" + hashlib.sha256(b"copytrader audit key: signs nothing that is ever sent").hexdigest()
UNFILLED = re.compile(r"not filled|fully filled or killed|no orders found to match|unmatched", re.I)


@attrs.frozen
class Criterion:
    name: str
    passed: bool
    evidence: str


def _replay(profile: str) -> Any:
    from .api import connect

    overrides = {"store": {"kind": "memory"}, "feed": {"kind": "replay", "path": str(SAMPLE_ACTIVITY)},
                 "market": {"kind": "static", "path": str(SAMPLE_MARKETS)}}
    env = {"COPYTRADER_PRIVATE_KEY": AUDIT_KEY} if profile == "dry-run" else {}
    app = connect(profile=profile, overrides=overrides, environ=env)
    app.run()
    return app


def _view(app: Any) -> tuple[list, list]:
    fields = ("trade_id", "decision", "reason", "status", "size", "limit_price", "filled_size", "avg_price", "fee")
    records = [tuple(str(getattr(r, f)) for f in fields) for r in app.history(limit=10**6)]
    positions = sorted(tuple(str(v) for v in attrs.astuple(p)) for p in app.positions(include_closed=True))
    return records, positions


def parity() -> Criterion:
    try:
        paper, dry = _replay("paper"), _replay("dry-run")
    except ImportError as exc:
        return Criterion("parity break", False, f"dry-run cannot run: {exc} (pip install 'copytrader[live]')")
    a, b = _view(paper), _view(dry)
    if a == b:
        return Criterion("parity break", True, f"paper and dry-run agree on {len(a[0])} decisions and "
                                               f"{len(a[1])} positions of the bundled sample")
    diff = next(i for i, (x, y) in enumerate(zip(a[0], b[0])) if x != y) if a[0] != b[0] else "positions"
    return Criterion("parity break", False, f"paper and dry-run differ (first at record {diff})")


def risk_violations(store: Any, cfg: Config) -> Criterion:
    lim = cfg.engine.limits
    records = sorted(store.history(limit=10**7), key=lambda r: (r.created_at, r.intent_id))
    exposure: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}  # (leader, token) -> (size, cost)
    market_of: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    fills = 0
    for r in records:
        if not r.filled_size or r.avg_price is None:
            continue
        fills += 1
        key = (r.leader, r.token_id)
        size, cost = exposure.get(key, (Decimal(0), Decimal(0)))
        notional = micro(r.filled_size * r.avg_price)
        if r.side == "BUY":
            if lim.max_trade_usdc is not None and notional > lim.max_trade_usdc:
                problems.append(f"{r.intent_id}: buy of {notional} > max_trade_usdc {lim.max_trade_usdc}")
            if r.avg_price > lim.max_buy_price:
                problems.append(f"{r.intent_id}: bought at {r.avg_price} > max_buy_price {lim.max_buy_price}")
            size, cost = size + r.filled_size, cost + notional
        else:
            if r.filled_size > size:
                problems.append(f"{r.intent_id}: sold {r.filled_size} while holding {size} (a short)")
            released = cost if r.filled_size >= size else micro(cost * r.filled_size / size)
            size, cost = max(size - r.filled_size, Decimal(0)), cost - released
        exposure[key], market_of[key] = (size, cost), r.condition_id
        total = sum(c for _, c in exposure.values())
        per_market: dict[str, Decimal] = defaultdict(Decimal)
        for k, (_, c) in exposure.items():
            per_market[market_of[k]] += c
        open_tokens = len({k[1] for k, (s, _) in exposure.items() if s > 0})
        if lim.max_total_exposure_usdc is not None and total > lim.max_total_exposure_usdc:
            problems.append(f"{r.intent_id}: exposure {total} > max_total_exposure_usdc")
        if lim.max_market_usdc is not None and per_market[r.condition_id] > lim.max_market_usdc:
            problems.append(f"{r.intent_id}: market exposure {per_market[r.condition_id]} > max_market_usdc")
        if lim.max_open_positions is not None and open_tokens > lim.max_open_positions:
            problems.append(f"{r.intent_id}: {open_tokens} open positions > max_open_positions")
    if problems:
        return Criterion("risk violation", False, f"{len(problems)} violation(s): " + "; ".join(problems[:3]))
    return Criterion("risk violation", True, f"{fills} fills in the store replayed against the limits: none exceeded")


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
        return Criterion("import leakage", False, f"the probe failed: {out.stderr.strip().splitlines()[-1:]}")
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    if loaded:
        return Criterion("import leakage", False, f"the paper path loaded {', '.join(loaded)}")
    return Criterion("import leakage", True, "paper app + trade + CLI import loaded none of " + ", ".join(LIVE_MODULES))


def _marker_holds(marker: str) -> bool:
    try:
        from packaging.markers import Marker
    except ImportError:  # no packaging installed: count the requirement
        return True
    try:
        return bool(Marker(marker.strip()).evaluate())
    except Exception:
        return True


def _closure(requirements: list[str], extras: tuple[str, ...] = ()) -> set[str]:
    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        req = todo.pop()
        name = re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0].lower().replace("_", "-")
        marker = req.split(";", 1)[1] if ";" in req else ""
        if "extra" in marker and not any(f'"{e}"' in marker or f"'{e}'" in marker for e in extras):
            continue
        if marker and "extra" not in marker and not _marker_holds(marker):
            continue
        if name in seen:
            continue
        seen.add(name)
        try:
            todo.extend(r for r in (md.requires(name) or []) if "extra ==" not in r)
        except md.PackageNotFoundError:
            pass
    return seen


def dependency_sprawl(cfg: Config) -> Criterion:
    try:
        own = md.requires("copytrader") or []
    except md.PackageNotFoundError:
        return Criterion("dependency sprawl", False, "copytrader is not installed as a distribution")
    budget = cfg.values["audit"]
    core = _closure([r for r in own if "extra ==" not in r])
    live = _closure(own, extras=("live",))
    ok = len(core) <= budget["max_core_dependencies"] and len(live) <= budget["max_live_dependencies"]
    return Criterion("dependency sprawl", ok, f"core install {len(core)} distributions (budget "
                     f"{budget['max_core_dependencies']}: {', '.join(sorted(core))}); with [live] {len(live)} "
                     f"(budget {budget['max_live_dependencies']})")


def determinism() -> Criterion:
    digests = [hashlib.sha256(json.dumps(_view(_replay("paper"))).encode()).hexdigest() for _ in range(2)]
    ok = digests[0] == digests[1]
    return Criterion("non-determinism", ok, f"bundled replay twice: {digests[0][:16]} {'==' if ok else '!='} "
                                            f"{digests[1][:16]}")


def fragility(store: Any, cfg: Config) -> Criterion:
    sent = [r for r in store.history(limit=10**7) if r.status is not IntentStatus.SKIPPED]
    unknown = [r for r in sent if r.status.is_open]
    faulted = [r for r in sent if r.error and not UNFILLED.search(r.error)]
    if not sent:
        return Criterion("operational fragility", True, "no orders recorded yet: nothing failed (no evidence either)")
    rate = Decimal(len(faulted)) / len(sent)
    limit = cfg.values["audit"]["max_error_rate"]
    ok = not unknown and rate <= limit
    return Criterion("operational fragility", ok, f"{len(sent)} orders: {len(unknown)} unknown/open, "
                     f"{len(faulted)} faulted ({rate:.1%}, limit {limit:.0%})")


def run_audit(cfg: Config, store: Optional[Any]) -> list[Criterion]:
    from ..adapters.storage.memory import MemoryStore

    store = store or MemoryStore()
    return [parity(), risk_violations(store, cfg), import_leakage(), dependency_sprawl(cfg), determinism(),
            fragility(store, cfg)]


def render_markdown(criteria: list[Criterion], verdict: str) -> str:
    lines = [f"# copytrader audit: {verdict}", "", "| criterion | result | evidence |", "|---|---|---|"]
    lines += [f"| {c.name} | {'pass' if c.passed else 'FAIL'} | {c.evidence} |" for c in criteria]
    return "\n".join(lines) + "\n"
