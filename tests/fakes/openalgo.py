"""A fake OpenAlgo server (REST ``POST /api/v1/<endpoint>``) for the OpenAlgo venue adapter's tests.

It speaks the shapes of OpenAlgo's documented API (docs/api in github.com/marketcalls/openalgo):

- ``placeorder`` -> ``{"status": "success", "orderid": "..."}``; ``modifyorder``, ``cancelorder`` -> the orderid;
  ``cancelallorder`` -> ``canceled_orders`` / ``failed_cancellations``;
- ``orderstatus`` -> ``data``: the order book row plus ``average_price`` (404 ``Order <id> not found``);
- ``orderbook`` -> ``data: {orders: [...newest first], statistics: {...}}`` (no filled quantity, like a broker's);
- ``tradebook`` -> ``data: [{action, symbol, exchange, orderid, product, quantity, average_price, timestamp
  (time of day, IST), trade_value}]``; ``funds`` -> ``data`` of strings with two decimals;
- every call checks ``apikey``: a wrong one gets HTTP 403 ``Invalid openalgo apikey``; a malformed request 400.

Matching: a market order fills in full at the symbol's price (:meth:`FakeOpenAlgo.set_price`; none set: refused).
A limit order fills at once at the current price when marketable, else rests and fills at its limit price when
``set_price`` crosses it. Cash: a fill moves ``availablecash`` by the notional; a resting buy blocks its notional
(``utiliseddebits``) until it fills or is cancelled; a buy beyond the free cash is refused (insufficient funds).

Faults: :meth:`rate_limit` (HTTP 429 before processing), :meth:`fail_next` (HTTP 500, before or after processing,
on any endpoint or one), :meth:`hold` (calls to an endpoint are received but wait to be processed: in flight);
``echo_key = True`` makes the 403 message repeat the key it got (the real server does not: this tests redaction).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

IST = timezone(timedelta(hours=5, minutes=30), "IST")
_NUMBER = re.compile(r'"\\u0000([-+0-9.eE]+)\\u0000"')
_EXCHANGES = {"NSE", "BSE", "NFO", "BFO", "CDS", "BCD", "MCX", "NCDEX", "CRYPTO"}


def _money(v: Decimal) -> str:
    return f"{v:.2f}"


def _num(v: Decimal) -> Decimal:
    """A price or quantity the broker-neutral API shows as a JSON number (written by :func:`_dumps`, no float)."""
    return v


def _dumps(value: Any) -> str:
    """JSON with every Decimal written as a number, digit for digit (never through a float)."""
    text = json.dumps(value, default=lambda o: f"\x00{o}\x00" if isinstance(o, Decimal) else str(o))
    return _NUMBER.sub(r"\1", text)


@dataclass
class FakeOrder:
    orderid: str
    strategy: str
    symbol: str
    exchange: str
    action: str  # BUY | SELL
    quantity: Decimal
    pricetype: str  # MARKET | LIMIT
    product: str
    price: Decimal
    status: str = "open"  # open | complete | cancelled | rejected
    average_price: Decimal = Decimal(0)
    blocked: Decimal = Decimal(0)
    at: datetime = field(default_factory=lambda: datetime.now(IST))

    def row(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "symbol": self.symbol,
            "exchange": self.exchange,
            "orderid": self.orderid,
            "product": self.product,
            "quantity": str(self.quantity),
            "price": _num(self.price),
            "pricetype": self.pricetype,
            "order_status": self.status,
            "trigger_price": Decimal("0.0"),
            "timestamp": self.at.strftime("%d-%b-%Y %H:%M:%S"),
        }


@dataclass(frozen=True)
class FakeTrade:
    orderid: str
    symbol: str
    exchange: str
    action: str
    product: str
    quantity: Decimal
    price: Decimal
    at: datetime

    def row(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "symbol": self.symbol,
            "exchange": self.exchange,
            "orderid": self.orderid,
            "product": self.product,
            "quantity": _num(self.quantity),
            "average_price": _num(self.price),
            "timestamp": self.at.strftime("%H:%M:%S"),
            "trade_value": _num(self.price * self.quantity),
        }


class _Refused(Exception):
    def __init__(self, http: int, message: str) -> None:
        super().__init__(message)
        self.http = http
        self.message = message


class FakeOpenAlgo:
    """An in-process OpenAlgo server on 127.0.0.1 (see the module docstring)."""

    def __init__(self, api_key: str, *, cash: Decimal = Decimal("1000000")) -> None:
        self.api_key = api_key
        self.cash = cash
        self.prices: dict[str, Decimal] = {}
        self._orders: dict[str, FakeOrder] = {}
        self._trades: list[FakeTrade] = []
        self._ids = itertools.count(250408000989443)
        self._rate_limited = 0
        self._fail: list[tuple[bool, str | None]] = []  # one per failure to come: (after processing?, endpoint)
        self._holds: dict[str, asyncio.Event] = {}  # endpoint -> calls wait for it before being processed
        self.requests: list[str] = []  # endpoints called, in order (including refused calls)
        self.bodies: list[dict[str, Any]] = []  # request bodies as received, apikey included (for the tests)
        self._by_endpoint: dict[str, dict[str, Any]] = {}
        self.echo_key = False  # a badly behaved proxy: put the received key into the 403 message
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/api/v1/{endpoint}", self._handle)
        app.router.add_post("/api/v1/{endpoint}/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- knobs and introspection -----------------------------------------------------------------------------------

    def set_price(self, symbol: str, price: Decimal) -> None:
        """The symbol's last traded price: resting limit orders it crosses fill at their limit price."""
        self.prices[symbol] = price
        for o in list(self._orders.values()):
            if o.status == "open" and o.symbol == symbol and o.pricetype == "LIMIT" and self._crosses(o, price):
                self._fill(o, o.price)

    def rate_limit(self, count: int) -> None:
        """The next ``count`` calls get HTTP 429 (refused before processing)."""
        self._rate_limited += count

    def fail_next(self, count: int, *, after_processing: bool = False, endpoint: str | None = None) -> None:
        """The next ``count`` calls (to ``endpoint`` only, if given) get HTTP 500; ``after_processing``: the call took
        effect first (a lost answer)."""
        self._fail.extend([(after_processing, endpoint)] * count)

    def hold(self, endpoint: str) -> asyncio.Event:
        """Calls to ``endpoint`` are received (and listed in :attr:`requests`) but wait, unprocessed and unanswered,
        until the returned event is set."""
        gate = self._holds[endpoint] = asyncio.Event()
        return gate

    def last(self, endpoint: str) -> dict[str, Any]:
        """The body of the last well-formed request to ``endpoint``."""
        return self._by_endpoint[endpoint]

    @property
    def orders(self) -> list[FakeOrder]:
        return list(self._orders.values())

    @property
    def trades(self) -> list[FakeTrade]:
        return list(self._trades)

    def order(self, orderid: str) -> FakeOrder:
        return self._orders[orderid]

    @property
    def free_cash(self) -> Decimal:
        return self.cash - self._blocked()

    # -- the API ---------------------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        endpoint = request.match_info["endpoint"]
        self.requests.append(endpoint)
        if self._rate_limited > 0:
            self._rate_limited -= 1
            return self._error(429, "Rate limit exceeded. Please try again later.")
        try:
            body = json.loads(await request.text(), parse_float=Decimal)
        except ValueError:
            return self._error(400, "Invalid JSON body")
        if not isinstance(body, dict):
            return self._error(400, "Invalid JSON body")
        self.bodies.append(body)
        self._by_endpoint[endpoint] = body
        gate = self._holds.get(endpoint)
        if gate is not None:
            await gate.wait()
        fail_after = self._fault(endpoint)
        if fail_after is False:
            return self._error(500, "An unexpected error occurred")
        if not body.get("apikey"):
            return self._error(400, "{'apikey': ['Missing data for required field.']}")
        if body["apikey"] != self.api_key:
            return self._error(403, "Invalid openalgo apikey" + (f" {body['apikey']}" if self.echo_key else ""))
        handler = getattr(self, f"_api_{endpoint}", None)
        if handler is None:
            return self._error(404, f"Unknown endpoint {endpoint}")
        try:
            answer = handler(body)
        except _Refused as exc:
            return self._error(exc.http, exc.message)
        if fail_after:
            return self._error(500, "An unexpected error occurred")
        return web.json_response({"status": "success", **answer}, dumps=_dumps)

    @staticmethod
    def _error(http: int, message: str) -> web.Response:
        return web.json_response({"status": "error", "message": message}, status=http)

    def _api_funds(self, body: dict[str, Any]) -> dict[str, Any]:
        blocked = self._blocked()
        return {
            "data": {
                "availablecash": _money(self.cash - blocked),
                "collateral": "0.00",
                "m2mrealized": "0.00",
                "m2munrealized": "0.00",
                "utiliseddebits": _money(blocked),
            }
        }

    def _api_placeorder(self, body: dict[str, Any]) -> dict[str, Any]:
        missing = [f for f in ("strategy", "exchange", "symbol", "action", "quantity") if f not in body]
        if missing:
            raise _Refused(400, str({f: ["Missing data for required field."] for f in missing}))
        exchange, action = str(body["exchange"]), str(body["action"]).upper()
        pricetype, product = str(body.get("pricetype", "MARKET")), str(body.get("product", "MIS"))
        if exchange not in _EXCHANGES:
            raise _Refused(400, f"{{'exchange': ['Must be one of: {', '.join(sorted(_EXCHANGES))}.']}}")
        if action not in ("BUY", "SELL"):
            raise _Refused(400, "{'action': ['Must be one of: BUY, SELL, buy, sell.']}")
        if pricetype not in ("MARKET", "LIMIT"):
            raise _Refused(400, f"the fake supports MARKET and LIMIT, not {pricetype}")
        quantity = self._decimal(body["quantity"], "quantity")
        if quantity <= 0:
            raise _Refused(400, "{'quantity': ['Quantity must be a positive number.']}")
        if exchange != "CRYPTO" and quantity != quantity.to_integral_value():
            raise _Refused(
                400, f"{{'quantity': ['Fractional quantity ({quantity}) is not allowed for non-crypto exchanges.']}}"
            )
        price = self._decimal(body.get("price", "0"), "price")
        symbol = str(body["symbol"])
        if symbol not in self.prices:
            raise _Refused(400, f"Symbol {symbol} not found on {exchange}")
        if pricetype == "LIMIT" and price <= 0:
            raise _Refused(400, "LIMIT orders require price")
        last = self.prices[symbol]
        if action == "BUY" and (price if pricetype == "LIMIT" else last) * quantity > self.free_cash:
            raise _Refused(
                400,
                f"Insufficient funds. Required margin: {_money(quantity * (price or last))}, "
                f"available: {_money(self.free_cash)}",
            )
        order = FakeOrder(
            orderid=str(next(self._ids)),
            strategy=str(body["strategy"]),
            symbol=symbol,
            exchange=exchange,
            action=action,
            quantity=quantity,
            pricetype=pricetype,
            product=product,
            price=price if pricetype == "LIMIT" else Decimal(0),
        )
        self._orders[order.orderid] = order
        if pricetype == "MARKET" or self._crosses(order, last):
            self._fill(order, last)
        elif action == "BUY":
            order.blocked = price * quantity
        return {"orderid": order.orderid}

    def _api_orderstatus(self, body: dict[str, Any]) -> dict[str, Any]:
        o = self._get(body)
        return {"data": {**o.row(), "average_price": _num(o.average_price)}}

    def _api_modifyorder(self, body: dict[str, Any]) -> dict[str, Any]:
        for f in ("strategy", "exchange", "symbol", "orderid", "action", "product", "pricetype", "price", "quantity"):
            if f not in body:
                raise _Refused(400, str({f: ["Missing data for required field."]}))
        o = self._get(body)
        if o.status != "open":
            raise _Refused(400, f"Cannot modify order in {o.status} status")
        quantity, price = self._decimal(body["quantity"], "quantity"), self._decimal(body["price"], "price")
        if quantity <= 0 or price < 0:
            raise _Refused(400, "Quantity must be positive and price non-negative")
        if o.action == "BUY" and price * quantity - o.blocked > self.free_cash:
            raise _Refused(400, "Insufficient funds for the modified order")
        o.quantity, o.price = quantity, price
        o.blocked = price * quantity if o.action == "BUY" else Decimal(0)
        last = self.prices.get(o.symbol)
        if last is not None and self._crosses(o, last):
            self._fill(o, last)
        return {"orderid": o.orderid}

    def _api_cancelorder(self, body: dict[str, Any]) -> dict[str, Any]:
        o = self._get(body)
        if o.status != "open":
            raise _Refused(400, f"Cannot cancel order in {o.status} status")
        o.status, o.blocked = "cancelled", Decimal(0)
        return {"orderid": o.orderid}

    def _api_cancelallorder(self, body: dict[str, Any]) -> dict[str, Any]:
        done = []
        for o in self._orders.values():
            if o.status == "open":
                o.status, o.blocked = "cancelled", Decimal(0)
                done.append(o.orderid)
        return {
            "message": f"Canceled {len(done)} orders. Failed to cancel 0 orders.",
            "canceled_orders": done,
            "failed_cancellations": [],
        }

    def _api_orderbook(self, body: dict[str, Any]) -> dict[str, Any]:
        orders = sorted(self._orders.values(), key=lambda o: (o.at, o.orderid), reverse=True)
        stats = {
            "total_buy_orders": sum(o.action == "BUY" for o in orders),
            "total_sell_orders": sum(o.action == "SELL" for o in orders),
            "total_completed_orders": sum(o.status == "complete" for o in orders),
            "total_open_orders": sum(o.status == "open" for o in orders),
            "total_rejected_orders": sum(o.status == "rejected" for o in orders),
        }
        return {"data": {"orders": [o.row() for o in orders], "statistics": stats}}

    def _api_tradebook(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"data": [t.row() for t in self._trades]}

    def _api_positionbook(self, body: dict[str, Any]) -> dict[str, Any]:
        net: dict[tuple[str, str, str], Decimal] = {}
        for t in self._trades:
            key = (t.symbol, t.exchange, t.product)
            net[key] = net.get(key, Decimal(0)) + (t.quantity if t.action == "BUY" else -t.quantity)
        return {
            "data": [
                {"symbol": s, "exchange": e, "product": p, "quantity": str(q), "average_price": "0.00"}
                for (s, e, p), q in net.items()
            ]
        }

    # -- internals -------------------------------------------------------------------------------------------------

    def _fault(self, endpoint: str) -> bool | None:
        """The first failure to come that applies to ``endpoint`` (taken), or None."""
        for i, (after, only) in enumerate(self._fail):
            if only is None or only == endpoint:
                del self._fail[i]
                return after
        return None

    def _get(self, body: dict[str, Any]) -> FakeOrder:
        if "orderid" not in body:
            raise _Refused(400, "{'orderid': ['Missing data for required field.']}")
        o = self._orders.get(str(body["orderid"]))
        if o is None:
            raise _Refused(404, f"Order {body['orderid']} not found")
        return o

    @staticmethod
    def _decimal(value: Any, name: str) -> Decimal:
        if isinstance(value, bool):
            raise _Refused(400, f"{{'{name}': ['Not a valid number.']}}")
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise _Refused(400, f"{{'{name}': ['Not a valid number.']}}") from None

    @staticmethod
    def _crosses(o: FakeOrder, price: Decimal) -> bool:
        return price <= o.price if o.action == "BUY" else price >= o.price

    def _fill(self, o: FakeOrder, price: Decimal) -> None:
        o.status, o.average_price, o.blocked = "complete", price, Decimal(0)
        self.cash += -price * o.quantity if o.action == "BUY" else price * o.quantity
        self._trades.append(
            FakeTrade(
                orderid=o.orderid,
                symbol=o.symbol,
                exchange=o.exchange,
                action=o.action,
                product=o.product,
                quantity=o.quantity,
                price=price,
                at=datetime.now(IST),
            )
        )

    def _blocked(self) -> Decimal:
        return sum((o.blocked for o in self._orders.values() if o.status == "open"), Decimal(0))
