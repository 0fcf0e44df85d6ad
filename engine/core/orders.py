"""The order state machine: a pure fold of order events.

::

    submitted --accepted--> accepted --fill--> partially_filled --fill--> filled
        |                      |                    |
        +--rejected            +--cancel requested--+--> cancel_requested --cancelled--> cancelled
        +--expired             +--cancelled---------+                   +--expired
                               +--expired-----------+

``filled``, ``cancelled``, ``rejected`` and ``expired`` are terminal. A fill whose venue trade id
was already applied changes nothing. A transition the machine does not allow raises
:class:`InvalidTransition`; the engine and the projections never apply it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from events import (
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRequested,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    Side,
)


class OrderStatus(StrEnum):
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        return not self.is_terminal


_TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED})
_WORKING = frozenset({OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCEL_REQUESTED})


class InvalidTransition(ValueError):
    """An event that the order's current state does not allow."""


@dataclass(frozen=True, slots=True)
class Order:
    client_order_id: str
    instrument: str
    strategy: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    status: OrderStatus
    venue_order_id: str | None = None
    filled_quantity: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    reject_rule: str | None = None
    reject_reason: str | None = None
    trade_ids: frozenset[str] = frozenset()
    trigger_price: Decimal | None = None  # a venue-native stop's (order type stop / stop_limit)

    @property
    def leaves_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def avg_fill_price(self) -> Decimal | None:
        return self.notional / self.filled_quantity if self.filled_quantity else None

    @property
    def signed_leaves(self) -> Decimal:
        return self.side.sign * self.leaves_quantity if self.status.is_open else Decimal(0)


ORDER_EVENTS = (
    OrderSubmitted,
    OrderRejected,
    OrderAccepted,
    OrderFilled,
    OrderCancelRequested,
    OrderCancelled,
    OrderExpired,
)


def _refuse(order: Order | None, event: Event) -> InvalidTransition:
    state = "new" if order is None else order.status.value
    coid = getattr(event, "client_order_id", "?")
    return InvalidTransition(f"order {coid}: {event.TYPE} is not allowed in state {state}")


def apply(order: Order | None, event: Event) -> Order:
    """The order after ``event``; raise InvalidTransition for a transition that is not allowed."""
    if isinstance(event, OrderSubmitted):
        if order is not None:
            same = (order.side, order.order_type, order.quantity, order.limit_price, order.trigger_price) == (
                event.side,
                event.order_type,
                event.quantity,
                event.limit_price,
                event.trigger_price,
            )
            if not same:
                raise _refuse(order, event)
            return order  # the same submit delivered twice
        return Order(
            event.client_order_id,
            event.instrument,
            event.strategy,
            event.side,
            event.order_type,
            event.quantity,
            event.limit_price,
            OrderStatus.SUBMITTED,
            trigger_price=event.trigger_price,
        )
    if isinstance(event, OrderRejected):
        if order is None:  # rejected before submission (by risk): the order exists only as a rejection
            return Order(
                event.client_order_id,
                event.instrument,
                event.strategy,
                event.side,
                event.order_type,
                event.quantity,
                event.limit_price,
                OrderStatus.REJECTED,
                reject_rule=event.rule,
                reject_reason=event.reason,
            )
        if order.status is OrderStatus.REJECTED:
            return order
        if order.status is not OrderStatus.SUBMITTED:
            raise _refuse(order, event)
        return replace(order, status=OrderStatus.REJECTED, reject_rule=event.rule, reject_reason=event.reason)
    if order is None:
        raise _refuse(order, event)
    if isinstance(event, OrderAccepted):
        if order.status is OrderStatus.SUBMITTED:
            return replace(order, status=OrderStatus.ACCEPTED, venue_order_id=event.venue_order_id)
        if order.status in _WORKING or order.status is OrderStatus.FILLED:
            return order  # a late or repeated acknowledgement
        raise _refuse(order, event)
    if isinstance(event, OrderFilled):
        if event.trade_id in order.trade_ids:
            return order
        if order.status not in _WORKING and order.status is not OrderStatus.SUBMITTED:
            raise _refuse(order, event)
        filled = order.filled_quantity + event.quantity
        if filled > order.quantity:
            raise InvalidTransition(
                f"order {order.client_order_id}: fill {event.trade_id} of {event.quantity} would fill "
                f"{filled} of {order.quantity}"
            )
        status = (
            OrderStatus.FILLED
            if filled == order.quantity
            else (
                OrderStatus.CANCEL_REQUESTED
                if order.status is OrderStatus.CANCEL_REQUESTED
                else OrderStatus.PARTIALLY_FILLED
            )
        )
        return replace(
            order,
            status=status,
            venue_order_id=order.venue_order_id or event.venue_order_id,
            filled_quantity=filled,
            notional=order.notional + event.quantity * event.price,
            fees=order.fees + event.fee,
            trade_ids=order.trade_ids | {event.trade_id},
        )
    if isinstance(event, OrderCancelRequested):
        if order.status is OrderStatus.CANCEL_REQUESTED or order.status.is_terminal:
            return order  # asking twice, or too late: nothing changes
        return replace(order, status=OrderStatus.CANCEL_REQUESTED)
    if isinstance(event, OrderCancelled):
        if order.status is OrderStatus.CANCELLED:
            return order
        if order.status.is_terminal:
            raise _refuse(order, event)
        return replace(order, status=OrderStatus.CANCELLED)
    if isinstance(event, OrderExpired):
        if order.status is OrderStatus.EXPIRED:
            return order
        if order.status.is_terminal:
            raise _refuse(order, event)
        return replace(order, status=OrderStatus.EXPIRED)
    raise TypeError(f"not an order event: {event.TYPE}")
