"""Positions and realized PnL: a pure fold of fills (average-cost method).

Realized PnL is gross (price moves only); fees are kept apart in ``fees`` and ``net_realized_pnl``
subtracts them. All arithmetic is Decimal; nothing is rounded, so a position always equals the sum of
its fills exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from events import OrderFilled

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Position:
    instrument: str
    quantity: Decimal = ZERO
    avg_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    bought: Decimal = ZERO
    sold: Decimal = ZERO
    fills: int = 0

    @property
    def net_realized_pnl(self) -> Decimal:
        return self.realized_pnl - self.fees

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return (mark - self.avg_price) * self.quantity


def apply_fill(pos: Position, fill: OrderFilled) -> Position:
    """The position after one fill."""
    signed = fill.side.sign * fill.quantity
    q, avg, realized = pos.quantity, pos.avg_price, pos.realized_pnl
    new_q = q + signed
    if q == 0 or (q > 0) == (signed > 0):
        # opening or adding: the average cost moves
        avg = (avg * abs(q) + fill.price * fill.quantity) / abs(new_q)
    else:
        closed = min(abs(signed), abs(q))
        realized += (fill.price - avg) * closed * (1 if q > 0 else -1)
        if new_q == 0:
            avg = ZERO
        elif (new_q > 0) != (q > 0):
            avg = fill.price  # flipped: the remainder opened at this fill's price
    return Position(
        instrument=pos.instrument,
        quantity=new_q,
        avg_price=avg,
        realized_pnl=realized,
        fees=pos.fees + fill.fee,
        bought=pos.bought + (fill.quantity if signed > 0 else ZERO),
        sold=pos.sold + (fill.quantity if signed < 0 else ZERO),
        fills=pos.fills + 1,
    )
