"""Channel breakout: buy when the price trades above the highest high of the last bars, sell when it falls below
the lowest low of the last few. The strategy of the tutorial in docs/strategies.md."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.strategy import (
    OrderRejected,
    OrderUpdate,
    Result,
    Strategy,
    Target,
    TickReceived,
    Timer,
    View,
)


@dataclass(frozen=True)
class BreakoutParams:
    quantity: Decimal = Decimal("0.01")  # position to hold after a breakout, in the base currency
    bars: int = 20  # bars of the entry channel (its highest high)
    exit_bars: int = 10  # bars of the exit channel (its lowest low)

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError(f"quantity must be above zero, got {self.quantity}")
        if not 1 <= self.exit_bars <= self.bars:
            raise ValueError(f"need 1 <= exit_bars <= bars, got exit_bars={self.exit_bars} bars={self.bars}")


@dataclass(frozen=True)
class BreakoutState:
    highs: tuple[Decimal, ...] = ()  # the high of each closed bar, oldest first (the last `bars` of them)
    lows: tuple[Decimal, ...] = ()  # and its low
    high: Decimal | None = None  # the bar being built: its high and low so far
    low: Decimal | None = None
    long: bool = False  # a Target(quantity) was sent and not given up


@dataclass(frozen=True)
class Breakout(Strategy[BreakoutState, BreakoutParams]):
    name: str = "breakout"  # the prefix of its client order ids: breakout-<hash>
    Params = BreakoutParams
    timer_seconds = 10  # a bar is the trades between two timers, every 10 s of market time

    def initial(self) -> BreakoutState:
        return BreakoutState()

    def on_timer(self, state: BreakoutState, timer: Timer, view: View) -> Result[BreakoutState]:
        if state.high is None or state.low is None:
            return state, ()  # no trade since the last timer: no bar
        keep = self.params.bars
        highs = (*state.highs, state.high)[-keep:]
        lows = (*state.lows, state.low)[-keep:]
        return BreakoutState(highs, lows, None, None, state.long), ()

    def on_tick(self, state: BreakoutState, tick: TickReceived, view: View) -> Result[BreakoutState]:
        p, price = self.params, tick.price
        high = price if state.high is None else max(state.high, price)
        low = price if state.low is None else min(state.low, price)
        state = BreakoutState(state.highs, state.lows, high, low, state.long)
        if len(state.highs) < p.bars:
            return state, ()  # not enough bars yet
        top = max(state.highs)
        bottom = min(state.lows[-p.exit_bars :])
        if not state.long and price > top:
            reason = f"{price} broke above the {p.bars}-bar high {top}"
            return BreakoutState(state.highs, state.lows, high, low, True), (Target(p.quantity, reason),)
        if state.long and price < bottom:
            reason = f"{price} fell below the {p.exit_bars}-bar low {bottom}"
            return BreakoutState(state.highs, state.lows, high, low, False), (Target(Decimal(0), reason),)
        return state, ()

    def on_order(self, state: BreakoutState, update: OrderUpdate, view: View) -> Result[BreakoutState]:
        if isinstance(update.event, OrderRejected):  # refused (by risk, or the venue): hold what is really held
            return BreakoutState(state.highs, state.lows, state.high, state.low, view.position > 0), ()
        return state, ()
