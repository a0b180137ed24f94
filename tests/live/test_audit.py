"""`copytrader audit`: go/no-go from evidence (prototype step 5)."""
from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

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
