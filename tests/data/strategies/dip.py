"""Buy the dip: a user's strategy, written against the public API only (see README.md)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.strategy import (
    Candle,
    Limit,
    OrderFilled,
    OrderUpdate,
    Result,
    Side,
    Strategy,
    Target,
    TickReceived,
    View,
)


@dataclass(frozen=True)
class DipParams:
    quantity: Decimal = Decimal("100")
    drop_bps: int = 30  # how far below the recent high is a dip, in basis points
    window: int = 50  # ticks of the recent high


@dataclass(frozen=True)
class DipState:
    prices: tuple[Decimal, ...] = ()
    entries: int = 0  # fills seen (on_order)


@dataclass(frozen=True)
class Dip(Strategy[DipState, DipParams]):
    name: str = "dip"
    Params = DipParams

    def initial(self) -> DipState:
        return DipState()

    def on_tick(self, state: DipState, tick: TickReceived, view: View) -> Result[DipState]:
        prices = (*state.prices, tick.price)[-self.params.window :]
        state = DipState(prices, state.entries)
        if len(prices) < self.params.window:
            return state, ()
        high = max(prices)
        dip = high * (1 - Decimal(self.params.drop_bps) / 10_000)
        if view.position == 0 and not view.open_orders and tick.price <= dip:
            return state, (Limit(Side.BUY, self.params.quantity, tick.price),)
        if view.position > 0 and tick.price >= high:
            return state, (Target(Decimal(0), "back at the recent high"),)
        return state, ()

    def on_order(self, state: DipState, update: OrderUpdate, view: View) -> Result[DipState]:
        if isinstance(update.event, OrderFilled):
            return DipState(state.prices, state.entries + 1), ()
        return state, ()

    def on_candle(self, state: DipState, candle: Candle, view: View) -> Result[DipState]:
        # a resting buy that did not fill within its minute is stale: cancel it by a flat target
        if view.open_orders and view.position == 0:
            return state, (Target(Decimal(0), "the dip passed"),)
        return state, ()
