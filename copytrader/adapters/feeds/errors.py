"""The errors of feeds: apart from ``http`` so a file replay never imports urllib."""
from __future__ import annotations


class FeedError(RuntimeError):
    """A feed could not be read; the message is one line naming the endpoint."""


class FeedUnavailable(FeedError):
    """A remote feed did not answer (offline, refused, server errors): a runtime failure."""
