"""OpenAlgo's failures as the port's error tree, mapped once, here.

======================================================  ========================================================
OpenAlgo                                                port
======================================================  ========================================================
timeout                                                 VenueUnavailable (``maybe_sent`` True: outcome unknown)
connection never made (``ClientConnectorError``)        VenueUnavailable (``maybe_sent`` False)
any other aiohttp error (connection dropped...)         VenueUnavailable (``maybe_sent`` True)
HTTP 429                                                VenueUnavailable (``maybe_sent`` False: refused unprocessed)
HTTP 5xx, or an answer that is not a JSON object        VenueUnavailable (``maybe_sent`` True)
HTTP 401 / 403, or "invalid api key"                    VenueAuthError
HTTP 404, or "order ... not found"                      VenueOrderNotFound
any other error answer                                  VenueRejected(rule = one word from the message)
======================================================  ========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from adapters.venues.base import (
    VenueAuthError,
    VenueError,
    VenueOrderNotFound,
    VenueRejected,
    VenueUnavailable,
    redact,
)


def rule(message: str) -> str:
    """One word for why the venue refused, from its message."""
    m = message.lower()
    for words, found in (
        (("insufficient", "margin", "funds", "balance"), "insufficient_funds"),
        (("symbol",), "invalid_symbol"),
        (("quantity", "lot size"), "invalid_quantity"),
        (("price",), "invalid_price"),
        (("rate limit",), "rate_limited"),
        (("cannot cancel", "cannot modify", "not modifiable", "not cancellable"), "invalid_state"),
        (("exchange",), "invalid_exchange"),
        (("product",), "invalid_product"),
    ):
        if any(w in m for w in words):
            return found
    return "rejected"


def request_error(
    exc: TimeoutError | aiohttp.ClientError, *, venue: str, endpoint: str, secrets: tuple[str | None, ...]
) -> VenueUnavailable:
    """A request that got no answer: a timeout, or aiohttp's error."""
    if isinstance(exc, TimeoutError):
        return VenueUnavailable(f"{venue}: {endpoint} timed out; its outcome is unknown")
    refused = isinstance(exc, aiohttp.ClientConnectorError)  # never connected: nothing was sent
    return VenueUnavailable(
        redact(f"{venue}: {endpoint} failed: {type(exc).__name__}: {exc}", secrets), maybe_sent=not refused
    )


def answer_error(
    status: int, answer: Mapping[str, Any] | None, *, venue: str, endpoint: str, secrets: tuple[str | None, ...]
) -> VenueError | None:
    """The error an answer (HTTP ``status``, its JSON object or None) stands for; None for a success."""
    message = redact(str(answer.get("message") or ""), secrets) if answer is not None else ""
    if status == 429:
        return VenueUnavailable(
            f"{venue}: {endpoint} rate limited (HTTP 429): {message}".rstrip(": "), raw=answer, maybe_sent=False
        )
    if status >= 500 or answer is None:
        return VenueUnavailable(
            f"{venue}: {endpoint} answered HTTP {status}{': ' + message if message else ' (not JSON)'}", raw=answer
        )
    if answer.get("status") == "success" and status < 400:
        return None
    lowered = message.lower()
    if status in (401, 403) or (("apikey" in lowered or "api key" in lowered) and "invalid" in lowered):
        return VenueAuthError(f"{venue}: the API key was refused (HTTP {status}): {message}", raw=answer)
    if status == 404 or ("not found" in lowered and "order" in lowered):
        return VenueOrderNotFound(f"{venue}: {endpoint}: {message or 'order not found'}", raw=answer)
    return VenueRejected(rule(message), message or f"{endpoint} answered HTTP {status} without a message", raw=answer)
