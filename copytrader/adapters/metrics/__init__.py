"""Metrics (Prometheus, imported lazily) and the health/metrics HTTP endpoint."""
