"""Executors: paper (mock) here; the live CLOB V2 executor is loaded lazily."""
