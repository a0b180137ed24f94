"""The dashboard's JSON API (/api/v1) over a database a real engine wrote:
what each endpoint answers, filtered pages read through an index, and
control refused without the token."""
from __future__ import annotations

from decimal import Decimal

import pytest

pytest.importorskip("starlette")
pytestmark = pytest.mark.filterwarnings("ignore:Using .httpx. with .starlette.testclient")
from starlette.testclient import TestClient  # noqa: E402

from copytrader.adapters.storage.sqlite import SqliteStore  # noqa: E402
from copytrader.entrypoints.config import load_config  # noqa: E402
from copytrader.entrypoints.dashboard import web_server  # noqa: E402
from copytrader.testing import LEADER, TOKEN, book, make_app, make_trade  # noqa: E402

OTHER = "0x" + "ef" * 20
TOKEN2 = "2" * 40
TOKEN3 = "3" * 40
SECRET = "s3cret-token"


@pytest.fixture
def db(tmp_path):
    """A database with fills, a rejection (price band) and a sell, by a real engine."""
    path = tmp_path / "ct.db"
    app, fakes = make_app(store=SqliteStore(path), overrides={"risk": {"max_trade_usdc": "50"}})
    for token in (TOKEN, TOKEN2):
        fakes.market.put(*book(token, bids=[("0.49", "500")], asks=[("0.51", "500")]))
    fakes.market.put(*book(TOKEN3, bids=[("0.97", "500")], asks=[("0.99", "500")]))
    try:
        for i in range(30):
            app.process(make_trade(leader=LEADER if i % 3 else OTHER, seq=i, price="0.50" if i != 7 else "0.99",
                                   token_id=TOKEN3 if i == 7 else TOKEN if i % 2 else TOKEN2))
        app.process(make_trade(side="SELL", seq=99, size="50"))
    finally:
        app.close()
    return path


def client_for(path, token_env="", environ=None, leaders=()):
    cfg = load_config(None, environ={}, overrides={
        "store": {"path": str(path)}, "dashboard": {"token_env": token_env, "port": 0},
        **({"": {}} if not leaders else {})})
    server = web_server({"default": cfg}, cfg.values["dashboard"], "127.0.0.1", environ=environ or {})
    app = server._server.config.app
    server._sock.close()  # the TestClient calls the app directly
    return TestClient(app)


def test_read_endpoints_answer_from_the_store(db):
    c = client_for(db)
    [f] = c.get("/api/v1/followers").json()
    assert (f["name"], f["trading_state"]) == ("default", "ACTIVE")
    o = c.get("/api/v1/overview").json()["followers"][0]
    with SqliteStore(db, read_only=True) as s:
        from datetime import datetime, timezone

        from copytrader.application.status import follower_status

        status = follower_status(s, datetime.now(timezone.utc))
    assert o["pnl"] == status["pnl"] and o["positions"] == status["positions"]  # status's numbers, not a twin
    assert o["limits"]["max_total_exposure_usdc"] == "1000" and o["limits"]["exposure_usdc"] == status["positions"][
        "exposure_usdc"]
    assert o["last_leader_trade"]["side"] == "SELL" and o["last_leader_trade"]["delay_s"] == 0.0
    positions = c.get("/api/v1/followers/default/positions").json()
    assert {p["token_id"] for p in positions} == {TOKEN, TOKEN2} and all(p["status"] == "open" for p in positions)
    stats = c.get("/api/v1/followers/default/stats").json()
    by_leader = {r["leader"]: r for r in stats["by_leader"]}
    from collections import Counter

    with SqliteStore(db, read_only=True) as s:
        expected = {who: dict(Counter(r.reason for r in s.history(1000) if r.leader == who and r.decision == "rejected"))
                    for who in (LEADER, OTHER)}
    assert expected[LEADER]["price_band"] == 1  # the 0.99 trade
    assert {who: by_leader[who]["rejected"] for who in (LEADER, OTHER)} == expected
    assert Decimal(by_leader[LEADER]["volume"]) > 0 and by_leader[LEADER]["slippage_mean_bps"] is not None
    eq = c.get("/api/v1/followers/default/equity").json()
    assert eq["unit"] == "USDC" and len(eq["points"]) == len(eq["drawdown"]) > 2
    leaders = {l["address"]: l for l in c.get("/api/v1/followers/default/leaders").json()}
    assert set(leaders) == {LEADER, OTHER} and not leaders[LEADER]["paused"]
    health = c.get("/api/v1/health").json()["followers"][0]
    assert health["cursors"] == {} and health["newest_leader_trade"]


def test_decisions_page_by_cursor_and_filter(db):
    c = client_for(db)
    with SqliteStore(db, read_only=True) as s:
        every = [r.intent_id for r in s.history(1000)]
    seen, before = [], None
    while True:
        page = c.get("/api/v1/followers/default/decisions", params={"limit": 7, **({"before": before} if before else {})}).json()
        seen += [d["intent_id"] for d in page["decisions"]]
        before = page["next"]
        if before is None:
            break
    assert seen == every and len(seen) == 31
    rejected = c.get("/api/v1/followers/default/decisions", params={"outcome": "rejected"}).json()["decisions"]
    assert ("price_band", "0.99") in [(d["reason"], d["leader_price"]) for d in rejected]
    assert {d["decision"] for d in rejected} == {"rejected"} and all(d["reason"] for d in rejected)
    mine = c.get("/api/v1/followers/default/decisions", params={"leader": OTHER.upper().replace("0X", "0x")}).json()
    assert len(mine["decisions"]) == 10 and {d["leader"] for d in mine["decisions"]} == {OTHER}
    since = c.get("/api/v1/followers/default/decisions", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert since["decisions"] == []
    for params, sentence in (({"outcome": "won"}, "outcome: expected one of copied, rejected, unfilled, open"),
                             ({"limit": 0}, "limit: expected 1 to 5000, got 0"),
                             ({"since": "yesterday"}, "since: expected an ISO 8601 time"),
                             ({"before": "x"}, "before: expected the next value of the previous page")):
        res = c.get("/api/v1/followers/default/decisions", params=params)
        assert res.status_code == 400 and res.json()["error"].startswith(sentence)
    res = c.get("/api/v1/followers/nobody/decisions")
    assert res.status_code == 404 and res.json()["error"] == "no follower named 'nobody' (followers: default)"


@pytest.mark.parametrize("params, index", [({"leader": LEADER}, "intents_leader"),
                                           ({"market": "0x" + "cd" * 32}, "intents_market"),
                                           ({"outcome": "rejected"}, "intents_skipped"),
                                           ({"outcome": "unfilled"}, "intents_unfilled"),
                                           ({"outcome": "open"}, "intents_open")])
def test_filtered_pages_are_read_through_an_index(db, params, index):
    """Each page's query is planned on an index (no scan of the whole history)."""
    from copytrader.ports import DecisionFilter

    with SqliteStore(db, read_only=True) as s:
        statements = []
        s._db.set_trace_callback(statements.append)
        s.decisions(DecisionFilter(**params), 100)
        [sql] = [q for q in statements if "FROM intents" in q]
        steps = [str(r[-1]) for r in s._db.execute(f"EXPLAIN QUERY PLAN {sql}")]
    # walks (or searches) the index, newest first, stopping at the page's end; intents_open holds the few
    # orders not settled, sorted after the search
    assert any(f"USING INDEX {index}" in step for step in steps), steps
    assert not any(step.startswith("SCAN") and "USING" not in step for step in steps), steps
    assert index == "intents_open" or not any("TEMP B-TREE" in step for step in steps), steps


def test_control_needs_the_token_and_is_recorded_with_its_source(db):
    read_only = client_for(db)
    res = read_only.post("/api/v1/followers/default/halt")
    assert res.status_code == 403 and "control is off (read-only dashboard)" in res.json()["error"]
    c = client_for(db, "CT_TOKEN", {"CT_TOKEN": SECRET})
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": SECRET}):
        res = c.post("/api/v1/followers/default/halt", headers=headers)
        assert res.status_code == 401 and res.headers["www-authenticate"] == "Bearer"
    with SqliteStore(db, read_only=True) as s:
        assert s.get_state().state.value == "ACTIVE" and s.controls() == []
    auth = {"Authorization": f"Bearer {SECRET}"}
    res = c.post("/api/v1/followers/default/halt", headers=auth, json={"reason": "desk says stop"})
    assert res.status_code == 200 and res.json()["actions"][0]["source"] == "api"
    res = c.post(f"/api/v1/followers/default/leaders/{OTHER}/pause", headers={**auth, "X-Copytrader-Client": "dashboard"})
    assert res.json()["actions"][0]["target"] == OTHER
    res = c.post(f"/api/v1/followers/default/leaders/{OTHER}/resume", headers=auth)
    assert res.status_code == 200
    res = c.post(f"/api/v1/followers/default/leaders/{OTHER}/resume", headers=auth)
    assert res.status_code == 400 and res.json()["error"] == f"leader {OTHER} is not paused in follower 'default'"
    assert c.get("/api/v1/followers/default/halt").status_code == 405
    with SqliteStore(db, read_only=True) as s:
        assert (s.get_state().state.value, s.get_state().reason) == ("HALTED", "desk says stop")
        assert [(a.action, a.source) for a in s.controls()] == [
            ("resume_leader", "api"), ("pause_leader", "dashboard"), ("halt", "api")]
    shown = c.get("/api/v1/followers/default/decisions", params={"limit": 100}).json()["decisions"]
    assert [d["action"] for d in shown if d["kind"] == "control"] == ["resume_leader", "pause_leader", "halt"]
    assert [a["action"] for a in c.get("/api/v1/controls").json()] == ["resume_leader", "pause_leader", "halt"]


def test_a_token_variable_that_is_not_set_is_one_sentence(db):
    from copytrader.entrypoints.config import ConfigError

    with pytest.raises(ConfigError, match="^config dashboard.token_env: environment variable CT_TOKEN is not set"):
        client_for(db, "CT_TOKEN", {})


def test_the_page_and_its_files_are_served_with_a_strict_policy(db):
    c = client_for(db)
    res = c.get("/")
    assert res.status_code == 200 and "<script src=\"/app.js\"" in res.text
    assert "default-src 'self'" in res.headers["content-security-policy"]
    js = c.get("/app.js").text
    assert "sessionStorage" in js and "http" not in js.replace("http://www.w3.org/2000/svg", "")  # no remote URL
    assert c.get("/api/v1/nope").status_code == 404


def test_dashboard_command_refuses_a_missing_database_in_one_sentence(tmp_path):
    from click.testing import CliRunner

    from copytrader.entrypoints.cli import main

    res = CliRunner().invoke(main, ["dashboard", "--db", str(tmp_path / "none.db"), "--port", "0"],
                             env={"COPYTRADER_CONFIG": None})
    assert res.exit_code == 2 and res.output.strip().splitlines() == [
        f"Error: database {tmp_path / 'none.db'} does not exist: check --db or store.path"]
    assert not (tmp_path / "none.db").exists()
