"""What the execution service knows of a live venue's orders, and how it reconciles that with the venue (pure).

:class:`Book` is a fold of the order events in the log (the engine's commands and the venue's reports).
:func:`fills_for` turns the venue's trades into ``OrderFilled`` events for the trades the book has not
seen (a fill is never counted twice: the venue trade id decides), with cumulative and leaves quantities.
:func:`reconcile` compares a snapshot of the venue (open orders, recent trades, balances) with the book
and returns the events that record every difference, plus the reports that make the log whole again
(a missed fill becomes an ``OrderFilled``). Nothing here does I/O; every decision can be re-run offline
from the ``raw`` responses the events carry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

import orjson

from engine.core.account import fill_deltas
from engine.core.ports import VenueOrder, VenueOrderStatus, VenueTrade
from events import (
    BalanceReconciled,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    ReconciliationDifference,
)

ZERO = Decimal(0)


def raw_json(raw: object) -> str:
    """A venue response as JSON text for an event's ``raw`` field (anything not JSON becomes its string)."""
    if raw is None:
        return ""
    return orjson.dumps(raw, default=str).decode()


@dataclass(frozen=True, slots=True)
class Tracked:
    """One order of ours, as the log tells it."""

    order: OrderSubmitted
    venue_order_id: str | None = None
    filled: Decimal = ZERO
    trade_ids: frozenset[str] = frozenset()
    done: bool = False  # terminal: filled, cancelled, rejected or expired

    @property
    def leaves(self) -> Decimal:
        return self.order.quantity - self.filled


@dataclass
class Book:
    venue: str
    orders: dict[str, Tracked] = field(default_factory=dict)
    by_venue_id: dict[str, str] = field(default_factory=dict)  # venue order id -> client order id

    def apply(self, event: Event) -> None:
        """Fold one order event of the log (commands and reports; anything else is ignored)."""
        if isinstance(event, OrderSubmitted):
            self.orders.setdefault(event.client_order_id, Tracked(event))
            return
        coid = getattr(event, "client_order_id", None)
        t = self.orders.get(coid) if isinstance(coid, str) else None
        if t is None:
            return
        if isinstance(event, OrderAccepted):
            self.by_venue_id[event.venue_order_id] = event.client_order_id
            t = replace(t, venue_order_id=event.venue_order_id)
        elif isinstance(event, OrderFilled) and event.trade_id not in t.trade_ids:
            filled = t.filled + event.quantity
            t = replace(
                t,
                filled=filled,
                trade_ids=t.trade_ids | {event.trade_id},
                done=t.done or filled >= t.order.quantity,
                venue_order_id=t.venue_order_id or event.venue_order_id,
            )
            if t.venue_order_id:
                self.by_venue_id[t.venue_order_id] = event.client_order_id
        elif isinstance(event, OrderRejected | OrderCancelled | OrderExpired):
            t = replace(t, done=True)
        self.orders[t.order.client_order_id] = t

    def working(self) -> list[Tracked]:
        """Orders sent to the venue and not finished."""
        return [t for t in self.orders.values() if not t.done and t.venue_order_id is not None]

    def known_trade_ids(self) -> frozenset[str]:
        return frozenset().union(*(t.trade_ids for t in self.orders.values()))

    def owner(self, trade: VenueTrade) -> Tracked | None:
        coid = trade.client_order_id or self.by_venue_id.get(trade.venue_order_id)
        return self.orders.get(coid) if coid else None


def fills_for(book: Book, trades: Iterable[VenueTrade]) -> tuple[list[OrderFilled], list[VenueTrade]]:
    """(fills for the trades of known orders not yet in the book, trades that cannot be fills: of orders the book
    does not know, or of orders the log has already ended).

    Trades are taken oldest first; a trade id seen twice (in the book, or twice in ``trades``) yields one fill.
    A trade of an ended order (cancelled, rejected, expired or filled in full) is not made a fill: the order state
    machine would refuse it (terminal states stay terminal), and the position would silently differ from the
    venue's; :func:`reconcile` records it as a difference instead.
    The book is not changed: fold the returned fills into it once they are published.
    """
    seen = set(book.known_trade_ids())
    filled: dict[str, Decimal] = {}
    out: list[OrderFilled] = []
    unknown: list[VenueTrade] = []
    for tr in sorted(trades, key=lambda x: (x.ts, x.trade_id)):
        if tr.trade_id in seen:
            continue
        seen.add(tr.trade_id)
        t = book.owner(tr)
        if t is None or t.done:
            unknown.append(tr)
            continue
        o = t.order
        cum = filled.get(o.client_order_id, t.filled) + tr.quantity
        filled[o.client_order_id] = cum
        out.append(
            OrderFilled(
                instrument=o.instrument,
                client_order_id=o.client_order_id,
                venue=book.venue,
                venue_order_id=tr.venue_order_id,
                trade_id=tr.trade_id,
                side=o.side,
                quantity=tr.quantity,
                price=tr.price,
                fee=tr.fee,
                fee_currency=tr.fee_currency,
                liquidity=tr.liquidity,
                cumulative_quantity=cum,
                leaves_quantity=max(o.quantity - cum, ZERO),
                raw=raw_json(tr.raw),
            )
        )
    return out, unknown


def ended(t: Tracked, venue_order: VenueOrder, venue: str) -> Event | None:
    """The report for an order the venue says has ended without filling in full (None if it has not)."""
    o = t.order
    if venue_order.status is VenueOrderStatus.CANCELLED:
        return OrderCancelled(
            instrument=o.instrument,
            client_order_id=o.client_order_id,
            venue=venue,
            reason="cancelled at the venue",
            filled_quantity=venue_order.filled,
            raw=raw_json(venue_order.raw),
        )
    if venue_order.status is VenueOrderStatus.EXPIRED:
        return OrderExpired(
            instrument=o.instrument,
            client_order_id=o.client_order_id,
            venue=venue,
            reason="expired at the venue",
            filled_quantity=venue_order.filled,
            raw=raw_json(venue_order.raw),
        )
    return None


@dataclass(frozen=True, slots=True)
class VenueSnapshot:
    open_orders: Sequence[VenueOrder]
    trades: Sequence[VenueTrade]
    balances: Mapping[str, Decimal] | None = None


@dataclass
class BalanceBaseline:
    """The venue's balances at the first reconciliation, moved since by the fills the log holds."""

    expected: dict[str, Decimal] = field(default_factory=dict)

    def on_fill(self, fill: OrderFilled) -> None:
        for cur, d in fill_deltas(fill).items():
            if cur in self.expected:
                self.expected[cur] += d


def reconcile(book: Book, snap: VenueSnapshot, baseline: BalanceBaseline) -> list[Event]:
    """Every difference between the venue and the book, and the fills that were missed.

    Returned in this order: differences about orders, the missed fills (each preceded by its
    ``missed_fill`` difference), then a ``BalanceReconciled`` per currency (and a ``balance`` difference
    where the venue's amount is not what the baseline plus the fills explain). Fold the fills into the
    book and the baseline once published (the baseline is updated here for the fills returned).
    """
    out: list[Event] = []
    venue = book.venue
    for vo in snap.open_orders:
        mine = book.orders.get(vo.client_order_id)
        if mine is not None and mine.done:
            out.append(
                ReconciliationDifference(
                    instrument=vo.instrument,
                    venue=venue,
                    kind="ended_order_open",
                    client_order_id=vo.client_order_id,
                    detail=f"the venue has order {vo.venue_order_id} ({vo.side} {vo.quantity} {vo.instrument}) open, "
                    "which the log has already ended; it is cancelled at the venue",
                    raw=raw_json(vo.raw),
                )
            )
        elif mine is None:
            out.append(
                ReconciliationDifference(
                    instrument=vo.instrument,
                    venue=venue,
                    kind="unknown_order",
                    client_order_id=vo.client_order_id,
                    detail=f"the venue has open order {vo.venue_order_id} ({vo.side} {vo.quantity} {vo.instrument}) "
                    "that the log does not know",
                    raw=raw_json(vo.raw),
                )
            )
    fills, unknown = fills_for(book, snap.trades)
    for tr in unknown:
        ended_order = book.owner(tr)
        out.append(
            ReconciliationDifference(
                instrument=tr.instrument,
                venue=venue,
                kind="unknown_fill" if ended_order is None else "fill_of_ended_order",
                client_order_id=tr.client_order_id or (ended_order.order.client_order_id if ended_order else ""),
                detail=f"trade {tr.trade_id} of venue order {tr.venue_order_id} ({tr.side} {tr.quantity} @ {tr.price}) "
                + (
                    "belongs to no order in the log"
                    if ended_order is None
                    else "belongs to an order the log has already ended: not applied, the position differs from the "
                    "venue's by it"
                ),
                raw=raw_json(tr.raw),
            )
        )
    for f in fills:
        out.append(
            ReconciliationDifference(
                instrument=f.instrument,
                venue=venue,
                kind="missed_fill",
                client_order_id=f.client_order_id,
                detail=f"trade {f.trade_id} ({f.side} {f.quantity} @ {f.price}) was not in the log; recorded now",
                raw=f.raw,
            )
        )
        out.append(f)
        baseline.on_fill(f)
    if snap.balances is not None:
        first = not baseline.expected
        for cur in sorted(snap.balances):
            amount = snap.balances[cur]
            expected = amount if first else baseline.expected.get(cur, ZERO)
            diff = amount - expected
            baseline.expected[cur] = amount  # a difference is reported once; then the venue is the baseline
            if amount == 0 and diff == 0:
                continue  # venues list every currency they have, mostly zeros
            out.append(
                BalanceReconciled(
                    venue=venue, currency=cur, venue_amount=amount, expected_amount=expected, difference=diff
                )
            )
            if diff != 0:
                out.append(
                    ReconciliationDifference(
                        instrument="",
                        venue=venue,
                        kind="balance",
                        detail=f"{cur}: the venue has {amount}, the log explains {expected} (difference {diff})",
                    )
                )
    return out
