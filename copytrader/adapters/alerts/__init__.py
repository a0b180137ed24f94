"""Alerters."""
