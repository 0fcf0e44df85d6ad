"""Mean reversion on Bollinger bands (a built-in, written against the public API only).

Over the last ``window`` prices (mean m, standard deviation s): when flat with nothing working and the price falls
below m - ``k`` s, it bids ``quantity`` at that price (a limit order: it waits for the market to come to it), as a
:class:`~engine.core.strategies.api.Bracket`: once the entry has filled, the engine places its exits, a take-profit
limit sell ``take_profit_bps`` above the entry price and a stop ``stop_loss_bps`` below it (reached, it cancels the
take-profit and sells at market; the take-profit filled cancels the stop). An entry not filled within
``entry_ticks`` ticks is cancelled (what it filled by then gets its exits). Long only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.core.strategies.api import Bracket, Cancel, Limit, Result, Strategy, View
from events import Side, TickReceived

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
        if entries:
            age = state.entry_age + 1
            if age > p.entry_ticks:
                return BollingerState(prices, 0), [Cancel(o.client_order_id, "entry expired") for o in entries]
            return BollingerState(prices, age), ()
        if view.position != 0 or view.open_orders or view.stops or len(prices) < p.window:
            return BollingerState(prices, 0), ()  # in a trade: its exits are the engine's
        mean = sum(prices, Decimal(0)) / p.window
        deviation = (sum(((x - mean) ** 2 for x in prices), Decimal(0)) / p.window).sqrt()
        lower = mean - p.k * deviation
        if deviation > 0 and tick.price < lower:
            entry = Limit(Side.BUY, p.quantity, tick.price)
            take_profit = tick.price * (1 + p.take_profit_bps / BPS)
            stop_loss = tick.price * (1 - p.stop_loss_bps / BPS)
            return BollingerState(prices, 1), (Bracket(entry, take_profit, stop_loss),)
        return BollingerState(prices, 0), ()
