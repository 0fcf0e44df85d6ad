"""Before a command that needs a server: does it answer? One probe each, with a deadline.

``replay``, ``rebuild``, ``diff``, ``halt`` and ``resume`` probe the servers they need first, so that one that is down,
or that takes connections and never answers, fails the command within :data:`PROBE_TIMEOUT` seconds with a line that
names the server and its setting, not after the clients' own timeouts (aiokafka waits 40 s for a request, asyncpg 60 s
for a connection) and not with their traceback. ``run`` and ``project`` do not: they wait out outages by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from adapters.kafka_security import client_args, current
from adapters.outage import is_outage
from adapters.postgres import ident
from engine.errors import BadInput, Unreachable, describe

PROBE_TIMEOUT = 10.0
"""Seconds a server has to answer a probe (a metadata request, a connection): it takes milliseconds when it is up."""


def _unreachable(server: str, setting: str, exc: BaseException) -> Unreachable:
    why = f"no answer in {PROBE_TIMEOUT:g} s" if isinstance(exc, TimeoutError) else describe(exc)
    env = "ENGINE_" + setting.upper().replace(".", "__")
    return Unreachable(
        f"{server} does not answer ({why}); is it running? (python -m engine stack status; the "
        f"setting: {setting}, {env})"
    )


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """The client's own lines about a failed connection are not logged: the probe's error says it once."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        log.setLevel(level)


async def kafka_refusal(bootstrap: str) -> str | None:
    """Why the cluster at ``bootstrap`` refuses this process's client (its login, its TLS), if it does: one direct
    connection to the first broker, whose error aiokafka's bootstrap does not keep. None: it takes the client, or
    does not answer (an outage: :func:`kafka_answers` says so)."""
    import ssl

    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

    sec = current(bootstrap)
    args = client_args(bootstrap)
    args.pop("bootstrap_servers")
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    where = f"Kafka at {bootstrap}"
    try:
        with _quiet("aiokafka"):
            async with asyncio.timeout(PROBE_TIMEOUT):
                conn = await create_conn(
                    host.strip("[]") or "127.0.0.1",
                    int(port),
                    client_id="engine-cli-probe",
                    request_timeout_ms=int(PROBE_TIMEOUT * 1000),
                    **args,
                )
        conn.close()
    except SaslAuthenticationFailed:
        return (
            f"{where} refused the login of user {sec.username!r} ({sec.mechanism}): a wrong user or password? "
            "(the settings: kafka.username, ENGINE_KAFKA__PASSWORD or kafka.secrets_file)"
        )
    except UnsupportedSaslMechanismError:
        return f"{where} does not take SASL mechanism {sec.mechanism} (the setting: kafka.sasl_mechanism)"
    except ssl.SSLCertVerificationError as exc:
        return (
            f"{where}: its certificate is not trusted ({exc.verify_message}): kafka.ssl_cafile must name the CA "
            "that signed it"
        )
    except ssl.SSLError as exc:
        return f"{where}: no TLS handshake ({exc.reason}): is kafka.security_protocol ({sec.protocol}) its listener's?"
    except KafkaConnectionError as exc:
        if "closed" in str(exc) and not sec.tls:
            return (
                f"{where} closed the connection of a {sec.protocol} client: does its listener want TLS or SASL? "
                "(the setting: kafka.security_protocol, ENGINE_KAFKA__SECURITY_PROTOCOL)"
            )
        return None
    except (OSError, TimeoutError, ValueError):
        return None  # not answering: an outage, said by kafka_answers
    return None


async def kafka_login(bootstrap: str) -> None:
    """:class:`BadInput` if the cluster refuses this process's client (:func:`kafka_refusal`): ``run`` and
    ``project`` wait out an outage, but a refused password or certificate is no outage to wait for."""
    why = await kafka_refusal(bootstrap)
    if why is not None:
        raise BadInput(why)


async def kafka_answers(bootstrap: str) -> None:
    """A metadata round trip to the cluster at ``bootstrap``; :class:`Unreachable` if none comes in time,
    :class:`BadInput` if it refuses the client's login or TLS (:func:`kafka_refusal`)."""
    admin = AIOKafkaAdminClient(
        **client_args(bootstrap), client_id="engine-cli-probe", request_timeout_ms=int(PROBE_TIMEOUT * 1000)
    )
    try:
        with _quiet("aiokafka"):
            async with asyncio.timeout(PROBE_TIMEOUT):
                await admin.start()
    except Exception as exc:
        # a broker that took the connection and never answered has had its deadline: no second probe
        why = None if isinstance(exc, TimeoutError) else await kafka_refusal(bootstrap)
        if why is not None:
            raise BadInput(why) from exc
        raise _unreachable(f"Kafka at {bootstrap}", "kafka.bootstrap", exc) from exc
    finally:
        with _quiet("aiokafka"):
            await admin.close()


def _where(dsn: str) -> str:
    """host:port of a DSN, without its user or password."""
    parts = urlsplit(dsn)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"


def _password_source(dsn: str) -> str:
    """Where libpq (and asyncpg) took the password from, for an error message: never the password itself."""
    if urlsplit(dsn).password:
        return "the DSN (postgres.dsn)"
    if os.environ.get("PGPASSWORD"):
        return "PGPASSWORD"
    path = Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass")
    named = "PGPASSFILE " if os.environ.get("PGPASSFILE") else ""
    if not path.is_file():
        return f"{named}{path}, which does not exist (stack up writes .state/pgpass; or set postgres.passfile)"
    return f"{named}{path} (postgres.passfile)"


async def postgres_connection(dsn: str) -> asyncpg.Connection:
    """A connection to ``dsn``; :class:`Unreachable` if the server does not answer in time, :class:`BadInput` if it
    refuses the connection (no such role or database, a wrong password)."""
    where = _where(dsn)
    try:
        conn: asyncpg.Connection = await asyncpg.connect(dsn, timeout=PROBE_TIMEOUT)
    except asyncpg.PostgresError as exc:
        if is_outage(exc):  # starting up, shutting down, too many connections
            raise Unreachable(f"PostgreSQL at {where} does not take connections now ({exc})") from exc
        said = f"PostgreSQL at {where} refused the connection: {exc} (the setting: postgres.dsn, ENGINE_POSTGRES__DSN)"
        if isinstance(exc, asyncpg.InvalidPasswordError) or "password" in str(exc):
            said += f"; the password was looked for in {_password_source(dsn)}"
        raise BadInput(said) from exc
    except (OSError, asyncpg.InterfaceError) as exc:  # refused, no route, no such host, timed out
        raise _unreachable(f"PostgreSQL at {where}", "postgres.dsn", exc) from exc
    return conn


async def postgres_answers(dsn: str) -> None:
    """Connect to ``dsn`` and close again; raises as :func:`postgres_connection` does."""
    conn = await postgres_connection(dsn)
    await conn.close()


async def servers_answer(*, kafka: str | None = None, postgres: str | None = None) -> None:
    """Probe the servers given, at the same time; raise the first one's error (Kafka's, if both fail)."""
    probes = []
    if kafka is not None:
        probes.append(kafka_answers(kafka))
    if postgres is not None:
        probes.append(postgres_answers(postgres))
    results = await asyncio.gather(*probes, return_exceptions=True)
    for res in results:
        if isinstance(res, BaseException):
            raise res


async def replaceable_audit_schema(dsn: str, schema: str) -> None:
    """``rebuild`` replaces the audit schema ``schema`` (when it exists, it locks its ``projection_offsets`` at the
    switch): refuse one that exists and is not an audit schema before the whole log is folded for nothing."""
    conn = await postgres_connection(dsn)
    try:
        exists = await conn.fetchval("SELECT count(*) > 0 FROM pg_namespace WHERE nspname = $1", schema)
        offsets = await conn.fetchval("SELECT to_regclass($1)", f"{ident(schema)}.projection_offsets")
    finally:
        await conn.close()
    if exists and offsets is None:
        raise BadInput(
            f"schema {schema!r} exists and holds no audit projection: rebuild replaces the audit schema "
            "(the setting: postgres.schema, ENGINE_POSTGRES__SCHEMA)"
        )


__all__ = [
    "PROBE_TIMEOUT",
    "kafka_answers",
    "kafka_login",
    "kafka_refusal",
    "postgres_answers",
    "replaceable_audit_schema",
    "servers_answer",
]
