"""Run the reliability suite and print what it exercised (README quotes this):

    python -m tests.reliability [--kills 200] [--json figures.json] [pytest args...]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import pytest

from tests.reliability import FIGURES

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50, help="kill -9 points for the crash harness")
    parser.add_argument("--json", dest="json_out", help="also write the figures here")
    args, rest = parser.parse_known_args(argv)
    started = time.monotonic()
    webhooks = HERE.parent / "service" / "test_webhooks.py"  # the alerters' fault matrix
    code = pytest.main(["-q", "-p", "no:cacheprovider", str(HERE), str(webhooks), f"--kills={args.kills}", *rest])
    figures = dict(sorted(FIGURES.items()))
    figures["seconds"] = round(time.monotonic() - started)
    width = max(map(len, figures))
    print(f"\nreliability figures ({'all passed' if code == 0 else f'pytest exit {int(code)}'}; "
          f"Python {platform.python_version()}, {platform.machine()}):")
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"passed": code == 0, **figures}, indent=2) + "\n")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
