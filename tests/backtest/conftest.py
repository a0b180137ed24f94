"""Shared helpers of the backtest and report tests."""
from __future__ import annotations

from click.testing import CliRunner

from copytrader.entrypoints.cli import main


def invoke(*args):
    """The command line, without a config file (exceptions propagate)."""
    return CliRunner().invoke(main, list(args), env={"COPYTRADER_CONFIG": None}, catch_exceptions=False)
