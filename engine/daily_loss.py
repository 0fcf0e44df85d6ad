"""The daily loss limit: a pure check of today's loss across the instruments one engine owns.

Equity is counted like the paper account (:mod:`engine.account`), per quote currency: the starting
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

Everything here is a function of the cores' states, so the check is deterministic given the order in which
the engine processed its ticks; the decision that follows it is in the log (the TradingHalted event), and a
recovery rebuilds from that event, not from this check. **Scope:** one engine process checks the
instruments it owns (the partitions assigned to it), each against the full starting balances; in a
deployment of several engine processes each one checks its own instruments, and no process sees the
loss of the whole account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from engine.account import currencies
from engine.trader import TraderState
from events import TradingHalted

ZERO = Decimal(0)
BY = "risk:daily_loss_limit"


@dataclass(frozen=True, slots=True)
class Breach:
    currency: str
    start_of_day: Decimal
    equity: Decimal
    loss: Decimal  # today's loss as a share of start-of-day equity
    threshold: Decimal  # the share it reached (n x limit for the n-th trip of the day)


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
    states: Iterable[TraderState], starting: Mapping[str, Decimal], day: str
) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(start-of-day equity, equity now) per quote currency, of the instruments that have a price."""
    now: list[tuple[str, Decimal, tuple[tuple[str, Decimal], ...]]] = []
    sod: list[tuple[str, Decimal, tuple[tuple[str, Decimal], ...]]] = []
    for s in states:
        if s.last_price is None:
            continue
        now.append((s.instrument, s.last_price, s.flows))
        if s.day == day and s.day_open_price is not None:
            sod.append((s.instrument, s.day_open_price, s.day_open_flows))
        else:
            sod.append((s.instrument, s.last_price, s.flows))
    return _equity(starting, sod), _equity(starting, now)


def check(
    states: Iterable[TraderState], starting: Mapping[str, Decimal], *, day: str, limit: Decimal, trips_today: int = 0
) -> Breach | None:
    """The first quote currency (by name) whose loss today reached ``limit`` x (trips today + 1), or None."""
    threshold = limit * (trips_today + 1)
    start, now = equities(states, starting, day)
    for cur in sorted(now):
        s = start.get(cur, ZERO)
        if s <= 0:
            continue  # no meaningful share of nothing (e.g. a quote currency with no starting balance)
        loss = (s - now[cur]) / s
        if loss >= threshold:
            return Breach(cur, s, now[cur], loss, threshold)
    return None


def halt_event(breach: Breach) -> TradingHalted:
    return TradingHalted(
        reason=(f"daily loss limit: {breach.currency} equity {breach.equity:.8f} is "
                f"{breach.loss:.4%} below its start of day {breach.start_of_day:.8f} "
                f"(limit {breach.threshold:.4%})"),
        by=BY,
    )
