"""The pure core: model, sizing, validation, risk kernel, positions and PnL."""
from .model import (
    Approve, CopyIntent, ExecStatus, ExecutionResult, IntentRecord, IntentStatus, LeaderTrade,
    MarketInfo, OrderBook, OrderType, PriceLevel, Reason, Reduce, Reject, RiskDecision, Side,
    TradingState,
)
from .portfolio import Portfolio, Position
from .risk import RiskKernel, RiskLimits
from .sizing import FollowerSettings, LeaderSettings, SizingMode, SizingPolicy, size_copy
from .validation import validate_intent, validate_trade

__all__ = [
    "Approve", "CopyIntent", "ExecStatus", "ExecutionResult", "FollowerSettings", "IntentRecord",
    "IntentStatus", "LeaderSettings", "LeaderTrade", "MarketInfo", "OrderBook", "OrderType",
    "Portfolio", "Position", "PriceLevel", "Reason", "Reduce", "Reject", "RiskDecision",
    "RiskKernel", "RiskLimits", "Side", "SizingMode", "SizingPolicy", "TradingState",
    "size_copy", "validate_intent", "validate_trade",
]
