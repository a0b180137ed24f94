"""copytrader's benchmark suite: `python -m bench [--quick] [--json PATH]` from the repository root.

Measures our own costs next to baselines measured in the same run (the CLOB
SDK's bare build+sign, the SDK's import time, web3's log decoding), prints a
table with ratios and targets, and writes JSON (bench/results.json by
default). Timings are facts about one machine: tests never assert them.
"""
