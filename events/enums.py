"""Small closed vocabularies shared by events (strings on the wire)."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"  # a venue-native stop: at market once a trade reaches its trigger price
    STOP_LIMIT = "stop_limit"  # a venue-native stop-limit: a limit at its limit price once the trigger is reached

    @property
    def is_stop(self) -> bool:
        return self is OrderType.STOP or self is OrderType.STOP_LIMIT


class Direction(StrEnum):
    LONG = "long"
    SHORT = "short"
    FLAT = "flat"


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"
