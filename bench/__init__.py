"""copytrader's benchmark suite: `python -m bench [--quick] [--json PATH]` from the repository root.

Measures our own costs next to baselines measured in the same run (issue 20's floors: bare
sqlite3 writing the engine's rows, the feed alone, and the code before issue 20, commit
e1cbd7b; the CLOB SDK's bare build+sign, the SDK's import time, web3's log decoding), prints a
table with ratios, targets and pass/FAIL, and writes JSON (bench/results.json by default);
bench/__main__.py's docstring defines issue 20's targets. `python -m bench.callgrind` counts
instructions per trade. Timings are facts about one machine: tests never assert them.
"""
