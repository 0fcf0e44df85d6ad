-- Who may do what in the audit schema. Run by the schema's owner after schema.sql.
--   engine_writer:      the projection workers. Owns nothing; may insert everywhere and update only the
--                       current-state tables. Append-only tables also refuse changes by trigger.
--   engine_reader:      people and dashboards (python -m engine sql). Read only.
--   engine_maintenance: a person correcting history by hand, the one role the append-only trigger lets through
--                       (refuse_change in schema.sql). No command of the engine uses it. Made here without a
--                       password (so it cannot log in) when missing: the local stack makes it with one.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'engine_writer') THEN
        CREATE ROLE engine_writer LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'engine_reader') THEN
        CREATE ROLE engine_reader LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'engine_maintenance') THEN
        CREATE ROLE engine_maintenance LOGIN;
    END IF;
END $$;

GRANT USAGE ON SCHEMA {schema} TO engine_writer, engine_reader, engine_maintenance;
GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO engine_writer, engine_reader;
GRANT INSERT ON ALL TABLES IN SCHEMA {schema} TO engine_writer;
GRANT UPDATE ON {schema}.orders, {schema}.positions, {schema}.open_trips, {schema}.candles_1m, {schema}.stops,
                {schema}.projection_offsets TO engine_writer;
REVOKE UPDATE, DELETE, TRUNCATE ON {schema}.events, {schema}.order_events, {schema}.fills FROM engine_writer, engine_reader;
-- every table, and the day partitions of events made later by the owner (a TRUNCATE checks each partition)
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA {schema} TO engine_maintenance;
ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO engine_maintenance;
