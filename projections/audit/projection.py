"""Apply a batch of events to the audit tables (inside the runner's transaction).

1. ``events``: insert all, ``ON CONFLICT (event_id) DO NOTHING RETURNING event_id``: only events
   seen for the first time go further (an event re-published after a crash changes nothing);
2. ``fills``: insert, ``ON CONFLICT (venue, trade_id) DO NOTHING``: a fill delivered twice (even
   under another event id) is stored once and counted once;
3. ``orders`` and ``positions``: read the current rows of the orders and instruments in the batch,
   fold the new events with the same pure code the engine uses (:mod:`engine.orders`,
   :mod:`engine.portfolio`), write the results back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import structlog

from adapters.postgres import ident, run_sql_file
from engine import orders as om
from engine.orders import Order, OrderStatus
from engine.portfolio import Position, apply_fill
from events import Envelope, OrderFilled, OrderType, Side, Topics, event_to_dict
from projections.runner import Record

log = structlog.get_logger(__name__)

SCHEMA_SQL = Path(__file__).with_name("schema.sql")


async def create_schema(pool: asyncpg.Pool, schema: str) -> None:
    await run_sql_file(pool, SCHEMA_SQL, schema)


def _order_from_row(r: asyncpg.Record) -> Order:
    return Order(
        client_order_id=r["client_order_id"], instrument=r["instrument"], strategy=r["strategy"],
        side=Side(r["side"]), order_type=OrderType(r["order_type"]), quantity=r["quantity"],
        limit_price=r["limit_price"], status=OrderStatus(r["status"]), venue_order_id=r["venue_order_id"],
        filled_quantity=r["filled_quantity"], notional=r["filled_notional"], fees=r["fees"],
        reject_rule=r["reject_rule"], reject_reason=r["reject_reason"],
    )


def _position_from_row(r: asyncpg.Record) -> Position:
    return Position(
        instrument=r["instrument"], quantity=r["quantity"], avg_price=r["avg_price"],
        realized_pnl=r["realized_pnl"], fees=r["fees"], bought=r["bought"], sold=r["sold"], fills=r["fills"],
    )


class AuditProjection:
    name = "audit"

    def __init__(self, schema: str = "audit", topics: Topics = Topics()) -> None:
        s = ident(schema)
        self.topics: tuple[str, ...] = (topics.ticks, topics.trading)
        self._trading = topics.trading
        self.schema = schema
        self._insert_events = f"""
            INSERT INTO {s}.events (event_id, type, version, key, ts_event, ts_init, correlation_id,
                                    causation_id, source, topic, partition, "offset", payload)
            SELECT e.id, e.type, e.version, e.key, e.ts_event, e.ts_init, e.corr, e.caus, e.source,
                   e.topic, e.part, e.off, e.payload::jsonb
            FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::bigint[], $6::bigint[],
                        $7::uuid[], $8::uuid[], $9::text[], $10::text[], $11::int[], $12::bigint[], $13::text[])
                 AS e(id, type, version, key, ts_event, ts_init, corr, caus, source, topic, part, off, payload)
            ON CONFLICT (event_id) DO NOTHING
            RETURNING event_id
        """  # noqa: S608 - schema is a validated identifier
        self._insert_fills = f"""
            INSERT INTO {s}.fills (venue, trade_id, client_order_id, venue_order_id, instrument, side,
                                   quantity, price, fee, fee_currency, liquidity, ts_event, event_id)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                 $7::numeric[], $8::numeric[], $9::numeric[], $10::text[], $11::text[],
                                 $12::bigint[], $13::uuid[])
            ON CONFLICT (venue, trade_id) DO NOTHING
            RETURNING venue, trade_id
        """  # noqa: S608
        self._select_orders = f"SELECT * FROM {s}.orders WHERE client_order_id = ANY($1::text[])"  # noqa: S608
        self._upsert_order = f"""
            INSERT INTO {s}.orders (client_order_id, instrument, strategy, side, order_type, quantity,
                limit_price, status, venue_order_id, filled_quantity, filled_notional, avg_fill_price, fees,
                reject_rule, reject_reason, created_ts, updated_ts, last_event_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
            ON CONFLICT (client_order_id) DO UPDATE SET
                status = EXCLUDED.status, venue_order_id = EXCLUDED.venue_order_id,
                filled_quantity = EXCLUDED.filled_quantity, filled_notional = EXCLUDED.filled_notional,
                avg_fill_price = EXCLUDED.avg_fill_price, fees = EXCLUDED.fees,
                reject_rule = EXCLUDED.reject_rule, reject_reason = EXCLUDED.reject_reason,
                updated_ts = EXCLUDED.updated_ts, last_event_id = EXCLUDED.last_event_id
        """  # noqa: S608
        self._select_positions = f"SELECT * FROM {s}.positions WHERE instrument = ANY($1::text[])"  # noqa: S608
        self._upsert_position = f"""
            INSERT INTO {s}.positions (instrument, quantity, avg_price, realized_pnl, fees, bought, sold,
                                       fills, updated_ts, last_event_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (instrument) DO UPDATE SET
                quantity = EXCLUDED.quantity, avg_price = EXCLUDED.avg_price,
                realized_pnl = EXCLUDED.realized_pnl, fees = EXCLUDED.fees, bought = EXCLUDED.bought,
                sold = EXCLUDED.sold, fills = EXCLUDED.fills, updated_ts = EXCLUDED.updated_ts,
                last_event_id = EXCLUDED.last_event_id
        """  # noqa: S608
        self.invalid_transitions = 0

    async def apply(self, conn: asyncpg.Connection, records: Sequence[Record]) -> None:
        if not records:
            return
        cols: list[list[Any]] = [[] for _ in range(13)]
        for r in records:
            e = r.envelope
            row = (
                e.event_id, e.type, e.version, e.key, e.ts_event, e.ts_init, e.correlation_id, e.causation_id,
                e.source, r.topic, r.partition, r.offset, orjson.dumps(event_to_dict(e.event)).decode(),
            )
            for c, v in zip(cols, row, strict=True):
                c.append(v)
        inserted = {row[0] for row in await conn.fetch(self._insert_events, *cols)}
        new = [r.envelope for r in records if r.envelope.event_id in inserted and r.topic == self._trading]
        if new:
            await self._fold_trading(conn, new)

    async def _fold_trading(self, conn: asyncpg.Connection, new: list[Envelope]) -> None:
        fills = [e for e in new if isinstance(e.event, OrderFilled)]
        fresh_fills: set[tuple[str, str]] = set()
        if fills:
            fc: list[list[Any]] = [[] for _ in range(13)]
            for e in fills:
                f = e.event
                assert isinstance(f, OrderFilled)
                row = (f.venue, f.trade_id, f.client_order_id, f.venue_order_id, f.instrument, f.side.value,
                       f.quantity, f.price, f.fee, f.fee_currency, f.liquidity.value, e.ts_event, e.event_id)
                for c, v in zip(fc, row, strict=True):
                    c.append(v)
            fresh_fills = {(r[0], r[1]) for r in await conn.fetch(self._insert_fills, *fc)}

        order_events = [e for e in new if isinstance(e.event, om.ORDER_EVENTS)]
        coids = sorted({e.event.client_order_id for e in order_events})  # type: ignore[attr-defined]
        current: dict[str, Order] = {
            r["client_order_id"]: _order_from_row(r) for r in await conn.fetch(self._select_orders, coids)
        } if coids else {}
        created: dict[str, int] = {}
        touched: dict[str, Envelope] = {}
        instruments = sorted({e.event.instrument for e in fills})
        positions: dict[str, Position] = {
            r["instrument"]: _position_from_row(r) for r in await conn.fetch(self._select_positions, instruments)
        } if instruments else {}
        pos_touched: dict[str, Envelope] = {}
        for e in order_events:
            ev = e.event
            coid: str = ev.client_order_id  # type: ignore[attr-defined]
            if isinstance(ev, OrderFilled) and (ev.venue, ev.trade_id) not in fresh_fills:
                continue  # this fill is already stored: it was counted once
            before = current.get(coid)
            try:
                after = om.apply(before, ev)
            except om.InvalidTransition as exc:
                self.invalid_transitions += 1
                log.error("audit.invalid_transition", error=str(exc), event_id=str(e.event_id))
                continue
            if isinstance(ev, OrderFilled):
                after = replace(after, trade_ids=frozenset())
                pos = positions.get(ev.instrument) or Position(ev.instrument)
                positions[ev.instrument] = apply_fill(pos, ev)
                pos_touched[ev.instrument] = e
            if before is None:
                created[coid] = e.ts_event
            current[coid] = after
            touched[coid] = e
        if touched:
            await conn.executemany(self._upsert_order, [
                (o.client_order_id, o.instrument, o.strategy, o.side.value, o.order_type.value, o.quantity,
                 o.limit_price, o.status.value, o.venue_order_id, o.filled_quantity, o.notional,
                 o.avg_fill_price, o.fees, o.reject_rule, o.reject_reason,
                 created.get(coid, touched[coid].ts_event), touched[coid].ts_event, touched[coid].event_id)
                for coid, o in ((c, current[c]) for c in touched)
            ])
        if pos_touched:
            await conn.executemany(self._upsert_position, [
                (p.instrument, p.quantity, p.avg_price, p.realized_pnl, p.fees, p.bought, p.sold, p.fills,
                 pos_touched[i].ts_event, pos_touched[i].event_id)
                for i, p in ((i, positions[i]) for i in pos_touched)
            ])
