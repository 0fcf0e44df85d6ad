"""The ccxt exchange object of one venue, and every call made through it: counted, timed, retried, mapped.

ccxt's own debug log (which prints request headers, API key included) is kept off, and what it logs is redacted.
"""

from __future__ import annotations

import decimal
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt.async_support as ccxt
import structlog

from adapters.venues._metrics import count_error, request
from adapters.venues._retry import Backoff, retry_unavailable
from adapters.venues.base import Credentials, VenueError, redact
from adapters.venues.ccxt._errors import venue_error
from adapters.venues.ccxt._exchanges import EXCHANGE_OPTIONS, SANDBOX_ORIGINS

log = structlog.get_logger(__name__)
T = TypeVar("T")

RETRY_BASE_S = 0.2
RETRY_CAP_S = 5.0


class _RedactingFilter(logging.Filter):
    """Keeps secrets out of whatever ccxt logs (and drops its debug lines, which carry request headers)."""

    def __init__(self, secrets: tuple[str | None, ...]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return False
        record.msg = redact(record.getMessage(), self._secrets)
        record.args = None
        return True


class Transport:
    """ccxt's async exchange class ``exchange_id``, configured, with the venue's ``name`` on every metric."""

    def __init__(
        self,
        exchange_id: str,
        *,
        name: str,
        credentials: Credentials | None,
        sandbox: bool,
        base_url: str | None,
        timeout_ms: int,
        read_retries: int,
    ) -> None:
        if exchange_id not in ccxt.exchanges:
            raise ValueError(f"unknown ccxt exchange id {exchange_id!r} (see ccxt.exchanges for the known ones)")
        self.name = name
        self.exchange_id = exchange_id
        self.secrets: tuple[str | None, ...] = credentials.values if credentials is not None else ()
        self._backoff = Backoff(max(0, read_retries), RETRY_BASE_S, RETRY_CAP_S)
        config: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": timeout_ms,
            "options": dict(EXCHANGE_OPTIONS.get(exchange_id, {})),
        }
        if credentials is not None:
            config["apiKey"] = credentials.api_key
            config["secret"] = credentials.secret
            if credentials.password:
                config["password"] = credentials.password
        self.ex: Any = getattr(ccxt, exchange_id)(config)
        self._logger = logging.getLogger(f"adapters.venues.ccxt.ccxt.{name}")
        self._filter = _RedactingFilter(self.secrets)
        self._logger.addFilter(self._filter)
        self.ex.logger = self._logger
        if sandbox:
            self._sandbox()
        if base_url is not None:
            self._rewrite_origin(base_url)
        self._closed = False

    def _sandbox(self) -> None:
        if self.ex.urls.get("test"):
            self.ex.set_sandbox_mode(True)
        elif self.exchange_id in SANDBOX_ORIGINS:
            self._rewrite_origin(SANDBOX_ORIGINS[self.exchange_id])
            self.ex.isSandboxModeEnabled = True
        else:
            raise ValueError(f"ccxt exchange {self.exchange_id!r} has no sandbox: give base_url, or sandbox = false")

    def _rewrite_origin(self, base_url: str) -> None:
        """Point every http(s) URL of ``urls['api']`` at ``base_url``'s scheme and host, keeping its path."""
        origin = urlsplit(base_url)
        if not origin.scheme.startswith("http") or not origin.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")

        def rewrite(node: Any) -> Any:
            if isinstance(node, str):
                if not node.startswith(("http://", "https://")):
                    return node
                parts = urlsplit(node)
                return f"{origin.scheme}://{origin.netloc}{origin.path.rstrip('/')}{parts.path}" + (
                    f"?{parts.query}" if parts.query else ""
                )
            if isinstance(node, dict):
                return {k: rewrite(v) for k, v in node.items()}
            return node

        self.ex.urls["api"] = rewrite(self.ex.urls["api"])

    async def close(self) -> None:
        """Close ccxt's session; safe twice."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.ex.close()
        finally:
            self._logger.removeFilter(self._filter)

    def error(self, exc: BaseException) -> VenueError:
        """A ccxt error of this venue as the port's (redacted)."""
        return venue_error(exc, venue=self.name, exchange_id=self.exchange_id, secrets=self.secrets)

    async def call(self, endpoint: str, fn: Callable[[], Awaitable[T]]) -> T:
        """One API call, counted and timed; ccxt's errors come out as the port's (without ccxt's chain)."""
        # in a copy of the caller's decimal context: ccxt's parsing rounds, which sets it to ROUND_HALF_UP
        with request(self.name, endpoint), decimal.localcontext():
            try:
                return await fn()
            except ccxt.BaseError as exc:
                err = self.error(exc)
        kind = count_error(self.name, err)
        log.warning("venue.call_failed", venue=self.name, endpoint=endpoint, kind=kind, error=str(err))
        raise err  # raised outside the except block: no __context__ pointing at ccxt's exception

    async def read(self, endpoint: str, fn: Callable[[], Awaitable[T]]) -> T:
        """A read, retried while the venue is unavailable (``read_retries`` times, backoff with jitter)."""
        return await retry_unavailable(lambda: self.call(endpoint, fn), self._backoff)

    async def markets(self) -> None:
        """Load the markets once (every call of the port needs them for precision and symbols)."""
        if not self.ex.markets:
            await self.read("load_markets", lambda: self.ex.load_markets())
