"""The live venue over ccxt (``CcxtVenue``): any ccxt exchange by id, spot orders by client order id.

ccxt does the venue's work: signing, rate limiting (``enableRateLimit``), precision rounding
(``amount_to_precision`` / ``price_to_precision``) and mapping the venue's errors to its exception classes,
which are mapped here onto the port's error tree (:mod:`adapters.venues.base`):

=====================================================  ==========================================================
ccxt                                                   port
=====================================================  ==========================================================
AuthenticationError (PermissionDenied, ...)            VenueAuthError
OrderNotFound                                          VenueOrderNotFound
NetworkError (RequestTimeout, ExchangeNotAvailable)    VenueUnavailable (``maybe_sent`` True: outcome unknown)
DDoSProtection, RateLimitExceeded, InvalidNonce        VenueUnavailable (``maybe_sent`` False: refused unprocessed)
any other ccxt error (InsufficientFunds, InvalidOrder)  VenueRejected(rule = the class in snake_case)
=====================================================  ==========================================================

Reads (markets, orders, trades, balances) are retried while the venue is unavailable, with exponential backoff
and jitter; a submit never is (its outcome is unknown after a timeout: the caller looks it up first). Numbers
become ``Decimal`` through ``str``, from the venue's own strings in ``info`` where ccxt keeps them (binance:
``origQty``, ``executedQty``, ``price``, ``qty``, ``commission``); ``raw`` is ccxt's ``info``.

Every API call is counted (``EXCHANGE_REQUESTS`` / ``EXCHANGE_ERRORS`` / ``EXCHANGE_SECONDS``). Every message
raised or logged passes through :func:`~adapters.venues.base.redact`, raised errors carry no ccxt exception
chain, and ccxt's own debug log (which prints request headers, API key included) is kept off.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt.async_support as ccxt
import structlog

from adapters.telemetry import EXCHANGE_ERRORS, EXCHANGE_REQUESTS, EXCHANGE_SECONDS
from adapters.venues.base import (
    Credentials,
    VenueAuthError,
    VenueError,
    VenueOrder,
    VenueOrderNotFound,
    VenueOrderStatus,
    VenueRejected,
    VenueTrade,
    VenueUnavailable,
    redact,
)
from events import Liquidity, OrderSubmitted, OrderType, Side

log = structlog.get_logger(__name__)
T = TypeVar("T")

RETRY_BASE_S = 0.2
RETRY_CAP_S = 5.0
TRADE_PAGES = 50  # at most this many pages of trades per call
# REST origins of sandboxes ccxt does not know (coinbase's Advanced Trade API has a static one)
SANDBOX_ORIGINS = {"coinbase": "https://api-sandbox.coinbase.com"}
# ccxt options per exchange: binance loads spot markets only (exchangeInfo, nothing private, no margin pairs)
EXCHANGE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                "fetchMargins": False, "fetchOpenOrders": {"warnWithoutSymbol": False}},
}
TRADE_PAGE_SIZE = {"binance": 1000}

_STATUS = {
    "open": VenueOrderStatus.OPEN, "closed": VenueOrderStatus.FILLED, "canceled": VenueOrderStatus.CANCELLED,
    "cancelled": VenueOrderStatus.CANCELLED, "expired": VenueOrderStatus.EXPIRED,
    "rejected": VenueOrderStatus.REJECTED,
}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _dec(*candidates: Any) -> Decimal | None:
    """The first candidate that is a number, as a Decimal (through ``str``, never through float arithmetic)."""
    for c in candidates:
        if c is None or c == "" or isinstance(c, bool):
            continue
        try:
            return Decimal(str(c))
        except InvalidOperation:
            continue
    return None


def _ns(ms: Any) -> int:
    return int(ms) * 1_000_000 if isinstance(ms, int | float) and ms > 0 else time.time_ns()


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


class CcxtVenue:
    """A :class:`~adapters.venues.base.LiveVenue` backed by ccxt's async exchange class ``exchange_id``."""

    def __init__(
        self,
        exchange_id: str,
        *,
        credentials: Credentials | None,
        sandbox: bool = False,
        base_url: str | None = None,
        timeout_ms: int = 10_000,
        read_retries: int = 3,
        name: str | None = None,
    ) -> None:
        if exchange_id not in ccxt.exchanges:
            raise ValueError(f"unknown ccxt exchange id {exchange_id!r} (see ccxt.exchanges for the known ones)")
        self.name = name or exchange_id
        self.exchange_id = exchange_id
        self._secrets: tuple[str | None, ...] = credentials.values if credentials is not None else ()
        self._read_retries = max(0, read_retries)
        config: dict[str, Any] = {"enableRateLimit": True, "timeout": timeout_ms,
                                  "options": dict(EXCHANGE_OPTIONS.get(exchange_id, {}))}
        if credentials is not None:
            config["apiKey"] = credentials.api_key
            config["secret"] = credentials.secret
            if credentials.password:
                config["password"] = credentials.password
        self._ex: Any = getattr(ccxt, exchange_id)(config)
        self._logger = logging.getLogger(f"{__name__}.ccxt.{self.name}")
        self._filter = _RedactingFilter(self._secrets)
        self._logger.addFilter(self._filter)
        self._ex.logger = self._logger
        if sandbox:
            self._sandbox()
        if base_url is not None:
            self._rewrite_origin(base_url)
        self._coids: dict[str, str] = {}  # venue order id -> client order id, from the orders seen
        self._closed = False

    # -- set-up ------------------------------------------------------------------------------------------

    @property
    def exchange(self) -> Any:
        """The ccxt exchange object (for inspection: ``rateLimit``, ``urls``, ``isSandboxModeEnabled``)."""
        return self._ex

    def _sandbox(self) -> None:
        if self._ex.urls.get("test"):
            self._ex.set_sandbox_mode(True)
        elif self.exchange_id in SANDBOX_ORIGINS:
            self._rewrite_origin(SANDBOX_ORIGINS[self.exchange_id])
            self._ex.isSandboxModeEnabled = True
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
                    f"?{parts.query}" if parts.query else "")
            if isinstance(node, dict):
                return {k: rewrite(v) for k, v in node.items()}
            return node

        self._ex.urls["api"] = rewrite(self._ex.urls["api"])

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the markets; with credentials, check them (one balance request)."""
        await self._read("load_markets", lambda: self._ex.load_markets())
        if self._secrets and self._ex.has.get("fetchBalance"):
            await self._read("fetch_balance", lambda: self._ex.fetch_balance())
        log.info("venue.started", venue=self.name, exchange=self.exchange_id, markets=len(self._ex.markets or {}),
                 sandbox=bool(self._ex.isSandboxModeEnabled))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._ex.close()
        finally:
            self._logger.removeFilter(self._filter)

    async def __aenter__(self) -> CcxtVenue:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the port ----------------------------------------------------------------------------------------

    async def submit(self, order: OrderSubmitted) -> VenueOrder:
        """Place ``order`` once (never retried here: after a timeout its outcome is unknown)."""
        await self._markets()
        symbol = order.instrument
        try:
            amount = self._ex.amount_to_precision(symbol, str(order.quantity))
            price = (self._ex.price_to_precision(symbol, str(order.limit_price))
                     if order.order_type is OrderType.LIMIT and order.limit_price is not None else None)
        except ccxt.BaseError as exc:
            err = self._map(exc)
        else:
            params = {"clientOrderId": order.client_order_id}
            o = await self._call("create_order", lambda: self._ex.create_order(
                symbol, order.order_type.value, order.side.value, amount, price, params))
            return self._order(o, symbol, order.client_order_id)
        EXCHANGE_ERRORS.labels(self.name, _kind(err)).inc()
        raise err

    async def cancel(self, instrument: str, client_order_id: str, venue_order_id: str | None) -> VenueOrder:
        await self._markets()
        by_client_id = venue_order_id is None or self.exchange_id == "binance"  # binance looks up either
        params = {"clientOrderId": client_order_id} if by_client_id else {}
        o = await self._call("cancel_order",
                             lambda: self._ex.cancel_order(venue_order_id or "", instrument, params))
        return self._order(o, instrument, client_order_id, prefer_asked=True)

    async def fetch_order(self, instrument: str, client_order_id: str) -> VenueOrder:
        await self._markets()
        o = await self._read("fetch_order", lambda: self._ex.fetch_order(
            "", instrument, {"clientOrderId": client_order_id}))
        return self._order(o, instrument, client_order_id, prefer_asked=True)

    async def open_orders(self, instruments: Sequence[str]) -> list[VenueOrder]:
        """Working orders on ``instruments`` (on every market when the sequence is empty)."""
        await self._markets()
        out: list[VenueOrder] = []
        symbols: list[str | None] = [*instruments] or [None]
        for symbol in symbols:
            orders = await self._read("fetch_open_orders", lambda s=symbol: self._ex.fetch_open_orders(s))  # type: ignore[misc]
            out.extend(self._order(o, o.get("symbol") or symbol or "", None) for o in orders)
        return out

    async def trades(self, instrument: str, since_ns: int | None) -> list[VenueTrade]:
        """Our executions on ``instrument`` from ``since_ns`` (millisecond precision), oldest first, each once."""
        await self._markets()
        since = since_ns // 1_000_000 if since_ns is not None else None
        limit = TRADE_PAGE_SIZE.get(self.exchange_id)
        seen: dict[str, VenueTrade] = {}
        for _ in range(TRADE_PAGES):
            page = await self._read("fetch_my_trades", lambda s=since: self._ex.fetch_my_trades(instrument, s, limit))  # type: ignore[misc]
            fresh = [t for t in (self._trade(t, instrument) for t in page) if t.trade_id not in seen]
            for t in fresh:
                seen[t.trade_id] = t
            if limit is None or len(page) < limit or not fresh:
                break
            since = max(t.ts for t in fresh) // 1_000_000
        return sorted(seen.values(), key=lambda t: (t.ts, t.trade_id))

    async def balances(self) -> dict[str, Decimal]:
        """Total (free + used) per currency, as the venue reports it."""
        await self._markets()
        b = await self._read("fetch_balance", lambda: self._ex.fetch_balance())
        info = b.get("info")
        rows = info.get("balances") if isinstance(info, dict) else None
        if isinstance(rows, list) and rows and isinstance(rows[0], dict) and "free" in rows[0]:  # binance spot
            out: dict[str, Decimal] = {}
            for r in rows:
                total = (_dec(r.get("free")) or Decimal(0)) + (_dec(r.get("locked")) or Decimal(0))
                code = self._ex.safe_currency_code(r.get("asset"))
                out[code] = out.get(code, Decimal(0)) + total
            return out
        totals = b.get("total") or {}
        return {code: _dec(v) or Decimal(0) for code, v in totals.items()}

    # -- conversions -------------------------------------------------------------------------------------

    def _order(self, o: dict[str, Any], instrument: str, asked: str | None, *, prefer_asked: bool = False) \
            -> VenueOrder:
        info: dict[str, Any] = o["info"] if isinstance(o.get("info"), dict) else {}
        coid = (asked if prefer_asked else None) or info.get("origClientOrderId") or o.get("clientOrderId") \
            or asked or ""
        venue_id = str(o.get("id") or info.get("orderId") or "")
        if venue_id and coid:
            self._coids[venue_id] = coid
        kind = OrderType.LIMIT if (o.get("type") or "").lower() == "limit" else OrderType.MARKET
        limit = _dec(info.get("price"), o.get("price")) if kind is OrderType.LIMIT else None
        return VenueOrder(
            instrument=o.get("symbol") or instrument, client_order_id=coid, venue_order_id=venue_id,
            side=Side(o.get("side") or "buy"), order_type=kind,
            quantity=_dec(info.get("origQty"), o.get("amount")) or Decimal(0),
            limit_price=limit if limit else None,
            status=_STATUS.get(o.get("status") or "open", VenueOrderStatus.OPEN),
            filled=_dec(info.get("executedQty"), o.get("filled")) or Decimal(0),
            ts=_ns(o.get("lastUpdateTimestamp") or o.get("timestamp")), raw=o.get("info"),
        )

    def _trade(self, t: dict[str, Any], instrument: str) -> VenueTrade:
        info: dict[str, Any] = t["info"] if isinstance(t.get("info"), dict) else {}
        fee: dict[str, Any] = t.get("fee") or {}
        venue_order_id = str(t.get("order") or "")
        return VenueTrade(
            instrument=t.get("symbol") or instrument, trade_id=str(t.get("id")), venue_order_id=venue_order_id,
            client_order_id=self._coids.get(venue_order_id) or info.get("clientOrderId") or None,
            side=Side(t.get("side") or "buy"),
            quantity=_dec(info.get("qty"), t.get("amount")) or Decimal(0),
            price=_dec(info.get("price"), t.get("price")) or Decimal(0),
            fee=_dec(info.get("commission"), fee.get("cost")) or Decimal(0),
            fee_currency=fee.get("currency") or info.get("commissionAsset") or "",
            liquidity=Liquidity.MAKER if t.get("takerOrMaker") == "maker" else Liquidity.TAKER,
            ts=_ns(t.get("timestamp")), raw=t.get("info"),
        )

    # -- calls, retries, errors --------------------------------------------------------------------------

    async def _markets(self) -> None:
        if not self._ex.markets:
            await self._read("load_markets", lambda: self._ex.load_markets())

    async def _call(self, endpoint: str, fn: Callable[[], Awaitable[T]]) -> T:
        """One API call, counted and timed; ccxt's errors come out as the port's (without ccxt's chain)."""
        EXCHANGE_REQUESTS.labels(self.name, endpoint).inc()
        started = time.perf_counter()
        try:
            return await fn()
        except ccxt.BaseError as exc:
            err = self._map(exc)
        finally:
            EXCHANGE_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        kind = _kind(err)
        EXCHANGE_ERRORS.labels(self.name, kind).inc()
        log.warning("venue.call_failed", venue=self.name, endpoint=endpoint, kind=kind, error=str(err))
        raise err  # raised outside the except block: no __context__ pointing at ccxt's exception

    async def _read(self, endpoint: str, fn: Callable[[], Awaitable[T]]) -> T:
        """A read, retried while the venue is unavailable (``read_retries`` times, backoff with jitter)."""
        for attempt in range(self._read_retries + 1):
            try:
                return await self._call(endpoint, fn)
            except VenueUnavailable:
                if attempt >= self._read_retries:
                    raise
                delay = min(RETRY_CAP_S, RETRY_BASE_S * 2 ** attempt)
                await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))
        raise AssertionError("unreachable")

    def _map(self, exc: BaseException) -> VenueError:
        message = redact(f"{self.name}: {type(exc).__name__}: {exc}", self._secrets)
        raw = {"error": type(exc).__name__, "message": message}
        if isinstance(exc, ccxt.AuthenticationError):
            return VenueAuthError(message, raw=raw)
        if isinstance(exc, ccxt.OrderNotFound):
            return VenueOrderNotFound(message, raw=raw)
        if isinstance(exc, ccxt.NetworkError):
            refused = isinstance(exc, ccxt.DDoSProtection | ccxt.InvalidNonce)
            return VenueUnavailable(message, raw=raw, maybe_sent=not refused)
        return VenueRejected(_snake(type(exc).__name__), message, raw=raw)


def _kind(err: VenueError) -> str:
    if isinstance(err, VenueAuthError):
        return "auth"
    if isinstance(err, VenueOrderNotFound):
        return "not_found"
    if isinstance(err, VenueUnavailable):
        return "unavailable"
    if isinstance(err, VenueRejected):
        return "rejected"
    return "error"
