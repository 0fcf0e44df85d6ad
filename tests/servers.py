"""Find the Kafka and PostgreSQL the tests run against, in this order:

1. endpoints given in the environment (``ENGINE_KAFKA__BOOTSTRAP`` and ``ENGINE_POSTGRES__DSN``);
2. testcontainers, when a Docker engine answers;
3. the local stack (``ops.stack.up``: Kafka from Maven Central jars, Debian's PostgreSQL), started here.

Whatever is found is written back to the environment, so the CLI run by the tests reaches the same servers; so is
the password file of the engine's roles (``PGPASSFILE``: the local stack's ``<stack.state_dir>/pgpass``, or one
made here for the containers, whose roles all have the password ``engine``), read by the tests' own connections.
If nothing works the session fails: a missing Kafka or PostgreSQL is never a skip.

On the local stack, which outlives the session, the schemas and topics the session made (their names carry
:func:`tests.support.unique`'s eight hex digits) are dropped at its end: without that, every run of the suite
left some hundred schemas and their topics behind (2 GB of PostgreSQL and 4 GB of Kafka after a few dozen).
``ENGINE_TESTS_KEEP=1`` keeps them, to look into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from adapters.kafka_security import client_args

_MADE_BY_TESTS = re.compile(r"_[0-9a-f]{8}(?:_|$)")  # tests.support.unique: name_<8 hex digits>


@dataclass(frozen=True)
class Servers:
    kafka_bootstrap: str
    pg_dsn: str
    how: str


def _docker_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        return subprocess.run([docker, "info"], capture_output=True, timeout=5, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def _containers() -> Iterator[Servers]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with (
        KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
        PostgresContainer("postgres:16", username="engine", password="engine", dbname="engine") as pg,
    ):
        dsn = pg.get_connection_url(driver=None).replace("postgresql+psycopg2", "postgresql")
        asyncio.run(_container_roles(dsn))
        with tempfile.TemporaryDirectory() as tmp:
            passfile = Path(tmp) / "pgpass"
            passfile.write_text("*:*:*:*:engine\n")
            passfile.chmod(0o600)
            os.environ["PGPASSFILE"] = str(passfile)
            yield Servers(kafka.get_bootstrap_server(), dsn, "testcontainers")


async def _container_roles(dsn: str) -> None:
    """The container's roles, each with the password ``engine`` (the image's user is a superuser)."""
    conn = await asyncpg.connect(dsn)
    try:
        for role in ("engine_writer", "engine_reader", "engine_maintenance"):
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await conn.execute(f"CREATE ROLE {role} LOGIN")
            await conn.execute(f"ALTER ROLE {role} PASSWORD 'engine'")
    finally:
        await conn.close()


@contextlib.contextmanager
def find() -> Iterator[Servers]:
    kafka, dsn = os.environ.get("ENGINE_KAFKA__BOOTSTRAP"), os.environ.get("ENGINE_POSTGRES__DSN")
    if kafka and dsn:
        from engine.config import load

        _export_passfile()
        # the DSN as the engine's commands make it: with postgres.sslmode etc. (the secure stack's secure.toml)
        yield Servers(kafka, load().postgres.dsn, "environment")
        return
    if _docker_answers():
        with _containers() as found:
            _export(found)
            yield found
        return
    from engine.config import load
    from ops import stack

    settings = load()
    stack.up(settings)
    found = Servers(settings.kafka.bootstrap, settings.postgres.dsn, "local stack")
    _export(found)
    _export_passfile()
    before = asyncio.run(_names(found))
    try:
        yield found
    finally:
        if not os.environ.get("ENGINE_TESTS_KEEP"):  # set, to look into a failure: keep what the tests made
            try:
                asyncio.run(_drop_made_since(found, before))
            except Exception as exc:  # tidying up is no test: say so, and let the results stand
                print(f"\ncould not drop the tests' schemas and topics: {exc!r}")


async def _names(found: Servers) -> tuple[set[str], set[str]]:
    """The schemas and the topics there are."""
    conn = await asyncpg.connect(found.pg_dsn)
    try:
        schemas = {r[0] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
    finally:
        await conn.close()
    admin = AIOKafkaAdminClient(**client_args(found.kafka_bootstrap))
    await admin.start()
    try:
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    return schemas, topics


async def _drop_made_since(found: Servers, before: tuple[set[str], set[str]]) -> None:
    """Drop the tests' schemas and topics made since ``before`` (a schema still locked is left, not waited for)."""
    schemas, topics = await _names(found)
    conn = await asyncpg.connect(found.pg_dsn)
    try:
        await conn.execute("SET lock_timeout = '5s'")
        for schema in sorted(schemas - before[0]):
            if _MADE_BY_TESTS.search(schema):
                with contextlib.suppress(asyncpg.PostgresError):
                    await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()
    made = sorted(t for t in topics - before[1] if _MADE_BY_TESTS.search(t.split(".", 1)[0]))
    if made:
        admin = AIOKafkaAdminClient(**client_args(found.kafka_bootstrap))
        await admin.start()
        try:
            await admin.delete_topics(made)
        finally:
            await admin.close()


def _export(found: Servers) -> None:
    os.environ["ENGINE_KAFKA__BOOTSTRAP"] = found.kafka_bootstrap
    os.environ["ENGINE_POSTGRES__DSN"] = found.pg_dsn


def _export_passfile() -> None:
    """PGPASSFILE as the engine's commands set it, for the tests' own connections."""
    from engine.config import export_connections, load

    export_connections(load())


def maintenance_passfile() -> Path | None:
    """The local stack's password file of engine_maintenance, when there is one (else PGPASSFILE serves)."""
    from engine.config import load
    from ops._postgres import MAINTENANCE_PASSFILE

    path = load().stack.state_dir / MAINTENANCE_PASSFILE
    return path if path.is_file() else None


def describe(found: Any) -> str:
    return f"Kafka {found.kafka_bootstrap}, PostgreSQL {found.pg_dsn.rsplit('@', 1)[-1]} ({found.how})"
