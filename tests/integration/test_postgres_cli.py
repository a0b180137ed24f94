"""The engine end to end on PostgreSQL, chosen by store.url."""
from __future__ import annotations

import json

from click.testing import CliRunner

from copytrader.entrypoints.cli import main


def _invoke(*args, env):
    return CliRunner().invoke(main, list(args), env={"COPYTRADER_CONFIG": None, **env}, catch_exceptions=False)


def test_sample_run_on_postgres_is_idempotent_and_reports_read_it(pg_url, pg_schema):
    env = {"COPYTRADER_STORE__URL": pg_url, "COPYTRADER_STORE__SCHEMA": pg_schema}
    first = _invoke("run", "--sample", "--json", env=env)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["copied"] > 50 and report["outcomes"].get("unknown", 0) == 0
    again = _invoke("run", "--sample", "--json", env=env)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["seen"] == 0  # cursor and trade ids are in PostgreSQL
    positions = _invoke("positions", "--json", env=env)
    assert positions.exit_code == 0, positions.output
    assert len(json.loads(positions.stdout)) == len(report["positions"])
    history = _invoke("history", "--json", "--limit", "500", env=env)
    assert len(json.loads(history.stdout)) == sum(report["outcomes"].values()) - report["outcomes"].get("duplicate", 0) - report["outcomes"].get("quarantined", 0) - report["outcomes"].get("observed", 0)


def test_config_check_redacts_the_database_password():
    url = "postgresql://ct:s3cretpass@127.0.0.1:5432/ct"
    res = _invoke("config", "check", "--json", env={"COPYTRADER_STORE__URL": url})
    assert res.exit_code == 0, res.output
    assert "s3cretpass" not in res.output and "ct:***@127.0.0.1:5432" in res.output


def test_bad_store_url_is_one_line_exit_2():
    res = _invoke("config", "check", env={"COPYTRADER_STORE__URL": "mysql://u:pw@h/db"})
    assert res.exit_code == 2 and "store.url" in res.output and "pw@" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_halt_next_to_a_running_worker_on_postgres(pg_url, pg_schema):
    from copytrader.adapters.storage.postgres import PostgresStore

    env = {"COPYTRADER_STORE__URL": pg_url, "COPYTRADER_STORE__SCHEMA": pg_schema}
    with PostgresStore(pg_url, pg_schema) as worker:  # holds the follower's lease
        refused = _invoke("run", "--sample", env=env)
        assert refused.exit_code == 1 and "in use by another copytrader worker" in refused.output
        res = _invoke("halt", "--reason", "desk says stop", env=env)
        assert res.exit_code == 0, res.output
        state = worker.get_state()
        assert state.state.value == "HALTED" and state.reason == "desk says stop"


def test_report_from_postgres_equals_the_report_from_sqlite(pg_url, pg_schema, tmp_path):
    """The same sample on both stores: `copytrader report` reads either and gives the same numbers."""
    url = pg_url.replace("postgresql://postgres@", "postgresql://postgres:pw-s3cret@")  # the test cluster trusts
    env = {"COPYTRADER_STORE__URL": url, "COPYTRADER_STORE__SCHEMA": pg_schema}
    assert _invoke("run", "--sample", env=env).exit_code == 0
    db = str(tmp_path / "ct.db")
    assert _invoke("--db", db, "run", "--sample", env={}).exit_code == 0
    from_pg = _invoke("report", "--json", "--out", str(tmp_path / "pg"), env=env)  # the config's store
    assert from_pg.exit_code == 0, from_pg.output
    from_sqlite = _invoke("report", "--db", db, "--json", "--out", str(tmp_path / "lite"), env={})
    [pg], [lite] = json.loads(from_pg.stdout)["runs"], json.loads(from_sqlite.stdout)["runs"]
    assert pg["counts"]["copied"] > 50 and pg["label"] == pg_schema
    assert "pw-s3cret" not in from_pg.output and ("postgres:***@" in pg["meta"]["database"] or url == pg_url)
    assert not any("pw-s3cret" in f.read_text(errors="replace") for f in (tmp_path / "pg").iterdir())
    for run in (pg, lite):
        run.pop("label"), run.pop("meta")
    assert pg == lite
    both = _invoke("report", "--db", url, "--schema", pg_schema, "--compare", db, "--out", str(tmp_path / "cmp"),
                   env={})
    assert both.exit_code == 0, both.output
    assert (tmp_path / "cmp" / "report.html").is_file()


def test_run_summary_on_postgres_gives_the_report_pnl(pg_url, pg_schema, tmp_path):
    env = {"COPYTRADER_STORE__URL": pg_url, "COPYTRADER_STORE__SCHEMA": pg_schema}
    run = _invoke("run", "--sample", "--json", env=env)
    assert run.exit_code == 0, run.output
    report = _invoke("report", "--json", "--out", str(tmp_path / "pg"), env=env)
    assert report.exit_code == 0, report.output
    pnl, [r] = json.loads(run.stdout)["pnl"], json.loads(report.stdout)["runs"]
    assert {k: r["pnl"][k] for k in pnl} == pnl and pnl["marking"].startswith("marked to the leaders'")
