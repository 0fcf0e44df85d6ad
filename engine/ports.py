"""The interfaces the core needs from the outside world (implemented in ``adapters``)."""

from __future__ import annotations

from typing import Protocol

from events import Event, OrderCancelRequested, OrderSubmitted, TickReceived


class SimulatedVenue(Protocol):
    """A venue whose behaviour is a deterministic function of the ticks and orders it sees.

    Because it is deterministic, replaying the tick log through the engine reproduces its fills.
    """

    name: str

    def submit(self, order: OrderSubmitted) -> list[Event]: ...

    def cancel(self, request: OrderCancelRequested) -> list[Event]: ...

    def on_tick(self, tick: TickReceived) -> list[Event]: ...
