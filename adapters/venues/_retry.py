"""Retries of a venue call left unanswered (:class:`VenueUnavailable`): exponential backoff with jitter.

Both live adapters retry their reads with it; what they never retry (a ``placeorder``, a ccxt ``create_order``:
after a timeout the outcome is unknown) they do not pass through it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from adapters.venues.base import VenueUnavailable

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """At most ``retries`` more attempts; before attempt ``n`` (0 first) a wait drawn between half and all of
    ``min(cap_s, base_s * 2**n)``."""

    retries: int
    base_s: float = 0.2
    cap_s: float = 5.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap_s, self.base_s * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


async def retry_unavailable(
    call: Callable[[], Awaitable[T]],
    backoff: Backoff,
    *,
    unsent_only: bool = False,
    on_retry: Callable[[int, float, VenueUnavailable], None] | None = None,
) -> T:
    """``call()``, again after a backoff while it raises VenueUnavailable, ``backoff.retries`` times at most.

    ``unsent_only``: retry only a call the venue certainly did not act on (``maybe_sent`` False, e.g. HTTP 429).
    ``on_retry(attempt, delay, error)`` is told of each retry (attempt 1 is the first) before its wait.
    """
    attempt = 0
    while True:
        try:
            return await call()
        except VenueUnavailable as exc:
            if attempt >= backoff.retries or (unsent_only and exc.maybe_sent):
                raise
            delay = backoff.delay(attempt)
            attempt += 1
            if on_retry is not None:
                on_retry(attempt, delay, exc)
            await asyncio.sleep(delay)
