"""The trading decision for one instrument: a pure fold.

``on_tick`` runs the strategy and turns a change of target into orders that passed risk (or
rejections); ``on_event`` folds back what happened to those orders (acceptances, fills,
cancellations) into the open orders and the position. No I/O, no clock: the same events in give
the same events out, which is what makes a replay of the log reproduce every decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal

from engine.core import orders, portfolio, roundtrips
from engine.core.account import add_deltas
from engine.core.orders import Order
from engine.core.portfolio import Position
from engine.core.risk import RiskLimits, check, halted_rejection, recent_sends
from engine.core.strategies import MaCross, MaCrossState
from events import (
    Event,
    OrderCancelRequested,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    Side,
    TickReceived,
    short_hash,
)


@dataclass(frozen=True, slots=True)
class TraderState:
    instrument: str
    strategy: MaCrossState = field(default_factory=MaCrossState)
    position: Position = field(default_factory=lambda: Position(""))
    open_orders: tuple[Order, ...] = ()
    last_price: Decimal | None = None
    day: str | None = None  # UTC day of the last tick
    trip: roundtrips.OpenTrip | None = None
    flows: tuple[tuple[str, Decimal], ...] = ()  # what this instrument's fills moved, per currency, in total
    sent_ts: tuple[int, ...] = ()  # event times of the orders sent in the last 60 s (the order rate limit)
    # at the first tick of ``day``: its price and the flows before it (start-of-day equity, engine.core.daily_loss)
    day_open_price: Decimal | None = None
    day_open_flows: tuple[tuple[str, Decimal], ...] = ()

    @property
    def open_exposure(self) -> Decimal:
        return sum((o.signed_leaves for o in self.open_orders), Decimal(0))


def initial(instrument: str) -> TraderState:
    return TraderState(instrument, position=Position(instrument))


@dataclass(frozen=True, slots=True)
class Trader:
    strategy: MaCross
    limits: RiskLimits
    order_type: OrderType = OrderType.MARKET

    def client_order_id(self, cause_id: str) -> str:
        """Derived from the causing event's id: a retried submit can never make a second order."""
        return f"{self.strategy.name}-{short_hash(cause_id)}"

    def on_tick(
        self, state: TraderState, tick: TickReceived, cause_id: str, *, halted: bool = False, ts_event: int = 0
    ) -> tuple[TraderState, list[Event]]:
        sstate, signal = self.strategy.on_tick(state.strategy, tick)
        state = replace(state, strategy=sstate, last_price=tick.price)
        if signal is None:
            return state, []
        out: list[Event] = [signal]
        # a new target supersedes resting limit orders; market orders fill at the next tick anyway
        for o in state.open_orders:
            if o.order_type is OrderType.LIMIT and o.status is not orders.OrderStatus.CANCEL_REQUESTED:
                out.append(
                    OrderCancelRequested(
                        instrument=o.instrument,
                        client_order_id=o.client_order_id,
                        reason="new signal",
                    )
                )
        pending = sum((o.signed_leaves for o in state.open_orders if o.order_type is OrderType.MARKET), Decimal(0))
        delta = signal.target_position - (state.position.quantity + pending)
        if delta == 0:
            return state, out
        request = OrderSubmitted(
            instrument=tick.instrument,
            client_order_id=self.client_order_id(cause_id),
            strategy=self.strategy.name,
            side=Side.BUY if delta > 0 else Side.SELL,
            order_type=self.order_type,
            quantity=abs(delta),
            limit_price=tick.price if self.order_type is OrderType.LIMIT else None,
        )
        decision = (
            halted_rejection(request)
            if halted
            else check(
                request,
                position=state.position.quantity,
                open_exposure=pending,
                last_price=tick.price,
                limits=self.limits,
                open_orders=len(state.open_orders),
                sent_ts=state.sent_ts,
                now=ts_event,
            )
        )
        out.append(decision)
        return state, out

    def on_event(self, state: TraderState, event: Event, ts_event: int) -> TraderState:
        """Fold back an order event that concerns this instrument."""
        if not isinstance(event, orders.ORDER_EVENTS) or (isinstance(event, OrderRejected) and event.by == "risk"):
            return state
        coid: str = event.client_order_id
        current = next((o for o in state.open_orders if o.client_order_id == coid), None)
        if current is None and not isinstance(event, OrderSubmitted):
            return state  # an order this trader no longer tracks (terminal already)
        updated = orders.apply(current, event)
        if isinstance(event, OrderSubmitted) and current is None:  # sent: counts towards the order rate
            state = replace(state, sent_ts=(*recent_sends(state.sent_ts, ts_event), ts_event))
        others = tuple(o for o in state.open_orders if o.client_order_id != coid)
        open_orders = (*others, updated) if updated.status.is_open else others
        position, trip = state.position, state.trip
        if isinstance(event, OrderFilled) and event.trade_id not in (current.trade_ids if current else ()):
            position = portfolio.apply_fill(position, event)
            trip, _ = roundtrips.apply_fill(trip, event, ts_event)
            flows = tuple(sorted(add_deltas(dict(state.flows), event).items()))
            return replace(state, open_orders=open_orders, position=position, trip=trip, flows=flows)
        return replace(state, open_orders=open_orders, position=position, trip=trip)
