"""``CcxtVenue``: the port's calls, each as the venue allows it (see the package's docstring)."""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import structlog

from adapters.venues._metrics import count_error
from adapters.venues._order_ids import OrderIds
from adapters.venues.base import (
    Credentials,
    VenueLifecycle,
    VenueOrder,
    VenueOrderNotFound,
    VenueRejected,
    VenueTrade,
)
from adapters.venues.ccxt import _parsing as parse
from adapters.venues.ccxt._exchanges import (
    BY_VENUE_ID,
    NATIVE_STOPS,
    OPEN_ORDERS_LIMIT,
    ORDER_PAGE_SIZE,
    ORDER_PAGES,
    TRADE_PAGES,
    TRADE_PAGING,
)
from adapters.venues.ccxt._transport import Transport
from events import OrderSubmitted, OrderType, Side

log = structlog.get_logger(__name__)

# the ccxt order type an order is sent as (a stop: with ccxt's unified ``triggerPrice`` param)
_CCXT_TYPE = {
    OrderType.MARKET: "market",
    OrderType.LIMIT: "limit",
    OrderType.STOP: "market",
    OrderType.STOP_LIMIT: "limit",
}


def native_stops(exchange_id: str) -> bool:
    """Whether stops go to ``exchange_id`` as its own stop orders: ccxt says its spot orders take a trigger price
    (``features['spot']['createOrder']['triggerPrice']``, ``has['createStopOrder']``), and this adapter maps them
    (:data:`~adapters.venues.ccxt._exchanges.NATIVE_STOPS`: what its tests cover). Reads ccxt's class, no I/O."""
    import ccxt as sync_ccxt  # its class's description, without the async one's session

    if exchange_id not in NATIVE_STOPS or exchange_id not in sync_ccxt.exchanges:
        return False
    ex = getattr(sync_ccxt, exchange_id)()
    spot = ((ex.features or {}).get("spot") or {}).get("createOrder") or {}
    return bool(ex.has.get("createStopOrder") and spot.get("triggerPrice"))


class CcxtVenue(VenueLifecycle):
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
        self.name = name or exchange_id
        self.exchange_id = exchange_id
        self._io = Transport(
            exchange_id,
            name=self.name,
            credentials=credentials,
            sandbox=sandbox,
            base_url=base_url,
            timeout_ms=timeout_ms,
            read_retries=read_retries,
        )
        self._ex: Any = self._io.ex
        self._ids = OrderIds()  # from the orders seen

    @property
    def native_stops(self) -> bool:
        """Whether this adapter sends stop orders to the venue (which holds and triggers them): see
        :func:`native_stops`."""
        return native_stops(self.exchange_id)

    @property
    def exchange(self) -> Any:
        """The ccxt exchange object (for inspection: ``rateLimit``, ``urls``, ``isSandboxModeEnabled``)."""
        return self._ex

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the markets; with credentials, check them (one balance request)."""
        await self._io.read("load_markets", lambda: self._ex.load_markets())
        if self._io.secrets and self._ex.has.get("fetchBalance"):
            await self._io.read("fetch_balance", lambda: self._ex.fetch_balance())
        log.info(
            "venue.started",
            venue=self.name,
            exchange=self.exchange_id,
            markets=len(self._ex.markets or {}),
            sandbox=bool(self._ex.isSandboxModeEnabled),
        )

    async def close(self) -> None:
        """Close ccxt's session; safe twice."""
        await self._io.close()

    # -- the port ----------------------------------------------------------------------------------------

    async def submit(self, order: OrderSubmitted) -> VenueOrder:
        """Place ``order`` once (never retried here: after a timeout its outcome is unknown)."""
        await self._io.markets()
        symbol = order.instrument
        try:
            # ccxt's rounding sets the caller's decimal context to ROUND_HALF_UP: in a copy of it, here
            with decimal.localcontext():
                amount = self._ex.amount_to_precision(symbol, str(order.quantity))
                price = (
                    self._ex.price_to_precision(symbol, str(order.limit_price))
                    if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and order.limit_price is not None
                    else None
                )
                trigger = (
                    self._ex.price_to_precision(symbol, str(order.trigger_price))
                    if order.trigger_price is not None
                    else None
                )
            if order.order_type.is_stop and (trigger is None or not self.native_stops):
                raise VenueRejected(
                    "native_stops", f"{self.name}: this adapter sends no native stop orders to {self.exchange_id}"
                )
        except ccxt.BaseError as exc:
            err = self._io.error(exc)
        except VenueRejected as exc:
            err = exc
        else:
            params = self._create_params(order, amount)
            # a stop: ccxt's unified trigger price (binance spot: STOP_LOSS, or STOP_LOSS_LIMIT with a price)
            kind = _CCXT_TYPE[order.order_type]
            if trigger is not None:
                params["triggerPrice"] = trigger
            o = await self._io.call(
                "create_order",
                lambda: self._ex.create_order(symbol, kind, order.side.value, amount, price, params),
            )
            sent = {
                "symbol": symbol,
                "type": order.order_type.value,
                "side": order.side.value,
                "amount": amount,
                "price": price,
            }  # what the answer does not say (coinbase's has only the ids)
            return self._order(sent | {k: v for k, v in o.items() if v is not None}, symbol, order.client_order_id)
        count_error(self.name, err)
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
        await self._io.markets()
        if self.exchange_id in BY_VENUE_ID:
            venue_id = (
                venue_order_id
                or self._ids.venue_id(client_order_id)
                or (await self.fetch_order(instrument, client_order_id)).venue_order_id
            )
            self._ids.remember(client_order_id, venue_id)
            await self._io.call("cancel_order", lambda: self._ex.cancel_order(venue_id, instrument))
            return await self.fetch_order(instrument, client_order_id)  # the answer is not the order
        by_client_id = venue_order_id is None or self.exchange_id == "binance"  # binance looks up either
        params = {"clientOrderId": client_order_id} if by_client_id else {}
        o = await self._io.call("cancel_order", lambda: self._ex.cancel_order(venue_order_id or "", instrument, params))
        return self._order(o, instrument, client_order_id, prefer_asked=True)

    async def fetch_order(self, instrument: str, client_order_id: str) -> VenueOrder:
        await self._io.markets()
        o = await self._find(instrument, client_order_id)
        return self._order(o, instrument, client_order_id, prefer_asked=True)

    async def _find(self, instrument: str, coid: str) -> dict[str, Any]:
        """ccxt's order placed with our client order id ``coid``, looked up as the venue allows."""
        if self.exchange_id == "alpaca":
            return await self._io.read("fetch_order", lambda: self._alpaca_by_client_id(coid))
        if self.exchange_id != "coinbase":
            return await self._io.read(
                "fetch_order", lambda: self._ex.fetch_order("", instrument, {"clientOrderId": coid})
            )
        venue_id = self._ids.venue_id(coid)
        if venue_id:
            return await self._io.read("fetch_order", lambda: self._ex.fetch_order(venue_id, instrument))
        params: dict[str, Any] = {}
        for _ in range(ORDER_PAGES):
            page = await self._io.read(
                "fetch_orders",
                lambda p=dict(params): self._ex.fetch_orders(  # type: ignore[misc]
                    instrument, None, ORDER_PAGE_SIZE, p
                ),
            )
            found = next((o for o in page if parse.info(o).get("client_order_id") == coid), None)
            if found is not None:
                return dict(found)
            params["cursor"] = parse.cursor(page)
            if not params["cursor"]:
                break
        err = VenueOrderNotFound(f"{self.name}: no order with client order id {coid} on {instrument}")
        count_error(self.name, err)
        raise err

    async def _alpaca_by_client_id(self, coid: str) -> dict[str, Any]:
        raw = await self._ex.request(
            "v2/orders:by_client_order_id", ["trader", "private"], "GET", {"client_order_id": coid}
        )
        return dict(self._ex.parse_order(raw))

    async def open_orders(self, instruments: Sequence[str]) -> list[VenueOrder]:
        """Working orders on ``instruments`` (on every market when the sequence is empty)."""
        await self._io.markets()
        out: list[VenueOrder] = []
        symbols: list[str | None] = [*instruments] or [None]
        limit = OPEN_ORDERS_LIMIT.get(self.exchange_id)
        for symbol in symbols:
            orders = await self._io.read(
                "fetch_open_orders",
                lambda s=symbol: self._ex.fetch_open_orders(s, None, limit),  # type: ignore[misc]
            )
            out.extend(self._order(o, o.get("symbol") or symbol or "", None) for o in orders)
        return out

    async def trades(self, instrument: str, since_ns: int | None) -> list[VenueTrade]:
        """Our executions on ``instrument`` from ``since_ns`` (millisecond precision), oldest first, each once."""
        await self._io.markets()
        since = since_ns // 1_000_000 if since_ns is not None else None
        limit, paging = TRADE_PAGING.get(self.exchange_id, (None, "since"))
        symbol = None if paging == "token" else instrument
        params: dict[str, Any] = {"direction": "asc"} if paging == "token" else {}
        seen: dict[str, VenueTrade] = {}
        for _ in range(TRADE_PAGES):
            page = await self._io.read(
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
                params["cursor"] = parse.cursor(page)
                if not params["cursor"]:
                    break
            else:
                params["page_token"] = parse.info(page[-1]).get("id")
        return sorted(seen.values(), key=lambda t: (t.ts, t.trade_id))

    async def balances(self) -> dict[str, Decimal]:
        """Total (free + used) per currency, as the venue reports it."""
        await self._io.markets()
        b = await self._io.read("fetch_balance", lambda: self._ex.fetch_balance())
        return parse.balances(self.exchange_id, b, self._ex.safe_currency_code)

    # -- conversions, keeping the order ids seen ---------------------------------------------------------

    def _order(
        self, o: dict[str, Any], instrument: str, asked: str | None, *, prefer_asked: bool = False
    ) -> VenueOrder:
        vo = parse.order(o, instrument, asked, prefer_asked=prefer_asked)
        if vo.venue_order_id and vo.client_order_id:
            self._ids.remember(vo.client_order_id, vo.venue_order_id)
        return vo

    def _trade(self, t: dict[str, Any], instrument: str) -> VenueTrade:
        market: dict[str, Any] = (self._ex.markets or {}).get(t.get("symbol") or instrument) or {}
        return parse.trade(t, instrument, market, self._ids)
