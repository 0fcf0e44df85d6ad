"""The trading core: ticks in, events out, synchronous and deterministic.

For each tick of an instrument, in this order:

1. the venue matches what rests against the tick (fills of earlier orders);
2. those fills are folded into the trader (position, open orders);
3. the strategy sees the tick; a change of target becomes an order, checked by risk;
4. orders that passed risk go to the venue (accepted or rejected), cancels likewise;
5. the venue's answers are folded back into the trader.

The first tick of a new UTC day is preceded by the day's snapshots (see ``engine.snapshots``).

Every event produced is derived from the tick's envelope (same event time, deterministic id,
the tick as causation), so processing the same tick twice yields the very same events.
"""

from __future__ import annotations

from dataclasses import replace

from engine import trader as trader_mod
from engine.ports import SimulatedVenue
from engine.snapshots import snapshots, utc_day
from engine.trader import Trader, TraderState
from events import Envelope, Event, OrderCancelRequested, OrderSubmitted, TickReceived


class TradingCore:
    """The state of the instruments of one partition (the engine keeps one core per partition it owns)."""

    def __init__(self, trader: Trader, venue: SimulatedVenue) -> None:
        self.trader = trader
        self.venue = venue
        self.states: dict[str, TraderState] = {}
        self.indicators: dict[str, int] = {}  # indicator values computed, per instrument (a statistic)

    def on_tick(self, env: Envelope, *, ts_init: int, halted: bool = False) -> list[Envelope]:
        tick = env.event
        if not isinstance(tick, TickReceived):
            return []
        t = self.trader
        state = self.states.get(tick.instrument) or trader_mod.initial(tick.instrument)
        produced: list[tuple[Event, str]] = []

        def fold(events: list[Event], source: str) -> None:
            nonlocal state
            for ev in events:
                produced.append((ev, source))
                state = t.on_event(state, ev, env.ts_event)

        day = utc_day(env.ts_event)
        if state.day is not None and day != state.day:
            produced.extend((ev, "engine") for ev in snapshots(state, day))
        state = replace(state, day=day)
        venue_source = f"venue:{self.venue.name}"
        fold(self.venue.on_tick(tick), venue_source)
        state, decisions = t.on_tick(state, tick, str(env.event_id), halted=halted)
        if len(state.strategy.prices) == t.strategy.slow:
            self.indicators[tick.instrument] = self.indicators.get(tick.instrument, 0) + 2  # fast and slow mean
        for ev in decisions:
            fold([ev], "engine")
            if isinstance(ev, OrderSubmitted):
                fold(self.venue.submit(ev), venue_source)
            elif isinstance(ev, OrderCancelRequested):
                fold(self.venue.cancel(ev), venue_source)
        self.states[tick.instrument] = state
        return [env.derive(ev, seq, ts_init=ts_init, source=src) for seq, (ev, src) in enumerate(produced)]
