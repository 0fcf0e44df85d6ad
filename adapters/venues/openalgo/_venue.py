"""``OpenAlgoVenue``: the port's calls, and OpenAlgo's extras (modify, cancel-all, the books, funds)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog

from adapters.venues.base import (
    Credentials,
    VenueError,
    VenueLifecycle,
    VenueOrder,
    VenueOrderStatus,
    VenueRejected,
    VenueTrade,
    VenueUnavailable,
)
from adapters.venues.openalgo import _parsing as parse
from adapters.venues.openalgo._orders import Placements, Shape, shape
from adapters.venues.openalgo._parsing import CURRENCY
from adapters.venues.openalgo._transport import Transport
from events import OrderSubmitted, OrderType

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CancelAllResult:
    """What ``cancelallorder`` did: the order ids cancelled, and the ones it could not cancel with the reason."""

    cancelled: list[str]
    failed: dict[str, str]
    raw: Any = field(default=None, compare=False)


class OpenAlgoVenue(VenueLifecycle):
    """A :class:`~adapters.venues.base.LiveVenue` over an OpenAlgo server (see the package's docstring)."""

    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials,
        exchange: str = "NSE",
        product: str = "MIS",
        strategy: str = "engine",
        timeout_s: float = 10,
        read_retries: int = 3,
        name: str = "openalgo",
        backoff_s: float = 0.2,
        settle_s: float = 5.0,
    ) -> None:
        self.exchange = exchange.upper()
        self.product = product.upper()
        self.strategy = strategy
        self.name = name
        self._io = Transport(
            base_url,
            name=name,
            credentials=credentials,
            timeout_s=timeout_s,
            read_retries=read_retries,
            backoff_s=backoff_s,
        )
        self._orders = Placements(
            self._io, exchange=self.exchange, product=self.product, strategy=strategy, settle_s=settle_s
        )

    def __repr__(self) -> str:
        return f"OpenAlgoVenue(name={self.name!r}, url={self._io.root!r}, exchange={self.exchange!r})"

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP session and check the API key with a ``funds`` call (a refused key: VenueAuthError)."""
        self._io.open()
        try:
            await self._io.call("funds", {})
        except VenueError:
            await self.close()
            raise
        log.info("openalgo.started", venue=self.name, url=self._io.root, exchange=self.exchange, product=self.product)

    async def close(self) -> None:
        """Close the HTTP session; safe twice."""
        await self._io.close()

    def remember(self, client_order_id: str, venue_order_id: str) -> None:
        """Restore one ``client_order_id -> orderid`` pair (e.g. from the log's ``OrderAccepted`` after a restart).

        A placement of that client order id that was in doubt is resolved by it: its shape is free again.
        """
        self._orders.remember(client_order_id, venue_order_id)

    @property
    def known_orders(self) -> dict[str, str]:
        """The ``client_order_id -> orderid`` map this process knows."""
        return self._orders.ids.by_client_id()

    # -- the LiveVenue port ----------------------------------------------------------------------------------------

    async def submit(self, order: OrderSubmitted) -> VenueOrder:
        coid = order.client_order_id
        ids = self._orders.ids
        async with self._orders.inflight(coid):
            known = ids.venue_id(coid)
            if known is not None:  # the same client order id again: never a second order
                return await self._status_of(known)
            body = self._orders.body(order)
            of = shape(body)
            gate = self._orders.gate(of)
            if gate.locked():
                log.info("openalgo.shape_busy", venue=self.name, client_order_id=coid, symbol=order.instrument)
            async with gate:  # held over at most one order-book read and one placement: the wait is bounded
                known = ids.venue_id(coid)  # adopted while this waited
                doubt = self._orders.doubt(of)
                if known is None and doubt is not None:
                    known = await self._orders.settle(of, doubt, order)
                if known is None:
                    return await self._place(order, body, of)
            return await self._status_of(known)

    async def _place(self, order: OrderSubmitted, body: Mapping[str, Any], of: Shape) -> VenueOrder:
        """Send ``placeorder`` (under the shape's gate); a lost answer leaves the shape in doubt."""
        coid = order.client_order_id
        try:
            answer = await self._io.call("placeorder", body, retries=0)
        except VenueUnavailable as exc:
            if exc.maybe_sent:
                self._orders.in_doubt(of, order)
            raise
        except asyncio.CancelledError:  # cancelled in flight: the request may have reached the server
            self._orders.in_doubt(of, order)
            raise
        orderid = str(answer.get("orderid") or "")
        if not orderid:
            self._orders.in_doubt(of, order)
            raise VenueUnavailable(
                self._io.redact(f"{self.name}: placeorder answered success without an orderid"), raw=answer
            )
        self._orders.placed(order, orderid)
        log.info("openalgo.placed", venue=self.name, client_order_id=coid, orderid=orderid)
        return VenueOrder(
            instrument=order.instrument,
            client_order_id=coid,
            venue_order_id=orderid,
            side=order.side,
            order_type=order.order_type,
            quantity=parse.dec(body["quantity"]),
            limit_price=order.limit_price if order.order_type is OrderType.LIMIT else None,
            status=VenueOrderStatus.OPEN,
            filled=Decimal(0),
            ts=time.time_ns(),
            raw=answer,
        )

    async def cancel(self, instrument: str, client_order_id: str, venue_order_id: str | None) -> VenueOrder:
        orderid = venue_order_id or await self._orders.orderid(client_order_id)
        if venue_order_id is not None and client_order_id and not self._orders.ids.knows_client_id(client_order_id):
            self.remember(client_order_id, venue_order_id)
        try:
            await self._io.call("cancelorder", {"strategy": self.strategy, "orderid": orderid}, retries=-1)
        except VenueRejected as exc:
            if exc.rule != "invalid_state":  # "Cannot cancel order in complete status": it ended meanwhile
                raise
        return await self._status_of(orderid)

    async def fetch_order(self, instrument: str, client_order_id: str) -> VenueOrder:
        return await self._status_of(await self._orders.orderid(client_order_id))

    async def open_orders(self, instruments: Sequence[str]) -> list[VenueOrder]:
        wanted = set(instruments)
        orders = await self.order_history()
        return [o for o in orders if o.status is VenueOrderStatus.OPEN and (not wanted or o.instrument in wanted)]

    async def trades(self, instrument: str, since_ns: int | None) -> list[VenueTrade]:
        found = [t for t in await self._tradebook() if t.instrument == instrument]
        if since_ns is not None:
            found = [t for t in found if t.ts >= since_ns - 1_000_000_000]  # the venue's times are to the second
        return sorted(found, key=lambda t: (t.ts, t.trade_id))

    async def balances(self) -> dict[str, Decimal]:
        f = await self.funds()
        return {CURRENCY: f.get("availablecash", Decimal(0)) + f.get("utiliseddebits", Decimal(0))}

    # -- the OpenAlgo extras ---------------------------------------------------------------------------------------

    async def modify(self, order_id: str, quantity: Decimal, price: Decimal) -> VenueOrder:
        """Change a working order's quantity and price (``modifyorder``); the order as it stands after."""
        current = await self._io.call("orderstatus", {"strategy": self.strategy, "orderid": order_id})
        data = current.get("data") or {}
        body = {
            "strategy": self.strategy,
            "orderid": order_id,
            "exchange": data.get("exchange") or self.exchange,
            "symbol": data.get("symbol"),
            "action": data.get("action"),
            "product": data.get("product") or self.product,
            "pricetype": data.get("pricetype") or data.get("price_type") or "LIMIT",
            "quantity": parse.wire(self._orders.quantity(quantity)),
            "price": parse.wire(price),
            "trigger_price": "0",
            "disclosed_quantity": "0",
        }
        await self._io.call("modifyorder", body, retries=-1)
        log.info("openalgo.modified", venue=self.name, orderid=order_id, quantity=str(quantity), price=str(price))
        return await self._status_of(order_id)

    async def cancel_all(self) -> CancelAllResult:
        """Cancel every open order of the account (``cancelallorder``: OpenAlgo does not scope it to a strategy)."""
        answer = await self._io.call("cancelallorder", {"strategy": self.strategy}, retries=-1)
        failed: dict[str, str] = {}
        for item in answer.get("failed_cancellations") or []:
            if isinstance(item, Mapping):
                failed[str(item.get("orderid"))] = str(item.get("reason") or item.get("message") or "")
        cancelled = [str(o) for o in answer.get("canceled_orders") or answer.get("cancelled_orders") or []]
        return CancelAllResult(cancelled=cancelled, failed=failed, raw=answer)

    async def order_history(self) -> list[VenueOrder]:
        """Every order of the trading day (``orderbook``), newest first as the venue lists them."""
        book = parse.rows(await self._io.call("orderbook", {}), "orders")
        fills = await self._fills_by_order() if any(parse.needs_fills(r) for r in book) else {}
        return [parse.order(r, fills, self._orders.ids) for r in book]

    async def funds(self) -> dict[str, Decimal]:
        """The account's funds (``funds``): availablecash, collateral, m2mrealized, m2munrealized, utiliseddebits."""
        return parse.funds(await self._io.call("funds", {}))

    # -- reads -----------------------------------------------------------------------------------------------------

    async def _status_of(self, orderid: str) -> VenueOrder:
        answer = await self._io.call("orderstatus", {"strategy": self.strategy, "orderid": orderid})
        data = answer.get("data")
        if not isinstance(data, Mapping):
            raise VenueUnavailable(self._io.redact(f"{self.name}: orderstatus of {orderid} has no data"), raw=answer)
        row = dict(data)
        row.setdefault("orderid", orderid)
        fills = await self._fills_by_order() if parse.needs_fills(row) else {}
        return parse.order(row, fills, self._orders.ids, raw=answer)

    async def _tradebook(self) -> list[VenueTrade]:
        book = parse.rows(await self._io.call("tradebook", {}), "trades")
        return parse.trades(book, self.exchange, self._orders.ids, self._orders.submitted)

    async def _fills_by_order(self) -> dict[str, Decimal]:
        fills: dict[str, Decimal] = {}
        for t in await self._tradebook():
            fills[t.venue_order_id] = fills.get(t.venue_order_id, Decimal(0)) + t.quantity
        return fills
