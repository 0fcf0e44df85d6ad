"""The trading core: ticks in, events out, synchronous and deterministic.

For each tick of an instrument, in this order:

1. the venue matches what rests against the tick (fills of earlier orders);
2. those fills are folded into the trader (position, open orders);
3. the strategy sees the tick; a change of target becomes an order, checked by risk;
4. orders that passed risk go to the venue (accepted or rejected), cancels likewise;
5. the venue's answers are folded back into the trader.

A tick whose event id was taken lately (the same trade published twice) is skipped (:mod:`engine.core.dedupe`).

The first tick of a new UTC day is preceded by the day's snapshots (see ``engine.snapshots``).

With a **live** venue (``venue=None``) steps 1 and 4 happen outside: the execution service sends the
orders and writes the venue's reports (accepted, filled, cancelled...) into the same input topic as the
ticks, keyed by instrument. :meth:`TradingCore.on_input` folds such a report into the trader and relays it unchanged
(same id) to the trading topic, so the engine's decisions stay a function of one ordered log per
instrument, and ``trading.events`` holds each order's whole life in order for the projections.

Every event produced is derived from the tick's envelope (same event time, deterministic id,
the tick as causation), so processing the same tick twice yields the very same events.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from engine.core.dedupe import RecentIds
from engine.core.orders import ORDER_EVENTS
from engine.core.ports import SimulatedVenue
from engine.core.snapshots import snapshots, utc_day
from engine.core.trader import Budget, Trader, TraderState
from events import Envelope, Event, OrderCancelRequested, OrderRejected, OrderSubmitted, TickReceived
from events.arithmetic import ensure_exact


class TradingCore:
    """The state of the instruments of one partition (the engine keeps one core per partition it owns)."""

    def __init__(self, trader: Trader, venue: SimulatedVenue | None) -> None:
        self.trader = trader
        self.venue = venue
        self.states: dict[str, TraderState] = {}
        self.indicators: dict[str, int] = {}  # indicator values computed, per instrument (a statistic)
        self.recent: RecentIds[uuid.UUID] = RecentIds()  # the ticks taken lately: a repeated one is skipped
        self.strategy_failures = 0  # the strategy's calls that raised (their intents dropped: engine.core.trader)
        self.last_failure = ""

    def on_input(self, env: Envelope, *, ts_init: int, halted: bool = False) -> list[Envelope]:
        """One record of the input topic: a tick (-> derived events) or a live venue's report (-> folded)."""
        ensure_exact()  # the same rounding in every process, whatever else ran in it (see events.arithmetic)
        tick = env.event
        t = self.trader
        if not isinstance(tick, TickReceived):
            if isinstance(tick, ORDER_EVENTS) and tick.instrument:
                state = self.states.get(tick.instrument) or t.initial(tick.instrument)
                state = t.on_event(state, tick, env.ts_event)
                decided: list[Event] = []
                if t.wants_updates:  # the strategy's answer to its order's news: sent by the execution service
                    budget = Budget()
                    state, decided = t.on_update(
                        state, tick, str(env.event_id), halted=halted, ts_event=env.ts_event, budget=budget
                    )
                    if budget.failures:
                        self.strategy_failures += len(budget.failures)
                        self.last_failure = budget.failures[-1]
                    for ev in decided:
                        state = t.on_event(state, ev, env.ts_event)
                self.states[tick.instrument] = state
                # relayed as it is (same id) to the trading topic, after the order it answers; then the decisions
                return [env, *(env.derive(ev, seq, ts_init=ts_init, source="engine") for seq, ev in enumerate(decided))]
            return []
        if not self.recent.add(env.event_id):
            return []  # the same trade again (a feed resent it): taken once (see engine.core.dedupe)
        state = self.states.get(tick.instrument) or t.initial(tick.instrument)
        produced: list[tuple[Event, str]] = []
        venue = self.venue
        cause = str(env.event_id)
        step = _Input(env, halted, cause, Budget(), produced)  # the orders this input may make, in all its calls
        day = utc_day(env.ts_event)
        if state.day is not None and day != state.day:
            produced.extend((ev, "engine") for ev in snapshots(state, day))
        new_day = day != state.day
        if new_day:  # the day's first tick: where start-of-day equity is taken (engine.core.daily_loss)
            state = replace(state, day=day, day_open_price=tick.price, day_open_flows=state.flows)
        if venue is not None and (fills := venue.on_tick(tick)):
            state = self._fold(state, fills, f"venue:{venue.name}", step)
        state, decisions = t.on_tick(
            state, tick, cause, halted=halted, ts_event=env.ts_event, new_day=new_day, budget=step.budget
        )
        if n := t.strategy.indicators(state.strategy):
            self.indicators[tick.instrument] = self.indicators.get(tick.instrument, 0) + n
        if decisions:
            state = self._decide(state, decisions, step)
        self.states[tick.instrument] = state
        if step.budget.failures:
            self.strategy_failures += len(step.budget.failures)
            self.last_failure = step.budget.failures[-1]
        return [env.derive(ev, seq, ts_init=ts_init, source=src) for seq, (ev, src) in enumerate(produced)]

    def _fold(self, state: TraderState, events: list[Event], source: str, step: _Input) -> TraderState:
        """Fold what happened into the trader; hand each of its orders' updates to a strategy that wants them."""
        t, env = self.trader, step.env
        for ev in events:
            step.produced.append((ev, source))
            state = t.on_event(state, ev, env.ts_event)
            if t.wants_updates and (source != "engine" or isinstance(ev, OrderRejected)):
                cause = f"{step.cause}/{len(step.produced)}"
                state, decided = t.on_update(
                    state, ev, cause, halted=step.halted, ts_event=env.ts_event, budget=step.budget
                )
                if decided:
                    state = self._decide(state, decided, step)
        return state

    def _decide(self, state: TraderState, decisions: list[Event], step: _Input) -> TraderState:
        """The core's decisions, folded; on the paper venue also sent, and the venue's answers folded."""
        venue = self.venue
        for ev in decisions:
            state = self._fold(state, [ev], "engine", step)
            if venue is None:
                continue  # live: the execution service sends it; its reports come back as input
            if isinstance(ev, OrderSubmitted):
                state = self._fold(state, venue.submit(ev), f"venue:{venue.name}", step)
            elif isinstance(ev, OrderCancelRequested):
                state = self._fold(state, venue.cancel(ev), f"venue:{venue.name}", step)
        return state


class _Input:
    """One input record's bookkeeping while the core takes it."""

    __slots__ = ("budget", "cause", "env", "halted", "produced")

    def __init__(
        self, env: Envelope, halted: bool, cause: str, budget: Budget, produced: list[tuple[Event, str]]
    ) -> None:
        self.env = env
        self.halted = halted
        self.cause = cause
        self.budget = budget
        self.produced = produced
