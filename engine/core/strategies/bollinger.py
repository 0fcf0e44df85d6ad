"""Mean reversion on Bollinger bands (a built-in, written against the public API only).

Over the last ``window`` prices (mean m, standard deviation s): when flat with nothing working and the price falls
below m - ``k`` s, it bids ``quantity`` at that price (a limit order: it waits for the market to come to it). Once
the entry fills it attaches its exits: a take-profit limit sell ``take_profit_bps`` above the average entry price,
and a stop-loss ``stop_loss_bps`` below it, which it watches itself on every tick (when the price reaches it, it
cancels the take-profit and sells the position at market). An entry not filled within ``entry_ticks`` ticks is
cancelled. Long only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from engine.core.strategies.api import Cancel, Intent, Limit, Market, OrderUpdate, Result, Strategy, View
from events import OrderAccepted, OrderCancelled, OrderExpired, OrderFilled, Side, TickReceived

BPS = Decimal(10_000)


@dataclass(frozen=True)
class BollingerParams:
    window: int = 20
    k: Decimal = Decimal(2)
    quantity: Decimal = Decimal("0.01")
    take_profit_bps: Decimal = Decimal(30)
    stop_loss_bps: Decimal = Decimal(30)
    entry_ticks: int = 50

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"window must be at least 2, got {self.window}")
        for name in ("k", "quantity", "take_profit_bps", "stop_loss_bps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above zero, got {getattr(self, name)}")
        if self.entry_ticks < 1:
            raise ValueError(f"entry_ticks must be at least 1, got {self.entry_ticks}")


@dataclass(frozen=True, slots=True)
class BollingerState:
    prices: tuple[Decimal, ...] = ()
    entry_age: int = 0  # ticks since the working entry was placed (0: none)
    stop: Decimal | None = None  # the stop-loss price while long
    entry: str = ""  # the client order id of the working entry, once the venue accepted it


@dataclass(frozen=True)
class Bollinger(Strategy[BollingerState, BollingerParams]):
    name: str = "bollinger"
    Params = BollingerParams
    indicators_per_tick = 2  # mean and deviation, once the window is full

    def initial(self) -> BollingerState:
        return BollingerState()

    def indicators(self, state: BollingerState) -> int:
        return 2 if len(state.prices) == self.params.window else 0

    def on_tick(self, state: BollingerState, tick: TickReceived, view: View) -> Result[BollingerState]:
        p = self.params
        prices = (*state.prices, tick.price)[-p.window :]
        entries = [o for o in view.open_orders if o.side is Side.BUY]
        exits = [o for o in view.open_orders if o.side is Side.SELL]
        position = view.position
        if position > 0 and state.stop is not None and tick.price <= state.stop:
            out: list[Intent] = [Cancel(o.client_order_id, "stop loss") for o in exits]
            out.append(Market(Side.SELL, position))
            return BollingerState(prices, 0, None, ""), out
        if entries:
            age = state.entry_age + 1
            if age > p.entry_ticks:
                expired = [Cancel(o.client_order_id, "entry expired") for o in entries]
                return BollingerState(prices, 0, state.stop, state.entry), expired
            return BollingerState(prices, age, state.stop, state.entry), ()
        if position != 0 or exits or len(prices) < p.window:
            return BollingerState(prices, 0, state.stop, state.entry), ()
        mean = sum(prices, Decimal(0)) / p.window
        deviation = (sum(((x - mean) ** 2 for x in prices), Decimal(0)) / p.window).sqrt()
        lower = mean - p.k * deviation
        if deviation > 0 and tick.price < lower:
            return BollingerState(prices, 1, None), (Limit(Side.BUY, p.quantity, tick.price),)
        return BollingerState(prices, 0, None), ()

    def on_order(self, state: BollingerState, update: OrderUpdate, view: View) -> Result[BollingerState]:
        ev, order = update.event, update.order
        if isinstance(ev, OrderAccepted) and order is not None and order.side is Side.BUY:
            return replace(state, entry=order.client_order_id), ()
        entry_done = isinstance(ev, OrderFilled) and ev.side is Side.BUY and ev.is_final
        # an entry cancelled (expired) after a partial fill leaves a position: it gets its exits too
        rest_cancelled = isinstance(ev, OrderCancelled | OrderExpired) and update.client_order_id == state.entry
        if not (entry_done or rest_cancelled) or state.stop is not None or view.position <= 0:
            return (replace(state, entry="") if rest_cancelled else state), ()
        p = self.params
        entry = view.average_price
        if entry is None:
            return state, ()
        take_profit = entry * (1 + p.take_profit_bps / BPS)
        stop = entry * (1 - p.stop_loss_bps / BPS)
        return BollingerState(state.prices, 0, stop, ""), (Limit(Side.SELL, view.position, take_profit),)
