-- The audit projection. Built only by the projection runner, from the log; rebuilt by replay.
-- {schema} is replaced by a validated, quoted schema name ("audit" live, anything else for replays).

CREATE SCHEMA IF NOT EXISTS {schema};

-- Where each projection stands in the log: written in the same transaction as its rows.
CREATE TABLE IF NOT EXISTS {schema}.projection_offsets (
    projection  text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);

-- Every event, once (a re-delivered event with the same id is ignored). Append-only.
CREATE TABLE IF NOT EXISTS {schema}.events (
    event_id       uuid        PRIMARY KEY,
    type           text        NOT NULL,
    version        integer     NOT NULL,
    key            text        NOT NULL,
    ts_event       bigint      NOT NULL,  -- ns since epoch, UTC: when it happened
    ts_init        bigint      NOT NULL,  -- ns since epoch, UTC: when the system recorded it
    event_time     timestamptz GENERATED ALWAYS AS (to_timestamp((ts_event / 1000)::double precision / 1000000)) STORED,
    correlation_id uuid        NOT NULL,
    causation_id   uuid,
    source         text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    payload        jsonb       NOT NULL
);
CREATE INDEX IF NOT EXISTS events_key_ts ON {schema}.events (key, ts_event);
CREATE INDEX IF NOT EXISTS events_type_ts ON {schema}.events (type, ts_event);

-- Current state of every order (including orders rejected by risk).
CREATE TABLE IF NOT EXISTS {schema}.orders (
    client_order_id text        PRIMARY KEY,
    instrument      text        NOT NULL,
    strategy        text        NOT NULL,
    side            text        NOT NULL,
    order_type      text        NOT NULL,
    quantity        numeric     NOT NULL,
    limit_price     numeric,
    status          text        NOT NULL,
    venue_order_id  text,
    filled_quantity numeric     NOT NULL,
    filled_notional numeric     NOT NULL,
    avg_fill_price  numeric,
    fees            numeric     NOT NULL,
    reject_rule     text,
    reject_reason   text,
    created_ts      bigint      NOT NULL,
    updated_ts      bigint      NOT NULL,
    last_event_id   uuid        NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_instrument ON {schema}.orders (instrument, created_ts);

-- Executions: one row per venue trade id, however often the fill was delivered.
CREATE TABLE IF NOT EXISTS {schema}.fills (
    venue           text    NOT NULL,
    trade_id        text    NOT NULL,
    client_order_id text    NOT NULL,
    venue_order_id  text    NOT NULL,
    instrument      text    NOT NULL,
    side            text    NOT NULL,
    quantity        numeric NOT NULL,
    price           numeric NOT NULL,
    fee             numeric NOT NULL,
    fee_currency    text    NOT NULL,
    liquidity       text    NOT NULL,
    ts_event        bigint  NOT NULL,
    event_id        uuid    NOT NULL,
    PRIMARY KEY (venue, trade_id)
);
CREATE INDEX IF NOT EXISTS fills_order ON {schema}.fills (client_order_id);

-- Current position per instrument (average-cost method; realized PnL gross, fees apart).
CREATE TABLE IF NOT EXISTS {schema}.positions (
    instrument    text    PRIMARY KEY,
    quantity      numeric NOT NULL,
    avg_price     numeric NOT NULL,
    realized_pnl  numeric NOT NULL,
    fees          numeric NOT NULL,
    bought        numeric NOT NULL,
    sold          numeric NOT NULL,
    fills         integer NOT NULL,
    updated_ts    bigint  NOT NULL,
    last_event_id uuid    NOT NULL
);
