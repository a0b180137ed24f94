"""Use cases that drive the domain through the ports."""
from .runner import RunSummary, run
from .service import CopyService, EngineSettings, Outcome

__all__ = ["CopyService", "EngineSettings", "Outcome", "RunSummary", "run"]
