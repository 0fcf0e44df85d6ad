"""The trading core: ticks in, events out, synchronous and deterministic.

The core runs one or more strategies (:class:`~engine.core.trader.Trader`), each over its instruments (all of the
partition's, unless it names some). Their states are kept per strategy and instrument. For each tick, in this
order:

1. the venue matches what rests against the tick (fills of earlier orders), and each fill is folded into the state
   of the strategy whose order it is (its client order id starts with the strategy's name);
2. each strategy that trades the instrument, in the order they are configured, sees the tick; its intents become
   orders checked by risk: its own limits, then the account's over every strategy's orders of the instrument;
3. orders that passed risk go to the venue (accepted or rejected), cancels likewise;
4. the venue's answers are folded back into the strategy's state.

A tick whose event id was taken lately (the same trade published twice) is skipped (:mod:`engine.core.dedupe`).

The first tick of a new UTC day is preceded by the day's snapshots (see ``engine.core.snapshots``), per strategy.

With a **live** venue (``venue=None``) steps 1 and 3 happen outside: the execution service sends the
orders and writes the venue's reports (accepted, filled, cancelled...) into the same input topic as the
ticks, keyed by instrument. :meth:`TradingCore.on_input` folds such a report into the state of the strategy that
owns the order and relays it unchanged (same id) to the trading topic, so the engine's decisions stay a function of
one ordered log per instrument, and ``trading.events`` holds each order's whole life in order for the projections.

Every event produced is derived from the tick's envelope (same event time, deterministic id,
the tick as causation), so processing the same tick twice yields the very same events.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from decimal import Decimal

from engine.core import daily_loss
from engine.core.dedupe import RecentIds
from engine.core.orders import ORDER_EVENTS
from engine.core.ports import SimulatedVenue
from engine.core.risk import RiskLimits, check, recent_sends, refusal
from engine.core.snapshots import snapshots, utc_day
from engine.core.trader import Budget, Trader, TraderState
from events import Envelope, Event, OrderCancelRequested, OrderRejected, OrderSubmitted, TickReceived
from events.arithmetic import ensure_exact

Key = tuple[str, str]  # (strategy, instrument)
DAY_NS = 86_400 * 1_000_000_000


class TradingCore:
    """The state of the instruments of one partition (the engine keeps one core per partition it owns).

    ``account``: limits over the orders of every strategy of an instrument together (position, open orders, order
    rate, order notional), checked after the strategy's own; None with one strategy, whose limits are the account's.
    """

    def __init__(
        self, traders: Trader | Sequence[Trader], venue: SimulatedVenue | None, *, account: RiskLimits | None = None
    ) -> None:
        self.traders: tuple[Trader, ...] = (traders,) if isinstance(traders, Trader) else tuple(traders)
        if not self.traders:
            raise ValueError("a trading core needs a strategy")
        names = [t.name for t in self.traders]
        if len(set(names)) != len(names):
            raise ValueError(f"strategies need distinct names (their client order ids' prefix): {names}")
        self.trader = self.traders[0]
        self.venue = venue
        self.account = account if len(self.traders) > 1 else None
        self._by_name = {t.name: t for t in self.traders}
        self._single = len(self.traders) == 1
        self._for: dict[str, tuple[Trader, ...]] = {}  # instrument -> the strategies that trade it
        self._lanes: dict[str, tuple[tuple[Trader, Key], ...]] = {}  # instrument -> those, with their state's key
        self._day_number, self._day_name = -1, ""  # engine.core.snapshots.utc_day's last answer
        self.states: dict[Key, TraderState] = {}
        self.indicators: dict[str, int] = {}  # indicator values computed, per instrument (a statistic)
        self.recent: RecentIds[uuid.UUID] = RecentIds()  # the ticks taken lately: a repeated one is skipped
        self.strategy_failures = 0  # the strategy's calls that raised (their intents dropped: engine.core.trader)
        self.last_failure = ""

    # --- reading ------------------------------------------------------------------------------------------------

    def state(self, instrument: str, strategy: str | None = None) -> TraderState:
        """A strategy's state of an instrument (default: the first strategy's); its initial state if none yet."""
        t = self._by_name[strategy] if strategy is not None else self.trader
        return self.states.get((t.name, instrument)) or t.initial(instrument)

    def of(self, instrument: str) -> list[TraderState]:
        """Every strategy's state of ``instrument`` (those that have one)."""
        return [s for (_, i), s in self.states.items() if i == instrument]

    def views(self) -> Iterator[daily_loss.View]:
        """What each instrument adds to the account (its strategies' flows together): the daily loss check's."""
        for instrument in dict.fromkeys(i for _, i in self.states):
            view = self.view(instrument)
            if view is not None:
                yield view

    def view(self, instrument: str) -> daily_loss.View | None:
        states = self.of(instrument)
        if not states:
            return None
        return daily_loss.view(states[0]) if len(states) == 1 else daily_loss.combined(states)

    def traders_of(self, instrument: str) -> tuple[Trader, ...]:
        known = self._for.get(instrument)
        if known is None:
            known = self._for[instrument] = tuple(t for t in self.traders if t.trades(instrument))
        return known

    def owner(self, client_order_id: str) -> Trader | None:
        """The strategy whose order it is: by its client order id's prefix (with one strategy, that one)."""
        if self._single:
            return self.trader
        return self._by_name.get(client_order_id.rpartition("-")[0])

    # --- input --------------------------------------------------------------------------------------------------

    def on_input(self, env: Envelope, *, ts_init: int, halted: bool = False) -> list[Envelope]:
        """One record of the input topic: a tick (-> derived events) or a live venue's report (-> folded)."""
        ensure_exact()  # the same rounding in every process, whatever else ran in it (see events.arithmetic)
        tick = env.event
        if not isinstance(tick, TickReceived):
            if isinstance(tick, ORDER_EVENTS) and tick.instrument:
                return self._report(env, tick, ts_init=ts_init, halted=halted)
            return []
        if not self.recent.add(env.event_id):
            return []  # the same trade again (a feed resent it): taken once (see engine.core.dedupe)
        lanes = self._lanes.get(tick.instrument) or self._lanes_of(tick.instrument)
        produced: list[tuple[Event, str]] = []
        cause = str(env.event_id)
        step = _Input(env, halted, cause, produced)
        ts_event = env.ts_event
        day = self._day(ts_event)
        states = self.states
        for t, key in lanes:
            state = states.get(key) or t.initial(tick.instrument)
            if day != state.day:  # the day's first tick: where start-of-day equity is taken (engine.core.daily_loss)
                if state.day is not None:  # the snapshots name their strategy with several (one: the v1 shape)
                    name = "" if self._single else t.name
                    produced.extend((ev, "engine") for ev in snapshots(state, day, name))
                state = replace(state, day=day, day_open_price=tick.price, day_open_flows=state.flows)
                step.new_day(t.name)
            states[key] = state
        venue = self.venue
        if venue is not None and (fills := venue.on_tick(tick)):
            self._fold(fills, f"venue:{venue.name}", step)
        for t, key in lanes:  # the stops the tick reaches, after what rested was matched (engine.core.stops)
            if states[key].stops and (triggered := self._trigger(t, states[key], tick, step)):
                self._decide(t, triggered, step)
        new_days = step.new_days
        for t, key in lanes:
            state, decisions = t.on_tick(
                states[key],
                tick,
                cause,
                halted=halted,
                ts_event=ts_event,
                new_day=bool(new_days) and t.name in new_days,
                budget=step.budget(t),
            )
            states[key] = state
            if n := t.strategy.indicators(state.strategy):
                self.indicators[tick.instrument] = self.indicators.get(tick.instrument, 0) + n
            if decisions:
                self._decide(t, decisions, step)
        self._count_failures(step)
        return [env.derive(ev, seq, ts_init=ts_init, source=src) for seq, (ev, src) in enumerate(produced)]

    def _day(self, ts_event: int) -> str:
        """The UTC day of an event time (YYYY-MM-DD), the last one remembered: most ticks fall in the day before."""
        n = ts_event // DAY_NS
        if n != self._day_number:
            self._day_number, self._day_name = n, utc_day(ts_event)
        return self._day_name

    def _lanes_of(self, instrument: str) -> tuple[tuple[Trader, Key], ...]:
        lanes = self._lanes[instrument] = tuple((t, (t.name, instrument)) for t in self.traders_of(instrument))
        return lanes

    def _report(self, env: Envelope, event: Event, *, ts_init: int, halted: bool) -> list[Envelope]:
        """A live venue's report: folded into its strategy's state, relayed as it is (same id) to the trading topic,
        after the order it answers; then the strategy's answer to it, which the execution service sends."""
        t = self.owner(str(getattr(event, "client_order_id", "")))
        if t is None:
            return [env]  # no strategy of this engine's: relayed for the record, folded nowhere
        key = (t.name, event.instrument)
        state = t.on_event(self.states.get(key) or t.initial(event.instrument), event, env.ts_event)
        self.states[key] = state
        decided: list[Event] = []
        step = _Input(env, halted, str(env.event_id), [])
        if state.brackets or state.stops:  # a bracket's exits, a stop its take-profit filled
            state, decided = t.after_event(
                state, event, step.cause, halted=halted, ts_event=env.ts_event, budget=step.budget(t)
            )
        if t.wants_updates:
            state, answer = t.on_update(
                state, event, step.cause, halted=halted, ts_event=env.ts_event, budget=step.budget(t)
            )
            decided += answer
        if decided:
            decided = [self._account_check(t, ev, env.ts_event) for ev in decided]
            for ev in decided:
                state = t.on_event(state, ev, env.ts_event)
            self._count_failures(step)
        self.states[key] = state
        return [env, *(env.derive(ev, seq, ts_init=ts_init, source="engine") for seq, ev in enumerate(decided))]

    def _count_failures(self, step: _Input) -> None:
        for budget in step.budgets.values():
            if budget.failures:
                self.strategy_failures += len(budget.failures)
                self.last_failure = budget.failures[-1]

    def _fold(self, events: list[Event], source: str, step: _Input) -> None:
        """Fold what happened into the states of the strategies whose orders it concerns; hand each of its orders'
        updates to a strategy that wants them (and act on what it decides)."""
        env = step.env
        for ev in events:
            step.produced.append((ev, source))
            t = self.trader if self._single else self.owner(str(getattr(ev, "client_order_id", "")))
            if t is None:
                continue
            key = (t.name, ev.instrument)
            state = t.on_event(self.states.get(key) or t.initial(ev.instrument), ev, env.ts_event)
            self.states[key] = state
            if state.brackets or state.stops:  # a bracket's exits, a stop its take-profit filled
                cause = f"{step.cause}/{len(step.produced)}"
                state, due = t.after_event(
                    state, ev, cause, halted=step.halted, ts_event=env.ts_event, budget=step.budget(t)
                )
                self.states[key] = state
                if due:
                    self._decide(t, due, step)
                    state = self.states[key]
            if t.wants_updates and (source != "engine" or isinstance(ev, OrderRejected)):
                cause = f"{step.cause}/{len(step.produced)}"
                state, decided = t.on_update(
                    state, ev, cause, halted=step.halted, ts_event=env.ts_event, budget=step.budget(t)
                )
                self.states[key] = state
                if decided:
                    self._decide(t, decided, step)

    def _trigger(self, t: Trader, state: TraderState, tick: TickReceived, step: _Input) -> list[Event]:
        env = step.env
        return t.trigger(state, tick, step.cause, halted=step.halted, ts_event=env.ts_event, budget=step.budget(t))

    def _decide(self, t: Trader, decisions: list[Event], step: _Input) -> None:
        """A strategy's decisions, checked against the account's limits and folded; on the paper venue also sent, and
        the venue's answers folded."""
        venue = self.venue
        for ev in decisions:
            ev = self._account_check(t, ev, step.env.ts_event)
            self._fold([ev], "engine", step)
            if venue is None:
                continue  # live: the execution service sends it; its reports come back as input
            if isinstance(ev, OrderSubmitted):
                self._fold(venue.submit(ev), f"venue:{venue.name}", step)
            elif isinstance(ev, OrderCancelRequested):
                self._fold(venue.cancel(ev), f"venue:{venue.name}", step)

    def _account_check(self, t: Trader, ev: Event, now: int) -> Event:
        """An order that passed its strategy's limits, checked against the account's: every strategy's position and
        orders of the instrument together. A refusal names the rule with ``account_`` before it."""
        limits = self.account
        if limits is None or not isinstance(ev, OrderSubmitted):
            return ev
        states = self.of(ev.instrument)
        position = sum((s.position.quantity for s in states), Decimal(0))
        exposure = sum((s.exposure_on(ev.side) for s in states), Decimal(0))  # the worst case on its side
        last = next((s.last_price for s in states if s.last_price is not None), ev.limit_price)
        if last is None:
            return ev  # no price anywhere (cannot be: the strategy's own check needed one)
        sent = sorted(ts for s in states for ts in recent_sends(s.sent_ts, now))
        verdict = check(
            ev,
            position=position,
            open_exposure=exposure,
            last_price=last,
            limits=limits,
            open_orders=sum(len(s.open_orders) for s in states),
            sent_ts=sent,
            now=now,
        )
        if isinstance(verdict, OrderRejected):
            return refusal(ev, f"account_{verdict.rule}", f"account: {verdict.reason}")
        return ev


_NONE: frozenset[str] = frozenset()


class _Input:
    """One input record's bookkeeping while the core takes it."""

    __slots__ = ("budgets", "cause", "env", "halted", "new_days", "produced")

    def __init__(self, env: Envelope, halted: bool, cause: str, produced: list[tuple[Event, str]]) -> None:
        self.env = env
        self.halted = halted
        self.cause = cause
        self.produced = produced
        self.budgets: dict[str, Budget] = {}  # per strategy: the orders this input made it send, in all its calls
        self.new_days: frozenset[str] | set[str] = _NONE  # the strategies for which this tick starts a UTC day

    def new_day(self, name: str) -> None:
        if not self.new_days:
            self.new_days = set()
        self.new_days.add(name)  # type: ignore[union-attr]

    def budget(self, t: Trader) -> Budget:
        b = self.budgets.get(t.name)
        if b is None:
            b = self.budgets[t.name] = Budget()
        return b
