"""Entrypoints: configuration, the DI container, the CLI and the embedding API."""
