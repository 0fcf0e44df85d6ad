"""Decisions and order lifecycle events.

An order moves through: OrderSubmitted -> OrderAccepted | OrderRejected;
OrderAccepted -> OrderFilled (partial, repeated) ... -> OrderFilled (leaves 0);
OrderAccepted -> OrderCancelRequested -> OrderCancelled; OrderAccepted -> OrderExpired (the venue or
the execution service gave up on it). See ``engine.orders``. A stop the engine holds (StopPlaced) ends in
StopTriggered, followed by the order it sends, or in StopCancelled (``engine.core.stops``).

Events a venue reports (accepted, rejected by the venue, filled, cancelled, expired) carry ``raw``: the
venue's response as JSON text ("" for the paper venue), so a decision taken on it can be re-run offline.
v1 of these events had no ``raw``; :mod:`events.upcasters` reads them as ``raw=""``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from events._base import Event
from events.enums import Direction, Liquidity, OrderType, Side


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalGenerated(Event):
    """A strategy changed its mind about the position it wants."""

    strategy: str
    direction: Direction
    target_position: Decimal
    price: Decimal
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderSubmitted(Event):
    """The engine decided to send an order and it passed pre-trade risk.

    ``order_type`` ``stop`` / ``stop_limit``: a stop the venue holds (``venue.stops = "native"``), which it sends
    at market (or as a limit at ``limit_price``) once a trade reaches ``trigger_price`` (at or above it for a buy, at
    or below it for a sell). v2 added ``trigger_price``; an order without one is written in the v1 shape, so a log
    without native stops stays byte for byte what it was (:mod:`events.upcasters` reads v1 as ``None``)."""

    VERSION = 2
    client_order_id: str
    strategy: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    trigger_price: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRejected(Event):
    """An order was refused, by pre-trade risk (``by='risk'``) or by the venue (``by='venue'``)."""

    client_order_id: str
    strategy: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    by: str
    rule: str
    reason: str
    raw: str = ""

    VERSION = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderAccepted(Event):
    """The venue acknowledged the order and gave it an id."""

    VERSION = 2
    client_order_id: str
    venue: str
    venue_order_id: str
    raw: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderFilled(Event):
    """A (partial or full) execution. ``trade_id`` is the venue's id: unique per venue."""

    client_order_id: str
    venue: str
    venue_order_id: str
    trade_id: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    cumulative_quantity: Decimal
    leaves_quantity: Decimal
    raw: str = ""

    VERSION = 2

    @property
    def is_final(self) -> bool:
        return self.leaves_quantity == 0


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancelRequested(Event):
    """The engine asked the venue to cancel an open order."""

    client_order_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancelled(Event):
    """The venue confirmed the order is no longer working; nothing more will fill."""

    VERSION = 2
    client_order_id: str
    venue: str
    reason: str
    filled_quantity: Decimal
    raw: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderExpired(Event):
    """The order ended without a fill of its remainder because time ran out: the venue expired it (time in
    force), or the execution service refused to send a command older than its limit."""

    client_order_id: str
    venue: str
    reason: str
    filled_quantity: Decimal
    raw: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StopPlaced(Event):
    """The engine holds a stop for a strategy (engine-managed, on any venue): when a trade of the instrument reaches
    ``trigger_price`` (at or above it for a buy, at or below it for a sell), the engine sends the order, at market,
    or with ``limit_price`` (a stop-limit) a limit at that price, and writes :class:`StopTriggered` before it.

    ``take_profit_id``: in a bracket, the take-profit order it is paired with: one cancels the other (a filled
    take-profit cancels the stop, a triggered stop cancels the take-profit; each fill of the take-profit takes its
    quantity off the stop's)."""

    client_order_id: str  # the stop's own (the strategy's prefix); the order it sends gets another
    strategy: str
    side: Side
    quantity: Decimal
    trigger_price: Decimal
    limit_price: Decimal | None = None
    take_profit_id: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StopTriggered(Event):
    """A trade reached a stop's trigger: ``order_id`` is the client order id of the order it sends (the next event
    of this input), for ``quantity`` (what is left of the stop's)."""

    client_order_id: str
    strategy: str
    order_id: str
    price: Decimal  # the trade's that reached the trigger
    quantity: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class StopCancelled(Event):
    """A held stop that will not trigger: cancelled by its strategy, or by its bracket's take-profit filled."""

    client_order_id: str
    strategy: str
    reason: str
