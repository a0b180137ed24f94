"""The audit's judgement: each kill criterion judged from the evidence the
entrypoint gathered (replays, a fresh interpreter, installed metadata, the
store), and the verdict.

A criterion passes, fails, or has no evidence (``passed is None``: nothing
to judge, and its evidence says what is missing). Any failure is NO-GO;
otherwise any criterion without evidence makes the verdict INCONCLUSIVE, not
GO: an audit of a fresh database proves nothing."""
from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal
from typing import Iterable, Mapping, Optional, Sequence

import attrs

from ..domain.model import IntentRecord, IntentStatus, micro
from ..domain.risk import RiskLimits

GO, NO_GO, INCONCLUSIVE = "GO", "NO-GO", "INCONCLUSIVE"
UNFILLED = re.compile(r"not filled|fully filled or killed|no orders found to match|unmatched", re.I)


@attrs.frozen
class Criterion:
    name: str
    passed: Optional[bool]  # None: no evidence either way
    evidence: str

    @property
    def result(self) -> str:
        return {True: "pass", False: "FAIL", None: "no evidence"}[self.passed]


def verdict(criteria: Iterable[Criterion]) -> str:
    results = [c.passed for c in criteria]
    if False in results:
        return NO_GO
    return INCONCLUSIVE if None in results else GO


def parity(paper: Optional[tuple[list, list]], dry_run: Optional[tuple[list, list]], why_not: str = "") -> Criterion:
    """Paper and dry-run replays of one sample, as (decisions, positions) views."""
    name = "parity break"
    if paper is None or dry_run is None:
        return Criterion(name, False, why_not)
    if paper == dry_run:
        return Criterion(name, True, f"paper and dry-run agree on {len(paper[0])} decisions and {len(paper[1])} "
                                     "positions of the bundled sample")
    if paper[0] != dry_run[0]:
        first = next((i for i, (x, y) in enumerate(zip(paper[0], dry_run[0])) if x != y),
                     min(len(paper[0]), len(dry_run[0])))
        return Criterion(name, False, f"paper and dry-run differ (first at record {first})")
    return Criterion(name, False, "paper and dry-run differ (positions)")


def risk_violations(records: Sequence[IntentRecord], lim: RiskLimits, where: str) -> Criterion:
    """Every fill of ``records`` replayed in time order against the limits."""
    name = "risk violation"
    records = sorted(records, key=lambda r: (r.created_at, r.intent_id))
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
                problems.append(f"{r.intent_id}: buy of {notional} USDC > max_trade_usdc {lim.max_trade_usdc} USDC")
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
            problems.append(f"{r.intent_id}: exposure {total} USDC > max_total_exposure_usdc {lim.max_total_exposure_usdc} USDC")
        if lim.max_market_usdc is not None and per_market[r.condition_id] > lim.max_market_usdc:
            problems.append(f"{r.intent_id}: market exposure {per_market[r.condition_id]} USDC > max_market_usdc {lim.max_market_usdc} USDC")
        if lim.max_open_positions is not None and open_tokens > lim.max_open_positions:
            problems.append(f"{r.intent_id}: {open_tokens} open positions > max_open_positions")
    if problems:
        return Criterion(name, False, f"{len(problems)} violation(s): " + "; ".join(problems[:3]))
    if not fills:
        return Criterion(name, None, f"no fills in {where}: nothing to check against the limits (missing: fills "
                                     "from a paper, dry-run or live run)")
    return Criterion(name, True, f"{fills} fills in the store replayed against the limits: none exceeded")


def import_leakage(loaded: Optional[Sequence[str]], watched: Sequence[str], probe_error: str = "") -> Criterion:
    name = "import leakage"
    if loaded is None:
        return Criterion(name, False, f"the probe failed: {probe_error}")
    if loaded:
        return Criterion(name, False, f"the paper path loaded {', '.join(loaded)}")
    return Criterion(name, True, "paper app + trade + CLI import loaded none of " + ", ".join(watched))


@attrs.frozen
class Closure:
    """The distributions an install of copytrader (with ``extra``) brings, as
    its metadata says: ``installed`` ones (whose own requirements were
    followed) and ``missing`` ones (required but not installed here, so their
    own requirements cannot be counted)."""

    extra: str  # "" for the core install
    installed: tuple[str, ...]
    missing: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"[{self.extra}]" if self.extra else "core"

    def describe(self) -> str:
        n = len(self.installed) + len(self.missing)
        if not self.missing:
            return f"{self.label} {n}"
        return (f"{self.label} at least {n} ({len(self.missing)} not installed, their dependencies cannot be "
                f"counted: {', '.join(self.missing)})")


def dependency_sprawl(closures: Optional[Mapping[str, Closure]], budgets: Mapping[str, int],
                      why_not: str = "") -> Criterion:
    """``closures`` by extra ("" = core); ``budgets`` by extra ("" and "live")."""
    name = "dependency sprawl"
    if closures is None:
        return Criterion(name, None, why_not)
    over, unknown = [], []
    for extra, budget in budgets.items():
        c = closures[extra]
        n = len(c.installed) + len(c.missing)
        if n > budget:
            over.append(f"{c.label} {n} > budget {budget}")
        elif c.missing:
            unknown.append(f"{c.label} (pip install 'copytrader[{extra}]' to count it)" if extra else c.label)
    core = closures[""]
    text = (f"core install {len(core.installed)} distributions ({', '.join(core.installed)}); "
            + "; ".join(c.describe() for e, c in closures.items() if e) +
            "; budgets " + ", ".join(f"{closures[e].label} {b}" for e, b in budgets.items()))
    if over:
        return Criterion(name, False, f"over budget: {', '.join(over)}. {text}")
    if unknown:
        return Criterion(name, None, f"cannot count {', '.join(unknown)}: {text}")
    return Criterion(name, True, text)


def determinism(digests: Sequence[str]) -> Criterion:
    ok = len(set(digests)) == 1
    return Criterion("non-determinism", ok, f"bundled replay twice: {digests[0][:16]} {'==' if ok else '!='} "
                                            f"{digests[-1][:16]}")


def fragility(records: Sequence[IntentRecord], max_error_rate: Decimal, where: str) -> Criterion:
    name = "operational fragility"
    sent = [r for r in records if r.status is not IntentStatus.SKIPPED]
    if not sent:
        return Criterion(name, None, f"no orders in {where}: no unknown orders or fault rate to judge (missing: "
                                     "orders from a paper, dry-run or live run)")
    unknown = [r for r in sent if r.status.is_open]
    faulted = [r for r in sent if r.error and not UNFILLED.search(r.error)]
    rate = Decimal(len(faulted)) / len(sent)
    ok = not unknown and rate <= max_error_rate
    return Criterion(name, ok, f"{len(sent)} orders: {len(unknown)} unknown/open, {len(faulted)} faulted "
                               f"({rate:.1%}, limit {max_error_rate:.0%})")


__all__ = ["Closure", "Criterion", "GO", "INCONCLUSIVE", "NO_GO", "UNFILLED", "dependency_sprawl", "determinism",
           "fragility", "import_leakage", "parity", "risk_violations", "verdict"]
