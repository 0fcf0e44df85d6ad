"""Day snapshots and engine lifecycle events.

At the first tick of each UTC day, the engine writes the state of each instrument as it stood at the
end of the previous day (``PositionSnapshot``, one ``BalanceSnapshot`` per currency its fills moved, one
``OpenOrderSnapshot`` per working order), so a
day of the log is self-contained: a projection can be rebuilt for that day alone, from its snapshots
and its events. The live projection checks that each snapshot equals what it folded.

``EngineStarted`` / ``EngineStopped`` record the engine's lifecycle; ``TradingHalted`` /
``TradingResumed`` switch the circuit breaker (topic ``engine.control``, keyed by engine id or
``operator``; ``instrument`` is empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from events._base import Event
from events.enums import OrderType, Side


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionSnapshot(Event):
    """A strategy's position in an instrument (and its open round trip) at the start of ``day`` (YYYY-MM-DD, UTC).

    v2 added ``strategy``: the strategy whose position it is, in an engine that runs several. An engine that runs
    one writes ``""`` (the instrument's position is its strategy's), in the v1 shape (see
    :data:`events.upcasters.DOWNCASTERS`), so its log stays byte for byte what it was before strategies were named.
    """

    VERSION = 2
    day: str
    quantity: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    fees: Decimal
    bought: Decimal
    sold: Decimal
    fills: int
    trip_direction: int  # 0: no open round trip
    trip_opened_ts: int
    trip_quantity: Decimal
    trip_max_quantity: Decimal
    trip_entry_quantity: Decimal
    trip_entry_notional: Decimal
    trip_exit_quantity: Decimal
    trip_exit_notional: Decimal
    trip_fees: Decimal
    trip_fills: int
    strategy: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BalanceSnapshot(Event):
    """What the instrument's fills (of ``strategy``, in an engine that runs several) have moved in ``currency``, in
    total, when ``day`` starts. v2 added ``strategy``, as :class:`PositionSnapshot` did (same rules)."""

    VERSION = 2
    day: str
    currency: str
    amount: Decimal
    strategy: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenOrderSnapshot(Event):
    """A working order at the start of ``day``.

    v2 added ``trade_ids``: the venue trade ids of the fills applied to the order so far, sorted, so that a replay
    of the day alone still counts a fill the venue reports again (under a new event id) once. ``None`` in an
    upcast v1 snapshot, which did not record them. v3 added ``trigger_price`` (a venue-native stop's); a snapshot of
    an order without one is written in the v2 shape (:mod:`events.upcasters`).
    """

    VERSION = 3

    day: str
    client_order_id: str
    strategy: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    status: str
    venue_order_id: str | None = None
    filled_quantity: Decimal
    filled_notional: Decimal
    fees: Decimal
    trade_ids: tuple[str, ...] | None
    trigger_price: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineStarted(Event):
    instrument: str = ""
    engine_id: str
    version: str
    settings: str  # the effective non-secret settings, JSON


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineStopped(Event):
    instrument: str = ""
    engine_id: str
    reason: str
    ticks_processed: int
    events_published: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedStopped(Event):
    """Where a finite feed (a recorded one) stopped, written by the engine once the feed is done: ``outcome`` is
    ``end`` (the end of its files), ``failed`` (a row it could not read, or another failure: ``reason`` says why) or
    ``stopped`` (the engine stopped it: a signal, a duration); ``file`` and ``where`` (``line N`` / ``row N``) are
    the bad row's, else the last trade's handed to the log (empty if none); ``ticks_published``: the ticks the log
    acknowledged. Keyed by the feed's source (``feed:recorded``)."""

    instrument: str = ""
    feed: str
    outcome: str  # end | failed | stopped
    reason: str
    file: str
    where: str
    ticks_published: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingHalted(Event):
    """The circuit breaker: from ``ts_event`` on, no new order passes (cancels still do)."""

    instrument: str = ""
    reason: str
    by: str  # operator, or the rule that tripped


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingResumed(Event):
    instrument: str = ""
    reason: str
    by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconciliationDifference(Event):
    """The venue and the log disagree. ``kind``:

    - ``unknown_order``: the venue has an open order the log does not know;
    - ``missed_fill``: the venue reports an execution the log did not have (an OrderFilled follows);
    - ``unknown_fill``: an execution of an order the log does not know;
    - ``ended_order_open``: the venue has open an order the log has already ended (it is cancelled there);
    - ``fill_of_ended_order``: an execution of an order the log has already ended (not applied);
    - ``status``: the venue says an order ended (cancelled/expired/filled) the log still has open;
    - ``balance``: a currency's balance moved by more or less than the fills in the log explain.

    ``raw`` is the venue's response the decision was taken on (JSON text).
    """

    venue: str
    kind: str
    client_order_id: str = ""
    detail: str
    raw: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BalanceReconciled(Event):
    """A currency's balance as the venue reports it, next to what the log explains (``instrument`` empty)."""

    instrument: str = ""
    venue: str
    currency: str
    venue_amount: Decimal
    expected_amount: Decimal
    difference: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionChanged(Event):
    """A connection to the outside went down or came back (``state``: ``lost`` | ``restored``).

    ``component`` names it, e.g. ``feed:binance`` (a trade stream) or ``venue:binance`` (the REST API).
    """

    instrument: str = ""
    component: str
    state: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EquityReported(Event):
    """What one instrument adds to the account's equity, as the engine that owns it sees it (for the daily loss
    limit of the whole account, checked by every engine: see :mod:`engine.core.daily_loss`).

    ``flows`` and ``open_flows`` are JSON objects of currency -> decimal string: what the instrument's fills have
    moved in total, now and before its first tick of ``day`` (UTC); ``price`` and ``open_price`` are its last
    price and that first tick's.
    """

    day: str
    price: Decimal
    flows: str
    open_price: Decimal | None = None
    open_flows: str = "{}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerApplied(Event):
    """Where an engine applied a circuit-breaker switch (``switch_id``: a TradingHalted / TradingResumed) on one of
    its input partitions: to the records from ``offset`` on (whose event time is at or after the switch's). A
    recovery of that partition applies the switch exactly there, so it takes the live engine's decisions even for
    ticks stamped after the switch that the engine had processed before it read the switch. Without a marker (no
    engine owned the partition then) the switch applies by event time alone."""

    instrument: str = ""
    switch_id: str
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertNotified(Event):
    """A notification Alertmanager delivered to the engine's webhook (``POST /alerts/webhook``): one alert group,
    ``firing`` or ``resolved``; keyed ``alertmanager``, ``instrument`` empty (see :mod:`adapters.alerts`).

    ``dedupe_key`` is a digest of the group key, the status and each alert's fingerprint, start and status, so a
    resent notification (``repeat_interval``, a retry after a lost answer) is recorded once. ``alertnames`` is a
    JSON array of the alerts' names (sorted), ``notification`` the webhook payload as JSON, with only the fields of
    Alertmanager's version 4 (all of them text, but ``truncatedAlerts``).
    """

    VERSION = 1

    instrument: str = ""
    receiver: str
    status: str  # firing | resolved
    group_key: str
    dedupe_key: str
    alertnames: str  # JSON array
    notification: str  # JSON object
