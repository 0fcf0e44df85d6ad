"""The OpenAlgo venue: orders to an Indian broker through an OpenAlgo server's REST API (``/api/v1/...``).

OpenAlgo (github.com/marketcalls/openalgo) is a broker bridge: every call is ``POST /api/v1/<endpoint>`` with a JSON
body carrying ``apikey``; it answers ``{"status": "success", ...}`` or ``{"status": "error", "message": ...}`` with
an HTTP status (400 invalid request, 403 invalid apikey, 404 order not found, 429 rate limit, 500 internal).

**Instruments** are plain OpenAlgo symbols (``"SBIN"``, ``"RELIANCE"``, ``"NIFTY30JAN25FUT"``); the exchange
(``NSE``, ``BSE``, ``NFO``, ...) and the product (``MIS`` intraday, ``CNC`` delivery, ``NRML`` F&O) come from the
constructor, so one adapter trades one exchange and one product. Money is INR. Quantities are whole numbers on every
exchange but ``CRYPTO`` (OpenAlgo refuses fractions): a fractional quantity is rounded down, and refused if that is 0.

**Client order ids.** OpenAlgo's ``placeorder`` has no client order id field, and a broker's order book does not
echo any tag back. Its ``strategy`` field is required but is only a label for OpenAlgo's own logs and per-strategy
views; we send the configured ``strategy`` (default ``"engine"``) unchanged so those views stay usable. The adapter
therefore keeps the map ``client_order_id -> orderid`` **in memory**. Within one process, and but for the limits listed
at the end, a client order id gets at most one order, and a lost answer is matched only to its own order:

- ``submit`` twice with the same client order id places one order: the second call returns the first order.
- **One unresolved placement per shape.** The shape is (symbol, side, type, quantity, price) as sent. While a
  placement of a shape is **in flight**, a ``submit`` of another client order id with the same shape waits for its
  answer (a per-shape asyncio lock, held only over one placement and at most one order-book read, so the wait is
  bounded by the HTTP timeouts). A ``submit`` whose answer is lost (timeout, dropped connection, 5xx, a success
  without orderid, or the call cancelled in flight) raises VenueUnavailable(maybe_sent=True) and leaves its shape
  **in doubt**. So at any moment the order book holds at most one unmapped order of a shape that this process placed,
  and ``fetch_order`` of the lost client order id adopts the one unmapped order of that shape (on this exchange) it
  finds there.
- A doubt ends when (1) ``fetch_order`` of that client order id adopts its order; (2) that client order id is
  submitted again (the execution service does so after ``confirm_timeout`` of not finding it): the order book is read
  first and a matching order adopted instead of placing a second, otherwise it is placed again and its answer ends
  the doubt (a resend that is refused, e.g. HTTP 429, leaves the first placement in doubt); (3) :meth:`remember`
  maps it; (4) a ``submit`` of another client order id of the shape reads the order book: one matching unmapped order
  is adopted **by the lost client order id** and the newcomer is placed; none or several, less than ``settle_s``
  (default 5 s) after the loss, and the newcomer is **not sent**: VenueUnavailable(maybe_sent=False), which the
  execution service retries after a backoff; ``settle_s`` or more after it, the lost placement is given up (none:
  absent; several: undecidable) and the newcomer placed. A given-up client order id is not adopted later:
  ``fetch_order`` raises VenueOrderNotFound.
- Why deferred and not waited for: a doubt ends only by its caller's next step (or by time), and the execution service
  handles one command at a time, so a ``submit`` waiting for it would wait for its own caller. With the default
  settings the engine is never deferred at all: it gives up on a lost order only after looking for it for about
  ``confirm_timeout`` (10 s), beyond ``settle_s``; the next order of the shape then reads the book once before it is
  sent. Deferring is for concurrent callers of the adapter (and an ``execution.confirm_timeout`` below ``settle_s``).
- **After a restart** the map and the doubts are empty: ``fetch_order`` of an order placed before raises
  VenueOrderNotFound unless the caller hands the pair back with :meth:`OpenAlgoVenue.remember` (the execution service
  does, from the ``OrderAccepted`` events of its ``lookback``; remembered orders are never adopted for a lost one).
  A lost placement of the previous process is not guessed: the execution service, chasing the commands at or after
  its committed offset, finds no order for it and sends it again. ``cancel`` works across restarts when given the
  venue order id.

What remains, the honest limit of an API without client order ids: (a) a crash of the process between the broker
accepting an order and the log recording its ``OrderAccepted``: after the restart a second identical order is
placed, and the first stays unmapped (a later lost answer of that shape then finds two candidates and is not adopted,
or, if its own never arrived, adopts the orphan); (b) orders of the same shape placed on the account by anyone else
(another engine or process, the broker's app, OpenAlgo's UI, another strategy label: the order book does not show the
label): they are indistinguishable from ours, so several candidates are not adopted and the order may be resent, and
one stranger's order can be adopted for a lost one of ours that never arrived; (c) a lost placement that reaches the
order book only after its caller resent it (two orders for one client order id) or gave up on it (an order the log
says was rejected: adopted by its own client order id if it is there, alone, when the next order of its shape is sent;
after that, a stranger as in (b)); (d) the per-shape gate is per process: two processes (or two engines) on one account
are not serialized with each other.

**Trades** come from the trade book, which has no trade id and no fee: the id is derived from
(orderid, time, quantity, price) plus a counter for identical rows, so it is stable across polls; the fee is 0.
Times are IST (``Asia/Kolkata``, UTC+05:30) to the second; ``since_ns`` is applied with one second of slack.

**Filled quantity**: the order book has none in the broker-neutral format; an order ``complete`` is filled in full,
otherwise the adapter uses ``filled_quantity`` when the server sends it (analyzer mode does) or sums the trade book.

**Balances**: ``{"INR": availablecash + utiliseddebits}`` (free + used); :meth:`OpenAlgoVenue.funds` has all fields.

Reads (funds, orderstatus, orderbook, tradebook) are retried with bounded exponential backoff on VenueUnavailable;
cancel / modify / cancel-all only when the request was certainly refused before processing (429); ``placeorder``
never. Every HTTP attempt is counted in the ``engine_exchange_*`` metrics. The API key goes only into request
bodies: every message raised or logged passes through :func:`redact`, and venue answers are scrubbed too.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

import aiohttp
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

IST = timezone(timedelta(hours=5, minutes=30), "IST")
CURRENCY = "INR"
_READS = frozenset({"funds", "orderstatus", "orderbook", "tradebook", "positionbook"})
_TIME_FORMATS = ("%d-%b-%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d-%m-%Y %H:%M:%S", "%Y-%m-%dT%H:%M:%S")
_STATUS = {
    "complete": VenueOrderStatus.FILLED,
    "completed": VenueOrderStatus.FILLED,
    "filled": VenueOrderStatus.FILLED,
    "executed": VenueOrderStatus.FILLED,
    "traded": VenueOrderStatus.FILLED,
    "cancelled": VenueOrderStatus.CANCELLED,
    "canceled": VenueOrderStatus.CANCELLED,
    "rejected": VenueOrderStatus.REJECTED,
    "expired": VenueOrderStatus.EXPIRED,
    "lapsed": VenueOrderStatus.EXPIRED,
}  # anything else ("open", "pending", "trigger pending", "validation pending", ...) is working: OPEN


_Shape = tuple[str, str, str, str, str]  # symbol, action, pricetype, quantity, price: as sent, normalized


@dataclass(frozen=True, slots=True)
class _Doubt:
    """The one placement of a shape whose answer was lost and that is not resolved yet."""

    order: OrderSubmitted
    since: float  # time.monotonic() when its (last) answer was lost


@dataclass(frozen=True, slots=True)
class CancelAllResult:
    """What ``cancelallorder`` did: the order ids cancelled, and the ones it could not cancel with the reason."""

    cancelled: list[str]
    failed: dict[str, str]
    raw: Any = field(default=None, compare=False)


def _dec(value: Any) -> Decimal:
    """A number from the venue (str, int or Decimal: JSON is parsed with ``parse_float=Decimal``), 0 if absent."""
    if value is None or value == "" or isinstance(value, bool):
        return Decimal(0)
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return Decimal(0)


def _wire(value: Decimal) -> str:
    """A Decimal as OpenAlgo expects it on the wire: a plain string, no exponent."""
    return format(value.normalize(), "f")


def _parse_ts(text: Any, now_ns: int) -> int | None:
    """An OpenAlgo timestamp (IST, to the second) as ns since the epoch; ``None`` when it cannot be read."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    for fmt in _TIME_FORMATS:
        try:
            return int(datetime.strptime(text, fmt).replace(tzinfo=IST).timestamp()) * 1_000_000_000
        except ValueError:
            continue
    try:  # time of day only (the trade book of many brokers): today in IST, or yesterday if that is in the future
        t = datetime.strptime(text, "%H:%M:%S").replace(tzinfo=IST).timetz()
    except ValueError:
        return None
    now = datetime.fromtimestamp(now_ns / 1e9, tz=IST)
    at = datetime.combine(now.date(), t, tzinfo=IST)
    if at > now + timedelta(hours=1):
        at -= timedelta(days=1)
    return int(at.timestamp()) * 1_000_000_000


def _status(text: Any) -> VenueOrderStatus:
    return _STATUS.get(str(text or "").strip().lower(), VenueOrderStatus.OPEN)


def _rule(message: str) -> str:
    """One word for why the venue refused, from its message."""
    m = message.lower()
    for words, rule in (
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
            return rule
    return "rejected"


class OpenAlgoVenue:
    """A :class:`~adapters.venues.base.LiveVenue` over an OpenAlgo server (see the module docstring)."""

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
        root = base_url.rstrip("/")
        if root.endswith("/api/v1"):
            root = root[: -len("/api/v1")]
        self._root = root
        self._key = credentials.api_key
        self._secrets = credentials.values
        self.exchange = exchange.upper()
        self.product = product.upper()
        self.strategy = strategy
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._read_retries = max(0, read_retries)
        self._backoff_s = backoff_s
        self.name = name
        self._session: aiohttp.ClientSession | None = None
        self._by_client: dict[str, str] = {}  # client_order_id -> orderid
        self._by_venue: dict[str, str] = {}  # orderid -> client_order_id
        self._submitted: dict[str, OrderSubmitted] = {}  # client_order_id -> the order (its type, for liquidity)
        self._inflight: dict[str, asyncio.Lock] = {}  # client_order_id -> one submit at a time
        self._settle_s = max(0.0, settle_s)
        self._gates: dict[_Shape, asyncio.Lock] = {}  # shape -> one placement or look-up of a lost one at a time
        self._doubts: dict[_Shape, _Doubt] = {}  # shape -> its one placement whose answer was lost, unresolved

    def __repr__(self) -> str:
        return f"OpenAlgoVenue(name={self.name!r}, url={self._root!r}, exchange={self.exchange!r})"

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP session and check the API key with a ``funds`` call (a refused key: VenueAuthError)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            await self._call("funds", {})
        except VenueError:
            await self.close()
            raise
        log.info("openalgo.started", venue=self.name, url=self._root, exchange=self.exchange, product=self.product)

    async def close(self) -> None:
        """Close the HTTP session; safe twice."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def __aenter__(self) -> OpenAlgoVenue:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def remember(self, client_order_id: str, venue_order_id: str) -> None:
        """Restore one ``client_order_id -> orderid`` pair (e.g. from the log's ``OrderAccepted`` after a restart).

        A placement of that client order id that was in doubt is resolved by it: its shape is free again.
        """
        self._by_client[client_order_id] = venue_order_id
        self._by_venue[venue_order_id] = client_order_id
        for shape in [s for s, d in self._doubts.items() if d.order.client_order_id == client_order_id]:
            del self._doubts[shape]

    @property
    def known_orders(self) -> dict[str, str]:
        """The ``client_order_id -> orderid`` map this process knows."""
        return dict(self._by_client)

    # -- the LiveVenue port ----------------------------------------------------------------------------------------

    async def submit(self, order: OrderSubmitted) -> VenueOrder:
        coid = order.client_order_id
        async with self._inflight.setdefault(coid, asyncio.Lock()):
            known = self._by_client.get(coid)
            if known is not None:  # the same client order id again: never a second order
                return await self._status_of(known)
            body = self._order_body(order)
            shape = self._shape(body)
            gate = self._gates.setdefault(shape, asyncio.Lock())
            if gate.locked():
                log.info("openalgo.shape_busy", venue=self.name, client_order_id=coid, symbol=order.instrument)
            async with gate:  # held over at most one order-book read and one placement: the wait is bounded
                known = self._by_client.get(coid)  # adopted while this waited
                doubt = self._doubts.get(shape)
                if known is None and doubt is not None:
                    known = await self._settle(shape, doubt, order)
                if known is None:
                    return await self._place(order, body, shape)
            return await self._status_of(known)

    async def _place(self, order: OrderSubmitted, body: Mapping[str, Any], shape: _Shape) -> VenueOrder:
        """Send ``placeorder`` (under the shape's gate); a lost answer leaves the shape in doubt."""
        coid = order.client_order_id
        try:
            answer = await self._call("placeorder", body, retries=0)
        except VenueUnavailable as exc:
            if exc.maybe_sent:
                self._in_doubt(shape, order)
            raise
        except asyncio.CancelledError:  # cancelled in flight: the request may have reached the server
            self._in_doubt(shape, order)
            raise
        orderid = str(answer.get("orderid") or "")
        if not orderid:
            self._in_doubt(shape, order)
            raise VenueUnavailable(
                self._redact(f"{self.name}: placeorder answered success without an orderid"), raw=answer
            )
        self._submitted[coid] = order
        self.remember(coid, orderid)
        log.info("openalgo.placed", venue=self.name, client_order_id=coid, orderid=orderid)
        return VenueOrder(
            instrument=order.instrument,
            client_order_id=coid,
            venue_order_id=orderid,
            side=order.side,
            order_type=order.order_type,
            quantity=_dec(body["quantity"]),
            limit_price=order.limit_price if order.order_type is OrderType.LIMIT else None,
            status=VenueOrderStatus.OPEN,
            filled=Decimal(0),
            ts=time.time_ns(),
            raw=answer,
        )

    async def cancel(self, instrument: str, client_order_id: str, venue_order_id: str | None) -> VenueOrder:
        orderid = venue_order_id or await self._orderid(client_order_id)
        if venue_order_id is not None and client_order_id and client_order_id not in self._by_client:
            self.remember(client_order_id, venue_order_id)
        try:
            await self._call("cancelorder", {"strategy": self.strategy, "orderid": orderid}, retries=-1)
        except VenueRejected as exc:
            if exc.rule != "invalid_state":  # "Cannot cancel order in complete status": it ended meanwhile
                raise
        return await self._status_of(orderid)

    async def fetch_order(self, instrument: str, client_order_id: str) -> VenueOrder:
        return await self._status_of(await self._orderid(client_order_id))

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
        current = await self._call("orderstatus", {"strategy": self.strategy, "orderid": order_id})
        data = current.get("data") or {}
        body = {
            "strategy": self.strategy,
            "orderid": order_id,
            "exchange": data.get("exchange") or self.exchange,
            "symbol": data.get("symbol"),
            "action": data.get("action"),
            "product": data.get("product") or self.product,
            "pricetype": data.get("pricetype") or data.get("price_type") or "LIMIT",
            "quantity": _wire(self._quantity(quantity)),
            "price": _wire(price),
            "trigger_price": "0",
            "disclosed_quantity": "0",
        }
        await self._call("modifyorder", body, retries=-1)
        log.info("openalgo.modified", venue=self.name, orderid=order_id, quantity=str(quantity), price=str(price))
        return await self._status_of(order_id)

    async def cancel_all(self) -> CancelAllResult:
        """Cancel every open order of the account (``cancelallorder``: OpenAlgo does not scope it to a strategy)."""
        answer = await self._call("cancelallorder", {"strategy": self.strategy}, retries=-1)
        failed: dict[str, str] = {}
        for item in answer.get("failed_cancellations") or []:
            if isinstance(item, Mapping):
                failed[str(item.get("orderid"))] = str(item.get("reason") or item.get("message") or "")
        cancelled = [str(o) for o in answer.get("canceled_orders") or answer.get("cancelled_orders") or []]
        return CancelAllResult(cancelled=cancelled, failed=failed, raw=answer)

    async def order_history(self) -> list[VenueOrder]:
        """Every order of the trading day (``orderbook``), newest first as the venue lists them."""
        answer = await self._call("orderbook", {})
        data = answer.get("data") or {}
        rows = data.get("orders") if isinstance(data, Mapping) else data
        rows = [r for r in rows or [] if isinstance(r, Mapping)]
        fills = await self._fills_by_order() if any(self._needs_fills(r) for r in rows) else {}
        return [self._order(r, fills) for r in rows]

    async def funds(self) -> dict[str, Decimal]:
        """The account's funds (``funds``): availablecash, collateral, m2mrealized, m2munrealized, utiliseddebits."""
        answer = await self._call("funds", {})
        data = answer.get("data") or {}
        out: dict[str, Decimal] = {}
        for k, v in data.items() if isinstance(data, Mapping) else ():
            if isinstance(v, (str, int, Decimal)) and not isinstance(v, bool):
                try:
                    out[str(k)] = Decimal(str(v).strip())
                except InvalidOperation:
                    continue
        return out

    # -- orders ----------------------------------------------------------------------------------------------------

    def _quantity(self, quantity: Decimal) -> Decimal:
        if self.exchange == "CRYPTO":
            return quantity
        whole = quantity.to_integral_value(rounding=ROUND_DOWN)
        if whole <= 0:
            raise VenueRejected("invalid_quantity", f"{quantity} rounds down to 0 shares on {self.exchange}")
        return whole

    def _order_body(self, order: OrderSubmitted) -> dict[str, Any]:
        body: dict[str, Any] = {
            "strategy": self.strategy,
            "exchange": self.exchange,
            "symbol": order.instrument,
            "action": "BUY" if order.side is Side.BUY else "SELL",
            "pricetype": "LIMIT" if order.order_type is OrderType.LIMIT else "MARKET",
            "product": self.product,
            "quantity": _wire(self._quantity(order.quantity)),
            "price": "0",
            "trigger_price": "0",
            "disclosed_quantity": "0",
        }
        if order.order_type is OrderType.LIMIT:
            if order.limit_price is None or order.limit_price <= 0:
                raise VenueRejected("invalid_price", f"limit price {order.limit_price} is not above zero")
            body["price"] = _wire(order.limit_price)
        return body

    @staticmethod
    def _shape(body: Mapping[str, Any]) -> _Shape:
        """All a broker's order book shows to tell two of our orders apart: symbol, side, type, quantity, price."""
        market = str(body["pricetype"]).upper() == "MARKET"
        return (
            str(body["symbol"]),
            str(body["action"]).upper(),
            str(body["pricetype"]).upper(),
            _wire(_dec(body["quantity"])),
            "0" if market else _wire(_dec(body["price"])),
        )

    def _in_doubt(self, shape: _Shape, order: OrderSubmitted) -> None:
        self._doubts[shape] = _Doubt(order, time.monotonic())
        log.warning("openalgo.placement_in_doubt", venue=self.name, client_order_id=order.client_order_id)

    async def _orderid(self, client_order_id: str) -> str:
        orderid = self._by_client.get(client_order_id)
        if orderid is not None:
            return orderid
        shape = next((s for s, d in self._doubts.items() if d.order.client_order_id == client_order_id), None)
        if shape is not None:
            async with self._gates.setdefault(shape, asyncio.Lock()):
                orderid = self._by_client.get(client_order_id)
                doubt = self._doubts.get(shape)
                if orderid is None and doubt is not None and doubt.order.client_order_id == client_order_id:
                    candidates = await self._candidates(doubt.order)
                    if len(candidates) == 1:
                        orderid = self._adopt(doubt.order, candidates[0])
                    else:
                        log.warning(
                            "openalgo.lost_submit_unresolved",
                            venue=self.name,
                            client_order_id=client_order_id,
                            candidates=len(candidates),
                        )
            if orderid is not None:
                return orderid
        raise VenueOrderNotFound(
            self._redact(
                f"{self.name}: no order known for client order id {client_order_id!r} "
                f"(OpenAlgo has no client order ids;"
                " the map lives in this process)"
            )
        )

    async def _settle(self, shape: _Shape, doubt: _Doubt, asking: OrderSubmitted) -> str | None:
        """Before ``asking`` is placed, resolve the shape's lost placement from the order book (under the gate).

        Returns the orderid when ``asking`` is the lost placement itself and its order is there (adopted: no second
        order); None when ``asking`` may be placed. Raises VenueUnavailable(maybe_sent=False) when ``asking`` is another
        client order id and the lost placement is neither found nor ``settle_s`` old: not sent.
        """
        holder = doubt.order.client_order_id
        try:
            candidates = await self._candidates(doubt.order)
        except VenueUnavailable as exc:
            raise VenueUnavailable(
                self._redact(
                    f"{self.name}: {asking.client_order_id} not sent: the order book, read to resolve the lost "
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
                log.warning(
                    "openalgo.resend_ambiguous", venue=self.name, client_order_id=holder, candidates=len(candidates)
                )
            return None
        age = time.monotonic() - doubt.since
        if age < self._settle_s:
            log.warning(
                "openalgo.shape_in_doubt",
                venue=self.name,
                client_order_id=asking.client_order_id,
                in_doubt=holder,
                candidates=len(candidates),
                age=round(age, 3),
            )
            raise VenueUnavailable(
                self._redact(
                    f"{self.name}: {asking.client_order_id} not sent: {holder}, of the same symbol, side, type, "
                    f"quantity and price, was sent {age:.1f} s ago and its answer was lost; a second one now would "
                    "make the order "
                    "book ambiguous (retry later)"
                ),
                maybe_sent=False,
            )
        del self._doubts[shape]  # none there after settle_s: absent; several: undecidable either way
        log.warning(
            "openalgo.lost_submit_given_up",
            venue=self.name,
            client_order_id=holder,
            candidates=len(candidates),
            age=round(age, 3),
        )
        return None

    async def _candidates(self, order: OrderSubmitted) -> list[str]:
        """The orderids of the book's unmapped orders of ``order``'s shape, on this adapter's exchange."""
        answer = await self._call("orderbook", {})
        data = answer.get("data") or {}
        rows = data.get("orders") if isinstance(data, Mapping) else data
        shape = self._shape(self._order_body(order))
        found: list[str] = []
        for r in rows or []:
            if (
                not isinstance(r, Mapping)
                or str(r.get("orderid")) in self._by_venue
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
            if self._shape(row) == shape:
                found.append(str(r.get("orderid")))
        return found

    def _adopt(self, order: OrderSubmitted, orderid: str) -> str:
        """Map a lost placement's client order id to the order found for it (ends its doubt)."""
        self._submitted[order.client_order_id] = order
        self.remember(order.client_order_id, orderid)
        log.info(
            "openalgo.lost_submit_adopted", venue=self.name, client_order_id=order.client_order_id, orderid=orderid
        )
        return orderid

    async def _status_of(self, orderid: str) -> VenueOrder:
        answer = await self._call("orderstatus", {"strategy": self.strategy, "orderid": orderid})
        data = answer.get("data")
        if not isinstance(data, Mapping):
            raise VenueUnavailable(self._redact(f"{self.name}: orderstatus of {orderid} has no data"), raw=answer)
        row = dict(data)
        row.setdefault("orderid", orderid)
        fills = await self._fills_by_order() if self._needs_fills(row) else {}
        return self._order(row, fills, raw=answer)

    @staticmethod
    def _needs_fills(row: Mapping[str, Any]) -> bool:
        status = _status(row.get("order_status"))
        return "filled_quantity" not in row and status in (
            VenueOrderStatus.OPEN,
            VenueOrderStatus.CANCELLED,
            VenueOrderStatus.EXPIRED,
        )

    def _order(self, row: Mapping[str, Any], fills: Mapping[str, Decimal], raw: Any = None) -> VenueOrder:
        orderid = str(row.get("orderid") or "")
        status = _status(row.get("order_status"))
        quantity = _dec(row.get("quantity"))
        if status is VenueOrderStatus.FILLED:
            filled = quantity
        elif "filled_quantity" in row:
            filled = _dec(row.get("filled_quantity"))
        elif status is VenueOrderStatus.REJECTED:
            filled = Decimal(0)
        else:
            filled = fills.get(orderid, Decimal(0))
        pricetype = str(row.get("pricetype") or row.get("price_type") or "").upper()
        order_type = OrderType.LIMIT if pricetype in ("LIMIT", "SL") else OrderType.MARKET
        now = time.time_ns()
        return VenueOrder(
            instrument=str(row.get("symbol") or ""),
            client_order_id=self._by_venue.get(orderid, ""),
            venue_order_id=orderid,
            side=Side.SELL if str(row.get("action", "")).upper() == "SELL" else Side.BUY,
            order_type=order_type,
            quantity=quantity,
            limit_price=_dec(row.get("price")) if order_type is OrderType.LIMIT else None,
            status=status,
            filled=filled,
            ts=_parse_ts(row.get("timestamp"), now) or now,
            raw=raw if raw is not None else dict(row),
        )

    # -- trades ----------------------------------------------------------------------------------------------------

    async def _tradebook(self) -> list[VenueTrade]:
        answer = await self._call("tradebook", {})
        data = answer.get("data") or []
        rows = data.get("trades", []) if isinstance(data, Mapping) else data
        now = time.time_ns()
        seen: dict[str, int] = {}
        out: list[VenueTrade] = []
        for row in rows:
            if not isinstance(row, Mapping) or str(row.get("exchange") or self.exchange).upper() != self.exchange:
                continue
            orderid = str(row.get("orderid") or "")
            qty, price = _dec(row.get("quantity")), _dec(row.get("average_price") or row.get("price"))
            if qty <= 0:
                continue
            base = (
                str(row.get("tradeid") or row.get("trade_id") or "")
                or f"{orderid}:{row.get('timestamp', '')}:{_wire(qty)}@{_wire(price)}"
            )
            n = seen.get(base, 0)
            seen[base] = n + 1
            coid = self._by_venue.get(orderid)
            placed = self._submitted.get(coid) if coid is not None else None
            liquidity = (
                Liquidity.MAKER if placed is not None and placed.order_type is OrderType.LIMIT else Liquidity.TAKER
            )  # a guess: OpenAlgo does not say; our limit orders count as maker
            out.append(
                VenueTrade(
                    instrument=str(row.get("symbol") or ""),
                    trade_id=base if n == 0 else f"{base}#{n}",
                    venue_order_id=orderid,
                    client_order_id=coid,
                    side=Side.SELL if str(row.get("action", "")).upper() == "SELL" else Side.BUY,
                    quantity=qty,
                    price=price,
                    fee=Decimal(0),
                    fee_currency=CURRENCY,
                    liquidity=liquidity,
                    ts=_parse_ts(row.get("timestamp"), now) or now,
                    raw=dict(row),
                )
            )
        return out

    async def _fills_by_order(self) -> dict[str, Decimal]:
        fills: dict[str, Decimal] = {}
        for t in await self._tradebook():
            fills[t.venue_order_id] = fills.get(t.venue_order_id, Decimal(0)) + t.quantity
        return fills

    # -- HTTP ------------------------------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    async def _call(self, endpoint: str, body: Mapping[str, Any], *, retries: int | None = None) -> dict[str, Any]:
        """POST one endpoint; ``retries``: None = the read policy, 0 = never, -1 = only on a certain refusal (429)."""
        budget = (self._read_retries if endpoint in _READS else 0) if retries is None else retries
        attempt = 0
        while True:
            try:
                return await self._post(endpoint, body)
            except VenueUnavailable as exc:
                certain = not exc.maybe_sent
                allowed = self._read_retries if budget == -1 and certain else max(budget, 0)
                if attempt >= allowed:
                    raise
                delay = min(self._backoff_s * 2**attempt, 5.0) * (1 + random.random() / 2)
                attempt += 1
                log.warning(
                    "openalgo.retry",
                    venue=self.name,
                    endpoint=endpoint,
                    attempt=attempt,
                    delay=round(delay, 3),
                    error=str(exc),
                )
                await asyncio.sleep(delay)

    async def _post(self, endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
        session = self._session
        if session is None or session.closed:
            raise VenueUnavailable(f"{self.name}: not started (call start() first)", maybe_sent=False)
        EXCHANGE_REQUESTS.labels(self.name, endpoint).inc()
        started = time.monotonic()
        payload = json.dumps({"apikey": self._key, **body})
        try:
            async with session.post(
                f"{self._root}/api/v1/{endpoint}", data=payload, headers={"Content-Type": "application/json"}
            ) as resp:
                status = resp.status
                text = await resp.text()
        except TimeoutError:
            self._error("timeout")
            raise VenueUnavailable(f"{self.name}: {endpoint} timed out; its outcome is unknown") from None
        except aiohttp.ClientError as exc:
            self._error("network")
            refused = isinstance(exc, aiohttp.ClientConnectorError)  # never connected: nothing was sent
            raise VenueUnavailable(
                self._redact(f"{self.name}: {endpoint} failed: {type(exc).__name__}: {exc}"), maybe_sent=not refused
            ) from None
        finally:
            EXCHANGE_SECONDS.labels(self.name).observe(time.monotonic() - started)
        answer = self._decode(text)
        message = self._redact(str(answer.get("message") or "")) if answer is not None else ""
        if status == 429:
            self._error("rate_limited")
            raise VenueUnavailable(
                f"{self.name}: {endpoint} rate limited (HTTP 429): {message}".rstrip(": "), raw=answer, maybe_sent=False
            )
        if status >= 500 or answer is None:
            self._error("unavailable")
            raise VenueUnavailable(
                f"{self.name}: {endpoint} answered HTTP {status}{': ' + message if message else ' (not JSON)'}",
                raw=answer,
            )
        if answer.get("status") == "success" and status < 400:
            return answer
        lowered = message.lower()
        if status in (401, 403) or (("apikey" in lowered or "api key" in lowered) and "invalid" in lowered):
            self._error("auth")
            raise VenueAuthError(f"{self.name}: the API key was refused (HTTP {status}): {message}", raw=answer)
        if status == 404 or ("not found" in lowered and "order" in lowered):
            self._error("not_found")
            raise VenueOrderNotFound(f"{self.name}: {endpoint}: {message or 'order not found'}", raw=answer)
        self._error("rejected")
        raise VenueRejected(
            _rule(message), message or f"{endpoint} answered HTTP {status} without a message", raw=answer
        )

    def _decode(self, text: str) -> dict[str, Any] | None:
        """The venue's JSON answer (numbers as Decimal), with any secret it might echo scrubbed; None if not JSON."""
        try:
            value = json.loads(self._redact(text), parse_float=Decimal)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def _error(self, kind: str) -> None:
        EXCHANGE_ERRORS.labels(self.name, kind).inc()


__all__ = ["CURRENCY", "IST", "CancelAllResult", "OpenAlgoVenue"]
