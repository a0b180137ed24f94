"""Market data adapters."""
