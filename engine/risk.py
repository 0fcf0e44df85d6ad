"""Pre-trade risk: a pure check that turns an order request into OrderSubmitted or OrderRejected.

Rules, in the order they are checked (the first that fails names the rejection):

- ``quantity_positive``: the quantity must be above zero;
- ``max_order_notional``: quantity x price (the limit price, else the last trade price) <= limit;
- ``max_position``: |position + open orders + this order| <= limit, unless the order reduces
  the absolute exposure (reducing risk is always allowed).

While trading is halted (the circuit breaker), every new order is refused with rule ``halted``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from events import OrderRejected, OrderSubmitted


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_order_notional: Decimal
    max_position: Decimal


def check(
    order: OrderSubmitted,
    *,
    position: Decimal,
    open_exposure: Decimal,
    last_price: Decimal,
    limits: RiskLimits,
) -> OrderSubmitted | OrderRejected:
    """``order`` if it passes every rule, else the rejection naming the first rule it broke."""

    def reject(rule: str, reason: str) -> OrderRejected:
        return OrderRejected(
            instrument=order.instrument, client_order_id=order.client_order_id, strategy=order.strategy,
            side=order.side, order_type=order.order_type, quantity=order.quantity,
            limit_price=order.limit_price, by="risk", rule=rule, reason=reason,
        )

    if order.quantity <= 0:
        return reject("quantity_positive", f"quantity {order.quantity} is not above zero")
    price = order.limit_price if order.limit_price is not None else last_price
    notional = order.quantity * price
    if notional > limits.max_order_notional:
        return reject(
            "max_order_notional",
            f"notional {notional} ({order.quantity} x {price}) exceeds {limits.max_order_notional}",
        )
    before = position + open_exposure
    after = before + order.side.sign * order.quantity
    if abs(after) > limits.max_position and abs(after) > abs(before):
        return reject(
            "max_position",
            f"position would reach {after} (now {position}, open orders {open_exposure}); "
            f"limit {limits.max_position}",
        )
    return order


def halted_rejection(order: OrderSubmitted) -> OrderRejected:
    """Trading is halted (circuit breaker): every new order is refused; cancels are not orders and pass."""
    return OrderRejected(
        instrument=order.instrument, client_order_id=order.client_order_id, strategy=order.strategy,
        side=order.side, order_type=order.order_type, quantity=order.quantity, limit_price=order.limit_price,
        by="risk", rule="halted", reason="trading is halted: only cancels pass",
    )
