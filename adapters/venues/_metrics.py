"""The ``engine_exchange_*`` metrics of a live venue's API calls, counted the same way by every adapter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from adapters.telemetry import EXCHANGE_ERRORS, EXCHANGE_REQUESTS, EXCHANGE_SECONDS
from adapters.venues.base import VenueError, error_kind


@contextmanager
def request(venue: str, endpoint: str) -> Iterator[None]:
    """One API request of ``venue`` to ``endpoint``: counted, and timed however it ends."""
    EXCHANGE_REQUESTS.labels(venue, endpoint).inc()
    started = time.perf_counter()
    try:
        yield
    finally:
        EXCHANGE_SECONDS.labels(venue).observe(time.perf_counter() - started)


def count_error(venue: str, exc: VenueError) -> str:
    """Count ``exc`` in ``engine_exchange_errors_total`` under its kind (:func:`~adapters.venues.base.error_kind`);
    return the kind."""
    kind = error_kind(exc)
    EXCHANGE_ERRORS.labels(venue, kind).inc()
    return kind
