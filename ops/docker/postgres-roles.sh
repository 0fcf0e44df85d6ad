#!/bin/sh
# compose.yaml's PostgreSQL, at its first start (the image runs /docker-entrypoint-initdb.d/ once, on an empty data
# directory): the engine's writer and reader roles with their passwords, from the environment compose gives this
# container (PG_WRITER_PASSWORD, PG_READER_PASSWORD; the owner's is POSTGRES_PASSWORD, from PG_PASSWORD). The engine's
# roles.sql grants them their rights in each schema it creates; it would make them without a password (no login).
set -eu
: "${PG_WRITER_PASSWORD:?}" "${PG_READER_PASSWORD:?}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set writer="$PG_WRITER_PASSWORD" --set reader="$PG_READER_PASSWORD" <<'SQL'
CREATE ROLE engine_writer LOGIN PASSWORD :'writer';
CREATE ROLE engine_reader LOGIN PASSWORD :'reader';
SQL
