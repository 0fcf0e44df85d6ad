"""The trading decision for one instrument: a pure fold.

``on_tick`` hands the tick (and the candle it closes, the day it starts, the timer it reaches) to the strategy and
turns its intents into orders that passed risk (or rejections); ``on_event`` folds back what happened to those
orders (acceptances, fills, cancellations) into the open orders and the position, and ``on_update`` hands such an
event to the strategy when it wants order updates. No I/O, no clock: the same events in give the same events out,
which is what makes a replay of the log reproduce every decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from engine.core import orders, portfolio, roundtrips
from engine.core.account import add_deltas
from engine.core.orders import Order
from engine.core.portfolio import Position
from engine.core.risk import RiskLimits, check, halted_rejection, recent_sends, refusal
from engine.core.stops import HeldStop, PendingBracket, check_stop, ended, fold_brackets, fold_stops
from engine.core.strategies.api import (
    CANDLE_NS,
    Bracket,
    Cancel,
    Candle,
    Clock,
    DayStarted,
    Intent,
    Limit,
    Market,
    OrderUpdate,
    Stop,
    Strategy,
    Target,
    Timer,
    View,
)
from events import (
    Direction,
    Event,
    OrderCancelRequested,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    Side,
    SignalGenerated,
    StopCancelled,
    StopPlaced,
    StopTriggered,
    TickReceived,
    short_hash,
)

MAX_ORDERS_PER_INPUT = 16  # orders one input record may make a strategy send; more are refused (rule below)
ORDERS_PER_INPUT_RULE = "orders_per_input"


@dataclass(frozen=True, slots=True)
class TraderState:
    instrument: str
    strategy: Any = None  # the strategy's own state (a value it returns anew)
    position: Position = field(default_factory=lambda: Position(""))
    open_orders: tuple[Order, ...] = ()
    last_price: Decimal | None = None
    day: str | None = None  # UTC day of the last tick
    trip: roundtrips.OpenTrip | None = None
    flows: tuple[tuple[str, Decimal], ...] = ()  # what this instrument's fills moved, per currency, in total
    sent_ts: tuple[int, ...] = ()  # event times of the orders sent in the last 60 s (the order rate limit)
    # at the first tick of ``day``: its price and the flows before it (start-of-day equity, engine.core.daily_loss)
    day_open_price: Decimal | None = None
    day_open_flows: tuple[tuple[str, Decimal], ...] = ()
    clock: Clock = field(default_factory=Clock)  # the open candle and the next timer (when the strategy has them)
    stops: tuple[HeldStop, ...] = ()  # the stops the engine holds for the strategy (engine.core.stops)
    brackets: tuple[PendingBracket, ...] = ()  # entries whose exits are placed when they end with a fill

    @property
    def open_exposure(self) -> Decimal:
        return sum((o.signed_leaves for o in self.open_orders), Decimal(0))

    def exposure_on(self, side: Side) -> Decimal:
        """What the open orders on ``side`` would add to the position if they all filled (signed): with the
        position, the worst case an order on that side is checked against (orders on the other side do not offset
        it: they may never fill)."""
        return sum((o.signed_leaves for o in self.open_orders if o.side is side), Decimal(0))

    def after_tick(self, strategy: Any, last_price: Decimal) -> TraderState:
        """``replace(self, strategy=..., last_price=...)``, at half its cost (on every tick)."""
        return TraderState(
            self.instrument,
            strategy,
            self.position,
            self.open_orders,
            last_price,
            self.day,
            self.trip,
            self.flows,
            self.sent_ts,
            self.day_open_price,
            self.day_open_flows,
            self.clock,
            self.stops,
            self.brackets,
        )


def _overrides(strategy: Strategy[Any, Any], name: str) -> bool:
    return getattr(type(strategy), name) is not getattr(Strategy, name)


class Budget:
    """The orders one input record made its strategy send so far (at most :data:`MAX_ORDERS_PER_INPUT`): one per
    input, shared by the calls it causes (the tick's, and those of the order updates that follow)."""

    __slots__ = ("failures", "orders")

    def __init__(self) -> None:
        self.orders = 0
        self.failures: list[str] = []  # the strategy's calls that raised, while it took this input


def _failed(step: _Step, handler: Any, exc: Exception) -> None:
    """A strategy's call raised: its intents are dropped and its state stays as it was (so a replay, which raises the
    same way, reaches the same state); the core counts it and the shell logs it. Trading goes on."""
    budget = step.budget = step.budget or Budget()
    budget.failures.append(f"{getattr(handler, '__qualname__', handler)} raised {exc!r}"[:1000])


class _Step:
    """One call's bookkeeping: the cause of its orders and how many it made (their client order ids)."""

    __slots__ = ("budget", "cause_id", "halted", "orders", "ts_event")

    def __init__(self, cause_id: str, halted: bool, ts_event: int, budget: Budget | None) -> None:
        self.cause_id = cause_id
        self.halted = halted
        self.ts_event = ts_event
        self.budget = budget  # None: made when the first order is (most inputs make none)
        self.orders = 0


@dataclass(frozen=True, slots=True)
class Trader:
    strategy: Strategy[Any, Any]
    limits: RiskLimits
    order_type: OrderType = OrderType.MARKET  # of the orders that a Target intent makes
    instruments: frozenset[str] = frozenset()  # the instruments it trades (empty: every one the engine sees)
    # a Stop intent as a venue-native stop order (OrderSubmitted of type stop / stop_limit, which the venue holds and
    # triggers) rather than a stop the engine holds (StopPlaced): venue.stops = "native" on a venue that has them
    native_stops: bool = False
    _candles: bool = field(init=False, repr=False, compare=False, default=False)
    _updates: bool = field(init=False, repr=False, compare=False, default=False)
    _days: bool = field(init=False, repr=False, compare=False, default=False)
    _clocked: bool = field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self) -> None:
        # handlers the strategy does not override are never called (and cost nothing on the hot path)
        object.__setattr__(self, "_candles", _overrides(self.strategy, "on_candle"))
        object.__setattr__(self, "_updates", _overrides(self.strategy, "on_order"))
        object.__setattr__(self, "_days", _overrides(self.strategy, "on_day"))
        object.__setattr__(self, "_clocked", self._candles or self._days or bool(self.strategy.timer_seconds))

    @property
    def name(self) -> str:
        return self.strategy.name

    @property
    def wants_updates(self) -> bool:
        return self._updates

    def trades(self, instrument: str) -> bool:
        return not self.instruments or instrument in self.instruments

    def initial(self, instrument: str) -> TraderState:
        return TraderState(instrument, strategy=self.strategy.initial(), position=Position(instrument))

    def client_order_id(self, cause_id: str, n: int = 0) -> str:
        """Derived from the causing event's id (and the order's place among those it caused): a retried submit can
        never make a second order."""
        return f"{self.name}-{short_hash(cause_id if n == 0 else f'{cause_id}/{n}')}"

    def view(self, state: TraderState, ts_event: int, cause_id: str) -> View:
        return View(state, ts_event, cause_id)

    # --- inputs -------------------------------------------------------------------------------------------------

    def on_tick(
        self,
        state: TraderState,
        tick: TickReceived,
        cause_id: str,
        *,
        halted: bool = False,
        ts_event: int = 0,
        new_day: bool = False,
        budget: Budget | None = None,
    ) -> tuple[TraderState, list[Event]]:
        """The tick's decisions: the candle it closes, the day it starts, the timer it reaches, then the tick."""
        strategy = self.strategy
        if state.strategy is None:  # a state made without the strategy's (a stateless strategy's is None too)
            state = replace(state, strategy=strategy.initial())
        step = _Step(cause_id, halted, ts_event, budget)
        out: list[Event] = []
        if self._clocked:
            state = self._clock(state, tick, step, new_day, out)
        try:
            sstate, intents = strategy.on_tick(state.strategy, tick, View(state, ts_event, cause_id))
            after = state.after_tick(sstate, tick.price)
            if not intents:
                return after, out
            after, events = self._act(after, intents, step, tick.price)
            return after, out + events
        except Exception as exc:  # see _failed
            _failed(step, strategy.on_tick, exc)
            return state.after_tick(state.strategy, tick.price), out

    def _clock(
        self, state: TraderState, tick: TickReceived, step: _Step, new_day: bool, out: list[Event]
    ) -> TraderState:
        """The candle the tick closes, the day it starts, the timer it reaches: handed over before the tick."""
        strategy, ts_event = self.strategy, step.ts_event
        clock = state.clock
        if self._candles:
            minute = ts_event - ts_event % CANDLE_NS
            candle = clock.candle
            if candle is not None and candle.start != minute:
                state, events = self._call(state, step, strategy.on_candle, candle, tick.price)
                out += events
                candle = None
            fresh = Candle(tick.instrument, minute, tick.price, tick.price, tick.price, tick.price, tick.quantity, 1)
            clock = replace(clock, candle=fresh if candle is None else candle.add(tick.price, tick.quantity))
        if new_day and self._days and state.day is not None:
            state, events = self._call(state, step, strategy.on_day, DayStarted(tick.instrument, state.day), tick.price)
            out += events
        if strategy.timer_seconds:
            interval = strategy.timer_seconds * 1_000_000_000
            due = clock.next_timer
            if due is None:
                clock = replace(clock, next_timer=ts_event - ts_event % interval + interval)
            elif ts_event >= due:
                at = ts_event - ts_event % interval  # one timer for the latest multiple reached (a gap skips some)
                state, events = self._call(state, step, strategy.on_timer, Timer(tick.instrument, at), tick.price)
                out += events
                clock = replace(clock, next_timer=at + interval)
        return state if clock is state.clock else replace(state, clock=clock)

    def on_update(
        self,
        state: TraderState,
        event: Event,
        cause_id: str,
        *,
        halted: bool = False,
        ts_event: int = 0,
        budget: Budget | None = None,
    ) -> tuple[TraderState, list[Event]]:
        """Hand one of its orders' events (already folded by :meth:`on_event`) to the strategy; its decisions."""
        if not self._updates or not isinstance(event, orders.ORDER_EVENTS):
            return state, []
        if isinstance(event, OrderSubmitted | OrderCancelRequested):
            return state, []
        if isinstance(event, OrderRejected) and event.rule == ORDERS_PER_INPUT_RULE:
            return state, []  # never handed back: it would ask again, without end
        coid = str(getattr(event, "client_order_id", ""))
        if not coid.startswith(f"{self.name}-"):
            return state, []  # not this strategy's order
        order = next((o for o in state.open_orders if o.client_order_id == coid), None)
        update = OrderUpdate(event, order)
        step = _Step(cause_id, halted, ts_event, budget)
        return self._call(state, step, self.strategy.on_order, update, state.last_price)

    # --- intents -> events -------------------------------------------------------------------------------------

    def _call(
        self, state: TraderState, step: _Step, handler: Any, arg: Any, price: Decimal | None
    ) -> tuple[TraderState, list[Event]]:
        try:
            sstate, intents = handler(state.strategy, arg, self.view(state, step.ts_event, step.cause_id))
            after = replace(state, strategy=sstate)
            return self._act(after, intents, step, price) if intents else (after, [])
        except Exception as exc:  # a strategy's bug must not stop trading nor leave half a state (see _failed)
            _failed(step, handler, exc)
            return state, []

    def _act(
        self, state: TraderState, intents: Sequence[Intent], step: _Step, price: Decimal | None
    ) -> tuple[TraderState, list[Event]]:
        """The events of a call's intents, each checked against the state as the ones before it left it; the state
        with the brackets they started (the core folds the events themselves afterwards)."""
        out: list[Event] = []
        scratch = state
        brackets = state.brackets
        for i, intent in enumerate(intents):
            if isinstance(intent, Bracket):
                events = self._intent(scratch, intent.entry, step, price)
                entry = events[0] if events else None
                if isinstance(entry, OrderSubmitted):
                    check_stop(entry.quantity, intent.stop_loss, intent.stop_limit)
                    check_stop(entry.quantity, intent.take_profit, None)
                    pending = PendingBracket(
                        entry.client_order_id, intent.take_profit, intent.stop_loss, intent.stop_limit
                    )
                    brackets = (*brackets, pending)
            else:
                events = self._intent(scratch, intent, step, price)
            out += events
            if i + 1 < len(intents):  # the next intent sees these (the core folds them for real afterwards)
                for ev in events:
                    scratch = self.on_event(scratch, ev, step.ts_event)
        return (state if brackets is state.brackets else replace(state, brackets=brackets)), out

    def _intent(self, state: TraderState, intent: Intent, step: _Step, price: Decimal | None) -> list[Event]:
        if isinstance(intent, Stop):
            if self.native_stops:  # the venue holds and triggers it (engine.core.stops)
                check_stop(intent.quantity, intent.trigger, intent.limit)
                kind = OrderType.STOP if intent.limit is None else OrderType.STOP_LIMIT
                return [
                    self._order(
                        state, intent.side, intent.quantity, kind, intent.limit, step, price, trigger=intent.trigger
                    )
                ]
            return [self._stop(state, intent.side, intent.quantity, intent.trigger, intent.limit, step, intent.reason)]
        if isinstance(intent, Cancel):
            held = next((s for s in state.stops if s.client_order_id == intent.client_order_id), None)
            if held is not None:
                return [self._stop_cancelled(state, held, intent.reason)]
            order = next((o for o in state.open_orders if o.client_order_id == intent.client_order_id), None)
            if order is None or order.status is orders.OrderStatus.CANCEL_REQUESTED:
                return []  # not open (filled, cancelled already) or asked already: nothing to do
            return [
                OrderCancelRequested(
                    instrument=state.instrument, client_order_id=order.client_order_id, reason=intent.reason
                )
            ]
        if isinstance(intent, Target):
            return self._target(state, intent, step, price)
        if isinstance(intent, Market):
            return [self._order(state, intent.side, intent.quantity, OrderType.MARKET, None, step, price)]
        if isinstance(intent, Limit):
            return [self._order(state, intent.side, intent.quantity, OrderType.LIMIT, intent.price, step, price)]
        raise TypeError(f"{self.name}: not an intent: {intent!r}")

    def _target(self, state: TraderState, intent: Target, step: _Step, price: Decimal | None) -> list[Event]:
        if price is None:
            return []  # no price yet: nothing to size or check an order with
        target = intent.position
        direction = Direction.LONG if target > 0 else Direction.SHORT if target < 0 else Direction.FLAT
        out: list[Event] = [
            SignalGenerated(
                instrument=state.instrument,
                strategy=self.name,
                direction=direction,
                target_position=target,
                price=price,
                reason=intent.reason,
            )
        ]
        # a new target supersedes resting limit orders; market orders fill at the next tick anyway
        for o in state.open_orders:
            if o.order_type is OrderType.LIMIT and o.status is not orders.OrderStatus.CANCEL_REQUESTED:
                out.append(
                    OrderCancelRequested(
                        instrument=o.instrument, client_order_id=o.client_order_id, reason="new signal"
                    )
                )
        pending = sum((o.signed_leaves for o in state.open_orders if o.order_type is OrderType.MARKET), Decimal(0))
        delta = target - (state.position.quantity + pending)
        if delta == 0:
            return out
        limit = price if self.order_type is OrderType.LIMIT else None
        side = Side.BUY if delta > 0 else Side.SELL
        out.append(self._order(state, side, abs(delta), self.order_type, limit, step, price, pending=pending))
        return out

    def _order(
        self,
        state: TraderState,
        side: Side,
        quantity: Decimal,
        order_type: OrderType,
        limit_price: Decimal | None,
        step: _Step,
        price: Decimal | None,
        *,
        pending: Decimal | None = None,
        trigger: Decimal | None = None,
    ) -> OrderSubmitted | OrderRejected:
        n, step.orders = step.orders, step.orders + 1
        request = OrderSubmitted(
            instrument=state.instrument,
            client_order_id=self.client_order_id(step.cause_id, n),
            strategy=self.name,
            side=side,
            order_type=order_type,
            quantity=quantity,
            limit_price=limit_price,
            trigger_price=trigger,
        )
        if step.halted:
            return halted_rejection(request)
        budget = step.budget = step.budget or Budget()
        if budget.orders >= MAX_ORDERS_PER_INPUT:
            return refusal(request, ORDERS_PER_INPUT_RULE, f"more than {MAX_ORDERS_PER_INPUT} orders for one input")
        budget.orders += 1
        last = price if price is not None else limit_price if limit_price is not None else trigger
        if last is None:
            return refusal(request, "no_price", "no price yet to check a market order against")
        # a Target's order nets its pending market orders (it replaces them); an explicit order is checked against
        # the worst case on its side
        exposure = pending if pending is not None else state.exposure_on(side)
        return check(
            request,
            position=state.position.quantity,
            open_exposure=exposure,
            last_price=last,
            limits=self.limits,
            open_orders=len(state.open_orders),
            sent_ts=state.sent_ts,
            now=step.ts_event,
        )

    def _stop(
        self,
        state: TraderState,
        side: Side,
        quantity: Decimal,
        trigger: Decimal,
        limit: Decimal | None,
        step: _Step,
        reason: str,
        take_profit_id: str = "",
    ) -> StopPlaced:
        check_stop(quantity, trigger, limit)
        n, step.orders = step.orders, step.orders + 1
        budget = step.budget = step.budget or Budget()
        budget.orders += 1
        return StopPlaced(
            instrument=state.instrument,
            client_order_id=self.client_order_id(step.cause_id, n),
            strategy=self.name,
            side=side,
            quantity=quantity,
            trigger_price=trigger,
            limit_price=limit,
            take_profit_id=take_profit_id,
            reason=reason,
        )

    def _stop_cancelled(self, state: TraderState, held: HeldStop, reason: str) -> StopCancelled:
        return StopCancelled(
            instrument=state.instrument, client_order_id=held.client_order_id, strategy=self.name, reason=reason
        )

    def trigger(
        self, state: TraderState, tick: TickReceived, cause_id: str, *, halted: bool, ts_event: int, budget: Budget
    ) -> list[Event]:
        """The stops this tick reaches: for each, ``StopTriggered``, a cancel of its bracket's take-profit if that is
        open, and the order it sends (checked by risk). While trading is halted no stop triggers: every new order
        would be refused, and the stop would be gone; it stays held, and the first tick after the resume that reaches
        it triggers it."""
        if halted:  # held while trading is halted (its order would be refused): it triggers after the resume
            return []
        step = _Step(f"{cause_id}/stops", halted, ts_event, budget)
        out: list[Event] = []
        for held in state.stops:
            if not held.reached_by(tick.price):
                continue
            if held.quantity <= 0:  # its take-profit filled it all: cancelled rather than sent empty
                out.append(self._stop_cancelled(state, held, "take profit filled"))
                continue
            kind = OrderType.MARKET if held.limit is None else OrderType.LIMIT
            order = self._order(state, held.side, held.quantity, kind, held.limit, step, tick.price)
            out.append(
                StopTriggered(
                    instrument=state.instrument,
                    client_order_id=held.client_order_id,
                    strategy=self.name,
                    order_id=order.client_order_id,
                    price=tick.price,
                    quantity=held.quantity,
                )
            )
            tp = next((o for o in state.open_orders if o.client_order_id == held.take_profit_id), None)
            if tp is not None and tp.status is not orders.OrderStatus.CANCEL_REQUESTED:
                out.append(
                    OrderCancelRequested(
                        instrument=state.instrument, client_order_id=tp.client_order_id, reason="stop loss"
                    )
                )
            out.append(order)
        return out

    def after_event(
        self, state: TraderState, event: Event, cause_id: str, *, halted: bool, ts_event: int, budget: Budget
    ) -> tuple[TraderState, list[Event]]:
        """What an order event (already folded) calls for from the engine: a bracket's exits once its entry has
        ended with a fill (a take-profit limit, and the stop paired with it); a stop cancelled once the take-profit
        it is paired with has filled in full."""
        out: list[Event] = []
        coid = getattr(event, "client_order_id", None)
        if isinstance(event, OrderFilled):
            for held in state.stops:
                if held.take_profit_id == coid and held.quantity <= 0:
                    out.append(self._stop_cancelled(state, held, "take profit filled"))
        due = [b for b in state.brackets if ended(b, event, state.open_orders)]
        if not due:
            return state, out
        step = _Step(f"{cause_id}/bracket", halted, ts_event, budget)
        exit_side = Side.SELL if state.position.quantity > 0 else Side.BUY
        for b in due:
            tp = self._order(state, exit_side, b.filled, OrderType.LIMIT, b.take_profit, step, state.last_price)
            out.append(tp)
            paired = tp.client_order_id if isinstance(tp, OrderSubmitted) else ""
            reason = f"stop loss of the bracket of {b.entry_id}"
            out.append(self._stop(state, exit_side, b.filled, b.stop_loss, b.stop_limit, step, reason, paired))
        return replace(state, brackets=tuple(b for b in state.brackets if b not in due)), out

    # --- what happened to the orders ---------------------------------------------------------------------------

    def on_event(self, state: TraderState, event: Event, ts_event: int) -> TraderState:
        """Fold back an order event (or a held stop's) that concerns this instrument."""
        if isinstance(event, StopPlaced | StopTriggered | StopCancelled):
            return replace(state, stops=fold_stops(state.stops, event))
        if state.stops or state.brackets:
            state = replace(state, stops=fold_stops(state.stops, event), brackets=fold_brackets(state.brackets, event))
        if not isinstance(event, orders.ORDER_EVENTS) or (isinstance(event, OrderRejected) and event.by == "risk"):
            return state
        coid: str = event.client_order_id
        current = next((o for o in state.open_orders if o.client_order_id == coid), None)
        if current is None and not isinstance(event, OrderSubmitted):
            return state  # an order this trader no longer tracks (terminal already)
        updated = orders.apply(current, event)
        if isinstance(event, OrderSubmitted) and current is None:  # sent: counts towards the order rate
            state = replace(state, sent_ts=(*recent_sends(state.sent_ts, ts_event), ts_event))
        others = tuple(o for o in state.open_orders if o.client_order_id != coid)
        open_orders = (*others, updated) if updated.status.is_open else others
        position, trip = state.position, state.trip
        if isinstance(event, OrderFilled) and event.trade_id not in (current.trade_ids if current else ()):
            position = portfolio.apply_fill(position, event)
            trip, _ = roundtrips.apply_fill(trip, event, ts_event)
            flows = tuple(sorted(add_deltas(dict(state.flows), event).items()))
            return replace(state, open_orders=open_orders, position=position, trip=trip, flows=flows)
        return replace(state, open_orders=open_orders, position=position, trip=trip)
