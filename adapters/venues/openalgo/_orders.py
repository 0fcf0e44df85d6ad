"""What this process knows of the orders it placed on OpenAlgo, which has no client order ids: the id map, the
placements in flight, those whose answer was lost (in doubt), and how a doubt is resolved from the order book
(the rules are in the package's docstring)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

import structlog

from adapters.venues._order_ids import OrderIds
from adapters.venues.base import VenueOrderNotFound, VenueRejected, VenueUnavailable
from adapters.venues.openalgo._parsing import dec, rows, wire
from adapters.venues.openalgo._transport import Transport
from events import OrderSubmitted, OrderType, Side

log = structlog.get_logger(__name__)

Shape = tuple[str, str, str, str, str]  # symbol, action, pricetype, quantity, price: as sent, normalized


@dataclass(frozen=True, slots=True)
class Doubt:
    """The one placement of a shape whose answer was lost and that is not resolved yet."""

    order: OrderSubmitted
    since: float  # time.monotonic() when its (last) answer was lost


def shape(body: Mapping[str, Any]) -> Shape:
    """All a broker's order book shows to tell two of our orders apart: symbol, side, type, quantity, price."""
    market = str(body["pricetype"]).upper() == "MARKET"
    return (
        str(body["symbol"]),
        str(body["action"]).upper(),
        str(body["pricetype"]).upper(),
        wire(dec(body["quantity"])),
        "0" if market else wire(dec(body["price"])),
    )


class Placements:
    """The orders this adapter placed or was told of, and its placements in doubt, one per shape at most."""

    def __init__(self, io: Transport, *, exchange: str, product: str, strategy: str, settle_s: float) -> None:
        self._io = io
        self.exchange = exchange
        self.product = product
        self.strategy = strategy
        self.ids = OrderIds()
        self.submitted: dict[str, OrderSubmitted] = {}  # client_order_id -> the order (its type, for liquidity)
        self._inflight: dict[str, asyncio.Lock] = {}  # client_order_id -> one submit at a time
        self._settle_s = max(0.0, settle_s)
        self._gates: dict[Shape, asyncio.Lock] = {}  # shape -> one placement or look-up of a lost one at a time
        self._doubts: dict[Shape, Doubt] = {}  # shape -> its one placement whose answer was lost, unresolved

    # -- what is known -----------------------------------------------------------------------------------------

    def remember(self, client_order_id: str, venue_order_id: str) -> None:
        """Map a client order id to its order; a placement of it that was in doubt is resolved by it."""
        self.ids.remember(client_order_id, venue_order_id)
        for s in [s for s, d in self._doubts.items() if d.order.client_order_id == client_order_id]:
            del self._doubts[s]

    def placed(self, order: OrderSubmitted, orderid: str) -> None:
        self.submitted[order.client_order_id] = order
        self.remember(order.client_order_id, orderid)

    def inflight(self, client_order_id: str) -> asyncio.Lock:
        return self._inflight.setdefault(client_order_id, asyncio.Lock())

    def gate(self, of: Shape) -> asyncio.Lock:
        return self._gates.setdefault(of, asyncio.Lock())

    def doubt(self, of: Shape) -> Doubt | None:
        return self._doubts.get(of)

    def in_doubt(self, of: Shape, order: OrderSubmitted) -> None:
        self._doubts[of] = Doubt(order, time.monotonic())
        log.warning("openalgo.placement_in_doubt", venue=self._io.name, client_order_id=order.client_order_id)

    # -- what is sent ------------------------------------------------------------------------------------------

    def quantity(self, quantity: Decimal) -> Decimal:
        if self.exchange == "CRYPTO":
            return quantity
        whole = quantity.to_integral_value(rounding=ROUND_DOWN)
        if whole <= 0:
            raise VenueRejected("invalid_quantity", f"{quantity} rounds down to 0 shares on {self.exchange}")
        return whole

    def body(self, order: OrderSubmitted) -> dict[str, Any]:
        """``placeorder``'s body for ``order``."""
        body: dict[str, Any] = {
            "strategy": self.strategy,
            "exchange": self.exchange,
            "symbol": order.instrument,
            "action": "BUY" if order.side is Side.BUY else "SELL",
            "pricetype": "LIMIT" if order.order_type is OrderType.LIMIT else "MARKET",
            "product": self.product,
            "quantity": wire(self.quantity(order.quantity)),
            "price": "0",
            "trigger_price": "0",
            "disclosed_quantity": "0",
        }
        if order.order_type is OrderType.LIMIT:
            if order.limit_price is None or order.limit_price <= 0:
                raise VenueRejected("invalid_price", f"limit price {order.limit_price} is not above zero")
            body["price"] = wire(order.limit_price)
        return body

    # -- resolving doubts from the order book ------------------------------------------------------------------

    async def orderid(self, client_order_id: str) -> str:
        """The orderid of ``client_order_id``: known, or adopted for it from the book if its placement is in doubt."""
        orderid = self.ids.venue_id(client_order_id)
        if orderid is not None:
            return orderid
        of = next((s for s, d in self._doubts.items() if d.order.client_order_id == client_order_id), None)
        if of is not None:
            async with self.gate(of):
                orderid = self.ids.venue_id(client_order_id)
                doubt = self._doubts.get(of)
                if orderid is None and doubt is not None and doubt.order.client_order_id == client_order_id:
                    candidates = await self._candidates(doubt.order)
                    if len(candidates) == 1:
                        orderid = self._adopt(doubt.order, candidates[0])
                    else:
                        log.warning(
                            "openalgo.lost_submit_unresolved",
                            venue=self._io.name,
                            client_order_id=client_order_id,
                            candidates=len(candidates),
                        )
            if orderid is not None:
                return orderid
        raise VenueOrderNotFound(
            self._io.redact(
                f"{self._io.name}: no order known for client order id {client_order_id!r} "
                f"(OpenAlgo has no client order ids;"
                " the map lives in this process)"
            )
        )

    async def settle(self, of: Shape, doubt: Doubt, asking: OrderSubmitted) -> str | None:
        """Before ``asking`` is placed, resolve the shape's lost placement from the order book (under the gate).

        Returns the orderid when ``asking`` is the lost placement itself and its order is there (adopted: no second
        order); None when ``asking`` may be placed. Raises VenueUnavailable(maybe_sent=False) when ``asking`` is another
        client order id and the lost placement is neither found nor ``settle_s`` old: not sent.
        """
        name = self._io.name
        holder = doubt.order.client_order_id
        try:
            candidates = await self._candidates(doubt.order)
        except VenueUnavailable as exc:
            raise VenueUnavailable(
                self._io.redact(
                    f"{name}: {asking.client_order_id} not sent: the order book, read to resolve the lost "
                    f"placement "
                    f"{holder} of the same shape, did not answer: {exc}"
                ),
                maybe_sent=False,
            ) from None
        if len(candidates) == 1:  # the lost placement: taken by its own client order id, never by the newcomer
            orderid = self._adopt(doubt.order, candidates[0])
            return orderid if holder == asking.client_order_id else None
        if holder == asking.client_order_id:  # its caller found it absent and sends it again (same id)
            if candidates:
                log.warning("openalgo.resend_ambiguous", venue=name, client_order_id=holder, candidates=len(candidates))
            return None
        age = time.monotonic() - doubt.since
        if age < self._settle_s:
            log.warning(
                "openalgo.shape_in_doubt",
                venue=name,
                client_order_id=asking.client_order_id,
                in_doubt=holder,
                candidates=len(candidates),
                age=round(age, 3),
            )
            raise VenueUnavailable(
                self._io.redact(
                    f"{name}: {asking.client_order_id} not sent: {holder}, of the same symbol, side, type, "
                    f"quantity and price, was sent {age:.1f} s ago and its answer was lost; a second one now would "
                    "make the order "
                    "book ambiguous (retry later)"
                ),
                maybe_sent=False,
            )
        del self._doubts[of]  # none there after settle_s: absent; several: undecidable either way
        log.warning(
            "openalgo.lost_submit_given_up",
            venue=name,
            client_order_id=holder,
            candidates=len(candidates),
            age=round(age, 3),
        )
        return None

    async def _candidates(self, order: OrderSubmitted) -> list[str]:
        """The orderids of the book's unmapped orders of ``order``'s shape, on this adapter's exchange."""
        answer = await self._io.call("orderbook", {})
        wanted = shape(self.body(order))
        found: list[str] = []
        for r in rows(answer, "orders"):
            if (
                self.ids.knows_venue_id(str(r.get("orderid")))
                or str(r.get("exchange") or self.exchange).upper() != self.exchange
            ):
                continue
            row = {
                "symbol": r.get("symbol"),
                "action": r.get("action", ""),
                "quantity": r.get("quantity"),
                "pricetype": r.get("pricetype") or r.get("price_type") or "",
                "price": r.get("price"),
            }
            if shape(row) == wanted:
                found.append(str(r.get("orderid")))
        return found

    def _adopt(self, order: OrderSubmitted, orderid: str) -> str:
        """Map a lost placement's client order id to the order found for it (ends its doubt)."""
        self.placed(order, orderid)
        log.info(
            "openalgo.lost_submit_adopted", venue=self._io.name, client_order_id=order.client_order_id, orderid=orderid
        )
        return orderid
