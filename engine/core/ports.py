"""The interfaces the core needs from the outside world (implemented in ``adapters``).

- :class:`SimulatedVenue`: a venue the core runs itself (the paper exchange), a deterministic function of the
  ticks and orders it sees;
- :class:`LiveVenue`: what the execution service needs from a real exchange or broker. Every live adapter
  (``adapters/venues/ccxt/``, ``adapters/venues/openalgo/``) has this shape: async methods that talk to the venue and
  return plain values (:class:`VenueOrder`, :class:`VenueTrade`), or raise one of the errors below. Each value
  keeps the venue's raw response (``raw``), so a reconciliation decision taken on it can be re-run offline from
  the event that carries it. An optional capability of a live venue is a protocol of its own, checked with
  ``isinstance``: :class:`RemembersOrderIds`.

Errors (one root, a ``retriable`` flag, as in aiokafka)::

    VenueError                      retriable?
     ├── VenueUnavailable           yes: network error, timeout, HTTP 429 / rate limit, venue down.
     │                              ``maybe_sent``: the outcome is UNKNOWN (an order may have been placed),
     │                              except for a refusal before processing (429), where it is False.
     ├── VenueRejected              no: the venue refused (insufficient funds, invalid order, bad symbol);
     │    │                         ``rule`` names why in one word, ``reason`` in a sentence.
     │    └── VenueDuplicateOrder   the venue already has an order with this client order id: an earlier
     │                              attempt reached it (look it up; never count it as refused).
     ├── VenueOrderNotFound         no: the venue does not know this order (yet: it may show up later).
     └── VenueAuthError             no: the credentials were refused (never retried, never logged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from events import Event, Liquidity, OrderCancelRequested, OrderSubmitted, OrderType, Side, TickReceived


class SimulatedVenue(Protocol):
    """A venue whose behaviour is a deterministic function of the ticks and orders it sees.

    Because it is deterministic, replaying the tick log through the engine reproduces its fills.
    """

    name: str

    def submit(self, order: OrderSubmitted) -> list[Event]: ...

    def cancel(self, request: OrderCancelRequested) -> list[Event]: ...

    def on_tick(self, tick: TickReceived) -> list[Event]: ...

    def config(self) -> object:
        """What, besides its state, decides what it does (its ``repr`` is part of a core snapshot's fingerprint)."""
        ...

    def state(self) -> object:
        """Its state, made of the types :mod:`engine.state_snapshot` allows."""
        ...

    def restore(self, state: Any) -> None: ...


class VenueError(Exception):
    """The root of every venue error."""

    retriable: bool = False

    def __init__(self, message: str, *, raw: Any = None) -> None:
        super().__init__(message)
        self.raw = raw


class VenueUnavailable(VenueError):
    """The call did not get a definite answer: retry with backoff.

    ``maybe_sent``: True when the venue may have acted on it (a timeout, a dropped connection: the outcome is
    unknown); False when it certainly did not (HTTP 429 / 418: the request was refused before processing).
    """

    retriable = True

    def __init__(self, message: str, *, raw: Any = None, maybe_sent: bool = True) -> None:
        super().__init__(message, raw=raw)
        self.maybe_sent = maybe_sent


class VenueRejected(VenueError):
    """The venue refused the request for good."""

    def __init__(self, rule: str, reason: str, *, raw: Any = None) -> None:
        super().__init__(f"{rule}: {reason}", raw=raw)
        self.rule = rule
        self.reason = reason


class VenueDuplicateOrder(VenueRejected):
    """The venue refused a new order because it already has one with this client order id (binance's "Duplicate
    order sent.", alpaca's "client_order_id must be unique"): proof that an earlier attempt reached it."""

    def __init__(self, reason: str, *, raw: Any = None) -> None:
        super().__init__("duplicate_client_order_id", reason, raw=raw)


class VenueOrderNotFound(VenueError):
    """The venue does not know the order (it may not have registered it yet)."""


class VenueAuthError(VenueError):
    """The venue refused the credentials."""


class VenueOrderStatus(StrEnum):
    OPEN = "open"  # working, possibly partly filled
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """The venue's view of one order."""

    instrument: str
    client_order_id: str
    venue_order_id: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    status: VenueOrderStatus
    filled: Decimal
    ts: int  # ns since the epoch, when the venue last changed it (or when we saw it, if it does not say)
    raw: Any = field(default=None, compare=False)  # the venue's response, JSON-ready


@dataclass(frozen=True, slots=True)
class VenueTrade:
    """One execution of one of our orders, as the venue reports it."""

    instrument: str
    trade_id: str
    venue_order_id: str
    client_order_id: str | None  # not every venue reports it on a trade
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    ts: int  # ns since the epoch
    raw: Any = field(default=None, compare=False)


class LiveVenue(Protocol):
    """A real venue. ``name`` is stable (it goes into fills' unique key and into events).

    ``start()`` loads markets and checks the credentials; ``close()`` is safe twice. Quantities and prices
    passed in are rounded by the adapter to the venue's precision (with the venue library's own rounding);
    what the venue really accepted comes back in :class:`VenueOrder`.
    """

    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, order: OrderSubmitted) -> VenueOrder:
        """Place ``order`` with its ``client_order_id``; raise VenueRejected / VenueUnavailable."""
        ...

    async def cancel(self, instrument: str, client_order_id: str, venue_order_id: str | None) -> VenueOrder:
        """Cancel a working order; the order as it stands after (it may have filled meanwhile)."""
        ...

    async def fetch_order(self, instrument: str, client_order_id: str) -> VenueOrder:
        """The order placed with ``client_order_id``; raise VenueOrderNotFound if the venue does not know it."""
        ...

    async def open_orders(self, instruments: Sequence[str]) -> list[VenueOrder]: ...

    async def trades(self, instrument: str, since_ns: int | None) -> list[VenueTrade]:
        """Our executions on ``instrument`` at or after ``since_ns``, oldest first."""
        ...

    async def balances(self) -> dict[str, Decimal]:
        """Total balance per currency (free + used)."""
        ...


@runtime_checkable
class RemembersOrderIds(Protocol):
    """Optional, for a live venue that has no client order ids of its own (OpenAlgo): it keeps the map
    ``client_order_id -> venue_order_id`` itself, in memory. The execution service hands it, on start, every
    acceptance it reads back from the log, so lookups by client order id work after a restart."""

    def remember(self, client_order_id: str, venue_order_id: str) -> None: ...
