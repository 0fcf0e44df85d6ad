"""The SQL statements of the audit projection, for one (validated, quoted) schema name."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

# ruff: noqa: S608 - every statement is built from a schema name validated by adapters.postgres.ident


# the columns of an events row, in the order of AuditProjection's rows (event_time is generated)
EVENT_COLUMNS = (
    "event_id",
    "type",
    "version",
    "key",
    "ts_event",
    "ts_init",
    "correlation_id",
    "causation_id",
    "source",
    "topic",
    "partition",
    "offset",
    "payload",
)


# the columns of the rows the projection COPYs into these tables (the order of its row tuples)
COLUMNS = {
    "signals": ("event_id", "instrument", "strategy", "direction", "target_position", "price", "reason", "ts_event"),
    "risk_decisions": (
        "event_id",
        "client_order_id",
        "instrument",
        "decision",
        "rule",
        "reason",
        "side",
        "quantity",
        "limit_price",
        "ts_event",
    ),
    "order_events": (
        "event_id",
        "client_order_id",
        "instrument",
        "type",
        "status_before",
        "status_after",
        "quantity",
        "price",
        "reason",
        "ts_event",
    ),
    "orders": (
        "client_order_id",
        "instrument",
        "strategy",
        "side",
        "order_type",
        "quantity",
        "limit_price",
        "trigger_price",
        "status",
        "venue_order_id",
        "filled_quantity",
        "filled_notional",
        "avg_fill_price",
        "fees",
        "reject_rule",
        "reject_reason",
        "created_ts",
        "updated_ts",
        "last_event_id",
        "trade_ids",
    ),
    "fills": (
        "venue",
        "trade_id",
        "client_order_id",
        "venue_order_id",
        "instrument",
        "strategy",
        "side",
        "quantity",
        "price",
        "fee",
        "fee_currency",
        "liquidity",
        "ts_event",
        "event_id",
    ),
    "position_changes": (
        "event_id",
        "instrument",
        "strategy",
        "ts_event",
        "side",
        "quantity",
        "price",
        "fee",
        "quantity_before",
        "quantity_after",
        "avg_price_after",
        "realized_pnl",
        "realized_after",
        "fees_after",
        "log_offset",
    ),
    "round_trips": (
        "closing_event_id",
        "instrument",
        "strategy",
        "direction",
        "opened_ts",
        "closed_ts",
        "quantity",
        "entry_price",
        "exit_price",
        "realized_pnl",
        "fees",
        "net_pnl",
        "duration_seconds",
        "fills",
    ),
    "balance_changes": ("event_id", "currency", "delta", "ts_event", "instrument", "strategy"),
}


def columns(rows: Sequence[tuple[object, ...]]) -> list[list[object]]:
    """Rows -> one list per column, the arguments of the ``unnest`` statements."""
    return [list(c) for c in zip(*rows, strict=True)]


def unnest_columns(table: str, rows: Sequence[tuple[object, ...]]) -> list[list[object]]:
    """Rows of ``table`` (:data:`COLUMNS`) -> the arguments of its ``unnest`` statement. An ``orders`` row's trade
    ids (its last column) go as a JSON array: the rows' arrays differ in length, and an array of arrays in
    PostgreSQL may not."""
    if table == "orders":
        rows = [(*row[:-1], orjson.dumps(row[-1]).decode()) for row in rows]
    return columns(rows)


class Statements:
    """The statements over many rows take one array per column (``unnest``): one statement per batch, where
    ``executemany`` runs one per row. :func:`columns` turns rows into those arrays."""

    def __init__(self, s: str) -> None:
        # the slow way for a batch that holds an event already stored (see AuditProjection._insert_events):
        # COPY into a per-connection staging table, then move with ON CONFLICT DO NOTHING
        self.create_stage = """
            CREATE TEMP TABLE IF NOT EXISTS audit_stage_events (
                event_id uuid, type text, version integer, key text, ts_event bigint, ts_init bigint,
                correlation_id uuid, causation_id uuid, source text, topic text, partition integer,
                "offset" bigint, payload text, ord integer
            ) ON COMMIT DELETE ROWS"""
        # the first record of each id in the batch (ord: its place in the batch) is stored, unless the id is stored
        # already; returns the places of the records stored
        self.insert_events = f"""
            WITH firsts AS (
                SELECT DISTINCT ON (event_id) * FROM audit_stage_events ORDER BY event_id, ord
            ), ids AS (
                INSERT INTO {s}.event_ids (event_id, ts_event) SELECT event_id, ts_event FROM firsts
                ON CONFLICT DO NOTHING RETURNING event_id
            ), stored AS (
                INSERT INTO {s}.events ({", ".join(f'"{c}"' for c in EVENT_COLUMNS)})
                SELECT f.event_id, f.type, f.version, f.key, f.ts_event, f.ts_init, f.correlation_id, f.causation_id,
                       f.source, f.topic, f.partition, f."offset", f.payload::jsonb
                FROM firsts f JOIN ids USING (event_id)
                RETURNING event_id
            )
            SELECT f.ord FROM firsts f JOIN stored USING (event_id)"""
        # the records of the batch not stored ($1: the places of those stored) whose id is stored with other content
        # (type, key, time, source, cause or payload; ts_init and the log position may differ): conflicting
        # duplicates, and where their id is stored
        self.conflicting_events = f"""
            SELECT s.ord, e.topic, e.partition, e."offset"
            FROM audit_stage_events s
            JOIN {s}.event_ids i ON i.event_id = s.event_id
            JOIN {s}.events e ON e.event_id = i.event_id AND e.ts_event = i.ts_event
            WHERE s.ord <> ALL($1::integer[])
              AND (e.type <> s.type OR e.key <> s.key OR e.ts_event <> s.ts_event OR e.source <> s.source
                   OR e.causation_id IS DISTINCT FROM s.causation_id OR e.payload <> s.payload::jsonb)"""
        self.select_fills = f"""
            SELECT venue, trade_id FROM {s}.fills
            WHERE (venue, trade_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"""
        self.insert_fill = f"""
            INSERT INTO {s}.fills (venue, trade_id, client_order_id, venue_order_id, instrument, strategy, side,
                                   quantity, price, fee, fee_currency, liquidity, ts_event, event_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING"""
        self.upsert_candle = f"""
            INSERT INTO {s}.candles_1m AS c (instrument, bucket, open, high, low, close, volume, trades)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (instrument, bucket) DO UPDATE SET
                high = greatest(c.high, EXCLUDED.high), low = least(c.low, EXCLUDED.low),
                close = EXCLUDED.close, volume = c.volume + EXCLUDED.volume, trades = c.trades + EXCLUDED.trades"""
        self.insert_signal = f"""
            INSERT INTO {s}.signals (event_id, instrument, strategy, direction, target_position, price, reason,
                                     ts_event)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::numeric[],
                                 $7::text[], $8::bigint[])
            ON CONFLICT DO NOTHING"""
        self.insert_risk_decision = f"""
            INSERT INTO {s}.risk_decisions (event_id, client_order_id, instrument, decision, rule, reason, side,
                                            quantity, limit_price, ts_event)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                 $7::text[], $8::numeric[], $9::numeric[], $10::bigint[])
            ON CONFLICT DO NOTHING"""
        self.select_orders = f"SELECT * FROM {s}.orders WHERE client_order_id = ANY($1::text[])"
        self.select_positions = f"SELECT * FROM {s}.positions WHERE instrument = ANY($1::text[])"
        self.select_trips = f"SELECT * FROM {s}.open_trips WHERE instrument = ANY($1::text[])"
        # a position seeded from the day snapshot of a one-strategy engine ('') takes its strategy's name at the
        # first fill of that strategy ($1: the strategy, $2: the instrument)
        self.adopt_position = f"UPDATE {s}.positions SET strategy = $1 WHERE strategy = '' AND instrument = $2"
        self.adopt_trip = f"UPDATE {s}.open_trips SET strategy = $1 WHERE strategy = '' AND instrument = $2"
        self.upsert_order = f"""
            INSERT INTO {s}.orders (client_order_id, instrument, strategy, side, order_type, quantity,
                limit_price, trigger_price, status, venue_order_id, filled_quantity, filled_notional,
                avg_fill_price, fees, reject_rule, reject_reason, created_ts, updated_ts, last_event_id, trade_ids)
            SELECT client_order_id, instrument, strategy, side, order_type, quantity, limit_price, trigger_price,
                   status, venue_order_id, filled_quantity, filled_notional, avg_fill_price, fees, reject_rule,
                   reject_reason, created_ts, updated_ts, last_event_id,
                   ARRAY(SELECT t FROM jsonb_array_elements_text(u.trade_ids::jsonb) WITH ORDINALITY AS e(t, n)
                         ORDER BY n)
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::numeric[],
                        $7::numeric[], $8::numeric[], $9::text[], $10::text[], $11::numeric[], $12::numeric[],
                        $13::numeric[], $14::numeric[], $15::text[], $16::text[], $17::bigint[],
                        $18::bigint[], $19::uuid[], $20::text[])
                AS u(client_order_id, instrument, strategy, side, order_type, quantity, limit_price,
                     trigger_price, status, venue_order_id, filled_quantity, filled_notional, avg_fill_price, fees,
                     reject_rule, reject_reason, created_ts, updated_ts, last_event_id, trade_ids)
            ON CONFLICT (client_order_id) DO UPDATE SET
                status = EXCLUDED.status, venue_order_id = EXCLUDED.venue_order_id,
                filled_quantity = EXCLUDED.filled_quantity, filled_notional = EXCLUDED.filled_notional,
                avg_fill_price = EXCLUDED.avg_fill_price, fees = EXCLUDED.fees,
                reject_rule = EXCLUDED.reject_rule, reject_reason = EXCLUDED.reject_reason,
                updated_ts = EXCLUDED.updated_ts, last_event_id = EXCLUDED.last_event_id,
                trade_ids = EXCLUDED.trade_ids"""
        self.upsert_position = f"""
            INSERT INTO {s}.positions (strategy, instrument, quantity, avg_price, realized_pnl, fees, bought, sold,
                                       fills, updated_ts)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (strategy, instrument) DO UPDATE SET
                quantity = EXCLUDED.quantity, avg_price = EXCLUDED.avg_price,
                realized_pnl = EXCLUDED.realized_pnl, fees = EXCLUDED.fees, bought = EXCLUDED.bought,
                sold = EXCLUDED.sold, fills = EXCLUDED.fills, updated_ts = EXCLUDED.updated_ts"""
        self.upsert_trip = f"""
            INSERT INTO {s}.open_trips (strategy, instrument, direction, opened_ts, quantity, max_quantity,
                                        entry_quantity, entry_notional, exit_quantity, exit_notional, fees, fills)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (strategy, instrument) DO UPDATE SET
                direction = EXCLUDED.direction, opened_ts = EXCLUDED.opened_ts, quantity = EXCLUDED.quantity,
                max_quantity = EXCLUDED.max_quantity, entry_quantity = EXCLUDED.entry_quantity,
                entry_notional = EXCLUDED.entry_notional, exit_quantity = EXCLUDED.exit_quantity,
                exit_notional = EXCLUDED.exit_notional, fees = EXCLUDED.fees, fills = EXCLUDED.fills"""
        self.insert_order_event = f"""
            INSERT INTO {s}.order_events (event_id, client_order_id, instrument, type, status_before,
                                          status_after, quantity, price, reason, ts_event)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                 $7::numeric[], $8::numeric[], $9::text[], $10::bigint[])
            ON CONFLICT DO NOTHING"""
        self.insert_position_change = f"""
            INSERT INTO {s}.position_changes (event_id, instrument, strategy, ts_event, side, quantity, price, fee,
                quantity_before, quantity_after, avg_price_after, realized_pnl, realized_after, fees_after, log_offset)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT DO NOTHING"""
        self.insert_round_trip = f"""
            INSERT INTO {s}.round_trips (closing_event_id, instrument, strategy, direction, opened_ts, closed_ts,
                quantity, entry_price, exit_price, realized_pnl, fees, net_pnl, duration_seconds, fills)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING"""
        self.insert_balance_change = f"""
            INSERT INTO {s}.balance_changes (event_id, currency, delta, ts_event, instrument, strategy)
            VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"""
        self.insert_balance_snapshot = f"""
            INSERT INTO {s}.balance_snapshots (event_id, day, instrument, strategy, currency, amount, ts_event)
            VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"""
        self.insert_stop = f"""
            INSERT INTO {s}.stops (client_order_id, instrument, strategy, side, quantity, trigger_price, limit_price,
                                   take_profit_id, reason, status, placed_ts, updated_ts)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'held', $10, $10) ON CONFLICT DO NOTHING"""
        # $1 the stop, $2 its new status, $3 the trade's price, $4 the quantity sent, $5 the order, $6 why, $7 when
        self.end_stop = f"""
            UPDATE {s}.stops SET status = $2, triggered_price = $3, sent_quantity = $4, order_id = $5,
                                 end_reason = $6, updated_ts = $7
            WHERE client_order_id = $1 AND status = 'held'"""
        self.insert_system_event = f"""
            INSERT INTO {s}.system_events (event_id, type, source, detail, ts_event)
            VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT DO NOTHING"""
