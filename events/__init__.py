"""The shared language: every fact in the system is one of these events.

Imports nothing of ours; no I/O. See ``docs/events.md``.
"""

from events import validation
from events._base import Event, event_type, event_types
from events._ids import short_hash
from events.codec import DecodeError, decode, encode, event_to_dict
from events.control import (
    AlertNotified,
    BalanceReconciled,
    BalanceSnapshot,
    BreakerApplied,
    ConnectionChanged,
    EngineStarted,
    EngineStopped,
    EquityReported,
    FeedStopped,
    OpenOrderSnapshot,
    PositionSnapshot,
    ReconciliationDifference,
    TradingHalted,
    TradingResumed,
)
from events.enums import Direction, Liquidity, OrderType, Side
from events.envelope import Envelope
from events.market import TickReceived
from events.topics import DEADLETTER, TICKS, TRADING, Topics
from events.trading import (
    OrderAccepted,
    OrderCancelled,
    OrderCancelRequested,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    SignalGenerated,
    StopCancelled,
    StopPlaced,
    StopTriggered,
)
from events.validation import (
    INSTRUMENT_PATTERN,
    MAX_RECORD_BYTES,
    InvalidEvent,
    finite_decimal,
    validate,
    validate_tick,
)

__all__ = [
    "DEADLETTER",
    "INSTRUMENT_PATTERN",
    "MAX_RECORD_BYTES",
    "TICKS",
    "TRADING",
    "AlertNotified",
    "BalanceReconciled",
    "BalanceSnapshot",
    "BreakerApplied",
    "ConnectionChanged",
    "DecodeError",
    "Direction",
    "EngineStarted",
    "EngineStopped",
    "Envelope",
    "EquityReported",
    "Event",
    "FeedStopped",
    "InvalidEvent",
    "Liquidity",
    "OpenOrderSnapshot",
    "OrderAccepted",
    "OrderCancelRequested",
    "OrderCancelled",
    "OrderExpired",
    "OrderFilled",
    "OrderRejected",
    "OrderSubmitted",
    "OrderType",
    "PositionSnapshot",
    "ReconciliationDifference",
    "Side",
    "SignalGenerated",
    "StopCancelled",
    "StopPlaced",
    "StopTriggered",
    "TickReceived",
    "Topics",
    "TradingHalted",
    "TradingResumed",
    "decode",
    "encode",
    "event_to_dict",
    "event_type",
    "event_types",
    "finite_decimal",
    "short_hash",
    "validate",
    "validate_tick",
    "validation",
]
