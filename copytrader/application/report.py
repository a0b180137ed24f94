"""What a run did, from its records: equity and drawdown, PnL per leader and
per market, rejection reasons, slippage of each copy against the leader's
price (in basis points of that price), and tracking error (our return
against the leader's on the copied trades).

One pass over the leader trades in the order they were recorded, each with
the intent it produced. Accounting is ``Decimal`` and replays the domain's
own ``Position`` arithmetic; floats appear only in the plotting series.

Marks (``MARKING``, the one convention of every PnL copytrader prints: the
``run`` summary, ``positions``, ``report`` and ``backtest``): an open
position is valued at the leaders' latest traded price of its token (the
market as the leaders saw it), a resolved one at its payout, a token no
leader traded (a ``trade-once`` order) at our last fill price. Realised PnL,
fees and positions come from the positions table as written by the engine;
the replay checks it arrives at the same realised PnL. Money is in USDC.

Tracking: for a copied trade with side s (+1 BUY, -1 SELL), leader price
p_L, our average price p_F, fee f on q shares and the token's final mark m,
the leader's return is ``s·(m − p_L)/p_L`` and ours ``s·(m − p_F)/p_F − f/(q·p_F)``.
The tracking difference is ours minus the leader's; the tracking error is
its sample standard deviation over the copied trades. Per token the sums
needed are kept as they stream by (the mark is only known at the end).
"""
from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Collection, Iterable, Iterator, Optional

import attrs

from ..domain.model import ZERO, IntentRecord, Settlement, Side, micro
from ..domain.portfolio import Position

if TYPE_CHECKING:  # types only: a report of a database needs neither
    from ..ports import Store
    from .service import Outcome

Q = Decimal("0.000001")
Q_BPS = Decimal("0.01")
MAX_POINTS = 500  # equity points kept in the JSON (all of them are plotted)
MAX_SCATTER = 5000  # copied trades kept for the tracking scatter plot


MARKING = "marked to the leaders' last traded price, payout if resolved"
UNIT = "USDC"


def _s(value: Optional[Decimal]) -> Optional[str]:
    return None if value is None else str(value.quantize(Q))


def _bps(value: Optional[Decimal | float]) -> Optional[str]:
    return None if value is None else str(Decimal(repr(value) if isinstance(value, float) else value).quantize(Q_BPS))


def is_mark(price: Decimal) -> bool:
    """A leader's traded price that can value a position: finite, strictly between 0 and 1."""
    return price.is_finite() and 0 < price < 1


def latest_marks(prices_newest_first: Iterable[tuple[str, Decimal]], tokens: Collection[str]) -> dict[str, Decimal]:
    """The mark of each of ``tokens``: the first usable price in (token id,
    leader trade price) pairs, newest first; stops once every token has one."""
    wanted, found = set(tokens), {}
    if not wanted:
        return found
    for token, price in prices_newest_first:
        if token in wanted and token not in found and is_mark(price):
            found[token] = price
            if len(found) == len(wanted):
                break
    return found


def mark_of(position: Position, marks: dict[str, Decimal]) -> Optional[Decimal]:
    """What ``position`` is valued at under ``MARKING`` (``marks``: from ``latest_marks``);
    a resolved one at its payout (a pending position is worth what it will pay)."""
    if position.payout is not None:
        return position.payout
    return position.last_price if position.settled else marks.get(position.token_id, position.last_price)


def resolutions(positions: Iterable[Position]) -> dict[str, Any]:
    """Resolved positions by state, in USDC text: pending payout (tokens not
    redeemed yet: what they will pay), redeemed (paid) and lost, each with its
    count and realised PnL."""
    out = {state: {"positions": 0, "realised": ZERO} for state in ("pending", "redeemed", "lost")}
    pending_usdc = ZERO
    for p in positions:
        state = {"pending payout": "pending", "paid": "redeemed", "lost": "lost"}.get(p.status)
        if state is not None:
            out[state]["positions"] += 1
            out[state]["realised"] += p.realised
            pending_usdc += p.pending_cash
    return {**{k: {"positions": v["positions"], "realised": _s(v["realised"])} for k, v in out.items()},
            "pending_usdc": _s(pending_usdc), "unit": UNIT}


def marked_pnl(positions: Collection[Position], marks: dict[str, Decimal]) -> dict[str, Any]:
    """Realised, unrealised and total PnL, fees and open exposure of
    ``positions`` (open and closed), marked by ``MARKING``; text, in USDC."""
    realised = unrealised = fees = exposure = ZERO
    for p in positions:
        realised += p.realised
        unrealised += p.unrealised(mark_of(p, marks))
        fees += p.fees
        if p.is_open:  # a pending position is cash to come, not exposure
            exposure += p.cost
    return {"realised": _s(realised), "unrealised": _s(unrealised), "total": _s(realised + unrealised),
            "fees": _s(fees), "exposure": _s(exposure), "unit": UNIT, "marking": MARKING,
            "resolutions": resolutions(positions)}


@attrs.define
class _TokenSums:
    """Per token sums for tracking error, with a_i = s·(1/p_F − 1/p_L), f_i = fee/(q·p_F)."""

    n: int = 0
    a: Decimal = ZERO
    a2: Decimal = ZERO
    f: Decimal = ZERO
    f2: Decimal = ZERO
    af: Decimal = ZERO
    # notional-weighted returns: Σ s·q, Σ s·p·q and Σ p·q for us and for the leader, and our fees
    sq_f: Decimal = ZERO
    spq_f: Decimal = ZERO
    pq_f: Decimal = ZERO
    fees: Decimal = ZERO
    sq_l: Decimal = ZERO
    spq_l: Decimal = ZERO
    pq_l: Decimal = ZERO


@attrs.define
class Analysis:
    label: str
    summary: dict[str, Any]
    # plotting series (floats): equity and drawdown over time, slippage in bps, tracking pairs
    times: array = attrs.field(factory=lambda: array("d"))
    equity: array = attrs.field(factory=lambda: array("d"))
    drawdown: array = attrs.field(factory=lambda: array("d"))
    slippage: array = attrs.field(factory=lambda: array("d"))
    tracking: list[tuple[float, float]] = attrs.field(factory=list)


TRADE_FIELDS = ("kind", "leader", "token_id", "condition_id", "side", "size", "price", "timestamp", "title")


def run_events(store: Store, outcomes: Iterable[Outcome]) -> Iterator[tuple[dict[str, Any], Optional[IntentRecord]]]:
    """``analyse``'s events of a run still in ``store`` (a backtest's in memory), from the outcomes of its feed
    items in order: each trade recorded (once: not a duplicate or a quarantined row) with its intent, as a
    database's report reads them (its trades in the order written, each with its intent)."""
    for outcome in outcomes:
        trade = None if outcome.status in ("duplicate", "quarantined") else store.get_trade(outcome.trade_id)
        if trade is not None:
            yield ({f: getattr(trade, f) for f in TRADE_FIELDS},
                   store.get_intent(outcome.intent_id) if outcome.intent_id else None)


def _percentile(sorted_values: Any, q: float) -> Optional[float]:
    if not len(sorted_values):
        return None
    k = (len(sorted_values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def analyse(events: Iterable[tuple[dict[str, Any], Optional[IntentRecord]]], positions: list[Position],
            orphans: Iterable[IntentRecord] = (), label: str = "run", meta: Optional[dict] = None,
            names: Optional[dict[str, str]] = None) -> Analysis:
    """``names``: leader address -> name, where known (shown next to the address)."""
    out = Analysis(label, {})
    # a resolved position pays its payout in the replay (paid at once; a pending one is marked at it)
    payouts = {p.key: p.payout for p in positions if p.payout is not None}

    book: dict[tuple[str, str], Position] = {}
    by_token: dict[str, set] = defaultdict(set)
    by_condition: dict[str, set] = defaultdict(set)
    value: dict[tuple[str, str], Decimal] = {}  # size·mark − cost of each open position
    marks: dict[str, Decimal] = {}
    resolved_marks: dict[str, Decimal] = {}
    unreal = realised = ZERO
    peak: Optional[Decimal] = None
    max_dd, max_dd_at, trough = ZERO, None, ZERO
    counts: Counter = Counter()
    rejected: Counter = Counter()
    unfilled: Counter = Counter()
    volume_leader: Counter = Counter()
    volume_market: Counter = Counter()
    fills_leader: Counter = Counter()
    fills_market: Counter = Counter()
    rejected_by: dict[str, Counter] = defaultdict(Counter)  # "leader:<address>" / "market:<condition>" -> reasons
    slip_by: dict[str, list] = defaultdict(lambda: [0, ZERO])  # the same keys -> [count, sum of bps]
    titles: dict[str, str] = {}
    sums: dict[str, _TokenSums] = defaultdict(_TokenSums)
    scatter_raw: list[tuple[str, int, Decimal, Decimal, Decimal]] = []
    slip_n, slip_sum = 0, ZERO  # in bps of the leader's price
    slip_min: Optional[Decimal] = None
    slip_max: Optional[Decimal] = None
    first_t = last_t = None

    def revalue(key: tuple[str, str]) -> None:
        nonlocal unreal
        pos = book[key]
        mark = resolved_marks.get(key[1], marks.get(key[1]))
        new = micro(pos.size * mark) - pos.cost if pos.size > 0 and mark is not None else ZERO
        unreal += new - value.get(key, ZERO)
        value[key] = new

    def fill(record: IntentRecord) -> None:
        nonlocal realised, slip_n, slip_sum, slip_min, slip_max
        key = (record.leader, record.token_id)
        old = book.get(key) or Position(record.leader, record.token_id, record.condition_id, title=record.title)
        side = Side(record.side)
        new = old.fill(side, record.filled_size, record.avg_price, record.fee)
        book[key] = new
        by_token[record.token_id].add(key)
        by_condition[record.condition_id].add(key)
        realised += new.realised - old.realised
        revalue(key)
        notional = micro(record.filled_size * record.avg_price)
        volume_leader[record.leader] += notional
        volume_market[record.condition_id] += notional
        fills_leader[record.leader] += 1
        fills_market[record.condition_id] += 1
        titles.setdefault(record.condition_id, record.title)
        slip = record.slippage_bps
        if slip is not None:
            for group in (f"leader:{record.leader}", f"market:{record.condition_id}"):
                slip_by[group][0] += 1
                slip_by[group][1] += slip
            slip_n += 1
            slip_sum += slip
            slip_min = slip if slip_min is None else min(slip_min, slip)
            slip_max = slip if slip_max is None else max(slip_max, slip)
            out.slippage.append(float(slip))
        if record.leader == "manual" or not record.leader_price > 0:
            return
        s = 1 if side is Side.BUY else -1
        pf, pl, q = record.avg_price, record.leader_price, record.filled_size
        a = s * (1 / pf - 1 / pl)
        f = record.fee / (q * pf)
        t = sums[record.token_id]
        t.n += 1
        t.a += a
        t.a2 += a * a
        t.f += f
        t.f2 += f * f
        t.af += a * f
        t.sq_f += s * q
        t.spq_f += s * pf * q
        t.pq_f += pf * q
        t.fees += record.fee
        t.sq_l += s * record.leader_size
        t.spq_l += s * pl * record.leader_size
        t.pq_l += pl * record.leader_size
        if len(scatter_raw) < MAX_SCATTER:
            scatter_raw.append((record.token_id, s, pl, pf, f))

    def resolve(condition_id: str) -> None:
        nonlocal realised
        for key in sorted(by_condition.get(condition_id, ())):
            pos = book[key]
            if key in payouts and pos.size > 0:
                new = pos.resolve(payouts[key])
                book[key] = new
                realised += new.realised - pos.realised
                resolved_marks[key[1]] = payouts[key]
                revalue(key)

    def point(ts: float) -> None:
        nonlocal peak, max_dd, max_dd_at, trough
        equity = realised + unreal
        if peak is None or equity > peak:
            peak = equity
        dd = peak - equity
        if dd > max_dd:
            max_dd, max_dd_at, trough = dd, ts, equity
        out.times.append(ts)
        out.equity.append(float(equity))
        out.drawdown.append(float(-dd))

    for trade, record in events:
        ts = float(trade["timestamp"])
        first_t = ts if first_t is None else first_t
        last_t = ts
        kind = trade["kind"]
        if kind == "TRADE":
            counts["leader_trades"] += 1
            price = trade["price"]
            if is_mark(price):
                marks[trade["token_id"]] = price
                for key in by_token.get(trade["token_id"], ()):
                    revalue(key)
        else:
            counts["non_trade_rows"] += 1
            if kind == "REDEEM":
                resolve(trade["condition_id"])
        if record is not None:
            if record.decision == "rejected":
                counts["rejected"] += 1
                rejected[record.reason or "unspecified"] += 1
                for group in (f"leader:{record.leader}", f"market:{record.condition_id}"):
                    rejected_by[group][record.reason or "unspecified"] += 1
            elif record.settlement is Settlement.REVERSED:  # matched, then FAILED on chain: taken back
                counts["reversed"] += 1
            elif record.status.value == "rejected":
                counts["not_filled"] += 1
                unfilled[(record.error or "not filled").split(":")[0]] += 1
            elif record.status.value in ("unknown", "pending"):
                counts[record.status.value] += 1
            if record.filled_size > 0 and record.avg_price is not None:
                counts["copied"] += 1
                if record.status.value == "partial":
                    counts["partial"] += 1
                if record.settlement is Settlement.PROVISIONAL:  # matched, not settled on chain yet
                    counts["provisional"] += 1
                fill(record)
        point(ts)
    for record in orphans:  # trade-once orders: no leader trade, no tracking
        if record.filled_size > 0 and record.avg_price is not None:
            counts["manual_orders"] += 1
            fill(record)
            point(record.created_at.timestamp())
    for condition in list(by_condition):  # resolved at start-up or without a REDEEM row
        resolve(condition)
    if last_t is not None:
        point(last_t)

    # -- PnL per leader and per market: the engine's positions, marked ------
    per_leader: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    per_market: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    table_realised = ZERO
    for p in positions:
        table_realised += p.realised
        m_unreal = p.unrealised(mark_of(p, marks))
        for group, key in ((per_leader, p.leader), (per_market, p.condition_id)):
            group[key]["realised"] += p.realised
            group[key]["unrealised"] += m_unreal
            group[key]["fees"] += p.fees
            group[key]["exposure"] += p.cost if p.is_open else ZERO
        titles.setdefault(p.condition_id, p.title)

    for kind, group in (("leader", per_leader), ("market", per_market)):  # rejected only: a row too
        for key in {k.split(":", 1)[1] for k in rejected_by if k.startswith(f"{kind}:")}:
            group[key]  # noqa: B018 - the defaultdict makes the row

    def table(group: dict, volume: Counter, fills: Counter, name: str) -> list[dict[str, Any]]:
        rows = []
        for key, v in group.items():
            tag = f"{'leader' if name == 'leader' else 'market'}:{key}"
            n_slip, sum_slip = slip_by.get(tag, (0, ZERO))
            row = {name: key, "realised": _s(v["realised"]), "unrealised": _s(v["unrealised"]),
                   "total": _s(v["realised"] + v["unrealised"]), "fees": _s(v["fees"]),
                   "exposure": _s(v["exposure"]), "fills": fills[key], "volume": _s(volume.get(key, ZERO)),
                   "rejected": dict(sorted(rejected_by.get(tag, {}).items(), key=lambda kv: (-kv[1], kv[0]))),
                   "slippage_mean_bps": _bps(sum_slip / n_slip) if n_slip else None}
            if name == "condition_id":
                row["title"] = titles.get(key, "")
            else:
                row["name"] = (names or {}).get(key) or None
            rows.append(row)
        return sorted(rows, key=lambda r: (-Decimal(r["total"]), r[name]))

    # -- tracking --------------------------------------------------------------
    n = 0
    d_sum = d2_sum = ZERO
    ours_num = ours_den = lead_num = lead_den = ZERO
    for token, t in sums.items():
        m = resolved_marks.get(token, marks.get(token))
        if m is None:
            continue
        n += t.n
        d_sum += m * t.a - t.f
        d2_sum += m * m * t.a2 - 2 * m * t.af + t.f2
        ours_num += m * t.sq_f - t.spq_f - t.fees
        ours_den += t.pq_f
        lead_num += m * t.sq_l - t.spq_l
        lead_den += t.pq_l
    mean_d = d_sum / n if n else None
    te = None
    if n > 1:
        var = (d2_sum - n * mean_d * mean_d) / (n - 1)
        te = max(var, ZERO).sqrt()
    for token, s, pl, pf, f in scatter_raw:
        m = resolved_marks.get(token, marks.get(token))
        if m is not None:
            out.tracking.append((float(s * (m - pl) / pl), float(s * (m - pf) / pf - f)))

    slips = sorted(out.slippage)
    step = max(1, len(out.times) // MAX_POINTS)
    idx = list(range(0, len(out.times), step))
    if out.times and idx[-1] != len(out.times) - 1:
        idx.append(len(out.times) - 1)
    when = lambda ts: datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()
    out.summary = {
        "label": label,
        "meta": meta or {},
        "period": {"first": when(first_t) if first_t is not None else None,
                   "last": when(last_t) if last_t is not None else None},
        "counts": {k: counts[k] for k in ("leader_trades", "non_trade_rows", "copied", "partial", "rejected",
                                          "not_filled", "unknown", "pending", "manual_orders",
                                          "provisional", "reversed")},
        "pnl": {**marked_pnl(positions, marks), "replayed_realised": _s(realised),
                "replay_agrees": realised == table_realised},
        "equity": {"unit": UNIT, "final": _s(realised + unreal), "peak": _s(peak if peak is not None else ZERO),
                   "max_drawdown": _s(max_dd), "max_drawdown_at": when(max_dd_at) if max_dd_at else None,
                   "trough": _s(trough),
                   "points": [[when(out.times[i]), round(out.equity[i], 6)] for i in idx],
                   "drawdown_points": [[when(out.times[i]), round(out.drawdown[i], 6)] for i in idx]},
        "pnl_by_leader": table(per_leader, volume_leader, fills_leader, "leader"),
        "pnl_by_market": table(per_market, volume_market, fills_market, "condition_id"),
        "rejections": dict(sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0]))),
        "not_filled": dict(sorted(unfilled.items(), key=lambda kv: (-kv[1], kv[0]))),
        "slippage": {
            "unit": "bps", "count": slip_n, "mean_bps": _bps(slip_sum / slip_n) if slip_n else None,
            "min_bps": _bps(slip_min), "max_bps": _bps(slip_max),
            **{f"p{q}_bps": _bps(_percentile(slips, q / 100)) for q in (50, 90, 99)},
            "worse_than_leader": sum(1 for s in slips if s > 0), "better_than_leader": sum(1 for s in slips if s < 0),
            "note": "our average fill price minus the leader's price, in basis points of the leader's price "
                    "(1 bps = 0.01%), signed so that > 0 is worse for us",
        },
        "tracking": {
            "copied_trades": n, "mean_difference": _s(mean_d), "tracking_error": _s(te),
            "return_ours": _s(ours_num / ours_den) if ours_den else None,
            "return_leader": _s(lead_num / lead_den) if lead_den else None,
            "note": "returns on the copied trades to the final mark (payout if resolved, else the leader's last "
                    "price); difference = ours − leader's per trade, error = its sample standard deviation",
        },
    }
    return out


__all__ = ["MARKING", "UNIT", "Analysis", "analyse", "is_mark", "latest_marks", "mark_of", "marked_pnl", "resolutions",
           "run_events"]
