"""Moving-average crossover on trade prices (a built-in, written against the public API only).

Keeps the last ``slow`` prices. When the fast mean crosses above the slow mean the strategy wants
to be long ``quantity``; when it crosses below, flat (or short ``quantity`` if ``allow_short``).
The first comparison after the windows fill only arms it: a signal needs a real crossing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.core.strategies.api import Result, Strategy, Target, View
from events import TickReceived


@dataclass(frozen=True, slots=True)
class MaCrossState:
    prices: tuple[Decimal, ...] = ()
    above: bool | None = None  # fast mean above slow mean at the last tick, once both windows are full


@dataclass(frozen=True)
class MaCrossParams:
    fast: int = 10
    slow: int = 30
    quantity: Decimal = Decimal("0.01")
    allow_short: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.fast < self.slow:
            raise ValueError(f"need 0 < fast < slow, got fast={self.fast} slow={self.slow}")
        if not self.quantity > 0:
            raise ValueError(f"quantity must be above zero, got {self.quantity}")


@dataclass(frozen=True)
class MaCross(Strategy[MaCrossState, MaCrossParams]):
    name: str = "ma_cross"
    Params = MaCrossParams

    @classmethod
    def of(cls, fast: int, slow: int, quantity: Decimal, allow_short: bool = False) -> MaCross:
        return cls(MaCrossParams(fast, slow, quantity, allow_short))

    def initial(self) -> MaCrossState:
        return MaCrossState()

    def indicators(self, state: MaCrossState) -> int:
        return 2 if len(state.prices) == self.params.slow else 0  # the fast and the slow mean

    def on_tick(self, state: MaCrossState, tick: TickReceived, view: View) -> Result[MaCrossState]:
        p = self.params
        prices = (*state.prices, tick.price)[-p.slow :]
        if len(prices) < p.slow:
            return MaCrossState(prices, None), ()
        fast = sum(prices[-p.fast :], Decimal(0)) / p.fast
        slow = sum(prices, Decimal(0)) / p.slow
        if fast == slow:
            return MaCrossState(prices, state.above), ()
        above = fast > slow
        if state.above is None or above == state.above:
            return MaCrossState(prices, above), ()
        target = p.quantity if above else (-p.quantity if p.allow_short else Decimal(0))
        reason = (
            f"fast mean({p.fast})={fast:.12g} crossed {'above' if above else 'below'} slow mean({p.slow})={slow:.12g}"
        )
        return MaCrossState(prices, above), (Target(target, reason),)
