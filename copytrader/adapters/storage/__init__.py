"""Stores: SQLite (default) and in-memory."""
