"""A user's strategy may keep in its state the dataclasses of its own helper module, and a class named like one of
the engine's (``Position``): a state snapshot holds them and gives them back."""

from __future__ import annotations

import textwrap
from decimal import Decimal as D
from pathlib import Path

from adapters.venues.paper import PaperExchange
from engine.core import state_snapshot
from engine.core.risk import RiskLimits
from engine.core.trader import Trader
from engine.core.trading import TradingCore
from engine.strategy_loader import build
from tests.unit.test_risk_limits import SECOND, T0, tick_env

HELPER = """
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Position:  # the user's own, not the engine's
    entries: int = 0


@dataclass(frozen=True)
class Window:
    prices: tuple[Decimal, ...] = ()
"""

STRATEGY = """
from dataclasses import dataclass
from decimal import Decimal

from engine.strategy import NoParams, Result, Strategy, TickReceived, View
from snaphelpers import Position, Window


@dataclass(frozen=True)
class State:
    window: Window = Window()
    mine: Position = Position()


@dataclass(frozen=True)
class Keeper(Strategy[State, NoParams]):
    name: str = "keeper"

    def initial(self) -> State:
        return State()

    def on_tick(self, state: State, tick: TickReceived, view: View) -> Result[State]:
        prices = (*state.window.prices, tick.price)[-3:]
        return State(Window(prices), Position(state.mine.entries + 1)), ()
"""


def test_a_snapshot_holds_the_users_helper_types_and_a_class_named_like_ours(tmp_path: Path) -> None:
    (tmp_path / "snaphelpers.py").write_text(textwrap.dedent(HELPER))
    (tmp_path / "snapkeeper.py").write_text(textwrap.dedent(STRATEGY))
    strategy = build("snapkeeper:Keeper", {}, path=tmp_path)

    def core() -> TradingCore:
        return TradingCore(Trader(strategy, RiskLimits(D(10**9), D(10**9))), PaperExchange(D(0), D(0)))

    live = core()
    for n, price in enumerate(["1", "2", "3", "4"]):
        live.on_input(tick_env(price, T0 + n * SECOND, n), ts_init=0)
    data = state_snapshot.dump(live, 4)
    restored = core()
    assert state_snapshot.load(data, restored) == 4
    assert restored.states == live.states
    kept = restored.state("BTC/USDT").strategy
    assert type(kept.mine).__module__ == "snaphelpers" and kept.mine.entries == 4
    assert kept.window.prices == (D(2), D(3), D(4))
