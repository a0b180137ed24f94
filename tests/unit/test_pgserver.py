"""The test suite's own PostgreSQL helper: skip or fail, and why."""
from __future__ import annotations

import pytest

from tests import pgserver


def test_no_binaries_says_what_to_install(monkeypatch):
    monkeypatch.setattr(pgserver, "_bin_dir", lambda: None)
    with pytest.raises(RuntimeError, match="apt-get install postgresql"):
        pgserver.Cluster().start()


@pytest.mark.parametrize("env, required", [({}, False), ({"CI": "true"}, True),
                                           ({"COPYTRADER_REQUIRE_PG": "1"}, True),
                                           ({"COPYTRADER_REQUIRE_PG": "0"}, False)])
def test_required_under_ci_or_when_asked(monkeypatch, env, required):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("COPYTRADER_REQUIRE_PG", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert pgserver.required() is required


def test_the_suites_pg_variables_are_not_config_settings():
    from copytrader.entrypoints.config import load_config

    cfg = load_config(None, environ={"COPYTRADER_REQUIRE_PG": "1",
                                     "COPYTRADER_TEST_PG_URL": "postgresql://u:pw@127.0.0.1/x"})
    assert cfg.store_kind == "sqlite"
