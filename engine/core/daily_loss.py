"""The daily loss limit: a pure check of today's loss over the account's instruments.

Equity is counted like the paper account (:mod:`engine.core.account`), per quote currency: the starting
balances (the paper account's ``venue.starting_balances``; for a live venue, its balances at the execution
service's first reconciliation, before any order) plus what the fills moved (``TraderState.flows``), with each
instrument's base balance valued at its last price. **Start-of-day equity** is the same sum taken with
each instrument's state at its first tick of the UTC day (event time): the flows before that tick and
that tick's price (``TraderState.day_open_flows`` / ``day_open_price``, kept by the core). An instrument
that has not traded yet today counts with its current values on both sides, so it adds no change.

A breach is when, in some quote currency with a positive start-of-day equity, today's loss reaches
``limit`` x start-of-day equity. The engine then writes ``TradingHalted(by="risk:daily_loss_limit")``
(:func:`halt_event`); every new order is refused with rule ``halted`` until an operator resumes. After a
resume the limit is re-armed one step further: the n-th trip of a UTC day needs a loss of n x ``limit``
(at 5 %: a halt at 5 %, after a resume again at 10 %, then 15 %...). The number of trips today is read
from the control log, so this holds across restarts. A manual halt does not count as a trip; while trading
is halted (by anyone) nothing is checked.

**The whole account, across engines.** Engines scale out over the partitions, so each owns some instruments. Each
engine publishes, for the instruments it owns, an ``EquityReported`` to the control topic (:func:`report`) when an
instrument's flows change (a fill) or its day changes, and at most once per second of event time when only its price
moves; every engine reads the control topic, and checks its own instruments' live states together with the latest
report of every instrument it does not own (:func:`from_report`). So the limit holds for the account, whichever
engine sees the breach first; another engine's instruments count with their last report (at most a second of event
time old while they trade).

Everything here is a function of the views it is given, so the check is deterministic given what the engine had
read; the decision that follows it is in the log (the TradingHalted event), and a recovery rebuilds from that event,
not from this check. A trip reaches the other engines as an operator's halt does: each applies it when it reads
it from the control topic and writes where (``BreakerApplied``, see :mod:`engine.core.breaker`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import orjson

from engine.core.account import currencies
from engine.core.trader import TraderState
from events import EquityReported, TradingHalted

ZERO = Decimal(0)
BY = "risk:daily_loss_limit"


@dataclass(frozen=True, slots=True)
class Breach:
    currency: str
    start_of_day: Decimal
    equity: Decimal
    loss: Decimal  # today's loss as a share of start-of-day equity
    threshold: Decimal  # the share it reached (n x limit for the n-th trip of the day)


@dataclass(frozen=True, slots=True)
class View:
    """What the check needs of one instrument: its last price and flows, and both at its first tick of ``day``."""

    instrument: str
    day: str | None
    price: Decimal | None
    flows: tuple[tuple[str, Decimal], ...]
    open_price: Decimal | None = None
    open_flows: tuple[tuple[str, Decimal], ...] = ()


def view(s: TraderState) -> View:
    return View(s.instrument, s.day, s.last_price, s.flows, s.day_open_price, s.day_open_flows)


def _sum_flows(flows: Iterable[tuple[tuple[str, Decimal], ...]]) -> tuple[tuple[str, Decimal], ...]:
    total: dict[str, Decimal] = {}
    for f in flows:
        for cur, amount in f:
            total[cur] = total.get(cur, ZERO) + amount
    return tuple(sorted(total.items()))


def combined(states: list[TraderState]) -> View:
    """One instrument's view from the states of the strategies that trade it: their flows together (they see the
    same ticks, so the same price and day; the latest day's wins, should one be behind)."""
    latest = max(states, key=lambda s: (s.day or "", s.last_price is not None))
    return View(
        latest.instrument,
        latest.day,
        latest.last_price,
        _sum_flows(s.flows for s in states),
        latest.day_open_price,
        _sum_flows(s.day_open_flows if s.day == latest.day else s.flows for s in states),
    )


def _flows_json(flows: tuple[tuple[str, Decimal], ...]) -> str:
    return orjson.dumps({cur: str(amount) for cur, amount in flows}).decode()


def _flows(text: str) -> tuple[tuple[str, Decimal], ...]:
    return tuple(sorted((cur, Decimal(amount)) for cur, amount in orjson.loads(text).items()))


def report(v: View) -> EquityReported:
    """The event that tells the other engines what ``v``'s instrument adds to the account (it must have a price)."""
    assert v.price is not None and v.day is not None
    return EquityReported(
        instrument=v.instrument,
        day=v.day,
        price=v.price,
        flows=_flows_json(v.flows),
        open_price=v.open_price,
        open_flows=_flows_json(v.open_flows),
    )


def from_report(e: EquityReported) -> View:
    return View(e.instrument, e.day, e.price, _flows(e.flows), e.open_price, _flows(e.open_flows))


def worth_reporting(now: View, last: View | None, ts: int, last_ts: int, interval_ns: int) -> bool:
    """A new report: the first, a fill or a new day; a price move once ``interval_ns`` of event time has passed."""
    if now.price is None or now.day is None:
        return False
    if last is None or now.flows != last.flows or now.day != last.day or now.open_price != last.open_price:
        return True
    return now.price != last.price and ts - last_ts >= interval_ns


def _equity(
    starting: Mapping[str, Decimal], views: list[tuple[str, Decimal, tuple[tuple[str, Decimal], ...]]]
) -> dict[str, Decimal]:
    """Per quote currency: its balance + the base balances of the instruments quoted in it at their price."""
    balances = dict(starting)
    for _, _, flows in views:
        for cur, amount in flows:
            balances[cur] = balances.get(cur, ZERO) + amount
    out: dict[str, Decimal] = {}
    for instrument, price, _ in views:
        base, quote = currencies(instrument)
        out.setdefault(quote, balances.get(quote, ZERO))
        out[quote] += balances.get(base, ZERO) * price
    return out


def equities(
    views: Iterable[View], starting: Mapping[str, Decimal], day: str
) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(start-of-day equity, equity now) per quote currency, of the instruments that have a price."""
    now: list[tuple[str, Decimal, tuple[tuple[str, Decimal], ...]]] = []
    sod: list[tuple[str, Decimal, tuple[tuple[str, Decimal], ...]]] = []
    for v in views:
        if v.price is None:
            continue
        now.append((v.instrument, v.price, v.flows))
        if v.day == day and v.open_price is not None:
            sod.append((v.instrument, v.open_price, v.open_flows))
        else:
            sod.append((v.instrument, v.price, v.flows))
    return _equity(starting, sod), _equity(starting, now)


def check(
    views: Iterable[View], starting: Mapping[str, Decimal], *, day: str, limit: Decimal, trips_today: int = 0
) -> Breach | None:
    """The first quote currency (by name) whose loss today reached ``limit`` x (trips today + 1), or None."""
    threshold = limit * (trips_today + 1)
    start, now = equities(views, starting, day)
    for cur in sorted(now):
        s = start.get(cur, ZERO)
        if s <= 0:
            continue  # no meaningful share of nothing (e.g. a quote currency with no starting balance)
        loss = (s - now[cur]) / s
        if loss >= threshold:
            return Breach(cur, s, now[cur], loss, threshold)
    return None


MARGIN = Decimal("1e-12")  # of the equity's terms: far more than the rounding of 28 digits can move it


def safe_prices(
    views: Iterable[View], starting: Mapping[str, Decimal], *, day: str, limit: Decimal, trips_today: int = 0
) -> dict[str, tuple[Decimal | None, Decimal | None]]:
    """After a :func:`check` of ``views`` that found no breach: per instrument, the prices (lower, upper bound,
    exclusive; None: unbounded) its last price may move to, the rest of ``views`` as it is, with :func:`check`
    still finding none. Only an instrument whose start of day is taken (``day`` is its day) is bounded: its price
    then moves the equity of its quote currency alone, by its base balance x the move. The bounds keep a margin
    (:data:`MARGIN` of the equity's terms) that no rounding of the check's arithmetic can cross, so inside them
    the check's answer is certainly None; outside, the check tells."""
    views = [v for v in views if v.price is not None]
    balances = dict(starting)
    for v in views:
        for cur, amount in v.flows:
            balances[cur] = balances.get(cur, ZERO) + amount
    start, now = equities(views, starting, day)
    scale: dict[str, Decimal] = {cur: abs(amount) for cur, amount in balances.items()}  # the terms' size, per quote
    for v in views:
        base, quote = currencies(v.instrument)
        assert v.price is not None
        scale[quote] = scale.get(quote, ZERO) + abs(balances.get(base, ZERO) * v.price)
        if v.open_price is not None:
            scale[quote] += abs(balances.get(base, ZERO) * v.open_price)
    threshold = limit * (trips_today + 1)
    out: dict[str, tuple[Decimal | None, Decimal | None]] = {}
    for v in views:
        if v.day != day or v.open_price is None:
            continue  # its start of day moves with its price: not bounded here
        base, quote = currencies(v.instrument)
        amount = balances.get(base, ZERO)
        s = start.get(quote, ZERO)
        if not amount or s <= 0:
            out[v.instrument] = (None, None)  # its price moves nothing that the check compares
            continue
        slack = now[quote] - s * (1 - threshold) - MARGIN * (scale.get(quote, ZERO) + abs(s))
        if slack <= 0:
            continue  # too near the limit to say without the check
        assert v.price is not None
        move = slack / abs(amount)
        out[v.instrument] = (v.price - move, None) if amount > 0 else (None, v.price + move)
    return out


def halt_event(breach: Breach) -> TradingHalted:
    return TradingHalted(
        reason=(
            f"daily loss limit: {breach.currency} equity {breach.equity:.8f} is "
            f"{breach.loss:.4%} below its start of day {breach.start_of_day:.8f} "
            f"(limit {breach.threshold:.4%})"
        ),
        by=BY,
    )
