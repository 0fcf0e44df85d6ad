"""The interfaces the core needs from the outside world (implemented in ``adapters``)."""

from __future__ import annotations

from typing import Any, Protocol

from events import Event, OrderCancelRequested, OrderSubmitted, TickReceived


class SimulatedVenue(Protocol):
    """A venue whose behaviour is a deterministic function of the ticks and orders it sees.

    Because it is deterministic, replaying the tick log through the engine reproduces its fills.
    """

    name: str

    def submit(self, order: OrderSubmitted) -> list[Event]: ...

    def cancel(self, request: OrderCancelRequested) -> list[Event]: ...

    def on_tick(self, tick: TickReceived) -> list[Event]: ...

    def config(self) -> object:
        """What, besides its state, decides what it does (its ``repr`` is part of a core snapshot's fingerprint)."""
        ...

    def state(self) -> object:
        """Its state, made of the types :mod:`engine.state_snapshot` allows."""
        ...

    def restore(self, state: Any) -> None: ...
