"""Stops and brackets the engine holds for a strategy: pure, on any venue.

A :class:`~engine.core.strategies.api.Stop` intent becomes a ``StopPlaced`` event and a :class:`HeldStop` in the
strategy's state. At each tick, after the venue has matched what rests, a stop the tick reaches (a trade at or above
the trigger for a buy, at or below it for a sell) is triggered: ``StopTriggered``, then the order it sends, at
market or (a stop-limit) a limit at its limit price, checked by risk as any other. The paper venue fills that
market order at the next tick, as it fills every market order; on a live venue the execution service sends it. So
the trigger is the engine's on every venue, from the ticks of the log, and a replay triggers it again at the same
tick.

With ``venue.stops = "native"`` (the default on a live venue whose adapter sends stop orders: ccxt's binance), a
Stop intent is no held stop: it becomes an ``OrderSubmitted`` of type ``stop`` / ``stop_limit`` with its
``trigger_price``, checked by risk (at its limit, else its trigger price) and sent by the execution service; the
venue holds and triggers it, and what it does comes back as the usual order events (accepted, filled, cancelled).
The strategy cancels it as any order. A bracket's stop-loss stays held by the engine even then: a venue such as
Binance spot locks the funds of every resting order, so a take-profit and a separate stop for the same quantity
cannot both rest, and ccxt's unified API has no one-cancels-the-other order for it.

A :class:`~engine.core.strategies.api.Bracket` sends its entry and remembers a :class:`PendingBracket`. When the
entry ends having filled something (filled, or cancelled or expired after a partial fill), its exits are placed for
the quantity filled: a take-profit limit order and a stop paired with it. One cancels the other: each fill of the
take-profit takes its quantity off the stop (a take-profit filled in full cancels the stop, ``StopCancelled``), and
a stop triggered asks to cancel the take-profit and sends only what is left.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from engine.core.orders import Order
from events import (
    Event,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    Side,
    StopCancelled,
    StopPlaced,
    StopTriggered,
)

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class HeldStop:
    client_order_id: str
    side: Side
    quantity: Decimal  # what is left of it (a paired take-profit's fills come off it)
    trigger: Decimal
    limit: Decimal | None = None
    take_profit_id: str = ""  # the take-profit it is paired with in a bracket

    def reached_by(self, price: Decimal) -> bool:
        return price >= self.trigger if self.side is Side.BUY else price <= self.trigger


@dataclass(frozen=True, slots=True)
class PendingBracket:
    """A bracket's entry under way: its exits are placed when it ends with a fill."""

    entry_id: str
    take_profit: Decimal
    stop_loss: Decimal
    stop_limit: Decimal | None = None
    filled: Decimal = ZERO  # of the entry so far


def check_stop(quantity: Decimal, trigger: Decimal, limit: Decimal | None) -> None:
    """A stop the strategy asks for must be able to exist: a mistake is the strategy's bug (its call's intents are
    dropped, see ``engine.core.trader``), never a half-made stop."""
    for name, v in (("quantity", quantity), ("trigger", trigger), ("limit", limit)):
        if v is not None and not (v.is_finite() and v > 0):
            raise ValueError(f"a stop's {name} must be a finite number above zero, got {v}")


def fold_stops(stops: tuple[HeldStop, ...], ev: Event) -> tuple[HeldStop, ...]:
    """The held stops after ``ev`` (one of their events, or a fill of a take-profit some stop is paired with)."""
    if isinstance(ev, StopPlaced):
        held = HeldStop(ev.client_order_id, ev.side, ev.quantity, ev.trigger_price, ev.limit_price, ev.take_profit_id)
        return (*stops, held)
    if isinstance(ev, StopTriggered | StopCancelled):
        return tuple(s for s in stops if s.client_order_id != ev.client_order_id)
    if isinstance(ev, OrderFilled) and stops:
        return tuple(
            replace(s, quantity=max(ZERO, s.quantity - ev.quantity)) if s.take_profit_id == ev.client_order_id else s
            for s in stops
        )
    return stops


def fold_brackets(brackets: tuple[PendingBracket, ...], ev: Event) -> tuple[PendingBracket, ...]:
    """The pending brackets after an order event: the entry's fills counted; a bracket whose entry ended without a
    fill (rejected, cancelled, expired) is dropped. One whose entry ended with a fill stays until its exits are
    placed (:func:`ended`)."""
    coid = getattr(ev, "client_order_id", None)
    if not brackets or coid is None:
        return brackets
    out = []
    for b in brackets:
        if b.entry_id == coid:
            if isinstance(ev, OrderFilled):
                b = replace(b, filled=b.filled + ev.quantity)
            elif isinstance(ev, OrderRejected | OrderCancelled | OrderExpired) and b.filled == 0:
                continue
        out.append(b)
    return tuple(out)


def ended(b: PendingBracket, ev: Event, open_orders: tuple[Order, ...]) -> bool:
    """Whether ``ev`` ended ``b``'s entry with a fill: its exits are due."""
    if getattr(ev, "client_order_id", None) != b.entry_id or b.filled == 0:
        return False
    return not any(o.client_order_id == b.entry_id for o in open_orders)
