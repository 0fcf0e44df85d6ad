"""Market data events."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from events._base import Event
from events.enums import Side


@dataclass(frozen=True, slots=True, kw_only=True)
class TickReceived(Event):
    """One public trade printed by a venue (the aggressor's side), as received by a feed."""

    venue: str
    trade_id: str
    price: Decimal
    quantity: Decimal
    side: Side
