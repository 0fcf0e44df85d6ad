"""The strategy API: what a strategy receives, what it may return, and the base class to write one.

A strategy is a pure, deterministic function of the log. The core calls it, in log order, with:

- :meth:`Strategy.on_tick` a trade tick (:class:`~events.TickReceived`);
- :meth:`Strategy.on_candle` a 1-minute :class:`Candle` the core built from the ticks, when it closes (at the first
  tick of a later minute, before that tick);
- :meth:`Strategy.on_order` an update of one of its own orders (:class:`OrderUpdate`: accepted, partly filled,
  filled, cancelled, expired, rejected with the rule that refused it);
- :meth:`Strategy.on_timer` a :class:`Timer` every ``timer_seconds`` of market time (event time, never the wall
  clock), before the first tick at or after it;
- :meth:`Strategy.on_day` the start of a UTC day (:class:`DayStarted`), before its first tick.

Each call gets the strategy's state (a value it returns anew: a frozen dataclass, a tuple...) and a read-only
:class:`View` of its instrument: position, average price, open orders, balances, last price, event time and a
``seed`` derived from the causing event (the only randomness allowed: ``random.Random(view.seed)``). It returns the
new state and its intents: a :class:`Target` position (the engine works out the orders), or explicit orders
(:class:`Market`, :class:`Limit`, :class:`Cancel`), stops the engine holds and triggers (:class:`Stop`, market or
limit) and entries with their take-profit and stop-loss (:class:`Bracket`). No clock, no I/O, no randomness but
the seed, no iteration over a set of strings (its order changes from one process to the next):
``python -m engine strategy check`` runs a strategy twice, and once more from a snapshot, and names the first event
that differs.

Parameters are a frozen dataclass (``Params``), validated from ``[strategy.params]`` at start.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar

from engine.core.orders import Order
from events import Event, Side, TickReceived

S = TypeVar("S")
P = TypeVar("P")

CANDLE_NS = 60 * 1_000_000_000  # candles of one minute of event time


@dataclass(frozen=True, slots=True)
class Candle:
    """One minute of an instrument's trades: [start, start + 1 min) of event time."""

    instrument: str
    start: int  # ns since the epoch, UTC, a whole minute
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal  # in the base currency
    trades: int

    def add(self, price: Decimal, quantity: Decimal) -> Candle:
        return Candle(
            self.instrument,
            self.start,
            self.open,
            max(self.high, price),
            min(self.low, price),
            price,
            self.volume + quantity,
            self.trades + 1,
        )


@dataclass(frozen=True, slots=True)
class Timer:
    """``timer_seconds`` of market time passed: ``at`` is the whole multiple of it that was reached."""

    instrument: str
    at: int


@dataclass(frozen=True, slots=True)
class DayStarted:
    instrument: str
    day: str  # YYYY-MM-DD, UTC


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One event of one of the strategy's orders (``event``: OrderAccepted, OrderFilled, OrderCancelled,
    OrderExpired or OrderRejected) and the order as it stands after it while it is still open (``order``: None once
    the event ended it: filled in full, cancelled, expired, rejected)."""

    event: Event
    order: Order | None

    @property
    def client_order_id(self) -> str:
        return str(getattr(self.event, "client_order_id", ""))


class View:
    """What a strategy may read of its instrument with each call: read-only, computed when read (a call that reads
    nothing costs nothing)."""

    __slots__ = ("_cause", "_state", "ts_event")

    def __init__(self, state: Any, ts_event: int, cause: str) -> None:
        self._state = state  # the trader's state of the instrument (engine.core.trader.TraderState)
        self._cause = cause
        self.ts_event = ts_event  # the event time of the input being handled

    @property
    def instrument(self) -> str:
        return str(self._state.instrument)

    @property
    def position(self) -> Decimal:
        """Signed: negative is short."""
        return Decimal(self._state.position.quantity)

    @property
    def average_price(self) -> Decimal | None:
        pos = self._state.position
        return Decimal(pos.avg_price) if pos.quantity else None

    @property
    def open_orders(self) -> tuple[Order, ...]:
        return tuple(self._state.open_orders)

    @property
    def stops(self) -> tuple[Any, ...]:
        """The stops the engine holds for it here (:class:`engine.core.stops.HeldStop`: client order id, side, quantity
        left, trigger, limit, the take-profit it is paired with)."""
        return tuple(self._state.stops)

    @property
    def balances(self) -> Mapping[str, Decimal]:
        """What this instrument's fills moved, per currency (a copy)."""
        return dict(self._state.flows)

    @property
    def last_price(self) -> Decimal | None:
        """The price of the last tick before the one being handled (in ``on_tick``, the tick itself has the price)."""
        return self._state.last_price  # type: ignore[no-any-return]

    @property
    def seed(self) -> int:
        """Derived from the causing event's id: the same on every run (``random.Random(view.seed)``)."""
        return int.from_bytes(hashlib.blake2b(self._cause.encode(), digest_size=8).digest(), "big")

    def __repr__(self) -> str:
        return f"View({self.instrument}, position={self.position}, ts_event={self.ts_event})"


# --- intents -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """Hold ``position`` (signed: negative is short): the engine cancels resting limit orders and sends the
    difference, with the strategy's order type, as one order; recorded as a ``SignalGenerated``."""

    position: Decimal
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Market:
    side: Side
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class Limit:
    side: Side
    quantity: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel an open order, or a stop the engine holds (by its client order id)."""

    client_order_id: str
    reason: str = "cancelled by the strategy"


@dataclass(frozen=True, slots=True)
class Stop:
    """A stop the engine holds (``StopPlaced``; see :mod:`engine.core.stops`): when a trade reaches ``trigger`` (at
    or above it for a buy, at or below it for a sell) the engine sends the order: at market, or with ``limit`` a
    limit at that price (a stop-limit). The order is checked by risk then, like any other. With ``venue.stops =
    "native"`` it is instead sent at once as the venue's own stop order (type ``stop`` / ``stop_limit``), which the
    venue triggers; it is then among the view's open orders, not its ``stops``."""

    side: Side
    quantity: Decimal
    trigger: Decimal
    limit: Decimal | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Bracket:
    """An entry with its exits: once ``entry`` has ended with a fill (filled, or cancelled after a partial fill), the
    engine places, for the quantity filled, a take-profit limit at ``take_profit`` and a stop at ``stop_loss`` (a
    stop-limit at ``stop_limit`` if set), one cancelling the other."""

    entry: Market | Limit
    take_profit: Decimal
    stop_loss: Decimal
    stop_limit: Decimal | None = None


Intent = Target | Market | Limit | Cancel | Stop | Bracket
Result = tuple[S, Sequence[Intent]]


@dataclass(frozen=True)
class NoParams:
    """For a strategy that takes no parameters."""


@dataclass(frozen=True)
class Strategy(Generic[S, P]):
    """The base of every strategy. Subclass it, name its ``Params`` (a frozen dataclass), give it an initial state,
    and override the handlers it needs (each returns the new state and a sequence of intents)::

        @dataclass(frozen=True)
        class Params:
            quantity: Decimal = Decimal("1")

        class BuyTheDip(Strategy[tuple[Decimal, ...], Params]):
            Params = Params
            def initial(self) -> tuple[Decimal, ...]:
                return ()
            def on_tick(self, state, tick, view):
                ...
                return state, [Target(self.params.quantity, "a dip")]
    """

    params: P
    name: str = ""

    Params: ClassVar[type] = NoParams
    timer_seconds: ClassVar[int | None] = None  # on_timer every so many seconds of market time; None: never
    indicators_per_tick: ClassVar[int] = 0  # indicator values a tick computes (a statistic: engine_indicators_total)

    def initial(self) -> S:
        raise NotImplementedError(f"{type(self).__name__} must define initial()")

    def on_tick(self, state: S, tick: TickReceived, view: View) -> Result[S]:
        return state, ()

    def on_candle(self, state: S, candle: Candle, view: View) -> Result[S]:
        return state, ()

    def on_order(self, state: S, update: OrderUpdate, view: View) -> Result[S]:
        return state, ()

    def on_timer(self, state: S, timer: Timer, view: View) -> Result[S]:
        return state, ()

    def on_day(self, state: S, day: DayStarted, view: View) -> Result[S]:
        return state, ()

    def indicators(self, state: S) -> int:
        """How many indicator values the last tick computed (a statistic, not a decision)."""
        return self.indicators_per_tick


@dataclass(frozen=True, slots=True)
class Clock:
    """The market-time bookkeeping the core keeps per instrument for its strategy: the open candle and the next
    timer (part of the trader's state, so snapshots and replays keep them)."""

    candle: Candle | None = None
    next_timer: int | None = None
