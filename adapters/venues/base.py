"""What every live venue adapter shares: its credentials, and the redaction of them.

The live venue port itself (:class:`~engine.core.ports.LiveVenue`, its values and its error tree) belongs to the core:
:mod:`engine.core.ports`; it is re-exported here for the adapters that implement it.

Messages never contain credentials: adapters pass what they raise through :func:`redact`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.core.ports import (
    LiveVenue,
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
    "Credentials",
    "LiveVenue",
    "VenueAuthError",
    "VenueDuplicateOrder",
    "VenueError",
    "VenueOrder",
    "VenueOrderNotFound",
    "VenueOrderStatus",
    "VenueRejected",
    "VenueTrade",
    "VenueUnavailable",
    "redact",
]


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


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret (of 4 characters or more) replaced by ``***``."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text
