-- The audit projection, version 7 (see schema_version at the end). Built only by the projection runner, from
-- the log; a new version is shipped by `python -m engine rebuild`, never by ALTER scripts.
-- {schema} is replaced by a validated, quoted schema name. See docs/audit-schema.md for every column.
-- Times are integer nanoseconds since the epoch (UTC) in ts_* columns, with timestamptz companions.

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

-- Every event, once. Append-only; partitioned by UTC day of event time (partitions created ahead).
CREATE TABLE IF NOT EXISTS {schema}.events (
    event_id       uuid        NOT NULL,
    type           text        NOT NULL,
    version        integer     NOT NULL,
    key            text        NOT NULL,
    ts_event       bigint      NOT NULL,
    ts_init        bigint      NOT NULL,
    event_time     timestamptz GENERATED ALWAYS AS (to_timestamp((ts_event / 1000)::double precision / 1000000)) STORED,
    correlation_id uuid        NOT NULL,
    causation_id   uuid,
    source         text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    payload        jsonb       NOT NULL,
    PRIMARY KEY (event_id, ts_event)
) PARTITION BY RANGE (ts_event);
-- One row per event id, whatever its time: the key of events holds ts_event too (its day partitions need it), so
-- this table is what makes an event id unique. A record whose id is stored already is a re-publication (skipped)
-- or, with other content, a conflicting duplicate (dead-lettered). Append-only.
CREATE TABLE IF NOT EXISTS {schema}.event_ids (
    event_id uuid   PRIMARY KEY,
    ts_event bigint NOT NULL
);
-- Events by time: a BRIN index (a few pages per day; events arrive in about time order). By instrument or by
-- type: B-trees over every event but the ticks. Ticks are most of the log and are summed up in candles_1m;
-- a tick is found by its time (this index, the day's partition), and by instrument among the ticks of that
-- time. Leaving the ticks out of the two B-trees takes about a third off PostgreSQL's cost of storing an event.
CREATE INDEX IF NOT EXISTS events_ts ON {schema}.events USING brin (ts_event);
CREATE INDEX IF NOT EXISTS events_key_ts ON {schema}.events (key, ts_event) WHERE type <> 'TickReceived';
CREATE INDEX IF NOT EXISTS events_type_ts ON {schema}.events (type, ts_event) WHERE type <> 'TickReceived';

-- Current state of every order (including those rejected by risk).
CREATE TABLE IF NOT EXISTS {schema}.orders (
    client_order_id text    PRIMARY KEY,
    instrument      text    NOT NULL,
    strategy        text    NOT NULL,
    side            text    NOT NULL,
    order_type      text    NOT NULL,
    quantity        numeric NOT NULL,
    limit_price     numeric,
    trigger_price   numeric,          -- a venue-native stop's (order_type stop / stop_limit), else null
    status          text    NOT NULL,
    venue_order_id  text,
    filled_quantity numeric NOT NULL,
    filled_notional numeric NOT NULL,
    avg_fill_price  numeric,
    fees            numeric NOT NULL,
    reject_rule     text,
    reject_reason   text,
    created_ts      bigint  NOT NULL,
    updated_ts      bigint  NOT NULL,
    last_event_id   uuid    NOT NULL,
    trade_ids       text[]  NOT NULL  -- the venue trade ids of the fills applied to it, sorted
);
CREATE INDEX IF NOT EXISTS orders_instrument ON {schema}.orders (instrument, created_ts);

-- Every order transition, with its reason. Append-only.
CREATE TABLE IF NOT EXISTS {schema}.order_events (
    event_id        uuid    PRIMARY KEY,
    client_order_id text    NOT NULL,
    instrument      text    NOT NULL,
    type            text    NOT NULL,
    status_before   text,
    status_after    text    NOT NULL,
    quantity        numeric,          -- the fill's quantity for OrderFilled, else the order's
    price           numeric,          -- the fill's price for OrderFilled, else the limit price
    reason          text,             -- rejection rule: reason, cancel reason
    ts_event        bigint  NOT NULL
);
CREATE INDEX IF NOT EXISTS order_events_order ON {schema}.order_events (client_order_id, ts_event);

-- Executions: one row per venue trade id, however often the fill was delivered, for every fill applied to its
-- order (one the order's state refuses, e.g. one that would overfill it, is in events only). Append-only.
CREATE TABLE IF NOT EXISTS {schema}.fills (
    venue           text    NOT NULL,
    trade_id        text    NOT NULL,
    client_order_id text    NOT NULL,
    venue_order_id  text    NOT NULL,
    instrument      text    NOT NULL,
    strategy        text    NOT NULL,   -- the strategy of its order
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
CREATE INDEX IF NOT EXISTS fills_instrument_ts ON {schema}.fills (instrument, ts_event);

-- Each change of a strategy's position (one per fill): before and after.
CREATE TABLE IF NOT EXISTS {schema}.position_changes (
    event_id         uuid    PRIMARY KEY,
    instrument       text    NOT NULL,
    strategy         text    NOT NULL,
    ts_event         bigint  NOT NULL,
    side             text    NOT NULL,
    quantity         numeric NOT NULL,
    price            numeric NOT NULL,
    fee              numeric NOT NULL,
    quantity_before  numeric NOT NULL,
    quantity_after   numeric NOT NULL,
    avg_price_after  numeric NOT NULL,
    realized_pnl     numeric NOT NULL,   -- realized by this fill (gross)
    realized_after   numeric NOT NULL,   -- cumulative realized PnL after this fill (gross)
    fees_after       numeric NOT NULL,
    log_offset       bigint  NOT NULL    -- the fill's offset in its trading partition: orders the changes of a
                                         -- strategy's position in an instrument (one partition) within one ts_event
);
CREATE INDEX IF NOT EXISTS position_changes_instrument_ts ON {schema}.position_changes (instrument, strategy, ts_event);

-- Current position per strategy and instrument (average-cost method; realized PnL gross, fees apart). The
-- instrument's position of the account is the sum over its strategies. strategy '' holds a position seeded from
-- a day snapshot of an engine that ran one strategy (its snapshots do not name it), until the first fill names it.
CREATE TABLE IF NOT EXISTS {schema}.positions (
    strategy      text    NOT NULL,
    instrument    text    NOT NULL,
    quantity      numeric NOT NULL,
    avg_price     numeric NOT NULL,
    realized_pnl  numeric NOT NULL,
    fees          numeric NOT NULL,
    bought        numeric NOT NULL,
    sold          numeric NOT NULL,
    fills         integer NOT NULL,
    updated_ts    bigint  NOT NULL,
    PRIMARY KEY (strategy, instrument)
);

-- The round trip under way per strategy and instrument (working state of the round_trips fold; strategy '' as in
-- positions).
CREATE TABLE IF NOT EXISTS {schema}.open_trips (
    strategy        text    NOT NULL,
    instrument      text    NOT NULL,
    direction       integer NOT NULL,
    opened_ts       bigint  NOT NULL,
    quantity        numeric NOT NULL,
    max_quantity    numeric NOT NULL,
    entry_quantity  numeric NOT NULL,
    entry_notional  numeric NOT NULL,
    exit_quantity   numeric NOT NULL,
    exit_notional   numeric NOT NULL,
    fees            numeric NOT NULL,
    fills           integer NOT NULL,
    PRIMARY KEY (strategy, instrument)
);

-- Closed round-trip trades of a strategy in an instrument: flat -> position -> flat (a flip closes one and opens
-- the next).
CREATE TABLE IF NOT EXISTS {schema}.round_trips (
    closing_event_id uuid    PRIMARY KEY,
    instrument       text    NOT NULL,
    strategy         text    NOT NULL,
    direction        text    NOT NULL,   -- long | short
    opened_ts        bigint  NOT NULL,
    closed_ts        bigint  NOT NULL,
    quantity         numeric NOT NULL,   -- largest absolute position of the trip
    entry_price      numeric NOT NULL,
    exit_price       numeric NOT NULL,
    realized_pnl     numeric NOT NULL,   -- gross
    fees             numeric NOT NULL,
    net_pnl          numeric NOT NULL,
    duration_seconds numeric NOT NULL,
    fills            integer NOT NULL
);
CREATE INDEX IF NOT EXISTS round_trips_closed ON {schema}.round_trips (instrument, strategy, closed_ts);

-- Account balance changes: one row per currency a fill moved (base, quote, fee). Balances are the sums.
CREATE TABLE IF NOT EXISTS {schema}.balance_changes (
    event_id   uuid    NOT NULL,
    currency   text    NOT NULL,
    delta      numeric NOT NULL,
    ts_event   bigint  NOT NULL,
    instrument text    NOT NULL,
    strategy   text    NOT NULL,   -- the strategy of the fill's order
    PRIMARY KEY (event_id, currency)
);
CREATE INDEX IF NOT EXISTS balance_changes_currency_ts ON {schema}.balance_changes (currency, ts_event);

-- At each UTC day's start: what each instrument's fills (of each strategy) had moved per currency, in total (from
-- the engine's day snapshot; strategy '' from an engine that ran one). The balance of a currency at the start of a
-- day is the sum over instruments and strategies; a replay of one day starts from these rows.
CREATE TABLE IF NOT EXISTS {schema}.balance_snapshots (
    event_id   uuid    PRIMARY KEY,
    day        date    NOT NULL,
    instrument text    NOT NULL,
    strategy   text    NOT NULL,
    currency   text    NOT NULL,
    amount     numeric NOT NULL,
    ts_event   bigint  NOT NULL
);

-- Stops the engine holds for strategies (StopPlaced; engine.core.stops), and what became of each: held, triggered
-- (at triggered_price, sending order_id: see orders) or cancelled (end_reason). A stop placed before the first day a
-- schema folds (replay --date) is not here.
CREATE TABLE IF NOT EXISTS {schema}.stops (
    client_order_id text    PRIMARY KEY,
    instrument      text    NOT NULL,
    strategy        text    NOT NULL,
    side            text    NOT NULL,
    quantity        numeric NOT NULL,
    trigger_price   numeric NOT NULL,
    limit_price     numeric,            -- a stop-limit's
    take_profit_id  text    NOT NULL,   -- in a bracket: the take-profit order it is paired with, else ''
    reason          text    NOT NULL,
    status          text    NOT NULL,   -- held | triggered | cancelled
    triggered_price numeric,
    sent_quantity   numeric,            -- what the order it sent was for (a paired take-profit's fills came off)
    order_id        text,
    end_reason      text,
    placed_ts       bigint  NOT NULL,
    updated_ts      bigint  NOT NULL
);
CREATE INDEX IF NOT EXISTS stops_instrument ON {schema}.stops (instrument, strategy, placed_ts);

-- Strategy signals.
CREATE TABLE IF NOT EXISTS {schema}.signals (
    event_id        uuid    PRIMARY KEY,
    instrument      text    NOT NULL,
    strategy        text    NOT NULL,
    direction       text    NOT NULL,
    target_position numeric NOT NULL,
    price           numeric NOT NULL,
    reason          text    NOT NULL,
    ts_event        bigint  NOT NULL
);

-- Pre-trade risk decisions: every order that passed (OrderSubmitted) or was refused (OrderRejected by risk).
CREATE TABLE IF NOT EXISTS {schema}.risk_decisions (
    event_id        uuid    PRIMARY KEY,
    client_order_id text    NOT NULL,
    instrument      text    NOT NULL,
    decision        text    NOT NULL,   -- accepted | rejected
    rule            text,
    reason          text,
    side            text    NOT NULL,
    quantity        numeric NOT NULL,
    limit_price     numeric,
    ts_event        bigint  NOT NULL
);
CREATE INDEX IF NOT EXISTS risk_decisions_rule ON {schema}.risk_decisions (decision, rule);

-- System events: engine start and stop, snapshot mismatches found by the projection.
CREATE TABLE IF NOT EXISTS {schema}.system_events (
    event_id  uuid   PRIMARY KEY,
    type      text   NOT NULL,
    source    text   NOT NULL,
    detail    jsonb  NOT NULL,
    ts_event  bigint NOT NULL
);

-- 1-minute OHLCV candles of the trade ticks.
CREATE TABLE IF NOT EXISTS {schema}.candles_1m (
    instrument text        NOT NULL,
    bucket     timestamptz NOT NULL,
    open       numeric     NOT NULL,
    high       numeric     NOT NULL,
    low        numeric     NOT NULL,
    close      numeric     NOT NULL,
    volume     numeric     NOT NULL,
    trades     integer     NOT NULL,
    PRIMARY KEY (instrument, bucket)
);

-- Balances now, and over time (running sums of the changes).
CREATE OR REPLACE VIEW {schema}.balances AS
    SELECT currency, sum(delta) AS balance, max(ts_event) AS updated_ts
    FROM {schema}.balance_changes GROUP BY currency;

-- Daily performance per strategy and instrument (UTC days), from closed round trips and position changes.
-- pnl: net realized PnL of the day (gross realized - fees, quote currency); trades: round trips closed;
-- win_rate: share of those with net_pnl > 0; max_drawdown: largest fall of the day's cumulative net
-- realized PnL from its running peak (>= 0); sharpe_ratio: mean / sample stddev of the closed trips'
-- net PnL x sqrt(trades) (null below 2 trades or with zero spread).
CREATE OR REPLACE VIEW {schema}.daily_performance AS
WITH drawdown AS (
    SELECT c.strategy, c.instrument, c.day, sum(c.net) AS pnl, max(c.peak - c.cum) AS max_drawdown
    FROM (SELECT strategy, instrument, day, net, cum,
                 greatest(0::numeric, max(cum) OVER (PARTITION BY strategy, instrument, day ORDER BY ord
                                                     ROWS UNBOUNDED PRECEDING)) AS peak
          FROM (SELECT curve.*,
                       row_number() OVER (PARTITION BY strategy, instrument, day ORDER BY ts_event, event_id) AS ord
                FROM (SELECT strategy, instrument, (to_timestamp(ts_event / 1e9) AT TIME ZONE 'UTC')::date AS day,
                             ts_event, event_id, realized_pnl - fee AS net,
                             sum(realized_pnl - fee) OVER (
                                 PARTITION BY strategy, instrument,
                                              (to_timestamp(ts_event / 1e9) AT TIME ZONE 'UTC')::date
                                 ORDER BY ts_event, event_id) AS cum
                      FROM {schema}.position_changes) curve) ordered) c
    GROUP BY c.strategy, c.instrument, c.day
), trips AS (
    SELECT strategy, instrument, (to_timestamp(closed_ts / 1e9) AT TIME ZONE 'UTC')::date AS day,
           count(*) AS trades,
           avg((net_pnl > 0)::int)::numeric AS win_rate,
           CASE WHEN count(*) > 1 AND stddev_samp(net_pnl) > 0
                THEN avg(net_pnl) / stddev_samp(net_pnl) * sqrt(count(*)) END AS sharpe_ratio
    FROM {schema}.round_trips GROUP BY 1, 2, 3
)
SELECT coalesce(d.strategy, t.strategy) AS strategy, coalesce(d.instrument, t.instrument) AS instrument,
       coalesce(d.day, t.day) AS day,
       coalesce(d.pnl, 0) AS pnl, coalesce(t.trades, 0) AS trades, t.win_rate,
       coalesce(d.max_drawdown, 0) AS max_drawdown, t.sharpe_ratio
FROM drawdown d FULL JOIN trips t ON t.strategy = d.strategy AND t.instrument = d.instrument AND t.day = d.day;

-- The backtest report's figures (python -m engine backtest reads them; nothing else computes them), for a backtest's
-- schema as for the live one. Amounts are in the instruments' quote currency (fees as paid: quote on the paper venue).
--
-- equity_1m: each strategy's mark-to-market PnL in each instrument at the end of every minute of its quote
-- currency's span (the first to the last 1-minute candle of that currency's instruments): position, average price,
-- realized PnL and fees after its last position change before the minute's end, valued at the instrument's last
-- trade up to then (the close of its last candle). equity = realized_pnl - fees + unrealized_pnl.
CREATE OR REPLACE VIEW {schema}.equity_1m AS
WITH span AS (
    SELECT split_part(instrument, '/', 2) AS currency, min(bucket) AS first, max(bucket) AS last
    FROM {schema}.candles_1m GROUP BY 1
), pairs AS (
    SELECT strategy, instrument FROM {schema}.position_changes
    UNION SELECT strategy, instrument FROM {schema}.orders
)
SELECT p.strategy, p.instrument, s.currency, m.bucket, c.close,
       coalesce(pc.quantity_after, 0) AS position,
       coalesce(pc.realized_after, 0) AS realized_pnl,
       coalesce(pc.fees_after, 0) AS fees,
       coalesce((c.close - pc.avg_price_after) * pc.quantity_after, 0) AS unrealized_pnl,
       coalesce(pc.realized_after, 0) - coalesce(pc.fees_after, 0)
           + coalesce((c.close - pc.avg_price_after) * pc.quantity_after, 0) AS equity
FROM pairs p
JOIN span s ON s.currency = split_part(p.instrument, '/', 2)
CROSS JOIN LATERAL generate_series(s.first, s.last, interval '1 minute') AS m(bucket)
LEFT JOIN LATERAL (SELECT k.close FROM {schema}.candles_1m k
                   WHERE k.instrument = p.instrument AND k.bucket <= m.bucket
                   ORDER BY k.bucket DESC LIMIT 1) c ON true
LEFT JOIN LATERAL (SELECT x.quantity_after, x.avg_price_after, x.realized_after, x.fees_after
                   FROM {schema}.position_changes x
                   WHERE x.instrument = p.instrument AND x.strategy = p.strategy
                     AND x.ts_event < (extract(epoch FROM m.bucket)::bigint + 60) * 1000000000
                   ORDER BY x.ts_event DESC, x.log_offset DESC LIMIT 1) pc ON true;

-- performance: the report's figures per strategy and instrument, per instrument (strategy '*'), per strategy
-- (instrument '*') and in total ('*', '*'), each per quote currency, over the whole span of equity_1m.
--   net_pnl = gross_pnl - fees = the last minute's equity (an open position valued at the last trade);
--   round_trips, wins, win_rate, profit_factor (won / lost, net), avg_win, avg_loss (net, of the round_trips);
--   sharpe, sortino: of the minute-by-minute changes of equity, annualised by sqrt(525600) (minutes in a 365-day
--   year: these markets trade around the clock); sortino's downside is the root mean square of the negative changes;
--   max_drawdown: the largest fall of equity from its running peak (which starts at 0); max_drawdown_seconds: from
--   that peak to the minute equity got back to it, or to the end if it did not (drawdown_recovered false);
--   exposure: the share of minutes that ended with a position; turnover: the notional of the fills (sum of
--   quantity x price); rejected: orders refused (rejections_by_rule has them by rule).
CREATE OR REPLACE VIEW {schema}.performance AS
WITH levels AS (
    SELECT currency, coalesce(strategy, '*') AS strategy, coalesce(instrument, '*') AS instrument, bucket,
           sum(equity) AS equity, sum(realized_pnl) AS realized_pnl, sum(fees) AS fees,
           sum(unrealized_pnl) AS unrealized_pnl, bool_or(position <> 0) AS exposed
    FROM {schema}.equity_1m
    GROUP BY currency, bucket, GROUPING SETS ((strategy, instrument), (instrument), (strategy), ())
), curve AS (
    SELECT l.*,
           l.equity - coalesce(lag(l.equity) OVER w, 0) AS change,
           greatest(0::numeric, max(l.equity) OVER w) AS peak
    FROM levels l WINDOW w AS (PARTITION BY l.currency, l.strategy, l.instrument ORDER BY l.bucket)
), stats AS (
    SELECT currency, strategy, instrument, min(bucket) AS first_minute, max(bucket) AS last_minute,
           count(*) AS minutes, count(*) FILTER (WHERE exposed) AS exposed_minutes,
           avg(change) AS mean_change, stddev_samp(change) AS sd_change,
           sqrt(avg(least(change, 0) * least(change, 0))) AS downside, max(peak - equity) AS max_drawdown
    FROM curve GROUP BY 1, 2, 3
), final AS (
    SELECT DISTINCT ON (currency, strategy, instrument) currency, strategy, instrument, equity, realized_pnl, fees,
           unrealized_pnl
    FROM curve ORDER BY currency, strategy, instrument, bucket DESC
), trough AS (
    SELECT DISTINCT ON (c.currency, c.strategy, c.instrument) c.currency, c.strategy, c.instrument,
           c.bucket AS at, c.peak
    FROM curve c JOIN stats s USING (currency, strategy, instrument)
    WHERE s.max_drawdown > 0 AND c.peak - c.equity = s.max_drawdown
    ORDER BY c.currency, c.strategy, c.instrument, c.bucket
), drawdown AS (
    SELECT t.currency, t.strategy, t.instrument,
           coalesce((SELECT max(c.bucket) FROM curve c
                     WHERE (c.currency, c.strategy, c.instrument) = (t.currency, t.strategy, t.instrument)
                       AND c.bucket < t.at AND c.equity = t.peak),
                    s.first_minute - interval '1 minute') AS peak_at,
           (SELECT min(c.bucket) FROM curve c
            WHERE (c.currency, c.strategy, c.instrument) = (t.currency, t.strategy, t.instrument)
              AND c.bucket > t.at AND c.equity >= t.peak) AS recovered_at,
           s.last_minute
    FROM trough t JOIN stats s USING (currency, strategy, instrument)
), trips AS (
    SELECT split_part(instrument, '/', 2) AS currency, coalesce(strategy, '*') AS strategy,
           coalesce(instrument, '*') AS instrument, count(*) AS round_trips,
           count(*) FILTER (WHERE net_pnl > 0) AS wins,
           sum(net_pnl) FILTER (WHERE net_pnl > 0) AS won, -sum(net_pnl) FILTER (WHERE net_pnl < 0) AS lost,
           avg(net_pnl) FILTER (WHERE net_pnl > 0) AS avg_win, avg(net_pnl) FILTER (WHERE net_pnl < 0) AS avg_loss
    FROM {schema}.round_trips
    GROUP BY split_part(instrument, '/', 2), GROUPING SETS ((strategy, instrument), (instrument), (strategy), ())
), fills AS (
    SELECT split_part(instrument, '/', 2) AS currency, coalesce(strategy, '*') AS strategy,
           coalesce(instrument, '*') AS instrument, count(*) AS fills, sum(quantity * price) AS turnover
    FROM {schema}.fills
    GROUP BY split_part(instrument, '/', 2), GROUPING SETS ((strategy, instrument), (instrument), (strategy), ())
), rejected AS (
    SELECT split_part(instrument, '/', 2) AS currency, coalesce(strategy, '*') AS strategy,
           coalesce(instrument, '*') AS instrument, count(*) AS rejected
    FROM {schema}.orders WHERE status = 'rejected'
    GROUP BY split_part(instrument, '/', 2), GROUPING SETS ((strategy, instrument), (instrument), (strategy), ())
)
SELECT s.currency, s.strategy, s.instrument, s.first_minute, s.last_minute,
       f.equity AS net_pnl, f.realized_pnl + f.unrealized_pnl AS gross_pnl, f.fees, f.realized_pnl,
       f.unrealized_pnl,
       coalesce(t.round_trips, 0) AS round_trips, coalesce(t.wins, 0) AS wins,
       round(t.wins::numeric / nullif(t.round_trips, 0), 4) AS win_rate,
       round(coalesce(t.won, 0) / nullif(t.lost, 0), 4) AS profit_factor,
       t.avg_win, t.avg_loss,
       round(s.mean_change / nullif(s.sd_change, 0) * sqrt(525600::numeric), 4) AS sharpe,
       round(s.mean_change / nullif(s.downside, 0) * sqrt(525600::numeric), 4) AS sortino,
       coalesce(s.max_drawdown, 0) AS max_drawdown,
       coalesce(extract(epoch FROM coalesce(d.recovered_at, d.last_minute) - d.peak_at)::bigint, 0)
           AS max_drawdown_seconds,
       d.recovered_at IS NOT NULL OR d.peak_at IS NULL AS drawdown_recovered,
       round(s.exposed_minutes::numeric / s.minutes, 4) AS exposure, s.exposed_minutes * 60 AS exposure_seconds,
       coalesce(x.turnover, 0) AS turnover, coalesce(x.fills, 0) AS fills, coalesce(r.rejected, 0) AS rejected
FROM stats s
JOIN final f USING (currency, strategy, instrument)
LEFT JOIN drawdown d USING (currency, strategy, instrument)
LEFT JOIN trips t USING (currency, strategy, instrument)
LEFT JOIN fills x USING (currency, strategy, instrument)
LEFT JOIN rejected r USING (currency, strategy, instrument);

-- Orders refused, by rule (risk rules, the venue's), per strategy and instrument.
CREATE OR REPLACE VIEW {schema}.rejections_by_rule AS
SELECT strategy, instrument, coalesce(reject_rule, '') AS rule, count(*) AS orders
FROM {schema}.orders WHERE status = 'rejected' GROUP BY 1, 2, 3;

-- Append-only tables refuse UPDATE, DELETE and TRUNCATE for every role but engine_maintenance (see roles.sql), the
-- owner included: no command of the engine uses that role, a person correcting history by hand does.
CREATE OR REPLACE FUNCTION {schema}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_user <> 'engine_maintenance' THEN
        RAISE EXCEPTION '%.% is append-only: % refused for role %', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, current_user
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['events', 'event_ids', 'order_events', 'fills'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS append_only ON %s.%I', '{schema}', t);
        EXECUTE format('CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON %s.%I '
                       'FOR EACH ROW EXECUTE FUNCTION %s.refuse_change()', '{schema}', t, '{schema}');
        EXECUTE format('DROP TRIGGER IF EXISTS append_only_truncate ON %s.%I', '{schema}', t);
        EXECUTE format('CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON %s.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION %s.refuse_change()', '{schema}', t, '{schema}');
    END LOOP;
END $$;

-- The version of this file a schema was built with. A projection worker refuses a schema of another version (the
-- tables, keys or indexes differ): build the new version from the log with `python -m engine rebuild`.
-- v3: events' key/type B-trees leave out the ticks; a BRIN index on ts_event.
-- v4: orders.trade_ids; fills holds the fills applied to their order only.
-- v5: event_ids: one row per event id, whatever its time.
-- v6: positions, open_trips (keyed by strategy and instrument), position_changes, round_trips, fills,
--     balance_changes, balance_snapshots and daily_performance carry the strategy; stops.
CREATE TABLE IF NOT EXISTS {schema}.schema_version (
    projection text    PRIMARY KEY,
    version    integer NOT NULL
);
INSERT INTO {schema}.schema_version VALUES ('audit', 7) ON CONFLICT DO NOTHING;
