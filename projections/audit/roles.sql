-- Who may do what in the audit schema. Run by the schema's owner after schema.sql.
--   engine_writer: the projection workers. Owns nothing; may insert everywhere and update only the
--                  current-state tables. Append-only tables also refuse changes by trigger.
--   engine_reader: people and dashboards (python -m engine sql). Read only.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'engine_writer') THEN
        CREATE ROLE engine_writer LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'engine_reader') THEN
        CREATE ROLE engine_reader LOGIN;
    END IF;
END $$;

GRANT USAGE ON SCHEMA {schema} TO engine_writer, engine_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO engine_writer, engine_reader;
GRANT INSERT ON ALL TABLES IN SCHEMA {schema} TO engine_writer;
GRANT UPDATE ON {schema}.orders, {schema}.positions, {schema}.open_trips, {schema}.candles_1m, {schema}.stops,
                {schema}.projection_offsets TO engine_writer;
REVOKE UPDATE, DELETE, TRUNCATE ON {schema}.events, {schema}.order_events, {schema}.fills FROM engine_writer, engine_reader;
