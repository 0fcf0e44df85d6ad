"""Round-trip trades: a pure fold of fills into closed trades (entry -> exit).

A round trip opens when a position leaves zero and closes when it returns to zero; a fill that flips
the position closes the trade and opens the next one with the remainder. Each closed trade reports
its quantity (the largest absolute position it reached), volume-weighted entry and exit prices, the
realized PnL (gross), the fees of all its fills (the flipping fill's fee is shared pro rata) and its
duration.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from events import OrderFilled

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class OpenTrip:
    instrument: str
    direction: int  # +1 long, -1 short
    opened_ts: int
    quantity: Decimal = ZERO  # current absolute size
    max_quantity: Decimal = ZERO
    entry_quantity: Decimal = ZERO
    entry_notional: Decimal = ZERO
    exit_quantity: Decimal = ZERO
    exit_notional: Decimal = ZERO
    fees: Decimal = ZERO
    fills: int = 0


@dataclass(frozen=True, slots=True)
class RoundTrip:
    instrument: str
    direction: int
    opened_ts: int
    closed_ts: int
    quantity: Decimal
    entry_price: Decimal
    exit_price: Decimal
    realized_pnl: Decimal
    fees: Decimal
    fills: int

    @property
    def duration_ns(self) -> int:
        return self.closed_ts - self.opened_ts

    @property
    def net_pnl(self) -> Decimal:
        return self.realized_pnl - self.fees

    @property
    def won(self) -> bool:
        return self.net_pnl > 0


def _open(instrument: str, direction: int, qty: Decimal, price: Decimal, fee: Decimal, ts: int) -> OpenTrip:
    return OpenTrip(instrument, direction, ts, qty, qty, qty, qty * price, ZERO, ZERO, fee, 1)


def _close(trip: OpenTrip, ts: int) -> RoundTrip:
    entry = trip.entry_notional / trip.entry_quantity
    exit_ = trip.exit_notional / trip.exit_quantity
    pnl = (exit_ - entry) * trip.exit_quantity * trip.direction
    return RoundTrip(
        trip.instrument, trip.direction, trip.opened_ts, ts, trip.max_quantity, entry, exit_, pnl, trip.fees, trip.fills
    )


def apply_fill(trip: OpenTrip | None, fill: OrderFilled, ts: int) -> tuple[OpenTrip | None, RoundTrip | None]:
    """The open trip after ``fill`` (None when flat) and the trip it closed, if any."""
    sign = fill.side.sign
    if trip is None:
        return _open(fill.instrument, sign, fill.quantity, fill.price, fill.fee, ts), None
    if sign == trip.direction:  # adding
        q = trip.quantity + fill.quantity
        return OpenTrip(
            trip.instrument,
            trip.direction,
            trip.opened_ts,
            q,
            max(trip.max_quantity, q),
            trip.entry_quantity + fill.quantity,
            trip.entry_notional + fill.quantity * fill.price,
            trip.exit_quantity,
            trip.exit_notional,
            trip.fees + fill.fee,
            trip.fills + 1,
        ), None
    closing = min(fill.quantity, trip.quantity)
    fee_share = fill.fee * closing / fill.quantity
    reduced = OpenTrip(
        trip.instrument,
        trip.direction,
        trip.opened_ts,
        trip.quantity - closing,
        trip.max_quantity,
        trip.entry_quantity,
        trip.entry_notional,
        trip.exit_quantity + closing,
        trip.exit_notional + closing * fill.price,
        trip.fees + fee_share,
        trip.fills + 1,
    )
    if reduced.quantity > 0:
        return reduced, None
    closed = _close(reduced, ts)
    rest = fill.quantity - closing
    if rest > 0:
        return _open(fill.instrument, sign, rest, fill.price, fill.fee - fee_share, ts), closed
    return None, closed
