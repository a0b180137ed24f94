"""Reliability: crash consistency, fault injection, fuzzed input, secret hygiene.

Tests add what they exercised to ``FIGURES``; ``python -m tests.reliability``
runs them all and prints the figures README quotes."""
from collections import Counter

FIGURES: Counter = Counter()
