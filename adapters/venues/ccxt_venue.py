"""The live venue over ccxt (``CcxtVenue``): any ccxt exchange by id, spot orders by client order id.

ccxt does the venue's work: signing, rate limiting (``enableRateLimit``), precision rounding
(``amount_to_precision`` / ``price_to_precision``) and mapping the venue's errors to its exception classes,
which are mapped here onto the port's error tree (:mod:`adapters.venues.base`):

=====================================================  ==========================================================
ccxt                                                   port
=====================================================  ==========================================================
AuthenticationError (PermissionDenied, ...)            VenueAuthError
OrderNotFound, or a venue's words for it (NOT_FOUND)   VenueOrderNotFound
NetworkError (RequestTimeout, ExchangeNotAvailable)    VenueUnavailable (``maybe_sent`` True: outcome unknown)
DDoSProtection, RateLimitExceeded, InvalidNonce        VenueUnavailable (``maybe_sent`` False: refused unprocessed)
DuplicateOrderId, or a venue's words (DUPLICATE)      VenueDuplicateOrder (the venue has this client order id)
any other ccxt error (InsufficientFunds, InvalidOrder)  VenueRejected(rule = the class in snake_case)
=====================================================  ==========================================================

Our client order id goes with every order, and an order is found by it the way the venue allows: binance (and
any exchange taking ccxt's ``clientOrderId`` param) looks it up and cancels by it; alpaca through
``GET /v2/orders:by_client_order_id``; coinbase, which has no such lookup, by the order id seen for it, else by
searching its order list (newest first, ``ORDER_PAGES`` pages). Coinbase and alpaca cancel by their own id only
and do not answer a cancel with the order, so it is read back after. A coinbase market buy is sent in base units
(``base_size``), like every other order here. Coinbase's create answer carries only the ids: the order is then
reported open, with what was sent. Trades are paged per venue (``TRADE_PAGING``).

Reads (markets, orders, trades, balances) are retried while the venue is unavailable, with exponential backoff
and jitter; a submit never is (its outcome is unknown after a timeout: the caller looks it up first). Numbers
become ``Decimal`` through ``str``, from the venue's own strings in ``info`` where ccxt keeps them (binance:
``origQty``, ``executedQty``, ``price``, ``qty``, ``commission``, balances ``free`` + ``locked``; coinbase: the
order configuration's ``base_size``/``limit_price``, ``filled_size``, fills' ``size``, ``price``,
``commission``, accounts' ``available_balance`` + ``hold``; alpaca: ``qty``, ``filled_qty``, ``limit_price``,
fills' ``qty``, ``price``, the cash as ``equity`` - ``position_market_value`` and positions' ``qty``);
``raw`` is ccxt's ``info``. Alpaca reports crypto fees apart from fills (``CFEE`` activities, without an order
id), so its trades carry a fee of 0.

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
    VenueDuplicateOrder,
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
ORDER_PAGES, ORDER_PAGE_SIZE = 10, 100  # a coinbase order searched by client order id: at most 1000 orders back
# REST origins of sandboxes ccxt does not know (coinbase's Advanced Trade API has a static one)
SANDBOX_ORIGINS = {"coinbase": "https://api-sandbox.coinbase.com"}
# ccxt options per exchange: binance loads spot markets only (exchangeInfo, nothing private, no margin pairs);
# coinbase's balances are the Advanced Trade accounts (available + hold), not the Coinbase app's wallets
EXCHANGE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
        "fetchOpenOrders": {"warnWithoutSymbol": False},
    },
    "coinbase": {"fetchBalance": "v3PrivateGetBrokerageAccounts"},
}
# our trades, page by page: (page size, how the next page is asked for)
#   since:  from the newest trade's time (binance's startTime is inclusive)
#   cursor: the venue's cursor, which ccxt keeps in one trade's info (coinbase)
#   token:  after the last activity's id, oldest first, every symbol at once (alpaca's activities have no symbol
#           filter, and ccxt's filtering of a page would hide where it ended)
TRADE_PAGING: dict[str, tuple[int, str]] = {
    "binance": (1000, "since"),
    "coinbase": (250, "cursor"),
    "alpaca": (100, "token"),
}
OPEN_ORDERS_LIMIT = {"alpaca": 500}  # alpaca lists 50 by default
# a venue's own words for "no such order" where ccxt raises a generic error (coinbase's 404 text is not matched by
# ccxt 4.5's python port, alpaca's 40410000 becomes InvalidOrder; a cancel of an order no longer open, as binance's)
# a venue's words for "you already have an order with this client order id" (ccxt maps them to InvalidOrder or
# BadRequest, with other refusals of the same code); ccxt's own DuplicateOrderId counts for every exchange
DUPLICATE = {"binance": ("Duplicate order sent",), "alpaca": ("client_order_id must be unique",)}
NOT_FOUND = {
    "coinbase": ("order with this orderID was not found", "cancelOrders() has failed"),
    "alpaca": ("40410000", "order is already in"),
}
BY_VENUE_ID = {"coinbase", "alpaca"}  # cancel by the venue's own order id only

_STATUS = {
    "open": VenueOrderStatus.OPEN,
    "closed": VenueOrderStatus.FILLED,
    "canceled": VenueOrderStatus.CANCELLED,
    "cancelled": VenueOrderStatus.CANCELLED,
    "expired": VenueOrderStatus.EXPIRED,
    "rejected": VenueOrderStatus.REJECTED,
    "failed": VenueOrderStatus.REJECTED,
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


def _info(o: Any) -> dict[str, Any]:
    """ccxt's ``info`` of ``o`` (the venue's own answer) when it is a JSON object, else ``{}``."""
    info = o.get("info") if isinstance(o, dict) else None
    return info if isinstance(info, dict) else {}


def _cursor(page: list[dict[str, Any]]) -> str | None:
    """Coinbase's cursor for the next page, which ccxt puts into the info of the first item it got."""
    return next((str(_info(x)["cursor"]) for x in page if _info(x).get("cursor")), None)


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
        self._venue_ids: dict[str, str] = {}  # and back
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
                    f"?{parts.query}" if parts.query else ""
                )
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
        log.info(
            "venue.started",
            venue=self.name,
            exchange=self.exchange_id,
            markets=len(self._ex.markets or {}),
            sandbox=bool(self._ex.isSandboxModeEnabled),
        )

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
            price = (
                self._ex.price_to_precision(symbol, str(order.limit_price))
                if order.order_type is OrderType.LIMIT and order.limit_price is not None
                else None
            )
        except ccxt.BaseError as exc:
            err = self._map(exc)
        else:
            params = self._create_params(order, amount)
            o = await self._call(
                "create_order",
                lambda: self._ex.create_order(symbol, order.order_type.value, order.side.value, amount, price, params),
            )
            sent = {
                "symbol": symbol,
                "type": order.order_type.value,
                "side": order.side.value,
                "amount": amount,
                "price": price,
            }  # what the answer does not say (coinbase's has only the ids)
            return self._order(sent | {k: v for k, v in o.items() if v is not None}, symbol, order.client_order_id)
        EXCHANGE_ERRORS.labels(self.name, _kind(err)).inc()
        raise err

    def _create_params(self, order: OrderSubmitted, amount: str) -> dict[str, Any]:
        if self.exchange_id != "coinbase":
            return {"clientOrderId": order.client_order_id}
        params: dict[str, Any] = {"client_order_id": order.client_order_id}  # ccxt would send its own
        if order.order_type is OrderType.MARKET:  # in base units, buys too (ccxt would want a price, or a cost)
            params["order_configuration"] = {"market_market_ioc": {"base_size": amount}}
            if order.side is Side.BUY:
                params["createMarketBuyOrderRequiresPrice"] = False  # an option of ccxt's, not sent
        return params

    async def cancel(self, instrument: str, client_order_id: str, venue_order_id: str | None) -> VenueOrder:
        await self._markets()
        if self.exchange_id in BY_VENUE_ID:
            venue_id = (
                venue_order_id
                or self._venue_ids.get(client_order_id)
                or (await self.fetch_order(instrument, client_order_id)).venue_order_id
            )
            self._remember(venue_id, client_order_id)
            await self._call("cancel_order", lambda: self._ex.cancel_order(venue_id, instrument))
            return await self.fetch_order(instrument, client_order_id)  # the answer is not the order
        by_client_id = venue_order_id is None or self.exchange_id == "binance"  # binance looks up either
        params = {"clientOrderId": client_order_id} if by_client_id else {}
        o = await self._call("cancel_order", lambda: self._ex.cancel_order(venue_order_id or "", instrument, params))
        return self._order(o, instrument, client_order_id, prefer_asked=True)

    async def fetch_order(self, instrument: str, client_order_id: str) -> VenueOrder:
        await self._markets()
        o = await self._find(instrument, client_order_id)
        return self._order(o, instrument, client_order_id, prefer_asked=True)

    async def _find(self, instrument: str, coid: str) -> dict[str, Any]:
        """ccxt's order placed with our client order id ``coid``, looked up as the venue allows."""
        if self.exchange_id == "alpaca":
            return await self._read("fetch_order", lambda: self._alpaca_by_client_id(coid))
        if self.exchange_id != "coinbase":
            return await self._read(
                "fetch_order", lambda: self._ex.fetch_order("", instrument, {"clientOrderId": coid})
            )
        venue_id = self._venue_ids.get(coid, "")
        if venue_id:
            return await self._read("fetch_order", lambda: self._ex.fetch_order(venue_id, instrument))
        params: dict[str, Any] = {}
        for _ in range(ORDER_PAGES):
            page = await self._read(
                "fetch_orders",
                lambda p=dict(params): self._ex.fetch_orders(  # type: ignore[misc]
                    instrument, None, ORDER_PAGE_SIZE, p
                ),
            )
            found = next((o for o in page if _info(o).get("client_order_id") == coid), None)
            if found is not None:
                return dict(found)
            params["cursor"] = _cursor(page)
            if not params["cursor"]:
                break
        EXCHANGE_ERRORS.labels(self.name, "not_found").inc()
        raise VenueOrderNotFound(f"{self.name}: no order with client order id {coid} on {instrument}")

    async def _alpaca_by_client_id(self, coid: str) -> dict[str, Any]:
        raw = await self._ex.request(
            "v2/orders:by_client_order_id", ["trader", "private"], "GET", {"client_order_id": coid}
        )
        return dict(self._ex.parse_order(raw))

    async def open_orders(self, instruments: Sequence[str]) -> list[VenueOrder]:
        """Working orders on ``instruments`` (on every market when the sequence is empty)."""
        await self._markets()
        out: list[VenueOrder] = []
        symbols: list[str | None] = [*instruments] or [None]
        limit = OPEN_ORDERS_LIMIT.get(self.exchange_id)
        for symbol in symbols:
            orders = await self._read("fetch_open_orders", lambda s=symbol: self._ex.fetch_open_orders(s, None, limit))  # type: ignore[misc]
            out.extend(self._order(o, o.get("symbol") or symbol or "", None) for o in orders)
        return out

    async def trades(self, instrument: str, since_ns: int | None) -> list[VenueTrade]:
        """Our executions on ``instrument`` from ``since_ns`` (millisecond precision), oldest first, each once."""
        await self._markets()
        since = since_ns // 1_000_000 if since_ns is not None else None
        limit, paging = TRADE_PAGING.get(self.exchange_id, (None, "since"))
        symbol = None if paging == "token" else instrument
        params: dict[str, Any] = {"direction": "asc"} if paging == "token" else {}
        seen: dict[str, VenueTrade] = {}
        for _ in range(TRADE_PAGES):
            page = await self._read(
                "fetch_my_trades",
                lambda s=since, p=dict(params): self._ex.fetch_my_trades(  # type: ignore[misc]
                    symbol, s, limit, p
                ),
            )
            fresh = [
                t
                for t in (self._trade(t, instrument) for t in page if t.get("symbol") in (instrument, None))
                if t.trade_id not in seen
            ]
            seen.update((t.trade_id, t) for t in fresh)
            if limit is None or not page or (paging != "cursor" and len(page) < limit):
                break
            if paging == "since":
                if not fresh:
                    break
                since = max(t.ts for t in fresh) // 1_000_000
            elif paging == "cursor":
                params["cursor"] = _cursor(page)
                if not params["cursor"]:
                    break
            else:
                params["page_token"] = _info(page[-1]).get("id")
        return sorted(seen.values(), key=lambda t: (t.ts, t.trade_id))

    async def balances(self) -> dict[str, Decimal]:
        """Total (free + used) per currency, as the venue reports it."""
        await self._markets()
        b = await self._read("fetch_balance", lambda: self._ex.fetch_balance())
        info = _info(b)
        rows: list[tuple[Any, ...]]  # (currency id, amounts that add up to its total)
        if self.exchange_id == "binance" and isinstance(info.get("balances"), list):
            rows = [(r.get("asset"), r.get("free"), r.get("locked")) for r in info["balances"]]
        elif self.exchange_id == "coinbase" and isinstance(info.get("accounts"), list):
            rows = [
                (r.get("currency"), (r.get("available_balance") or {}).get("value"), (r.get("hold") or {}).get("value"))
                for r in info["accounts"]
            ]
        elif self.exchange_id == "alpaca" and isinstance(info.get("account"), dict):
            a = info["account"]  # cash with what open orders hold is equity minus positions; positions as BTCUSD
            equity, positions = _dec(a.get("equity")), _dec(a.get("position_market_value")) or Decimal(0)
            rows = [(a.get("currency"), equity - positions if equity is not None else a.get("cash"))]
            rows += [
                (str(p.get("symbol") or "").split("/")[0].removesuffix("USD"), p.get("qty"))
                for p in info.get("positions") or []
            ]
        else:
            return {code: _dec(v) or Decimal(0) for code, v in (b.get("total") or {}).items()}
        out: dict[str, Decimal] = {}
        for currency, *amounts in rows:
            code = self._ex.safe_currency_code(currency)
            out[code] = out.get(code, Decimal(0)) + sum((_dec(x) or Decimal(0) for x in amounts), Decimal(0))
        return out

    # -- conversions -------------------------------------------------------------------------------------

    def _remember(self, venue_id: str, client_order_id: str) -> None:
        self._coids[venue_id] = client_order_id
        self._venue_ids[client_order_id] = venue_id

    def _order(
        self, o: dict[str, Any], instrument: str, asked: str | None, *, prefer_asked: bool = False
    ) -> VenueOrder:
        info = _info(o)
        config = next(iter((info.get("order_configuration") or {}).values()), None)  # coinbase's sizes and price
        cfg: dict[str, Any] = config if isinstance(config, dict) else {}
        coid = (
            (asked if prefer_asked else None) or info.get("origClientOrderId") or o.get("clientOrderId") or asked or ""
        )
        venue_id = str(o.get("id") or info.get("orderId") or "")
        if venue_id and coid:
            self._remember(venue_id, coid)
        kind = OrderType.LIMIT if (o.get("type") or "").lower() == "limit" else OrderType.MARKET
        limit = (
            _dec(info.get("price"), info.get("limit_price"), cfg.get("limit_price"), o.get("price"))
            if kind is OrderType.LIMIT
            else None
        )
        status = _STATUS.get(str(info.get("status") or "").lower()) or _STATUS.get(o.get("status") or "open")
        return VenueOrder(
            instrument=o.get("symbol") or instrument,
            client_order_id=coid,
            venue_order_id=venue_id,
            side=Side(o.get("side") or "buy"),
            order_type=kind,
            quantity=_dec(info.get("origQty"), info.get("qty"), cfg.get("base_size"), o.get("amount")) or Decimal(0),
            limit_price=limit if limit else None,
            status=status or VenueOrderStatus.OPEN,
            filled=_dec(info.get("executedQty"), info.get("filled_qty"), info.get("filled_size"), o.get("filled"))
            or Decimal(0),
            ts=_ns(o.get("lastUpdateTimestamp") or o.get("timestamp")),
            raw=o.get("info"),
        )

    def _trade(self, t: dict[str, Any], instrument: str) -> VenueTrade:
        info = _info(t)
        fee: dict[str, Any] = t.get("fee") or {}
        venue_order_id = str(t.get("order") or "")
        market: dict[str, Any] = (self._ex.markets or {}).get(t.get("symbol") or instrument) or {}
        size = None if info.get("size_in_quote") else info.get("size")  # coinbase: base units unless in quote
        return VenueTrade(
            instrument=t.get("symbol") or instrument,
            trade_id=str(t.get("id")),
            venue_order_id=venue_order_id,
            client_order_id=self._coids.get(venue_order_id) or info.get("clientOrderId") or None,
            side=Side(t.get("side") or "buy"),
            quantity=_dec(info.get("qty"), size, t.get("amount")) or Decimal(0),
            price=_dec(info.get("price"), t.get("price")) or Decimal(0),
            fee=_dec(info.get("commission"), fee.get("cost")) or Decimal(0),
            fee_currency=fee.get("currency") or info.get("commissionAsset") or market.get("quote") or "",
            liquidity=Liquidity.MAKER if t.get("takerOrMaker") == "maker" else Liquidity.TAKER,
            ts=_ns(t.get("timestamp")),
            raw=t.get("info"),
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
                delay = min(RETRY_CAP_S, RETRY_BASE_S * 2**attempt)
                await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))
        raise AssertionError("unreachable")

    def _map(self, exc: BaseException) -> VenueError:
        message = redact(f"{self.name}: {type(exc).__name__}: {exc}", self._secrets)
        raw = {"error": type(exc).__name__, "message": message}
        if isinstance(exc, ccxt.AuthenticationError):
            return VenueAuthError(message, raw=raw)
        if isinstance(exc, ccxt.OrderNotFound) or (
            isinstance(exc, ccxt.ExchangeError)
            and any(words in str(exc) for words in NOT_FOUND.get(self.exchange_id, ()))
        ):
            return VenueOrderNotFound(message, raw=raw)
        if isinstance(exc, ccxt.DuplicateOrderId) or (
            isinstance(exc, ccxt.ExchangeError)
            and any(words in str(exc) for words in DUPLICATE.get(self.exchange_id, ()))
        ):
            return VenueDuplicateOrder(message, raw=raw)
        if isinstance(exc, ccxt.NetworkError):
            # ccxt 4.5: RateLimitExceeded and InvalidNonce are NetworkErrors, not DDoSProtection's subclasses
            refused = isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded | ccxt.InvalidNonce)
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
