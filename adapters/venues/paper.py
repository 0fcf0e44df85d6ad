"""The paper exchange: fills simulated from the tick stream, deterministically.

- A market order fills in full at the price of the **next** tick of its instrument (taker fee).
- A limit order rests; it fills when a later tick trades at or through its price (a buy when the
  tick price <= limit, a sell when >= limit), at the limit price, for at most that tick's quantity
  (so large orders fill partially over several ticks; maker fee).
- A cancel request cancels whatever has not filled yet.

Ids are derived from the client order id, so replaying the same ticks gives the same fills.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from events import (
    Event,
    Liquidity,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRequested,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    TickReceived,
)


@dataclass
class _Resting:
    order: OrderSubmitted
    filled: Decimal = Decimal(0)
    fills: int = 0

    @property
    def leaves(self) -> Decimal:
        return self.order.quantity - self.filled


@dataclass
class PaperExchange:
    taker_fee_rate: Decimal
    maker_fee_rate: Decimal
    fee_currency: str | None = None
    name: str = "paper"
    _resting: dict[str, dict[str, _Resting]] = field(default_factory=dict)

    def config(self) -> tuple[Decimal, Decimal, str | None, str]:
        """What, besides its state, decides what it does (part of a core snapshot's fingerprint)."""
        return (self.taker_fee_rate, self.maker_fee_rate, self.fee_currency, self.name)

    def state(self) -> dict[str, tuple[tuple[OrderSubmitted, Decimal, int], ...]]:
        """The resting orders, per instrument in arrival order: (order, filled, fills)."""
        return {i: tuple((r.order, r.filled, r.fills) for r in book.values()) for i, book in self._resting.items()}

    def restore(self, state: dict[str, tuple[tuple[OrderSubmitted, Decimal, int], ...]]) -> None:
        self._resting = {
            i: {o.client_order_id: _Resting(o, filled, fills) for o, filled, fills in rows} for i, rows in state.items()
        }

    def _fee_currency(self, instrument: str) -> str:
        return self.fee_currency or instrument.rpartition("/")[2] or instrument

    def submit(self, order: OrderSubmitted) -> list[Event]:
        if order.order_type is OrderType.LIMIT and (order.limit_price is None or order.limit_price <= 0):
            return [
                OrderRejected(
                    instrument=order.instrument,
                    client_order_id=order.client_order_id,
                    strategy=order.strategy,
                    side=order.side,
                    order_type=order.order_type,
                    quantity=order.quantity,
                    limit_price=order.limit_price,
                    by="venue",
                    rule="invalid_price",
                    reason=f"limit price {order.limit_price} is not above zero",
                )
            ]
        book = self._resting.setdefault(order.instrument, {})
        if order.client_order_id in book:
            return []  # the same order again: the venue already has it
        book[order.client_order_id] = _Resting(order)
        return [
            OrderAccepted(
                instrument=order.instrument,
                client_order_id=order.client_order_id,
                venue=self.name,
                venue_order_id=f"{self.name}-{order.client_order_id}",
            )
        ]

    def cancel(self, request: OrderCancelRequested) -> list[Event]:
        rest = self._resting.get(request.instrument, {}).pop(request.client_order_id, None)
        if rest is None:
            return []  # already filled or unknown: nothing to cancel
        return [
            OrderCancelled(
                instrument=request.instrument,
                client_order_id=request.client_order_id,
                venue=self.name,
                reason=request.reason,
                filled_quantity=rest.filled,
            )
        ]

    def on_tick(self, tick: TickReceived) -> list[Event]:
        book = self._resting.get(tick.instrument)
        if not book:
            return []
        out: list[Event] = []
        for coid, rest in list(book.items()):
            o = rest.order
            if o.order_type is OrderType.MARKET:
                qty, price, liq, rate = rest.leaves, tick.price, Liquidity.TAKER, self.taker_fee_rate
            else:
                assert o.limit_price is not None
                crossed = tick.price <= o.limit_price if o.side.sign > 0 else tick.price >= o.limit_price
                if not crossed:
                    continue
                qty = min(rest.leaves, tick.quantity)
                price, liq, rate = o.limit_price, Liquidity.MAKER, self.maker_fee_rate
            if qty <= 0:
                continue
            rest.filled += qty
            rest.fills += 1
            out.append(
                OrderFilled(
                    instrument=o.instrument,
                    client_order_id=coid,
                    venue=self.name,
                    venue_order_id=f"{self.name}-{coid}",
                    trade_id=f"{self.name}-{coid}-{rest.fills}",
                    side=o.side,
                    quantity=qty,
                    price=price,
                    fee=qty * price * rate,
                    fee_currency=self._fee_currency(o.instrument),
                    liquidity=liq,
                    cumulative_quantity=rest.filled,
                    leaves_quantity=rest.leaves,
                )
            )
            if rest.leaves == 0:
                del book[coid]
        return out
