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
