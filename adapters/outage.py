"""Outages of the servers we depend on: telling them from bad data, and waiting them out.

A long-lived component (projection runner, trading loop, feed) meets two kinds of failure:

- an **outage**: Kafka or PostgreSQL unreachable, restarting, refusing connections, a request timed out, a
  transaction rolled back by the server (serialisation, deadlock). Nothing is wrong with the data: the same work
  succeeds once the server is back, so it is retried with :class:`Backoff`, never fatal;
- anything else while handling one record is about that record (or a bug it reveals): it is dead-lettered with
  the reason, or stops the component when its settings say so.

:func:`is_outage` tells them apart, in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import asyncpg
import structlog
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, RequestTimedOutError

log = structlog.get_logger(__name__)

_PG_OUTAGE = (
    asyncpg.PostgresConnectionError,  # 08: the connection is gone or refused
    asyncpg.exceptions.OperatorInterventionError,  # 57: admin/crash shutdown, cannot connect now, cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # 40: serialisation failure, deadlock: retry the transaction
    asyncpg.InterfaceError,  # the client's view of a dead connection (closed mid-query, wrong state)
    asyncpg.exceptions.InternalClientError,  # e.g. "cannot switch to state 15" after a server restart
)


def is_outage(exc: BaseException) -> bool:
    """True if ``exc`` says a server is unreachable or busy (retry later), not that the data is bad."""
    if isinstance(exc, asyncio.CancelledError):
        return False
    if isinstance(exc, (OSError, TimeoutError, *_PG_OUTAGE)):  # ConnectionError is an OSError
        return True
    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError | RequestTimedOutError):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


class Backoff:
    """Exponential backoff with jitter: 0.1 s, 0.2 s, ... up to ``cap``; ``reset()`` after a success.

    It also keeps the outage's story for the logs: one line when it starts (``<event>.outage``), one every
    ``remind`` seconds while it lasts, and one when it ends (``<event>.recovered``, with its length), instead of a
    line per retry."""

    def __init__(self, event: str, *, first: float = 0.1, cap: float = 5.0, remind: float = 30.0) -> None:
        self._event = event
        self._first = first
        self._cap = cap
        self._remind = remind
        self._delay = first
        self.since: float | None = None  # monotonic start of the outage under way
        self.error: str | None = None
        self._reminded = 0.0
        self.retries = 0

    @property
    def in_outage(self) -> bool:
        return self.since is not None

    async def wait(self, exc: BaseException, stop: asyncio.Event | None = None, **context: object) -> None:
        """Note a failed attempt and sleep before the next one (returns early once ``stop`` is set)."""
        now = time.monotonic()
        self.error = f"{type(exc).__name__}: {exc}"[:500]
        self.retries += 1
        if self.since is None:
            self.since = self._reminded = now
            log.warning(f"{self._event}.outage", error=self.error, **context)
        elif now - self._reminded >= self._remind:
            self._reminded = now
            log.warning(
                f"{self._event}.still_waiting",
                error=self.error,
                seconds=round(now - self.since, 1),
                retries=self.retries,
                **context,
            )
        delay = self._delay * (0.5 + random.random())
        self._delay = min(self._delay * 2, self._cap)
        if stop is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)

    def reset(self, **context: object) -> None:
        """The call succeeded: end the outage under way (logged), start the next one from the first delay."""
        if self.since is not None:
            log.info(
                f"{self._event}.recovered",
                seconds=round(time.monotonic() - self.since, 1),
                retries=self.retries,
                **context,
            )
        self.since = None
        self.error = None
        self.retries = 0
        self._delay = self._first
