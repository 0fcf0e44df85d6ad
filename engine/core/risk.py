"""Pre-trade risk: a pure check that turns an order request into OrderSubmitted or OrderRejected.

Rules, in the order they are checked (the first that fails names the rejection):

- ``quantity_positive``: the quantity must be above zero;
- ``max_order_notional``: quantity x price (the limit price, else a native stop's trigger price, else the last trade
  price) <= limit;
- ``max_position``: |position + open orders + this order| <= limit, unless the order reduces
  the absolute exposure (reducing risk is always allowed);
- ``max_open_orders``: the instrument's open orders (submitted, working or being cancelled) must be
  fewer than ``risk.max_open_orders`` for one more to go out;
- ``order_rate``: at most ``risk.max_orders_per_minute`` orders of the instrument sent in any 60 s of
  event time: an order at time t is refused if that many were sent after t - 60 s. Only orders that
  passed risk count (a venue's rejection counts, it was sent; a rejection by risk does not).

``max_open_orders`` and ``order_rate`` apply to reducing orders too: they guard the venue against a
runaway strategy, and they clear by themselves (orders end, the window slides).

While trading is halted (the circuit breaker), every new order is refused with rule ``halted``; cancels
are not orders and pass. Besides the operator's ``halt``, the **daily loss limit** halts trading: when
today's loss reaches ``risk.daily_loss_limit`` of start-of-day equity the engine writes a TradingHalted
event (``by="risk:daily_loss_limit"``), see :mod:`engine.core.daily_loss`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from events import OrderRejected, OrderSubmitted

RATE_WINDOW_NS = 60 * 1_000_000_000  # the order rate is counted over 60 s of event time


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_order_notional: Decimal
    max_position: Decimal
    max_open_orders: int = 5
    max_orders_per_minute: int = 30


def recent_sends(sent_ts: Sequence[int], now: int) -> tuple[int, ...]:
    """The send times still inside the rate window ending at ``now``: those after now - 60 s."""
    return tuple(t for t in sent_ts if t > now - RATE_WINDOW_NS)


def check(
    order: OrderSubmitted,
    *,
    position: Decimal,
    open_exposure: Decimal,
    last_price: Decimal,
    limits: RiskLimits,
    open_orders: int = 0,
    sent_ts: Sequence[int] = (),
    now: int = 0,
) -> OrderSubmitted | OrderRejected:
    """``order`` if it passes every rule, else the rejection naming the first rule it broke."""

    def reject(rule: str, reason: str) -> OrderRejected:
        return refusal(order, rule, reason)

    if order.quantity <= 0:
        return reject("quantity_positive", f"quantity {order.quantity} is not above zero")
    # a native stop's notional at its limit, else at its trigger (where it will execute), not at the last trade
    price = order.limit_price if order.limit_price is not None else (order.trigger_price or last_price)
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
            f"position would reach {after} (now {position}, open orders {open_exposure}); limit {limits.max_position}",
        )
    if open_orders >= limits.max_open_orders:
        return reject(
            "max_open_orders",
            f"{open_orders} orders of {order.instrument} are open; limit {limits.max_open_orders}",
        )
    sent = len(recent_sends(sent_ts, now))
    if sent >= limits.max_orders_per_minute:
        return reject(
            "order_rate",
            f"{sent} orders of {order.instrument} sent in the last 60 s; limit {limits.max_orders_per_minute}",
        )
    return order


def refusal(order: OrderSubmitted, rule: str, reason: str, *, by: str = "risk", raw: str = "") -> OrderRejected:
    """``order`` refused under ``rule``: by risk, or (``by="venue"``, with its answer in ``raw``) by the venue."""
    return OrderRejected(
        instrument=order.instrument,
        client_order_id=order.client_order_id,
        strategy=order.strategy,
        side=order.side,
        order_type=order.order_type,
        quantity=order.quantity,
        limit_price=order.limit_price,
        by=by,
        rule=rule,
        reason=reason,
        raw=raw,
    )


def halted_rejection(order: OrderSubmitted) -> OrderRejected:
    """Trading is halted (circuit breaker): every new order is refused; cancels are not orders and pass."""
    return refusal(order, "halted", "trading is halted: only cancels pass")
