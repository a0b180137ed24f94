"""`python -m bench.readme [results.json]`: the Benchmarks table of README.md from a results file."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from bench.__main__ import footer, rows_of, table

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def render(results: dict) -> str:
    return f"{START}\n{table(rows_of(results))}\n\n{footer(results)}\n{END}"


def main() -> None:
    results = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "bench" / "results.json").read_text())
    readme = ROOT / "README.md"
    text = readme.read_text()
    block = render(results)
    if START in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.replace("BENCH_TABLE", block)
    readme.write_text(text)


if __name__ == "__main__":
    main()
