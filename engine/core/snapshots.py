"""Day snapshots: a strategy's state of an instrument at the start of a UTC day, as events (pure)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from decimal import Decimal

from engine.core.trader import TraderState
from events import BalanceSnapshot, Event, OpenOrderSnapshot, PositionSnapshot

ZERO = Decimal(0)


DAY_NS = 86_400 * 1_000_000_000


def utc_day(ts_ns: int) -> str:
    """The UTC day of a time (ns since the epoch), ``YYYY-MM-DD``: called for every tick, so each day's name is
    made once (a Unix day is 86,400 s exactly: the day number is the time divided by it, rounded down)."""
    return _day_name(ts_ns // DAY_NS)


@functools.lru_cache(maxsize=4096)
def _day_name(day_number: int) -> str:
    return datetime.fromtimestamp(day_number * 86_400, UTC).strftime("%Y-%m-%d")


def snapshots(state: TraderState, day: str, strategy: str = "") -> list[Event]:
    """The position (with its open round trip), the balance flows and the working orders when ``day`` starts, of
    ``strategy`` (named in an engine that runs several; "" in one that runs one, see PositionSnapshot)."""
    p, t = state.position, state.trip
    out: list[Event] = [
        PositionSnapshot(
            instrument=state.instrument,
            day=day,
            quantity=p.quantity,
            avg_price=p.avg_price,
            realized_pnl=p.realized_pnl,
            fees=p.fees,
            bought=p.bought,
            sold=p.sold,
            fills=p.fills,
            trip_direction=t.direction if t else 0,
            trip_opened_ts=t.opened_ts if t else 0,
            trip_quantity=t.quantity if t else ZERO,
            trip_max_quantity=t.max_quantity if t else ZERO,
            trip_entry_quantity=t.entry_quantity if t else ZERO,
            trip_entry_notional=t.entry_notional if t else ZERO,
            trip_exit_quantity=t.exit_quantity if t else ZERO,
            trip_exit_notional=t.exit_notional if t else ZERO,
            trip_fees=t.fees if t else ZERO,
            trip_fills=t.fills if t else 0,
            strategy=strategy,
        )
    ]
    out.extend(
        BalanceSnapshot(instrument=state.instrument, day=day, currency=cur, amount=amount, strategy=strategy)
        for cur, amount in state.flows
    )
    for o in sorted(state.open_orders, key=lambda o: o.client_order_id):
        out.append(
            OpenOrderSnapshot(
                instrument=o.instrument,
                day=day,
                client_order_id=o.client_order_id,
                strategy=o.strategy,
                side=o.side,
                order_type=o.order_type,
                quantity=o.quantity,
                limit_price=o.limit_price,
                status=o.status.value,
                venue_order_id=o.venue_order_id,
                filled_quantity=o.filled_quantity,
                filled_notional=o.notional,
                fees=o.fees,
                trade_ids=tuple(sorted(o.trade_ids)),
                trigger_price=o.trigger_price,
            )
        )
    return out
