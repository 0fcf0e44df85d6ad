"""Apply a batch of events to the audit tables (inside the runner's transaction).

1. ``events``: COPY the batch in (a savepoint); if an event of it is stored already (a re-publication
   after a crash), roll that back and insert with ``ON CONFLICT DO NOTHING RETURNING event_id``: only
   events seen for the first time go further, so an event re-published after a crash changes nothing;
2. ticks -> ``candles_1m``; engine lifecycle -> ``system_events``;
3. trading events -> ``signals``, ``risk_decisions``, ``fills`` (unique per venue trade id: a fill
   delivered twice, even under another event id, is stored and counted once; only fills applied to their
   order are stored), then the folds, with
   the same pure code the engine uses: ``orders`` + ``order_events`` (:mod:`engine.core.orders`),
   ``positions`` + ``position_changes`` (:mod:`engine.core.portfolio`), ``round_trips`` + ``open_trips``
   (:mod:`engine.core.roundtrips`) and ``balance_changes``;
4. day snapshots seed the state when a schema starts from a day (``replay --date``), and are checked
   against the folded state otherwise (a difference is recorded in ``system_events``).

Ticks and signals, most of the log, are read without their dataclasses (:mod:`projections.audit.lean`);
rows that cannot exist yet (those of new events, orders not stored) are COPY-ed, the rest upserted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import structlog

from adapters.postgres import ident, run_sql_file
from engine.core import orders as om
from engine.core import roundtrips as rt
from engine.core.account import fill_deltas
from engine.core.orders import Order, OrderStatus
from engine.core.portfolio import Position, apply_fill
from events import (
    AlertNotified,
    BalanceReconciled,
    BalanceSnapshot,
    ConnectionChanged,
    EngineStarted,
    EngineStopped,
    Envelope,
    FeedStopped,
    OpenOrderSnapshot,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    PositionSnapshot,
    ReconciliationDifference,
    Side,
    SignalGenerated,
    StopCancelled,
    StopPlaced,
    StopTriggered,
    TickReceived,
    Topics,
    TradingHalted,
    TradingResumed,
    event_to_dict,
)
from projections.audit import sql
from projections.audit.lean import LeanSignal, LeanTick, decimals_seen, decode_record, event_row, is_tick
from projections.audit.partitions import DAY_NS, DayPartitions
from projections.runner import Record

log = structlog.get_logger(__name__)

SCHEMA_SQL = Path(__file__).with_name("schema.sql")
ROLES_SQL = Path(__file__).with_name("roles.sql")
# the version schema.sql stamps a schema with (its last statement)
SCHEMA_VERSION = int(re.findall(r"schema_version VALUES \('audit', (\d+)\)", SCHEMA_SQL.read_text())[-1])
ZERO = Decimal(0)


class SchemaVersionMismatch(Exception):
    """The schema was built by another version of the audit projection: its tables or indexes differ."""

    retriable = False


async def schema_version(pool: asyncpg.Pool | asyncpg.Connection, schema: str) -> int | None:
    """The audit projection version ``schema`` was built with; 0 if it predates the stamp (version 2 and
    before), None if there is no audit schema there yet."""
    q = ident(schema)
    events, stamp = await pool.fetchrow(
        "SELECT to_regclass($1), to_regclass($2)",
        f"{q}.events",  # type: ignore[misc]
        f"{q}.schema_version",
    )
    if events is None:
        return None
    if stamp is None:
        return 0
    version = await pool.fetchval(f"SELECT version FROM {q}.schema_version WHERE projection = 'audit'")  # noqa: S608
    return 0 if version is None else int(version)


async def create_schema(pool: asyncpg.Pool, schema: str, *, roles: bool = True) -> None:
    """Create (idempotently) the audit schema, and grant the writer and reader roles their rights.

    Raises :class:`SchemaVersionMismatch` if ``schema`` was built by another version of the projection: it is
    never altered in place; ``python -m engine rebuild`` builds the new version from the log beside it."""
    found = await schema_version(pool, schema)
    if found is not None and found != SCHEMA_VERSION:
        built = f"version {found}" if found else "a version before 3"
        raise SchemaVersionMismatch(
            f"schema {schema!r} holds the audit projection {built}; this code writes version {SCHEMA_VERSION}. "
            f"Build it from the log with `python -m engine rebuild` (the current schema keeps serving readers "
            f"meanwhile, and the switch is atomic), or point postgres.schema at another schema."
        )
    await run_sql_file(pool, SCHEMA_SQL, schema)
    if roles:
        await run_sql_file(pool, ROLES_SQL, schema)


def _event_row(r: Record) -> tuple[Any, ...]:
    """The ``events`` row of a record read in full (columns: :data:`sql.EVENT_COLUMNS`; for the lean ones see
    :func:`projections.audit.lean.event_row`); the payload is the event's ``data`` as on the wire, or as upcast
    to the current version."""
    e = r.envelope
    if r.raw is not None and e.upcast_from is None:
        payload = orjson.dumps(orjson.loads(r.raw)["data"]).decode()
    else:
        payload = orjson.dumps(event_to_dict(e.event)).decode()
    return (
        e.event_id,
        e.type,
        e.version,
        e.key,
        e.ts_event,
        e.ts_init,
        e.correlation_id,
        e.causation_id,
        e.source,
        r.topic,
        r.partition,
        r.offset,
        payload,
    )


def _order_from_row(r: asyncpg.Record) -> Order:
    return Order(
        client_order_id=r["client_order_id"],
        instrument=r["instrument"],
        strategy=r["strategy"],
        side=Side(r["side"]),
        order_type=OrderType(r["order_type"]),
        quantity=r["quantity"],
        limit_price=r["limit_price"],
        status=OrderStatus(r["status"]),
        venue_order_id=r["venue_order_id"],
        filled_quantity=r["filled_quantity"],
        notional=r["filled_notional"],
        fees=r["fees"],
        reject_rule=r["reject_rule"],
        reject_reason=r["reject_reason"],
        trade_ids=frozenset(r["trade_ids"]),
        trigger_price=r["trigger_price"],
    )


def _position_from_row(r: asyncpg.Record) -> Position:
    return Position(
        instrument=r["instrument"],
        quantity=r["quantity"],
        avg_price=r["avg_price"],
        realized_pnl=r["realized_pnl"],
        fees=r["fees"],
        bought=r["bought"],
        sold=r["sold"],
        fills=r["fills"],
    )


def _trip_from_row(r: asyncpg.Record) -> rt.OpenTrip | None:
    if r["direction"] == 0:
        return None
    return rt.OpenTrip(
        r["instrument"],
        r["direction"],
        r["opened_ts"],
        r["quantity"],
        r["max_quantity"],
        r["entry_quantity"],
        r["entry_notional"],
        r["exit_quantity"],
        r["exit_notional"],
        r["fees"],
        r["fills"],
    )


def _snapshot_state(s: PositionSnapshot) -> tuple[Position, rt.OpenTrip | None]:
    pos = Position(s.instrument, s.quantity, s.avg_price, s.realized_pnl, s.fees, s.bought, s.sold, s.fills)
    trip = (
        None
        if s.trip_direction == 0
        else rt.OpenTrip(
            s.instrument,
            s.trip_direction,
            s.trip_opened_ts,
            s.trip_quantity,
            s.trip_max_quantity,
            s.trip_entry_quantity,
            s.trip_entry_notional,
            s.trip_exit_quantity,
            s.trip_exit_notional,
            s.trip_fees,
            s.trip_fills,
        )
    )
    return pos, trip


Key = tuple[str, str]
"""A position's key: (strategy, instrument)."""
UNNAMED = ""  # the strategy of a day snapshot written by an engine that ran one strategy (PositionSnapshot v1 shape)


def _snapshot_key(ev: PositionSnapshot, positions: Mapping[Key, object], trips: Mapping[Key, object]) -> Key:
    """Whose position a day snapshot is: its strategy's; for one of an engine that ran one strategy (strategy
    ``''``), the instrument's only named strategy's, else ``''`` (a schema starting at that day: see :func:`_adopt`)."""
    if ev.strategy != UNNAMED:
        return (ev.strategy, ev.instrument)
    named = {k for k in (*positions, *trips) if k[1] == ev.instrument and k[0] != UNNAMED}
    return named.pop() if len(named) == 1 else (UNNAMED, ev.instrument)


def _adopt(key: Key, positions: dict[Key, Position], trips: dict[Key, rt.OpenTrip | None], b: _Batch) -> None:
    """The first fill of ``key``'s strategy in its instrument takes over the position seeded under ``''`` (from a
    one-strategy engine's day snapshot, which does not name the strategy), if there is one."""
    unnamed = (UNNAMED, key[1])
    if unnamed not in positions and unnamed not in trips:
        return
    positions[key] = positions.pop(unnamed, Position(key[1]))
    trips[key] = trips.pop(unnamed, None)
    b.adopted.append(key)
    if b.positions_touched.pop(unnamed, None) is not None:
        b.positions_touched[key] = 0  # seeded in this batch: the fill's time replaces it
    if unnamed in b.trips_touched:
        b.trips_touched.discard(unnamed)
        b.trips_touched.add(key)


@dataclass
class _Batch:
    """Rows to write, collected while folding one batch."""

    signals: list[tuple[Any, ...]] = field(default_factory=list)
    risk_decisions: list[tuple[Any, ...]] = field(default_factory=list)
    order_events: list[tuple[Any, ...]] = field(default_factory=list)
    new_orders: list[tuple[Any, ...]] = field(default_factory=list)  # orders rows of orders not stored yet
    fills: list[tuple[Any, ...]] = field(default_factory=list)  # the fills applied to their order
    position_changes: list[tuple[Any, ...]] = field(default_factory=list)
    offsets: dict[Any, int] = field(default_factory=dict)  # event id -> its offset, of the trading records
    round_trips: list[tuple[Any, ...]] = field(default_factory=list)
    balance_changes: list[tuple[Any, ...]] = field(default_factory=list)
    system_events: list[tuple[Any, ...]] = field(default_factory=list)
    orders_touched: dict[str, Envelope] = field(default_factory=dict)
    orders_created: dict[str, int] = field(default_factory=dict)
    positions_touched: dict[Key, int] = field(default_factory=dict)
    trips_touched: set[Key] = field(default_factory=set)
    adopted: list[Key] = field(default_factory=list)  # '' positions (see _adopt) that took a strategy's name


_SYSTEM_EVENTS = (
    EngineStarted,
    EngineStopped,
    FeedStopped,
    TradingHalted,
    TradingResumed,
    ReconciliationDifference,
    BalanceReconciled,
    ConnectionChanged,
    AlertNotified,
)


class AuditProjection:
    name = "audit"

    def __init__(
        self,
        schema: str = "audit",
        topics: Topics = Topics(),
        *,
        owner_pool: asyncpg.Pool | None = None,
        mid_log: bool = False,
        create: bool = False,
    ):
        """``mid_log``: the schema folds the log from a time on (``replay --date`` or ``--from``), not from its start.
        An order it never saw was then made before that time; one that was still open is seeded from the day's
        snapshot, so an event of an order it does not know that is not the order's first (a fill the venue reported
        again, a cancel confirmed again) belongs to an order that ended before: it is skipped and logged as
        ``audit.order_before_range`` (counted in ``before_range``), not as an invalid transition. The live
        projection, which has seen the order, skips such a report as a duplicate, so the rows are the same."""
        self.schema = schema
        self.mid_log = mid_log
        self._create = create and owner_pool is not None  # prepare() creates the schema (a live worker)
        self.topics: tuple[str, ...] = (topics.ticks, topics.trading, topics.control)
        self._ticks, self._trading, self._control = topics.ticks, topics.trading, topics.control
        self.sql = sql.Statements(ident(schema))
        self.partitions = DayPartitions(owner_pool, schema)
        self.invalid_transitions = 0
        self.conflicts = 0  # conflicting duplicates refused (same event id, other content)
        self.refused: list[tuple[Record, str]] = []  # records refused in this batch, with why: the runner parks them
        self.before_range = 0
        self.snapshot_mismatches = 0
        # for the runner: ticks and signals read lean (see projections.audit.lean), the rest in full; a partial,
        # so that no Python frame stands between the runner and the reader
        self.decode: Callable[[str, int, int, bytes | None], Envelope | LeanTick | LeanSignal] = partial(
            decode_record, self._ticks, self._trading
        )

    async def prepare(self) -> None:
        """Before the first batch (the runner retries it through an outage): create the schema if this worker is
        the one to (``create``), which refuses a schema of another version."""
        if self._create and self.partitions.pool is not None:
            await create_schema(self.partitions.pool, self.schema)
            self._create = False

    def reset(self) -> None:
        """Forget cached knowledge of the schema (after a rebuild switched it)."""
        self.partitions = DayPartitions(self.partitions.pool, self.schema)

    async def apply(self, conn: asyncpg.Connection, records: Sequence[Record]) -> None:
        # a live venue's reports on the input topic come again, relayed with the same id, on the trading
        # topic, in order after the command they answer: they are stored and folded from there
        ticks_topic = self._ticks
        records = [r for r in records if r.topic != ticks_topic or type(r.envelope) is LeanTick or is_tick(r.envelope)]
        if not records:
            return
        await self.partitions.ensure({r.envelope.ts_event // DAY_NS for r in records}, conn)
        new = await self._insert_events(conn, records)
        ticks: list[LeanTick | Envelope] = []
        trading: list[Envelope] = []
        control: list[Envelope] = []
        batch = _Batch()
        signals = batch.signals
        for r in new:
            e = r.envelope
            if type(e) is LeanTick:
                ticks.append(e)
            elif type(e) is LeanSignal:
                signals.append(e.signal_row())
            elif r.topic == self._trading:
                trading.append(e)
                batch.offsets[e.event_id] = r.offset
            elif r.topic == ticks_topic:
                ticks.append(e)
            elif r.topic == self._control:
                control.append(e)
        if ticks:
            await self._candles(conn, ticks)
        for e in control:
            if isinstance(e.event, _SYSTEM_EVENTS):
                detail = {k: v for k, v in event_to_dict(e.event).items() if k != "instrument"}
                batch.system_events.append((e.event_id, e.type, e.source, orjson.dumps(detail).decode(), e.ts_event))
        if trading:
            await self._trading_events(conn, trading, batch)
        await self._write(conn, batch, all_new=len(new) == len(records))

    async def _insert_events(self, conn: asyncpg.Connection, records: list[Record]) -> list[Record]:
        """Store every event once; return the records whose event was not stored before.

        The batch is COPY-ed straight into ``event_ids`` and ``events`` (routed to the day partitions) inside a
        savepoint: about twice the rate of staging it and moving it with ``INSERT ... ON CONFLICT DO NOTHING``. A
        batch holding an event id already stored (or twice), which only a re-publication after a crash or a
        duplicate produces, fails on a primary key; it is then rolled back to the savepoint and moved the slow way,
        which stores the first record of each new id and skips the rest. A skipped record whose id is stored with
        other content (type, key, time, source, cause or payload) is a conflicting duplicate: it is refused (the
        runner dead-letters it, see :attr:`refused`), never stored or folded.
        """
        rows = [
            event_row(e, r.topic, r.partition, r.offset)
            if type(e) is LeanTick or type(e) is LeanSignal
            else _event_row(r)
            for r in records
            for e in (r.envelope,)
        ]
        try:
            async with conn.transaction():  # a savepoint: the runner's transaction is open
                await conn.copy_records_to_table(
                    "event_ids",
                    schema_name=self.schema,
                    columns=("event_id", "ts_event"),
                    records=[(row[0], row[4]) for row in rows],
                )
                await conn.copy_records_to_table(
                    "events", schema_name=self.schema, columns=sql.EVENT_COLUMNS, records=rows
                )
            return records
        except asyncpg.UniqueViolationError:
            pass
        await conn.execute(self.sql.create_stage)
        await conn.copy_records_to_table("audit_stage_events", records=[(*row, i) for i, row in enumerate(rows)])
        stored = sorted(row[0] for row in await conn.fetch(self.sql.insert_events))
        if len(stored) < len(records):
            for ord_, topic, partition, offset in await conn.fetch(self.sql.conflicting_events, stored):
                r = records[ord_]
                self.conflicts += 1
                reason = (
                    f"conflicting duplicate: event id {r.envelope.event_id} is stored already, from "
                    f"{topic}[{partition}] offset {offset}, with other content"
                )
                log.warning(
                    "audit.conflicting_duplicate",
                    event_id=str(r.envelope.event_id),
                    topic=r.topic,
                    partition=r.partition,
                    offset=r.offset,
                    stored_at=f"{topic}[{partition}]@{offset}",
                )
                self.refused.append((r, reason))
        return [records[i] for i in stored]

    async def _insert_once(
        self, conn: asyncpg.Connection, all_new: bool, tables: tuple[tuple[str, list[tuple[Any, ...]], str, bool], ...]
    ) -> None:
        """Insert rows that cannot be stored yet: rows keyed by the id of an event seen for the first time
        (they are written only with their event), orders that the batch's read of ``orders`` did not find, fills
        whose trade ids its read of ``fills`` did not find.

        When every event of the batch was new (the events COPY went through), they are COPY-ed, inside a
        savepoint all the same; otherwise, or should a key be there after all, each table gets its
        statement (``ON CONFLICT DO NOTHING``, or the orders upsert), which skips or updates what is stored:
        one per row (``executemany``) where the flag says so, else one over arrays (``unnest``).
        """
        tables = tuple(t for t in tables if t[1])
        if not tables:
            return
        if all_new:
            try:
                async with conn.transaction():
                    for table, rows, _, _ in tables:
                        await conn.copy_records_to_table(
                            table, schema_name=self.schema, columns=sql.COLUMNS[table], records=rows
                        )
                return
            except asyncpg.UniqueViolationError:
                pass
        for table, rows, stmt, per_row in tables:
            if per_row:
                await conn.executemany(stmt, rows)
            else:
                await conn.execute(stmt, *sql.unnest_columns(table, rows))

    async def _candles(self, conn: asyncpg.Connection, ticks: list[LeanTick | Envelope]) -> None:
        """1-minute candles of the batch's new ticks, in log order (open: the first, close: the last)."""
        candles: dict[tuple[str, int], list[Any]] = {}
        known = decimals_seen().get  # lean.value_of inlined: a call per tick costs more than the lookup
        for e in ticks:
            if isinstance(e, LeanTick):
                d = e.data
                instrument, price, qty = (
                    d.instrument,
                    known(d.price) or Decimal(d.price),
                    known(d.quantity) or Decimal(d.quantity),
                )
            else:
                t = e.event
                assert isinstance(t, TickReceived)
                instrument, price, qty = t.instrument, t.price, t.quantity
            key = (instrument, e.ts_event // 60_000_000_000)
            c = candles.get(key)
            if c is None:
                candles[key] = [price, price, price, price, qty, 1]
            else:
                if price > c[1]:
                    c[1] = price
                if price < c[2]:
                    c[2] = price
                c[3] = price
                c[4] += qty
                c[5] += 1
        await conn.executemany(
            self.sql.upsert_candle, [(i, datetime.fromtimestamp(m * 60, UTC), *v) for (i, m), v in candles.items()]
        )

    async def _trading_events(self, conn: asyncpg.Connection, new: list[Envelope], b: _Batch) -> None:
        s = self.sql
        signals = b.signals
        decisions = b.risk_decisions
        fill_keys: list[tuple[str, str]] = []
        balance_snaps: list[tuple[Any, ...]] = []
        stops_placed: list[tuple[Any, ...]] = []
        stops_ended: list[tuple[Any, ...]] = []
        for e in new:
            ev = e.event
            if isinstance(ev, SignalGenerated):
                signals.append(
                    (
                        e.event_id,
                        ev.instrument,
                        ev.strategy,
                        ev.direction.value,
                        ev.target_position,
                        ev.price,
                        ev.reason,
                        e.ts_event,
                    )
                )
            elif isinstance(ev, OrderSubmitted):
                decisions.append(
                    (
                        e.event_id,
                        ev.client_order_id,
                        ev.instrument,
                        "accepted",
                        None,
                        None,
                        ev.side.value,
                        ev.quantity,
                        ev.limit_price,
                        e.ts_event,
                    )
                )
            elif isinstance(ev, OrderRejected) and ev.by == "risk":
                decisions.append(
                    (
                        e.event_id,
                        ev.client_order_id,
                        ev.instrument,
                        "rejected",
                        ev.rule,
                        ev.reason,
                        ev.side.value,
                        ev.quantity,
                        ev.limit_price,
                        e.ts_event,
                    )
                )
            elif isinstance(ev, BalanceSnapshot):
                balance_snaps.append(
                    (
                        e.event_id,
                        date.fromisoformat(ev.day),
                        ev.instrument,
                        ev.strategy,
                        ev.currency,
                        ev.amount,
                        e.ts_event,
                    )
                )
            elif isinstance(ev, OrderFilled):
                fill_keys.append((ev.venue, ev.trade_id))
            elif isinstance(ev, StopPlaced):
                stops_placed.append(
                    (
                        ev.client_order_id,
                        ev.instrument,
                        ev.strategy,
                        ev.side.value,
                        ev.quantity,
                        ev.trigger_price,
                        ev.limit_price,
                        ev.take_profit_id,
                        ev.reason,
                        e.ts_event,
                    )
                )
            elif isinstance(ev, StopTriggered):
                stops_ended.append(
                    (ev.client_order_id, "triggered", ev.price, ev.quantity, ev.order_id, None, e.ts_event)
                )
            elif isinstance(ev, StopCancelled):
                stops_ended.append((ev.client_order_id, "cancelled", None, None, None, ev.reason, e.ts_event))
        if stops_placed:  # in log order a stop is placed before it ends: the inserts go first
            await conn.executemany(s.insert_stop, stops_placed)
        if stops_ended:
            await conn.executemany(s.end_stop, stops_ended)
        if balance_snaps:
            await conn.executemany(s.insert_balance_snapshot, balance_snaps)
        # fills stored before: delivered again (under another event id), they are not counted again
        counted: set[tuple[str, str]] = set()
        if fill_keys:
            counted = {(r[0], r[1]) for r in await conn.fetch(s.select_fills, *sql.columns(fill_keys))}

        coids = sorted(
            {e.event.client_order_id for e in new if isinstance(e.event, (*om.ORDER_EVENTS, OpenOrderSnapshot))}
        )
        orders = (
            {r["client_order_id"]: _order_from_row(r) for r in await conn.fetch(s.select_orders, coids)}
            if coids
            else {}
        )
        stored = set(orders)
        instruments = sorted({e.event.instrument for e in new if isinstance(e.event, OrderFilled | PositionSnapshot)})
        positions: dict[Key, Position] = {}
        trips: dict[Key, rt.OpenTrip | None] = {}
        if instruments:  # every strategy's position in these instruments
            positions = {
                (r["strategy"], r["instrument"]): _position_from_row(r)
                for r in await conn.fetch(s.select_positions, instruments)
            }
            trips = {
                (r["strategy"], r["instrument"]): _trip_from_row(r)
                for r in await conn.fetch(s.select_trips, instruments)
            }

        for e in new:
            ev = e.event
            if isinstance(ev, PositionSnapshot):
                self._check_position(e, ev, positions, trips, b)
            elif isinstance(ev, OpenOrderSnapshot):
                self._check_order(e, ev, orders, b)
            elif isinstance(ev, OrderFilled):
                key = (ev.venue, ev.trade_id)
                order = orders.get(ev.client_order_id)
                if key in counted or (order is not None and ev.trade_id in order.trade_ids):
                    continue  # counted already: stored before, earlier in this batch, or before the day's snapshot
                if self._order_event(e, orders, positions, trips, b):
                    counted.add(key)
                    b.fills.append(
                        (
                            ev.venue,
                            ev.trade_id,
                            ev.client_order_id,
                            ev.venue_order_id,
                            ev.instrument,
                            orders[ev.client_order_id].strategy,
                            ev.side.value,
                            ev.quantity,
                            ev.price,
                            ev.fee,
                            ev.fee_currency,
                            ev.liquidity.value,
                            e.ts_event,
                            e.event_id,
                        )
                    )
            elif isinstance(ev, om.ORDER_EVENTS):
                self._order_event(e, orders, positions, trips, b)
        await self._write_state(conn, orders, stored, positions, trips, b)

    def _check_position(
        self,
        e: Envelope,
        ev: PositionSnapshot,
        positions: dict[Key, Position],
        trips: dict[Key, rt.OpenTrip | None],
        b: _Batch,
    ) -> None:
        pos, trip = _snapshot_state(ev)
        key = _snapshot_key(ev, positions, trips)
        if key not in positions and key not in trips:
            positions[key], trips[key] = pos, trip  # a schema that starts at this day
            b.positions_touched[key] = e.ts_event
            b.trips_touched.add(key)
            return
        have = (positions.get(key, Position(ev.instrument)), trips.get(key))
        if have != (pos, trip):
            detail = {"strategy": key[0], "position": str(have[0]), "trip": str(have[1]), "snapshot": str((pos, trip))}
            self._mismatch(e, detail, b)

    def _check_order(self, e: Envelope, ev: OpenOrderSnapshot, orders: dict[str, Order], b: _Batch) -> None:
        snap = Order(
            ev.client_order_id,
            ev.instrument,
            ev.strategy,
            ev.side,
            ev.order_type,
            ev.quantity,
            ev.limit_price,
            OrderStatus(ev.status),
            ev.venue_order_id,
            ev.filled_quantity,
            ev.filled_notional,
            ev.fees,
            trade_ids=frozenset(ev.trade_ids or ()),
            trigger_price=ev.trigger_price,
        )
        have = orders.get(ev.client_order_id)
        if have is None:
            orders[ev.client_order_id] = snap  # a schema that starts at this day: its earlier fills are known
            b.orders_touched[ev.client_order_id] = e
            b.orders_created[ev.client_order_id] = e.ts_event
            return
        # the snapshot does not carry the rejection (a working order has none); an upcast v1 one, no trade ids
        known = have.trade_ids if ev.trade_ids is not None else frozenset()
        if replace(have, trade_ids=known, reject_rule=None, reject_reason=None) != snap:
            self._mismatch(e, {"order": str(have), "snapshot": str(snap)}, b)

    def _mismatch(self, e: Envelope, detail: dict[str, str], b: _Batch) -> None:
        self.snapshot_mismatches += 1
        log.error("audit.snapshot_mismatch", event_id=str(e.event_id), **detail)
        b.system_events.append(
            (e.event_id, "SnapshotMismatch", "projection:audit", orjson.dumps(detail).decode(), e.ts_event)
        )

    def _order_event(
        self,
        e: Envelope,
        orders: dict[str, Order],
        positions: dict[Key, Position],
        trips: dict[Key, rt.OpenTrip | None],
        b: _Batch,
    ) -> bool:
        """Fold an order event into its order (and a fill into the position); False if the order's state refuses
        it (logged, and counted in ``invalid_transitions``), or if it is of an order that ended before the log this
        schema folds (see ``mid_log``)."""
        ev = e.event
        coid: str = ev.client_order_id  # type: ignore[attr-defined]
        before = orders.get(coid)
        if before is None and self.mid_log and not isinstance(ev, OrderSubmitted | OrderRejected):
            self.before_range += 1
            log.info("audit.order_before_range", event_id=str(e.event_id), type=e.type, client_order_id=coid)
            return False
        try:
            after = om.apply(before, ev)
        except om.InvalidTransition as exc:
            self.invalid_transitions += 1
            log.error("audit.invalid_transition", error=str(exc), event_id=str(e.event_id))
            return False
        qty: Decimal | None = getattr(ev, "quantity", after.quantity)
        price: Decimal | None = after.limit_price
        reason: str | None = None
        if isinstance(ev, OrderFilled):
            price = ev.price
            self._fill(e, ev, after.strategy, positions, trips, b)
        elif isinstance(ev, OrderRejected):
            reason = f"{ev.rule}: {ev.reason}"
        elif isinstance(ev, OrderCancelled):
            reason = ev.reason
        b.order_events.append(
            (
                e.event_id,
                coid,
                ev.instrument,
                ev.TYPE,
                before.status.value if before else None,
                after.status.value,
                qty,
                price,
                reason,
                e.ts_event,
            )
        )
        if before is None:
            b.orders_created[coid] = e.ts_event
        orders[coid] = after
        b.orders_touched[coid] = e
        return True

    def _fill(
        self,
        e: Envelope,
        f: OrderFilled,
        strategy: str,
        positions: dict[Key, Position],
        trips: dict[Key, rt.OpenTrip | None],
        b: _Batch,
    ) -> None:
        key = (strategy, f.instrument)
        if key not in positions and key not in trips:
            _adopt(key, positions, trips, b)
        before = positions.get(key) or Position(f.instrument)
        after = apply_fill(before, f)
        positions[key] = after
        b.positions_touched[key] = e.ts_event
        b.position_changes.append(
            (
                e.event_id,
                f.instrument,
                strategy,
                e.ts_event,
                f.side.value,
                f.quantity,
                f.price,
                f.fee,
                before.quantity,
                after.quantity,
                after.avg_price,
                after.realized_pnl - before.realized_pnl,
                after.realized_pnl,
                after.fees,
                b.offsets[e.event_id],
            )
        )
        trip, closed = rt.apply_fill(trips.get(key), f, e.ts_event)
        trips[key] = trip
        b.trips_touched.add(key)
        if closed is not None:
            b.round_trips.append(
                (
                    e.event_id,
                    closed.instrument,
                    strategy,
                    "long" if closed.direction > 0 else "short",
                    closed.opened_ts,
                    closed.closed_ts,
                    closed.quantity,
                    closed.entry_price,
                    closed.exit_price,
                    closed.realized_pnl,
                    closed.fees,
                    closed.net_pnl,
                    Decimal(closed.duration_ns) / Decimal(1_000_000_000),
                    closed.fills,
                )
            )
        deltas = fill_deltas(f)
        b.balance_changes.extend(
            (e.event_id, cur, d, e.ts_event, f.instrument, strategy) for cur, d in sorted(deltas.items())
        )

    async def _write_state(
        self,
        conn: asyncpg.Connection,
        orders: dict[str, Order],
        stored: set[str],
        positions: dict[Key, Position],
        trips: dict[Key, rt.OpenTrip | None],
        b: _Batch,
    ) -> None:
        s = self.sql
        updated: list[tuple[Any, ...]] = []
        for coid, e in b.orders_touched.items():
            o = orders[coid]
            (updated if coid in stored else b.new_orders).append(
                (
                    o.client_order_id,
                    o.instrument,
                    o.strategy,
                    o.side.value,
                    o.order_type.value,
                    o.quantity,
                    o.limit_price,
                    o.trigger_price,
                    o.status.value,
                    o.venue_order_id,
                    o.filled_quantity,
                    o.notional,
                    o.avg_fill_price,
                    o.fees,
                    o.reject_rule,
                    o.reject_reason,
                    b.orders_created.get(coid, e.ts_event),
                    e.ts_event,
                    e.event_id,
                    sorted(o.trade_ids),
                )
            )
        if updated:
            await conn.execute(s.upsert_order, *sql.unnest_columns("orders", updated))
        if b.adopted:  # before the upserts: the row stored under '' is the strategy's from now on
            await conn.executemany(s.adopt_position, b.adopted)
            await conn.executemany(s.adopt_trip, b.adopted)
        if b.positions_touched:
            await conn.executemany(
                s.upsert_position,
                [
                    (k[0], p.instrument, p.quantity, p.avg_price, p.realized_pnl, p.fees, p.bought, p.sold, p.fills, ts)
                    for k, ts in b.positions_touched.items()
                    for p in (positions[k],)
                ],
            )
        if b.trips_touched:
            await conn.executemany(
                s.upsert_trip,
                [
                    (
                        *k,
                        t.direction,
                        t.opened_ts,
                        t.quantity,
                        t.max_quantity,
                        t.entry_quantity,
                        t.entry_notional,
                        t.exit_quantity,
                        t.exit_notional,
                        t.fees,
                        t.fills,
                    )
                    if t is not None
                    else (*k, 0, 0, ZERO, ZERO, ZERO, ZERO, ZERO, ZERO, ZERO, 0)
                    for k in sorted(b.trips_touched)
                    for t in (trips.get(k),)
                ],
            )

    async def _write(self, conn: asyncpg.Connection, b: _Batch, *, all_new: bool) -> None:
        s = self.sql
        await self._insert_once(
            conn,
            all_new,
            (
                ("signals", b.signals, s.insert_signal, False),
                ("risk_decisions", b.risk_decisions, s.insert_risk_decision, False),
                ("order_events", b.order_events, s.insert_order_event, False),
                ("orders", b.new_orders, s.upsert_order, False),
                ("fills", b.fills, s.insert_fill, True),
                ("position_changes", b.position_changes, s.insert_position_change, True),
                ("round_trips", b.round_trips, s.insert_round_trip, True),
                ("balance_changes", b.balance_changes, s.insert_balance_change, True),
            ),
        )
        if b.system_events:
            await conn.executemany(s.insert_system_event, b.system_events)
