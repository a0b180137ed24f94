"""Shared fixtures of the integration tests."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from copytrader.entrypoints.cli import main


@pytest.fixture
def cli(tmp_path):
    """``cli(*args, env=None)``: the command line on a database of its own (``cli.db``), no config file."""
    runner = CliRunner()
    db = str(tmp_path / "ct.db")

    def invoke(*args, env=None):
        return runner.invoke(main, ["--db", db, *args], env={"COPYTRADER_CONFIG": None, **(env or {})},
                             catch_exceptions=False)
    invoke.db = db
    return invoke
