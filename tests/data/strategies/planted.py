"""Strategies that are NOT deterministic, one way each, for ``strategy check`` to catch (see README.md)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from decimal import Decimal

from engine.strategy import NoParams, Result, Side, Strategy, Target, TickReceived, View


def _every(n: int, state: int) -> bool:
    return state % n == 0


@dataclass(frozen=True)
class Clock(Strategy[int, NoParams]):
    """Reads the wall clock: its reason (and so the event) changes from run to run."""

    name: str = "clock"

    def initial(self) -> int:
        return 0

    def on_tick(self, state: int, tick: TickReceived, view: View) -> Result[int]:
        if _every(97, state + 1):
            return state + 1, (Target(Decimal(0) if state % 2 else Decimal("1"), f"at {time.time_ns()}"),)
        return state + 1, ()


@dataclass(frozen=True)
class Unseeded(Strategy[int, NoParams]):
    """Uses the module ``random`` (seeded by the operating system), not the seed it is given."""

    name: str = "unseeded"

    def initial(self) -> int:
        return 0

    def on_tick(self, state: int, tick: TickReceived, view: View) -> Result[int]:
        if random.random() < 0.01:
            return state + 1, (Target(Decimal(state % 2), "a coin"),)
        return state + 1, ()


@dataclass(frozen=True)
class SetOrder(Strategy[int, NoParams]):
    """Iterates over a set of strings, whose order changes with the process's hash seed."""

    name: str = "setorder"

    def initial(self) -> int:
        return 0

    def on_tick(self, state: int, tick: TickReceived, view: View) -> Result[int]:
        if _every(101, state + 1):
            first = next(iter({"buy", "sell", "hold", "wait", "fold"}))
            side = Side.BUY if first in ("buy", "hold") else Side.SELL
            target = Decimal("1") if side is Side.BUY else Decimal(0)
            return state + 1, (Target(target, f"the set said {first}"),)
        return state + 1, ()


_SEEN = [0]  # state outside the returned value: a restarted engine does not have it


@dataclass(frozen=True)
class Hidden(Strategy[int, NoParams]):
    """Counts ticks in a module global instead of its state: right in one process, wrong after a restart."""

    name: str = "hidden"

    def initial(self) -> int:
        return 0

    def on_tick(self, state: int, tick: TickReceived, view: View) -> Result[int]:
        _SEEN[0] += 1
        if _SEEN[0] % 89 == 0:
            return state, (Target(Decimal(_SEEN[0] // 89 % 2), "the global said so"),)
        return state, ()


@dataclass(frozen=True)
class Unsnapshottable(Strategy[object, NoParams]):
    """Keeps its state in an object that is not a value (a snapshot cannot hold it)."""

    name: str = "unsnapshottable"

    def initial(self) -> object:
        return object()


@dataclass(frozen=True)
class Seeded(Strategy[int, NoParams]):
    """Random, but only from the seed it is given: deterministic."""

    name: str = "seeded"

    def initial(self) -> int:
        return 0

    def on_tick(self, state: int, tick: TickReceived, view: View) -> Result[int]:
        if random.Random(view.seed).random() < 0.01:
            return state + 1, (Target(Decimal(state % 2), "the seed's coin"),)
        return state + 1, ()
