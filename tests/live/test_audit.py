"""`copytrader audit`: go/no-go from evidence (prototype step 5)."""
from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from click.testing import CliRunner

from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.domain.model import IntentRecord, IntentStatus
from copytrader.entrypoints.cli import main
from copytrader.testing import CONDITION, LEADER, T0, TOKEN


@pytest.fixture
def cli(tmp_path):
    def invoke(*args, env=None):
        return CliRunner().invoke(main, ["--log-level", "error", "--db", str(tmp_path / "ct.db"), *args],
                                  env={"COPYTRADER_CONFIG": None, **(env or {})})
    invoke.db = tmp_path / "ct.db"
    invoke.tmp = tmp_path
    return invoke


def _verdict(res):
    data = json.loads(res.stdout)
    return data["verdict"], {c["name"]: c for c in data["criteria"]}


def test_go_after_a_paper_run_with_reports(cli):
    run = cli("run", "--sample", "--json")
    copied = json.loads(run.stdout)["copied"]
    res = cli("audit", "--json")
    verdict, criteria = _verdict(res)
    assert res.exit_code == 0 and verdict == "GO", res.output
    assert set(criteria) == {"parity break", "risk violation", "import leakage", "dependency sprawl",
                             "non-determinism", "operational fragility"}
    assert f"{copied} fills" in criteria["risk violation"]["evidence"] and copied > 0
    folder = cli.tmp / "audit"
    assert json.loads((folder / "audit.json").read_text())["verdict"] == "GO"
    assert "| parity break | pass |" in (folder / "audit.md").read_text()


def _record(n, **kw):
    base = dict(intent_id=f"i{n}", trade_id=f"t{n}", follower="default", leader=LEADER, token_id=TOKEN,
                condition_id=CONDITION, side="BUY", leader_size=Decimal(100), leader_price=Decimal("0.5"),
                created_at=T0 + timedelta(seconds=n), decision="approved", status=IntentStatus.FILLED,
                size=Decimal(400), limit_price=Decimal("0.5"), order_type="FOK", filled_size=Decimal(400),
                avg_price=Decimal("0.5"))
    return IntentRecord(**{**base, **kw})


def test_a_fill_beyond_a_limit_is_no_go(cli):
    with SqliteStore(cli.db) as store:
        store.put_intent(_record(1))  # 200 USDC in one order; the default cap is 100
    res = cli("audit", "--json")
    verdict, criteria = _verdict(res)
    assert res.exit_code == 1 and verdict == "NO-GO"
    assert not criteria["risk violation"]["passed"] and "max_trade_usdc" in criteria["risk violation"]["evidence"]


def test_unknown_orders_and_faults_are_no_go(cli):
    with SqliteStore(cli.db) as store:
        store.put_intent(_record(1, size=Decimal(10), filled_size=Decimal(10)))
        store.put_intent(_record(2, status=IntentStatus.UNKNOWN, filled_size=Decimal(0), avg_price=None,
                                 error="POST /order: no answer (ReadTimeout)"))
    verdict, criteria = _verdict(cli("audit", "--json"))
    assert verdict == "NO-GO" and not criteria["operational fragility"]["passed"]
    assert "1 unknown" in criteria["operational fragility"]["evidence"]


def test_dependency_budget_is_enforced(cli):
    res = cli("audit", "--json", env={"COPYTRADER_AUDIT__MAX_CORE_DEPENDENCIES": "2"})
    verdict, criteria = _verdict(res)
    assert verdict == "NO-GO" and not criteria["dependency sprawl"]["passed"]
    assert criteria["import leakage"]["passed"] and criteria["non-determinism"]["passed"]


def test_a_fresh_database_is_inconclusive_not_go(cli):
    with SqliteStore(cli.db):
        pass  # a database with no fills and no orders
    res = cli("audit", "--json")
    verdict, criteria = _verdict(res)
    assert res.exit_code == 3 and verdict == "INCONCLUSIVE", res.output
    for name in ("risk violation", "operational fragility"):
        assert criteria[name]["passed"] is None and criteria[name]["result"] == "no evidence"
        assert "missing:" in criteria[name]["evidence"] and str(cli.db) in criteria[name]["evidence"]
    assert criteria["parity break"]["passed"] and criteria["non-determinism"]["passed"]
    text = cli("audit")
    assert text.exit_code == 3 and "verdict: INCONCLUSIVE" in text.output
    assert "no evidence risk violation" in text.output and "no fills in database" in text.output
    assert "| risk violation | no evidence |" in (cli.tmp / "audit" / "audit.md").read_text()


def test_no_database_at_all_is_inconclusive_and_says_so(cli):
    res = cli("audit", "--json")
    verdict, criteria = _verdict(res)
    assert res.exit_code == 3 and verdict == "INCONCLUSIVE"
    assert "does not exist" in criteria["risk violation"]["evidence"]


def _dist(site, name, *requires, extras=()):
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0",
             *(f"Provides-Extra: {e}" for e in extras), *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def test_the_closure_follows_extras_of_dependencies_markers_and_names_what_is_not_installed(tmp_path, monkeypatch):
    from copytrader.entrypoints.audit import closure

    site = tmp_path / "site"
    site.mkdir()
    _dist(site, "ct-root", "ct-core", 'ct-a; extra == "x"', 'ct-b[fast]; extra == "x"',
          'ct-old; python_version < "3"', 'ct-absent>=1; extra == "x"', 'ct-other; extra == "y"', extras=("x", "y"))
    _dist(site, "ct-core")
    _dist(site, "ct-a", "ct-core")
    _dist(site, "ct-b", 'ct-d; extra == "fast"', extras=("fast",))
    _dist(site, "ct-d", "ct-e")
    _dist(site, "ct-e")
    _dist(site, "ct-old")
    _dist(site, "ct-other")
    monkeypatch.syspath_prepend(str(site))
    core = closure("", root="ct-root")
    assert core.installed == ("ct-core",) and core.missing == ()
    x = closure("x", root="ct-root")
    assert x.installed == ("ct-a", "ct-b", "ct-core", "ct-d", "ct-e")  # ct-d only through ct-b[fast]
    assert x.missing == ("ct-absent",)
    assert "at least 6" in x.describe() and "ct-absent" in x.describe() and "cannot be counted" in x.describe()


def test_the_dependency_criterion_counts_the_whole_live_closure(cli):
    from copytrader.entrypoints.audit import closure

    pytest.importorskip("web3")
    pytest.importorskip("psycopg")
    live, postgres = closure("live"), closure("postgres")
    # transitive requirements (web3 -> eth-abi, httpx -> httpcore), not just the extra's own list
    assert {"web3", "eth-abi", "eth-account", "polymarket-client", "pydantic", "httpx", "httpcore"} <= set(live.installed)
    assert "psycopg-binary" in postgres.installed  # psycopg[binary]: the extra of a dependency
    verdict, criteria = _verdict(cli("audit", "--json"))
    evidence = criteria["dependency sprawl"]["evidence"]
    assert f"[live] {len(live.installed)}" in evidence and len(live.installed) > 30
    assert f"[postgres] {len(postgres.installed)}" in evidence
    assert criteria["dependency sprawl"]["passed"] is True
