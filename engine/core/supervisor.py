"""What an engine decides across its partitions: the breaker's switches, equity reports, daily-loss trips (pure).

The trading core decides per instrument; a :class:`Supervisor` decides for the engine as a whole, from two inputs:

- the **control topic** (:meth:`Supervisor.on_control`): halts and resumes (the breaker), the markers of where each
  switch applied on each partition, the other engines' equity reports, a live venue's starting balances. A switch
  read for the first time is marked on every partition this engine trades, from the next record it will take
  (``BreakerApplied``): the engine may already have traded ticks stamped after it, and the marker makes a recovery
  take those very decisions again (:mod:`engine.core.breaker`);
- each **input record** once the core took it (:meth:`Supervisor.after_input`): what the record's instrument now adds
  to the account (``EquityReported``, when worth it: :func:`engine.core.daily_loss.worth_reporting`), and today's loss
  over the whole account against the daily loss limit (:mod:`engine.core.daily_loss`). A breach is a
  ``TradingHalted(by="risk:daily_loss_limit")`` stamped 1 ns after the breaching record (that record was decided
  before its loss was measured), applied to the breaker at once and marked on every partition.

Every event returned is derived from its cause with a stable id, so a record taken twice returns the same events.
Nothing here does I/O or reads a clock: the shell passes ``ts_init`` and says which partitions it trades and where.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from engine.core import daily_loss
from engine.core.breaker import Breaker, Where
from engine.core.snapshots import utc_day
from events import BalanceReconciled, BreakerApplied, Envelope, EquityReported, TradingHalted, TradingResumed
from events.arithmetic import ensure_exact

TRIP_SEQ = 1 << 30  # the position of a daily loss trip among the events derived from its record (no clash)
REPORT_SEQ = TRIP_SEQ + 1  # and of an instrument's EquityReported
MARK_SEQ = TRIP_SEQ + (1 << 20)  # + partition: a switch's BreakerApplied markers, derived from the switch
REPORT_INTERVAL_NS = 1_000_000_000  # a price move alone is reported at most once a second of event time

# the partitions this engine trades -> the next offset it will take on each (asked for only when a switch is marked)
Trading = Callable[[], Mapping[Where, int]]


@dataclass(frozen=True, slots=True)
class Decisions:
    """What :meth:`Supervisor.after_input` decided: events to publish, and the breach that tripped, if one did."""

    events: tuple[Envelope, ...] = ()
    breach: daily_loss.Breach | None = None


@dataclass
class Supervisor:
    """The engine-wide state folded from the control topic and the engine's own inputs."""

    daily_loss_limit: Decimal | None = None  # None: not checked
    starting: dict[str, Decimal] = field(default_factory=dict)  # starting balances per currency
    balances_from_venue: bool = False  # a live venue's: taken from its first BalanceReconciled per currency
    breaker: Breaker = field(default_factory=Breaker)
    risk_trips: dict[uuid.UUID, int] = field(default_factory=dict)  # daily loss trips in the log: id -> ts_event
    peers: dict[str, daily_loss.View] = field(default_factory=dict)  # instrument -> its last report in the log
    reported: dict[str, tuple[daily_loss.View, int]] = field(default_factory=dict)  # own -> last report, its time
    # after a loss check that found no breach: what it was given, and how far a price may move from there with the
    # check still finding none (the inputs that stay inside are answered without building the views: see _Safe)
    _safe: _Safe | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, starting_balances: Mapping[str, Decimal] | None, daily_loss_limit: Decimal | None) -> Supervisor:
        """No ``starting_balances``: a live venue's, from its first reconciliation in the control log."""
        return cls(daily_loss_limit, dict(starting_balances or {}), starting_balances is None)

    def halted_at(self, ts_event: int, where: Where, offset: int) -> bool:
        """Is a record of ``where`` at ``offset``, stamped ``ts_event``, traded under a halt?"""
        return self.breaker.halted_at(ts_event, where, offset)

    def on_control(self, env: Envelope, trading: Trading, *, ts_init: int) -> list[Envelope]:
        """Fold one record of the control topic; return the markers of a switch read for the first time."""
        ev = env.event
        if isinstance(ev, EquityReported):
            self.peers[ev.instrument] = daily_loss.from_report(ev)
        elif isinstance(ev, BalanceReconciled):
            if self.balances_from_venue:
                self.starting.setdefault(ev.currency, ev.venue_amount)
        elif isinstance(ev, BreakerApplied):
            self.breaker.mark(ev.switch_id, (ev.topic, ev.partition), ev.offset)
        elif isinstance(ev, TradingHalted | TradingResumed):
            if isinstance(ev, TradingHalted) and ev.by == daily_loss.BY:
                if env.event_id in self.risk_trips:
                    return []  # this engine's own trip, applied and marked when it was decided
                self.risk_trips[env.event_id] = env.ts_event
            self.breaker.apply(ev, env.ts_event, str(env.event_id))
            return self.mark_switch(env.event_id, env.ts_event, trading, ts_init=ts_init)
        return []

    def mark_switch(self, switch_id: uuid.UUID, ts_event: int, trading: Trading, *, ts_init: int) -> list[Envelope]:
        """Where a switch applies on each partition traded (from its next offset), unless marked already (by this
        engine, or by the engine that had the partition before)."""
        markers = []
        offsets = trading()
        for where in sorted(offsets):
            if self.breaker.marked(str(switch_id), where):
                continue
            offset = offsets[where]
            self.breaker.mark(str(switch_id), where, offset)
            topic, partition = where
            event = BreakerApplied(switch_id=str(switch_id), topic=topic, partition=partition, offset=offset)
            markers.append(
                Envelope.caused_by(
                    switch_id,
                    event,
                    MARK_SEQ + partition,
                    ts_event=ts_event,
                    ts_init=ts_init,
                    source="engine",
                    key=f"{topic}:{partition}",
                )
            )
        return markers

    def after_input(
        self,
        env: Envelope,
        state: daily_loss.View | None,
        own: Iterable[daily_loss.View],
        trading: Trading,
        *,
        ts_init: int,
        own_key: object = None,
    ) -> Decisions:
        """After the core took ``env`` (``state``: what its instrument adds to the account now; ``own``: every
        instrument this engine trades, read only when the loss is checked; ``trading``: the next offsets, this record's
        partition already past it): the equity report and the daily-loss trip it calls for, if any.

        ``own_key``: what ``own`` was made from (e.g. the cores, themselves): while it stays the same, the shell
        vouches that an input changes no instrument's state but ``state``'s, so ``own`` is only read when the check
        may find a breach (None: read every time)."""
        if self.daily_loss_limit is None:
            return _NOTHING
        ensure_exact()  # the same rounding in every process (see events.arithmetic)
        return self._after_input(env, state, own, trading, ts_init, self.daily_loss_limit, own_key)

    def _after_input(
        self,
        env: Envelope,
        state: daily_loss.View | None,
        own: Iterable[daily_loss.View],
        trading: Trading,
        ts_init: int,
        limit: Decimal,
        own_key: object,
    ) -> Decisions:
        report = self._report(env, state, ts_init)
        at = env.ts_event + 1  # from the next tick on: this record was decided before its loss was measured
        if self.breaker.halted_at(at):
            return Decisions((report,)) if report else _NOTHING  # halted already: nothing to trip
        day = utc_day(env.ts_event)
        trips_today = sum(1 for ts in self.risk_trips.values() if utc_day(ts) == day) if self.risk_trips else 0
        safe = self._safe
        if (
            safe is not None
            and own_key is not None
            and safe.holds(state, own_key, day, limit, trips_today, self.starting, self.peers)
        ):
            return Decisions((report,)) if report else _NOTHING  # provably no breach: see _Safe
        listed = list(own)
        mine = {v.instrument: v for v in listed}  # live; the others' as they last reported them
        views = (*mine.values(), *(v for i, v in self.peers.items() if i not in mine))
        breach = daily_loss.check(views, self.starting, day=day, limit=limit, trips_today=trips_today)
        self._safe = None
        if breach is None and own_key is not None and len(mine) == len(listed):  # (an instrument twice: not vouched)
            bounds = daily_loss.safe_prices(views, self.starting, day=day, limit=limit, trips_today=trips_today)
            self._safe = _Safe(own_key, mine, day, limit, trips_today, dict(self.starting), dict(self.peers), bounds)
        if breach is None:
            return Decisions((report,)) if report else _NOTHING
        event = daily_loss.halt_event(breach)
        trip = env.derive(event, TRIP_SEQ, ts_init=ts_init, source="engine", ts_event=at, key="risk")
        self.risk_trips[trip.event_id] = at
        self.breaker.apply(event, at, str(trip.event_id))
        markers = self.mark_switch(trip.event_id, at, trading, ts_init=ts_init)
        return Decisions((*([report] if report else []), trip, *markers), breach)

    def _report(self, env: Envelope, state: daily_loss.View | None, ts_init: int) -> Envelope | None:
        if state is None:
            return None
        last, last_ts = self.reported.get(state.instrument, (None, 0))
        if (
            last is not None
            and env.ts_event - last_ts < REPORT_INTERVAL_NS
            and state.flows is last.flows
            and state.day == last.day
        ):
            return None  # the common case on the hot path: only the price can have moved, too soon to say so
        now = state
        if not daily_loss.worth_reporting(now, last, env.ts_event, last_ts, REPORT_INTERVAL_NS):
            return None
        self.reported[state.instrument] = (now, env.ts_event)
        return env.derive(daily_loss.report(now), REPORT_SEQ, ts_init=ts_init, source="engine")


_NOTHING = Decisions()


class _Safe:
    """A loss check that found no breach, and what it was given: the same ``own_key``, day, limit, trips today,
    starting balances and peers' reports, and the engine's own views as they were (``mine``) but for one instrument
    (``moved``, the first whose input came since) whose view differs only in its price, within the bounds of
    :func:`engine.core.daily_loss.safe_prices`: the check would find no breach again."""

    __slots__ = ("bounds", "day", "limit", "mine", "moved", "own_key", "peers", "starting", "trips")

    def __init__(
        self,
        own_key: object,
        mine: dict[str, daily_loss.View],
        day: str,
        limit: Decimal,
        trips: int,
        starting: dict[str, Decimal],
        peers: dict[str, daily_loss.View],
        bounds: dict[str, tuple[Decimal | None, Decimal | None]],
    ) -> None:
        self.own_key = own_key
        self.mine = mine
        self.day = day
        self.limit = limit
        self.trips = trips
        self.starting = starting
        self.peers = peers
        self.bounds = bounds
        self.moved: str | None = None

    def holds(
        self,
        state: daily_loss.View | None,
        own_key: object,
        day: str,
        limit: Decimal,
        trips: int,
        starting: Mapping[str, Decimal],
        peers: Mapping[str, daily_loss.View],
    ) -> bool:
        if (
            own_key != self.own_key
            or day != self.day
            or trips != self.trips
            or limit != self.limit
            or starting != self.starting
            or peers != self.peers
        ):
            return False
        if state is None:
            return True  # the input changed no state (the shell's word, with own_key)
        instrument = state.instrument
        was = self.mine.get(instrument)
        if was is None or (self.moved is not None and self.moved != instrument):
            return False
        if state.day != was.day or state.open_price != was.open_price:
            return False
        if state.flows is not was.flows and state.flows != was.flows:
            return False
        if state.open_flows is not was.open_flows and state.open_flows != was.open_flows:
            return False
        if state.price != was.price:
            bound = self.bounds.get(instrument)
            price = state.price
            if bound is None or price is None:
                return False
            low, high = bound
            if (low is not None and not price > low) or (high is not None and not price < high):
                return False
        self.moved = instrument
        return True
