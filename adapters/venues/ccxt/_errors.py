"""ccxt's exceptions as the port's error tree, mapped once, here (the table is in the package's docstring)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import ccxt.async_support as ccxt

from adapters.venues.base import (
    VenueAuthError,
    VenueDuplicateOrder,
    VenueError,
    VenueOrderNotFound,
    VenueRejected,
    VenueUnavailable,
    redact,
)
from adapters.venues.ccxt._exchanges import DUPLICATE, NOT_FOUND


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _says(exc: BaseException, words: Mapping[str, tuple[str, ...]], exchange_id: str) -> bool:
    return isinstance(exc, ccxt.ExchangeError) and any(w in str(exc) for w in words.get(exchange_id, ()))


def venue_error(exc: BaseException, *, venue: str, exchange_id: str, secrets: tuple[str | None, ...]) -> VenueError:
    """``exc`` (a ccxt error of exchange ``exchange_id``) as the port's error, its message redacted."""
    message = redact(f"{venue}: {type(exc).__name__}: {exc}", secrets)
    raw = {"error": type(exc).__name__, "message": message}
    if isinstance(exc, ccxt.AuthenticationError):
        return VenueAuthError(message, raw=raw)
    if isinstance(exc, ccxt.OrderNotFound) or _says(exc, NOT_FOUND, exchange_id):
        return VenueOrderNotFound(message, raw=raw)
    if isinstance(exc, ccxt.DuplicateOrderId) or _says(exc, DUPLICATE, exchange_id):
        return VenueDuplicateOrder(message, raw=raw)
    if isinstance(exc, ccxt.NetworkError):
        # ccxt 4.5: RateLimitExceeded and InvalidNonce are NetworkErrors, not DDoSProtection's subclasses
        refused = isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded | ccxt.InvalidNonce)
        return VenueUnavailable(message, raw=raw, maybe_sent=not refused)
    return VenueRejected(_snake(type(exc).__name__), message, raw=raw)
