"""Mock ↔ live parity (prototype step 3): the paper executor and the live
executor in dry-run, fed the same leader trades against the same book, take
the same validation and risk decisions and keep the same accounting. Only
execution ids (paper id vs order hash) and timestamps may differ."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import attrs

from copytrader.domain.model import ZERO, micro
from copytrader.testing import book, make_app, make_trade, v2_position_id
from tests.standins.clob import ClobStandIn

from .conftest import KEY

D = Decimal
V2 = v2_position_id(0x5E5E5E, 0)  # a Protocol V2 market's YES position (Gamma version "v2")
TOKENS = {"1" * 40: "0x" + "cd" * 32, "2" * 40: "0x" + "ab" * 32, V2: "0x" + "5e" * 32}
VERSIONS = {V2: "v2"}
LEADERS = ["0x" + "a1" * 20, "0x" + "b2" * 20]
BOOKS = {
    "1" * 40: dict(bids=[("0.49", "300"), ("0.47", "2000")], asks=[("0.50", "60"), ("0.51", "200"), ("0.53", "5000")]),
    "2" * 40: dict(bids=[("0.20", "40"), ("0.19", "100")], asks=[("0.21", "25"), ("0.22", "100")]),
    V2: dict(bids=[("0.44", "200"), ("0.43", "900")], asks=[("0.45", "80"), ("0.46", "900")]),
}
RISK = {"max_trade_usdc": "25", "max_market_usdc": "60", "max_total_exposure_usdc": "100",
        "max_open_positions": "3", "daily_loss_limit_usdc": "40", "max_orders_per_window": "1000"}
FIELDS = ("decision", "reason", "status", "size", "limit_price", "filled_size", "avg_price", "fee", "slippage")


def _apps(clob: ClobStandIn, overrides: dict):
    for token, levels in BOOKS.items():
        clob.set_book(token, market=TOKENS[token], version=VERSIONS.get(token, "v1"), **levels)
    common = {"risk": RISK, "market": {"book_ttl_s": "0"}, **overrides}
    paper, pf = make_app(common, profile="paper")
    for token, levels in BOOKS.items():
        info, levels_book = book(token, condition_id=TOKENS[token], **levels)
        pf.market.put(attrs.evolve(info, version=VERSIONS.get(token, "v1")), levels_book)
    dry, _ = make_app({**common, "live": {"host": clob.url, "gamma_host": clob.url, "timeout_s": "2"}}, profile="dry-run",
                      environ={"COPYTRADER_PRIVATE_KEY": KEY})
    return paper, dry


def _record_view(app):
    return [tuple(getattr(r, f) for f in FIELDS) for r in reversed(app.history(limit=10_000))]


def _position_view(app):
    return sorted((p.leader, p.token_id, p.size, p.cost, p.realised, p.fees) for p in app.positions(include_closed=True))


SCRIPT = [  # (leader, token, side, size, price)
    (0, 0, "BUY", 100, "0.50"),    # fills 20 at 0.50
    (0, 0, "BUY", 5000, "0.50"),   # fixed sizing, fills across levels
    (1, 1, "BUY", 10, "0.21"),     # thin book: FOK 47.61 > 25 available -> not filled
    (1, 0, "BUY", 300, "0.45"),    # best ask 0.50 is > 5% above 0.45: slippage
    (0, 0, "SELL", 50, "0.49"),    # a fraction of the leader's 5100
    (0, 1, "SELL", 10, "0.20"),    # nothing held: no_position
    (1, 0, "BUY", 200, "0.50"),
    (0, 0, "SELL", 5050, "0.49"),  # leader exits: so do we
    (1, 2, "BUY", 400, "0.45"),    # a Protocol V2 market
    (1, 2, "SELL", 200, "0.44"),   # half of it, against what we hold of the position id
]


def test_strict_parity_on_a_scripted_sequence(clob):
    paper, dry = _apps(clob, {"sizing": {"fixed_usdc": "10"}})
    tokens = list(TOKENS)
    for i, (leader, token, side, size, price) in enumerate(SCRIPT):
        trade = make_trade(leader=LEADERS[leader], token_id=tokens[token], condition_id=TOKENS[tokens[token]],
                           side=side, size=size, price=price, seq=i)
        a, b = paper.process(trade), dry.process(trade)
        assert (a.status, a.reason, a.intent_id) == (b.status, b.reason, b.intent_id), f"step {i}"
    assert _record_view(paper) == _record_view(dry)
    assert _position_view(paper) == _position_view(dry)
    statuses = {r[2].value for r in _record_view(paper)}
    assert {"filled", "rejected", "skipped"} <= statuses  # the script covers fills, refusals, rejections
    ids = [(p.execution_id, d.execution_id) for p, d in zip(paper.history(), dry.history()) if p.execution_id]
    assert ids and all(p != d and d.startswith("0x") and len(d) == 66 for p, d in ids)
    assert not any(m == "POST" for m, _ in clob.requests)


trades = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 2), st.sampled_from(["BUY", "BUY", "SELL"]),
                            st.integers(1, 3000), st.sampled_from(["0.19", "0.20", "0.21", "0.45", "0.49", "0.50", "0.52"])),
                  min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trades, st.sampled_from(["fixed", "proportional"]), st.sampled_from(["FOK", "FAK"]))
def test_property_parity_and_invariants(clob, seq, mode, order_type):
    clob.requests.clear()
    paper, dry = _apps(clob, {"sizing": {"mode": mode, "fixed_usdc": "15", "multiplier": "0.05"},
                              "follower": {"order_type": order_type}})
    tokens = list(TOKENS)
    limits = paper.service.settings.limits
    for i, (leader, token, side, size, price) in enumerate(seq):
        trade = make_trade(leader=LEADERS[leader], token_id=tokens[token], condition_id=TOKENS[tokens[token]],
                           side=side, size=size, price=price, seq=i)
        a, b = paper.process(trade), dry.process(trade)
        assert (a.status, a.reason) == (b.status, b.reason)
        for app in (paper, dry):  # no execution breaks the risk kernel
            pf = app.service.portfolio
            assert pf.total_exposure <= limits.max_total_exposure_usdc
            assert all(v <= limits.max_market_usdc for v in pf.market_exposure.values())
            assert pf.open_tokens <= limits.max_open_positions
    assert _record_view(paper) == _record_view(dry)
    assert _position_view(paper) == _position_view(dry)
    for app in (paper, dry):
        fills, cash = defaultdict(lambda: ZERO), defaultdict(lambda: ZERO)
        for r in app.history(limit=10_000):
            if r.filled_size:
                sign = 1 if r.side == "BUY" else -1
                fills[(r.leader, r.token_id)] += sign * r.filled_size
                cash[(r.leader, r.token_id)] += -sign * micro(r.filled_size * r.avg_price) - r.fee
        for p in app.positions(include_closed=True):
            assert p.size == fills[(p.leader, p.token_id)]  # positions equal the sum of fills
            mark = D("0.37")
            assert p.realised + p.unrealised(mark) == cash[(p.leader, p.token_id)] + micro(p.size * mark)
    assert not any(m == "POST" for m, _ in clob.requests)


def test_a_v2_market_reaches_the_executor_as_v2(clob):
    """Dry-run reads the version from Gamma (here the CLOB stand-in's Gamma route) and hands it to
    the executor with the market; which exchange and domain it signs for is the executor's part."""
    paper, dry = _apps(clob, {"sizing": {"fixed_usdc": "10"}})
    seen = []
    prepare = dry.service.executor.prepare
    dry.service.executor.prepare = lambda intent, market: seen.append((intent.token_id, market.version)) or \
        prepare(intent, market)
    for i, token in enumerate(TOKENS):
        trade = make_trade(token_id=token, condition_id=TOKENS[token], price=BOOKS[token]["asks"][0][0], seq=i)
        a, b = paper.process(trade), dry.process(trade)
        assert (a.status, a.reason) == (b.status, b.reason) and a.status in ("filled", "unfilled")
    assert seen == [(t, VERSIONS.get(t, "v1")) for t in TOKENS]
