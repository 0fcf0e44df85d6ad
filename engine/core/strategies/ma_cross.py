"""Moving-average crossover on trade prices.

Keeps the last ``slow`` prices. When the fast mean crosses above the slow mean the strategy wants
to be long ``quantity``; when it crosses below, flat (or short ``quantity`` if ``allow_short``).
The first comparison after the windows fill only arms it: a signal needs a real crossing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from events import Direction, SignalGenerated, TickReceived


@dataclass(frozen=True, slots=True)
class MaCrossState:
    prices: tuple[Decimal, ...] = ()
    above: bool | None = None  # fast mean above slow mean at the last tick, once both windows are full


@dataclass(frozen=True, slots=True)
class MaCross:
    fast: int
    slow: int
    quantity: Decimal
    allow_short: bool = False
    name: str = "ma_cross"

    def __post_init__(self) -> None:
        if not 0 < self.fast < self.slow:
            raise ValueError(f"need 0 < fast < slow, got fast={self.fast} slow={self.slow}")

    def on_tick(self, state: MaCrossState, tick: TickReceived) -> tuple[MaCrossState, SignalGenerated | None]:
        prices = (*state.prices, tick.price)[-self.slow :]
        if len(prices) < self.slow:
            return MaCrossState(prices, None), None
        fast = sum(prices[-self.fast :], Decimal(0)) / self.fast
        slow = sum(prices, Decimal(0)) / self.slow
        if fast == slow:
            return MaCrossState(prices, state.above), None
        above = fast > slow
        if state.above is None or above == state.above:
            return MaCrossState(prices, above), None
        if above:
            direction, target = Direction.LONG, self.quantity
        elif self.allow_short:
            direction, target = Direction.SHORT, -self.quantity
        else:
            direction, target = Direction.FLAT, Decimal(0)
        signal = SignalGenerated(
            instrument=tick.instrument,
            strategy=self.name,
            direction=direction,
            target_position=target,
            price=tick.price,
            reason=(
                f"fast mean({self.fast})={fast:.12g} crossed {'above' if above else 'below'} "
                f"slow mean({self.slow})={slow:.12g}"
            ),
        )
        return MaCrossState(prices, above), signal
