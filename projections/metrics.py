"""The Prometheus projection: trading gauges and counters folded from the event stream.

An in-memory read model: it folds the log from its start every time the process starts (so a restart
rebuilds the same numbers), as a consumer group, so each worker exports the instruments of the
partitions it owns and Prometheus sums them. Duplicated deliveries are harmless: order states go
through the order machine, and a fill is counted once per venue trade id.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Gauge

from engine import orders as om
from engine.orders import Order, OrderStatus
from engine.portfolio import Position, apply_fill
from events import OrderFilled, SignalGenerated, TickReceived, Topics
from projections.runner import Record

EVENTS = Counter("engine_events_consumed", "Events folded by the metrics projection", ["type"])
ORDER_EVENTS = Counter("engine_order_events", "Order lifecycle events", ["instrument", "type"])
ORDERS = Gauge("engine_orders", "Orders by current status", ["status"])
FILLS = Counter("engine_fills", "Fills (one per venue trade id)", ["instrument"])
SIGNALS = Counter("engine_signals", "Strategy signals", ["instrument", "direction"])
POSITION = Gauge("engine_position", "Position quantity (base units)", ["instrument"])
REALIZED = Gauge("engine_realized_pnl", "Realized PnL, gross of fees (quote currency)", ["instrument"])
FEES = Gauge("engine_fees_paid", "Fees paid (fee currency)", ["instrument"])
LAST_PRICE = Gauge("engine_last_price", "Price of the last trade tick", ["instrument"])
VOLUME = Counter("engine_traded_volume", "Volume of market trades seen (base units)", ["instrument"])


class MetricsProjection:
    name = "metrics"

    def __init__(self, topics: Topics = Topics()) -> None:
        self.topics: tuple[str, ...] = (topics.ticks, topics.trading)
        self.orders: dict[str, Order] = {}
        self.positions: dict[str, Position] = {}
        self._fills_seen: set[tuple[str, str]] = set()
        self._by_status: Tally[OrderStatus] = Tally()

    async def apply(self, conn: Any, records: Sequence[Record]) -> None:
        types: Tally[str] = Tally()
        for r in records:
            ev = r.envelope.event
            types[ev.TYPE] += 1
            if isinstance(ev, TickReceived):
                LAST_PRICE.labels(ev.instrument).set(float(ev.price))
                VOLUME.labels(ev.instrument).inc(float(ev.quantity))
            elif isinstance(ev, SignalGenerated):
                SIGNALS.labels(ev.instrument, ev.direction.value).inc()
            elif isinstance(ev, om.ORDER_EVENTS):
                self._order_event(ev)
        for t, n in types.items():
            EVENTS.labels(t).inc(n)
        for status in OrderStatus:
            ORDERS.labels(status.value).set(self._by_status[status])

    def _order_event(self, ev: Any) -> None:
        if isinstance(ev, OrderFilled):
            key = (ev.venue, ev.trade_id)
            if key in self._fills_seen:
                return
            self._fills_seen.add(key)
        before = self.orders.get(ev.client_order_id)
        try:
            after = om.apply(before, ev)
        except om.InvalidTransition:
            return
        if after is before:
            return
        ORDER_EVENTS.labels(ev.instrument, ev.TYPE).inc()
        if before is not None:
            self._by_status[before.status] -= 1
        self._by_status[after.status] += 1
        self.orders[ev.client_order_id] = after
        if isinstance(ev, OrderFilled):
            pos = apply_fill(self.positions.get(ev.instrument) or Position(ev.instrument), ev)
            self.positions[ev.instrument] = pos
            FILLS.labels(ev.instrument).inc()
            POSITION.labels(ev.instrument).set(float(pos.quantity))
            REALIZED.labels(ev.instrument).set(float(pos.realized_pnl))
            FEES.labels(ev.instrument).set(float(pos.fees))
