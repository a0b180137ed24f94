"""Trade settlement against the loopback CLOB: a matched copy is a provisional
fill until its trades are CONFIRMED on chain; a FAILED trade takes the fill
back (position, PnL, exposure) with one alert; a restart resumes the watch."""
from __future__ import annotations

from decimal import Decimal

from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.application.settlement_watch import FIRST_CHECK_S, OVERDUE
from copytrader.domain.model import IntentStatus, Settlement
from copytrader.testing import TOKEN, make_trade

D = Decimal


def _trade_reads(clob) -> int:
    return sum(1 for r in clob.requests if r == ("GET", "/data/trades"))


def _due(fakes, app) -> int:
    fakes.clock.advance(FIRST_CHECK_S)
    return app.service.settlements.step()


def test_a_failed_trade_leaves_no_position_no_pnl_and_one_alert(live_app, clob):
    app, fakes = live_app("live")
    clob.fail_next_trades(1)
    out = app.process(make_trade())
    [rec] = app.history()
    assert out.status == "filled" and rec.settlement is Settlement.PROVISIONAL and rec.filled_size == D("20")
    assert app.positions()[0].size == D("20") and app.service.portfolio.total_exposure == D("10")  # counts at once
    clob.advance_trades()  # RETRYING: not terminal
    assert _due(fakes, app) == 0 and app.history()[0].settlement is Settlement.PROVISIONAL
    clob.advance_trades()
    assert clob.trade_statuses() == ["FAILED"] and clob.fills(TOKEN) == 0  # the exchange moved nothing
    fakes.clock.advance(2 * FIRST_CHECK_S)  # the watch backs off: the next check is later
    assert app.service.settlements.step() == 1
    [rec] = app.history()
    assert (rec.status, rec.settlement, rec.filled_size, rec.avg_price) == (
        IntentStatus.REJECTED, Settlement.REVERSED, D("0"), None)
    assert "20 of 20 shares matched @ 0.5 FAILED on chain" in rec.error
    assert app.positions() == [] and [p.realised for p in app.positions(include_closed=True)] == [D("0")]
    pf = app.service.portfolio
    assert (pf.total_exposure, pf.open_tokens, pf.realised_total) == (D("0"), 0, D("0"))
    assert fakes.alerter.kinds().count("trade_failed") == 1
    app.container.service.reset()  # a fresh engine reads the same books
    assert app.service.portfolio.total_exposure == D("0") and app.service.settlements.pending == 0


def test_a_confirmed_trade_becomes_final_and_the_watch_is_paced_by_the_clock(live_app, clob):
    app, fakes = live_app("live")
    app.process(make_trade())
    reads = _trade_reads(clob)
    assert app.service.settlements.step() == 0 and _trade_reads(clob) == reads  # not due yet: no request
    clob.advance_trades()  # MINED
    assert _due(fakes, app) == 0 and _trade_reads(clob) == reads + 1
    assert app.history()[0].settlement is Settlement.PROVISIONAL
    clob.advance_trades()  # CONFIRMED
    fakes.clock.advance(2 * FIRST_CHECK_S)
    assert app.service.settlements.step() == 1
    [rec] = app.history()
    assert (rec.status, rec.settlement, rec.filled_size, rec.booked) == (
        IntentStatus.FILLED, Settlement.FINAL, D("20"), "")
    assert app.positions()[0].size == D("20") == clob.fills(TOKEN) and "trade_failed" not in fakes.alerter.kinds()
    fakes.clock.advance(600)
    assert app.service.settlements.step() == 0 and _trade_reads(clob) == reads + 2  # nothing watched any more


def test_plain_stream_style_statuses_are_read_too(live_app, clob):
    app, fakes = live_app("live")
    clob.trade_status_prefix = ""
    app.process(make_trade())
    clob.advance_trades(2)
    assert _due(fakes, app) == 1 and app.history()[0].settlement is Settlement.FINAL


def test_a_provisional_fill_counts_toward_the_limits_and_a_reversal_frees_them(live_app, clob):
    app, fakes = live_app("live", sections={"risk": {"max_total_exposure_usdc": "14"}})
    clob.fail_next_trades(1)
    assert app.process(make_trade(seq=1)).status == "filled"  # 20 shares @ 0.50: 10 USDC, provisional
    second = app.process(make_trade(seq=2))
    assert second.status == "filled" and second.limit == "max_total_exposure_usdc"  # smaller: the first counts
    assert app.service.portfolio.total_exposure <= D("14")
    assert app.process(make_trade(seq=4)).reason == "max_total_exposure_usdc"  # no room while it is pending
    clob.advance_trades(2)  # the first FAILED (the second settles CONFIRMED)
    fakes.clock.advance(FIRST_CHECK_S)
    app.service.settlements.step()
    assert app.service.portfolio.total_exposure == sum((p.cost for p in app.positions()), D(0))
    assert app.positions()[0].size == clob.fills(TOKEN)  # what the exchange holds for us, no more
    third = app.process(make_trade(seq=3))
    assert third.status in ("filled", "partial")  # room again after the reversal
    assert app.service.portfolio.total_exposure <= D("14")


def test_a_restart_between_matched_and_confirmed_resumes_the_watch(live_app, clob, tmp_path):
    path = tmp_path / "engine.db"
    app, fakes = live_app("live", store=SqliteStore(path))
    app.process(make_trade())
    assert app.history()[0].settlement is Settlement.PROVISIONAL
    app.close()  # the process ends (the provisional state is committed with the booking)
    again, fakes2 = live_app("live", store=SqliteStore(path))
    clob.fail_next_trades(0)
    clob.advance_trades(2)
    assert again.service.start() == 0  # the start-up pass reads the trades: CONFIRMED
    [rec] = again.history()
    assert rec.settlement is Settlement.FINAL and again.positions()[0].size == D("20")


def test_a_restart_resumes_the_watch_of_a_trade_that_then_fails(live_app, clob, tmp_path):
    path = tmp_path / "engine.db"
    app, _ = live_app("live", store=SqliteStore(path))
    app.process(make_trade())
    order = app.history()[0].execution_id
    app.close()
    clob.fail_order(order)
    clob.advance_trades(2)
    again, fakes = live_app("live", store=SqliteStore(path))
    again.service.start()
    [rec] = again.history()
    assert rec.settlement is Settlement.REVERSED and again.positions() == []
    assert fakes.alerter.kinds().count("trade_failed") == 1


def test_a_trade_unsettled_for_long_is_alerted_once_and_stays_provisional(live_app, clob):
    app, fakes = live_app("live")
    app.process(make_trade())
    for _ in range(40):
        fakes.clock.advance(60)
        app.service.settlements.step()
    assert fakes.alerter.kinds().count("unsettled") == 1
    assert app.history()[0].settlement is Settlement.PROVISIONAL and app.positions()[0].size == D("20")
    assert fakes.clock.now() - app.history()[0].created_at > OVERDUE


def test_a_run_settles_between_items(live_app, clob):
    """``run`` gives the watch a pass after every item: the first copy's FAILED
    trade is reversed while the feed goes on."""
    app, fakes = live_app("live")
    clob.fail_next_trades(1)
    fakes.feed.items.extend([make_trade(seq=1), make_trade(seq=2)])

    def later(outcome):
        clob.advance_trades(2)
        fakes.clock.advance(FIRST_CHECK_S)
    app.run(on_outcome=later)
    first, second = sorted(app.history(), key=lambda r: r.trade_id != make_trade(seq=1).id)
    assert first.settlement is Settlement.REVERSED and second.settlement is Settlement.FINAL
    assert app.positions()[0].size == second.filled_size == clob.fills(TOKEN)


def test_status_shows_provisional_and_reversed_fills(live_app, clob):
    from copytrader.application.status import follower_status

    app, fakes = live_app("live")
    clob.fail_next_trades(1)
    app.process(make_trade())
    data = follower_status(fakes.store, fakes.clock.now())
    [pending] = data["provisional_fills"]
    assert (pending["filled_size"], pending["side"], data["reversed_fills"]) == ("20", "BUY", [])
    clob.advance_trades(2)
    _due(fakes, app)
    data = follower_status(fakes.store, fakes.clock.now())
    [gone] = data["reversed_fills"]
    assert data["provisional_fills"] == [] and "FAILED on chain" in gone["error"]
    assert data["positions"] == {"open": 0, "exposure_usdc": "0.000000"}
