"""A durable run with group commit stores what a run committing every trade alone stores."""
from __future__ import annotations

import json
import sqlite3

from copytrader.entrypoints.config import SAMPLE_ACTIVITY

TABLES = ("trades", "intents", "positions", "daily_pnl", "cursors", "state", "quarantine", "telemetry")
KEYED = ("leader_holdings", "orders")  # WITHOUT ROWID


def dump(db: str) -> dict:
    with sqlite3.connect(db) as con:
        rows = {t: con.execute(f"SELECT rowid, * FROM {t} ORDER BY rowid").fetchall() for t in TABLES}
        return {**rows, **{t: con.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in KEYED}}


def test_group_commit_stores_the_same_rows_as_committing_each_trade(cli, tmp_path):
    rows = sum(1 for line in SAMPLE_ACTIVITY.read_text().splitlines() if line.strip())
    grouped = json.loads(cli("run", "--sample", "--json").stdout)  # the defaults: 256 rows, 100 ms
    alone = tmp_path / "alone.db"
    single = json.loads(cli("--db", str(alone), "run", "--sample", "--json",
                            env={"COPYTRADER_STORE__GROUP_COMMIT_ROWS": "1"}).stdout)
    assert grouped == single and grouped["seen"] == rows and grouped["outcomes"]["rejected"] > 0
    assert dump(cli.db) == dump(str(alone))  # the same decisions, ids, rowids and cursors, all on disk


def test_a_bad_group_commit_setting_is_one_sentence(cli):
    res = cli("run", "--sample", env={"COPYTRADER_STORE__GROUP_COMMIT_MS": "soon"})
    assert res.exit_code == 2 and "GROUP_COMMIT_MS" in res.output and "Traceback" not in res.output
