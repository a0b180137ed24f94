"""Resolution detection and what it books: a leader's REDEEM hint, the
periodic check of every market we hold (bounded and paced by the engine
clock), live winners pending until redeemed, paper paid at once."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import attrs
from pathlib import Path
import pytest

from copytrader.application.resolution import INTERVAL_S, PER_PASS
from copytrader.testing import CONDITION, T0, TOKEN, book, make_app, make_trade

D = Decimal
KEY = "0x" + "11" * 32


def markets(n: int) -> list[tuple[str, str]]:
    """(token id, condition id) of ``n`` markets, realistic CTF ids."""
    return [(str(10**70 + i), "0x" + f"{i + 1:064x}") for i in range(n)]


class Counting:
    """Market data that counts ``market`` reads (what the resolution checks cost)."""

    def __init__(self, inner):
        self.inner, self.reads = inner, []

    def market(self, token_id):
        self.reads.append(token_id)
        return self.inner.market(token_id)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(params=[True, False], ids=["paper", "live"])
def engine(request):
    app, fakes = make_app({"risk": {"max_open_positions": "off", "max_total_exposure_usdc": "off"}})
    app.service.settings = attrs.evolve(app.service.settings, pay_at_resolution=request.param)
    yield app, fakes, request.param
    app.close()


def hold(app, fakes, held):
    for n, (token, cond) in enumerate(held):
        fakes.market.put(*book(token, condition_id=cond, asks=[("0.50", "1000")]))
        assert app.process(make_trade(token_id=token, condition_id=cond, seq=n)).status == "filled"


def close(fakes, token, cond, payout):
    fakes.market.put(*book(token, condition_id=cond, closed=True, payout=payout))


def test_a_redeem_hint_resolves_live_winners_pending_and_paper_paid(engine):
    app, fakes, pay = engine
    hold(app, fakes, [(TOKEN, CONDITION)])  # 20 shares at 0.50: cost 10
    close(fakes, TOKEN, CONDITION, "1")
    out = app.process(make_trade(kind="REDEEM", side="", price="1", size="100", seq=99))
    assert out.status == "observed" and "settled 1 position" in out.reason
    [pos] = app.positions(include_closed=True)
    portfolio = app.service.portfolio
    if pay:
        assert pos.status == "paid" and pos.size == 0 and pos.realised == pos.bought - D("10")
        assert portfolio.pending() == []
    else:
        assert pos.status == "pending payout" and pos.size == pos.bought and pos.cost == D("10")
        assert pos.realised == 0 and pos.payout == D(1) and not pos.settled
        assert portfolio.pending() == [pos] and portfolio.pending_cash == pos.size
        assert portfolio.total_exposure == 0 and portfolio.open_tokens == 0  # cash to come, not risk
    assert app.positions() == []  # neither is an open position any more
    assert fakes.alerter.kinds().count("resolved") == 1
    # a second hint (another leader redeems too) changes nothing and alerts nothing
    app.process(make_trade(kind="REDEEM", side="", price="1", size="100", seq=100))
    assert app.positions(include_closed=True) == [pos] and fakes.alerter.kinds().count("resolved") == 1


def test_a_loser_is_cleared_live_and_on_paper(engine):
    app, fakes, _ = engine
    hold(app, fakes, [(TOKEN, CONDITION)])
    close(fakes, TOKEN, CONDITION, "0")
    app.process(make_trade(kind="REDEEM", side="", price="1", size="100", seq=99))
    [pos] = app.positions(include_closed=True)
    assert pos.status == "lost" and pos.settled and pos.size == 0 and pos.realised == -D("10")
    assert app.service.portfolio.pending() == []


def test_the_periodic_check_is_bounded_per_pass_and_paced_by_the_engine_clock(engine):
    app, fakes, pay = engine
    held = markets(PER_PASS + 2)
    hold(app, fakes, held)
    counting = Counting(fakes.market)
    app.service.market = counting
    watch = app.service.resolutions
    assert watch.step() == 0  # nothing resolved yet: the first pass asks about PER_PASS markets
    assert len(counting.reads) == PER_PASS
    for token, cond in held:
        close(fakes, token, cond, "1")
    counting.reads.clear()
    assert watch.step() == 0 and counting.reads == []  # not due: no request at all
    fakes.clock.advance(INTERVAL_S)
    assert watch.step() == PER_PASS  # in turn: the 2 not asked about yet, then 3 from the start
    assert sorted(counting.reads) == sorted(t for t, _ in held[PER_PASS:] + held[:PER_PASS - 2])
    fakes.clock.advance(INTERVAL_S)
    assert watch.step() == 2
    fakes.clock.advance(INTERVAL_S)
    counting.reads.clear()
    assert watch.step() == 0 and counting.reads == []  # nothing open left to ask about
    status = {p.status for p in app.positions(include_closed=True)}
    assert status == ({"paid"} if pay else {"pending payout"})
    assert fakes.alerter.kinds().count("resolved") == len(held)  # once per market


def test_run_notices_a_resolution_without_a_redeem_row(engine):
    app, fakes, pay = engine
    other_token, other_cond = markets(1)[0]
    hold(app, fakes, [(TOKEN, CONDITION)])
    close(fakes, TOKEN, CONDITION, "1")
    fakes.market.put(*book(other_token, condition_id=other_cond, asks=[("0.50", "1000")]))
    fakes.clock.advance(INTERVAL_S)
    fakes.feed.push(make_trade(token_id=other_token, condition_id=other_cond, seq=7,
                               timestamp=int((T0 + timedelta(seconds=INTERVAL_S)).timestamp())))
    app.run()
    pos = app.service.portfolio.current(make_trade().leader, TOKEN)
    assert pos.status == ("paid" if pay else "pending payout")


def test_a_market_data_failure_in_a_pass_is_counted_not_raised(engine):
    app, fakes, _ = engine
    hold(app, fakes, markets(2))

    class Down:
        def market(self, token_id):
            raise ConnectionError("gamma unreachable")

    app.service.market = Down()
    assert app.service.resolutions.step() == 0
    assert app.service._failures.get("market data") == 1


def test_only_the_live_profile_leaves_payouts_pending():
    for profile, pays in (("test", True), ("paper", True), ("dry-run", True), ("live", False)):
        app, _ = make_app(profile=profile, environ={"COPYTRADER_PRIVATE_KEY": KEY})
        assert app.container.config.engine().pay_at_resolution is pays, profile
        app.close()


def _resolved_db(path):
    """A database with one position in each state: open, pending payout, paid, lost."""
    from copytrader.adapters.storage.sqlite import SqliteStore
    from copytrader.domain.portfolio import Portfolio

    held = markets(4)
    p = Portfolio()
    for token, cond in held:
        p.apply_fill(make_trade().leader, token, cond, "BUY", D("10"), D("0.40"), D(0), "2026-01-01", title=cond[-1])
    (_, c_open), (t_pend, c_pend), (t_paid, c_paid), (_, c_lost) = held
    p.resolve(c_pend, {t_pend: D(1)}, "2026-01-02", pay=False)
    p.resolve(c_paid, {t_paid: D(1)}, "2026-01-02", pay=False)
    p.pay(make_trade().leader, t_paid, D("10"), "2026-01-03")
    p.resolve(c_lost, {held[3][0]: D(0)}, "2026-01-02", pay=False)
    with SqliteStore(path) as s:
        for key in sorted({(make_trade().leader, t) for t, _ in held}):
            s.put_position(p.current(*key))


def test_positions_status_and_their_json_show_pending_paid_and_lost(cli):
    import json

    _resolved_db(cli.db)
    rows = json.loads(cli("positions", "--all", "--json").output)
    assert [(r["title"], r["status"], r["payout"], r["pending_usdc"]) for r in rows] == [
        ("1", "open", None, "0"), ("2", "pending payout", "1", "10.000000"), ("3", "paid", "1", "0"), ("4", "lost", "0", "0")]
    pending = rows[1]
    assert D(pending["mark"]) == 1 and D(pending["unrealised"]) == D("6")  # marked at its payout
    shown = cli("positions").output  # without --all: the tokens still held, open or pending
    assert "open 1, pending payout 1" in shown and "pending payout" in shown.splitlines()[-1] + shown
    status = json.loads(cli("status", "--json").output)
    assert status["positions"]["open"] == 1 and D(status["positions"]["exposure_usdc"]) == 4  # pending is not exposure
    r = status["resolutions"]
    assert (r["pending"]["positions"], D(r["pending_usdc"])) == (1, 10)
    assert (r["redeemed"]["positions"], D(r["redeemed"]["realised"])) == (1, 6)
    assert (r["lost"]["positions"], D(r["lost"]["realised"])) == (1, -4)
    text = cli("status").output
    assert "resolved: redeemed 1 (realised 6.00 USDC), pending payout 1 (10.00 USDC to redeem), lost 1 " \
           "(realised -4.00 USDC)" in text
    report = cli("report", "--out", str(Path(cli.db).parent / "r")).output
    assert "pending payout 1 (10.00 USDC to redeem)" in report
