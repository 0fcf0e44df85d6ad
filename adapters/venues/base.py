"""What every live venue adapter shares: its credentials and the redaction of them, and the kinds of its errors.

The live venue port itself (:class:`~engine.core.ports.LiveVenue`, its values and its error tree) belongs to the core:
:mod:`engine.core.ports`; it is re-exported here for the adapters that implement it.

Messages never contain credentials: adapters pass what they raise through :func:`redact`.

A failed call is counted in ``engine_exchange_errors_total`` with the ``kind`` :func:`error_kind` gives its error,
the same for every adapter, one per branch of the port's error tree (:data:`ERROR_KINDS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Self

from engine.core.ports import (
    LiveVenue,
    RemembersOrderIds,
    VenueAuthError,
    VenueDuplicateOrder,
    VenueError,
    VenueOrder,
    VenueOrderNotFound,
    VenueOrderStatus,
    VenueRejected,
    VenueTrade,
    VenueUnavailable,
)

__all__ = [
    "ERROR_KINDS",
    "Credentials",
    "LiveVenue",
    "RemembersOrderIds",
    "VenueAuthError",
    "VenueDuplicateOrder",
    "VenueError",
    "VenueLifecycle",
    "VenueOrder",
    "VenueOrderNotFound",
    "VenueOrderStatus",
    "VenueRejected",
    "VenueTrade",
    "VenueUnavailable",
    "error_kind",
    "redact",
]

# the ``kind`` label of ``engine_exchange_errors_total``: one per branch of the error tree, most specific first
ERROR_KINDS: Final[tuple[tuple[type[VenueError], str], ...]] = (
    (VenueUnavailable, "unavailable"),  # no definite answer: timeout, network, HTTP 429 / 5xx, venue down
    (VenueDuplicateOrder, "duplicate"),  # the venue has an order with this client order id already
    (VenueRejected, "rejected"),  # refused for good: funds, invalid order, bad symbol
    (VenueOrderNotFound, "not_found"),  # the venue does not know the order
    (VenueAuthError, "auth"),  # the credentials were refused
)


@dataclass(frozen=True, slots=True)
class Credentials:
    """API credentials, from the environment or a secrets file outside the repo; ``repr`` hides them."""

    api_key: str
    secret: str
    password: str | None = None  # some venues call it passphrase

    def __repr__(self) -> str:
        return "Credentials(***)"

    __str__ = __repr__

    @property
    def values(self) -> tuple[str | None, ...]:
        return (self.api_key, self.secret, self.password)


class VenueLifecycle:
    """The shutdown of a live venue: ``close()``, safe twice; ``async with venue:`` starts it and closes it."""

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret (of 4 characters or more) replaced by ``***``."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


def error_kind(exc: VenueError) -> str:
    """The ``kind`` label of ``engine_exchange_errors_total`` for ``exc``: the same failure, the same kind, whatever
    the adapter (``error`` for a bare :class:`VenueError`, which no adapter raises)."""
    return next((kind for cls, kind in ERROR_KINDS if isinstance(exc, cls)), "error")
