"""The public strategy API: what a user's strategy imports (``from engine.strategy import Strategy, Target``).

See docs/strategies.md for a tutorial, and :mod:`engine.core.strategies.api` for the details of each type. Stable:
names are added here, never removed or changed within a major version.
"""

from decimal import Decimal

from engine.core.orders import Order, OrderStatus
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
from events import (
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    Side,
    TickReceived,
)

__all__ = [
    "Bracket",
    "Cancel",
    "Candle",
    "DayStarted",
    "Decimal",
    "Intent",
    "Limit",
    "Market",
    "NoParams",
    "Order",
    "OrderAccepted",
    "OrderCancelled",
    "OrderExpired",
    "OrderFilled",
    "OrderRejected",
    "OrderStatus",
    "OrderUpdate",
    "Result",
    "Side",
    "Stop",
    "Strategy",
    "Target",
    "TickReceived",
    "Timer",
    "View",
]
