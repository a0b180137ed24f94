"""Suite-wide options."""
from __future__ import annotations


def pytest_addoption(parser) -> None:
    parser.addoption("--kills", type=int, default=50,
                     help="kill -9 points for the crash-consistency harness (CI: 50; try 200+)")
