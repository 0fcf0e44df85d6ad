"""Strategies: the public API (:mod:`engine.core.strategies.api`) and the built-ins written against it."""

from engine.core.strategies.api import (
    Bracket,
    Cancel,
    Candle,
    DayStarted,
    Intent,
    Limit,
    Market,
    NoParams,
    OrderUpdate,
    Result,
    Stop,
    Strategy,
    Target,
    Timer,
    View,
)
from engine.core.strategies.bollinger import Bollinger, BollingerParams, BollingerState
from engine.core.strategies.ma_cross import MaCross, MaCrossParams, MaCrossState
from engine.core.strategies.quoting import Quoting, QuotingParams, QuotingState

__all__ = [
    "Bollinger",
    "BollingerParams",
    "BollingerState",
    "Bracket",
    "Cancel",
    "Candle",
    "DayStarted",
    "Intent",
    "Limit",
    "MaCross",
    "MaCrossParams",
    "MaCrossState",
    "Market",
    "NoParams",
    "OrderUpdate",
    "Quoting",
    "QuotingParams",
    "QuotingState",
    "Result",
    "Stop",
    "Strategy",
    "Target",
    "Timer",
    "View",
]
