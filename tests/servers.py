"""Find the Kafka and PostgreSQL the tests run against, in this order:

1. endpoints given in the environment (``ENGINE_KAFKA__BOOTSTRAP`` and ``ENGINE_POSTGRES__DSN``);
2. testcontainers, when a Docker engine answers;
3. the local stack (``ops.stack.up``: Kafka from Maven Central jars, Debian's PostgreSQL), started here.

Whatever is found is written back to the environment, so the CLI run by the tests reaches the same servers.
If nothing works the session fails: a missing Kafka or PostgreSQL is never a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


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

    with KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka, PostgresContainer(
        "postgres:16", username="engine", password="engine", dbname="engine"
    ) as pg:
        dsn = pg.get_connection_url(driver=None).replace("postgresql+psycopg2", "postgresql")
        yield Servers(kafka.get_bootstrap_server(), dsn, "testcontainers")


@contextlib.contextmanager
def find() -> Iterator[Servers]:
    kafka, dsn = os.environ.get("ENGINE_KAFKA__BOOTSTRAP"), os.environ.get("ENGINE_POSTGRES__DSN")
    if kafka and dsn:
        yield Servers(kafka, dsn, "environment")
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
    yield found


def _export(found: Servers) -> None:
    os.environ["ENGINE_KAFKA__BOOTSTRAP"] = found.kafka_bootstrap
    os.environ["ENGINE_POSTGRES__DSN"] = found.pg_dsn


def describe(found: Any) -> str:
    return f"Kafka {found.kafka_bootstrap}, PostgreSQL {found.pg_dsn.rsplit('@', 1)[-1]} ({found.how})"
