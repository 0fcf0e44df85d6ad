"""A fake Binance spot exchange (REST, signed endpoints checked) for ccxt's unmodified ``binance`` class.

Only the URLs differ from the real thing: point every http entry of ``exchange.urls['api']`` here
(:func:`ccxt_venue_for` does it through :class:`~adapters.venues.ccxt.CcxtVenue`'s ``base_url``).
What it speaks, as ccxt 4.5 calls it:

- public: ``GET /api/v3/ping``, ``/api/v3/time``, ``/api/v3/exchangeInfo`` (spot symbols with PRICE_FILTER,
  LOT_SIZE, MARKET_LOT_SIZE and NOTIONAL filters, so ccxt's precision rounding is real);
- signed (``X-MBX-APIKEY`` header + HMAC-SHA256 ``signature`` over the query or form body, ``timestamp``
  within ``recvWindow``): ``POST/GET/DELETE /api/v3/order`` (``newClientOrderId`` / ``origClientOrderId`` /
  ``orderId``), ``GET /api/v3/openOrders``, ``/api/v3/allOrders``, ``/api/v3/myTrades``, ``/api/v3/account``.

Matching: MARKET orders fill in full at the last price (``set_price``) as taker; LIMIT orders fill at once as
taker if marketable, otherwise rest (their funds locked) and fill in full at their limit price as maker when
``set_price`` crosses them. Stop orders (``STOP_LOSS``, ``STOP_LOSS_LIMIT``, with ``stopPrice``) rest untriggered
(``isWorking`` false, their funds locked, as Binance locks them); one that would trigger at once is refused (-2010
"Stop price would trigger immediately."). The first ``set_price`` that reaches the stop price (at or above it for
a BUY, at or below it for a SELL) triggers it: a STOP_LOSS fills in full at that price as taker, a STOP_LOSS_LIMIT
becomes a LIMIT order at its ``price`` (filled at once as taker if marketable, else resting as above). The fee is
0.1 % of the notional, in the quote currency, for all. Errors are
Binance's JSON (``{"code": -2010, "msg": ...}``) with Binance's HTTP status, so ccxt maps them as it would.

Fault injection: answers delayed after the order was taken, 429 bursts, every trade listed twice, new orders
invisible to lookups for a while. Everything runs on the test's event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes import LocalServer

if TYPE_CHECKING:
    from adapters.venues.ccxt import CcxtVenue

FEE_RATE = Decimal("0.001")
_COID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_STABLE = {"USDT", "USDC", "BUSD", "FDUSD", "TUSD", "DAI"}
_STEP = {"BTC": Decimal("0.00001"), "ETH": Decimal("0.0001"), "BNB": Decimal("0.001")}


def _fmt(v: Decimal) -> str:
    return f"{v:.8f}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


@dataclass(frozen=True)
class _Market:
    symbol: str  # unified, BTC/USDT
    id: str  # BTCUSDT
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    min_notional: Decimal = Decimal("5")

    def info(self) -> dict[str, Any]:
        return {
            "symbol": self.id,
            "status": "TRADING",
            "baseAsset": self.base,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": [
                "LIMIT",
                "LIMIT_MAKER",
                "MARKET",
                "STOP_LOSS",
                "STOP_LOSS_LIMIT",
                "TAKE_PROFIT",
                "TAKE_PROFIT_LIMIT",
            ],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": _fmt(self.tick),
                    "maxPrice": "1000000.00000000",
                    "tickSize": _fmt(self.tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": _fmt(self.min_qty),
                    "maxQty": "9000.00000000",
                    "stepSize": _fmt(self.step),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": "0.00000000",
                    "maxQty": "100.00000000",
                    "stepSize": "0.00000000",
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": _fmt(self.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }


@dataclass
class _Order:
    market: _Market
    order_id: int
    client_order_id: str
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT | STOP_LOSS | STOP_LOSS_LIMIT
    qty: Decimal
    price: Decimal  # 0 for MARKET and STOP_LOSS
    time_in_force: str | None
    created_ms: int
    created_mono: float
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    update_ms: int = 0
    locked: Decimal = Decimal(0)  # funds held for a resting order, in the currency it spends
    fills: list[dict[str, Any]] = field(default_factory=list)
    stop_price: Decimal = Decimal(0)  # a stop order's (0 for the others)
    triggered: bool = False  # a stop order whose stop price was reached

    @property
    def working(self) -> bool:
        """On the book (or filled): every order but a stop not triggered yet."""
        return not self.stop_price or self.triggered

    def reached_by(self, price: Decimal) -> bool:
        return price >= self.stop_price if self.side == "BUY" else price <= self.stop_price

    def json(self) -> dict[str, Any]:
        return {
            "symbol": self.market.id,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": _fmt(self.price),
            "origQty": _fmt(self.qty),
            "executedQty": _fmt(self.executed),
            "cummulativeQuoteQty": _fmt(self.quote),
            "status": self.status,
            "timeInForce": self.time_in_force or "GTC",
            "type": self.type,
            "side": self.side,
            "stopPrice": _fmt(self.stop_price),
            "icebergQty": _fmt(Decimal(0)),
            "time": self.created_ms,
            "updateTime": self.update_ms or self.created_ms,
            "isWorking": self.working,
            "workingTime": self.created_ms if self.working else -1,
            "origQuoteOrderQty": _fmt(Decimal(0)),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }


class FakeBinance(LocalServer):
    """A Binance spot account on 127.0.0.1: see the module docstring."""

    def __init__(
        self,
        *,
        api_key: str,
        secret: str,
        symbols: dict[str, tuple[str, str]] | None = None,
        balances: dict[str, Decimal] | None = None,
    ) -> None:
        self._api_key, self._secret = api_key, secret
        symbols = symbols if symbols is not None else {"BTC/USDT": ("BTC", "USDT"), "ETH/USDT": ("ETH", "USDT")}
        self._markets: dict[str, _Market] = {}
        for sym, (base, quote) in symbols.items():
            tick = Decimal("0.01") if quote in _STABLE else Decimal("0.00000001")
            step = _STEP.get(base, Decimal("0.01") if quote in _STABLE else Decimal("1"))
            notional = Decimal("5") if quote in _STABLE else Decimal("0.0001")
            self._markets[sym] = _Market(sym, base + quote, base, quote, tick, step, step, notional)
        self._by_id = {m.id: m for m in self._markets.values()}
        self._free: dict[str, Decimal] = {}
        self._locked: dict[str, Decimal] = {}
        for m in self._markets.values():
            self._free.setdefault(m.base, Decimal(0))
            self._free.setdefault(m.quote, Decimal(0))
        defaults = {"USDT": Decimal("100000")} if balances is None else balances
        for cur, amount in defaults.items():
            self._free[cur] = Decimal(amount)
        for cur in self._free:
            self._locked[cur] = Decimal(0)
        self._prices: dict[str, Decimal] = {}
        self._orders: list[_Order] = []
        self._trades: list[dict[str, Any]] = []
        self._order_ids = itertools.count(1000001)
        self._trade_ids = itertools.count(5000001)
        LocalServer.__init__(self)
        self._hide_until_resent = False
        self._unseen: set[str] = set()  # client order ids hidden from lookups until sent again

    # -- the market --------------------------------------------------------------------------------------

    def set_price(self, symbol: str, price: Decimal) -> None:
        """The last price of ``symbol``: stop orders it reaches trigger (a STOP_LOSS fills at it, a STOP_LOSS_LIMIT
        becomes a limit order); resting LIMIT orders it crosses fill in full at their price (maker)."""
        m = self._market(symbol)
        price = Decimal(price)
        self._prices[m.id] = price
        for o in self._orders:
            if o.market is not m or o.status != "NEW":
                continue
            if not o.working:
                if not o.reached_by(price):
                    continue
                o.triggered = True
                o.update_ms = _now_ms()
                if o.type == "STOP_LOSS" or self._marketable(o, price):
                    self._fill(o, price, maker=False)
                continue
            if o.type != "MARKET" and self._marketable(o, price):
                self._fill(o, o.price, maker=True)

    @staticmethod
    def _marketable(o: _Order, price: Decimal) -> bool:
        return (o.side == "BUY" and price <= o.price) or (o.side == "SELL" and price >= o.price)

    # -- fault injection ---------------------------------------------------------------------------------

    def hide_new_orders_until_resent(self, on: bool = True) -> None:
        """Order lookups answer -2013 for new orders until a new-order request repeats their client order id
        (which is refused as a duplicate): a venue whose reads lag its writes for as long as that takes."""
        self._hide_until_resent = on

    # -- introspection -----------------------------------------------------------------------------------

    def orders_by_client_id(self, client_order_id: str) -> list[dict[str, Any]]:
        return [o.json() for o in self._orders if o.client_order_id == client_order_id]

    def open_orders(self) -> list[dict[str, Any]]:
        return [o.json() for o in self._orders if o.status in ("NEW", "PARTIALLY_FILLED")]

    def all_orders(self) -> list[dict[str, Any]]:
        return [o.json() for o in self._orders]

    def all_trades(self) -> list[dict[str, Any]]:
        """Every trade as ``myTrades`` shows it, plus the order's ``clientOrderId`` (which Binance omits)."""
        return [dict(t) for t in self._trades]

    def balances(self) -> dict[str, Decimal]:
        """Total (free + locked) per currency."""
        return {cur: self._free[cur] + self._locked.get(cur, Decimal(0)) for cur in self._free}

    # -- HTTP plumbing -----------------------------------------------------------------------------------

    def too_many_requests(self) -> web.Response:
        return web.json_response(
            {
                "code": -1003,
                "msg": "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per "
                "minute. Please use WebSocket Streams for live updates to avoid polling the API.",
            },
            status=429,
            headers={"Retry-After": "1"},
        )

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except _ApiError as exc:
            return web.json_response({"code": exc.code, "msg": exc.msg}, status=exc.status)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        route = (request.method, request.path)
        public: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
            ("GET", "/api/v3/ping"): dict,
            ("GET", "/api/v3/time"): lambda: {"serverTime": _now_ms()},
            ("GET", "/api/v3/exchangeInfo"): self._exchange_info,
        }
        if route in public:
            return web.json_response(public[route]())
        signed: dict[tuple[str, str], Callable[[dict[str, str]], Any]] = {
            ("POST", "/api/v3/order"): self._new_order,
            ("GET", "/api/v3/order"): self._get_order,
            ("DELETE", "/api/v3/order"): self._cancel_order,
            ("GET", "/api/v3/openOrders"): self._open_orders,
            ("GET", "/api/v3/allOrders"): self._all_orders,
            ("GET", "/api/v3/myTrades"): self._my_trades,
            ("GET", "/api/v3/account"): self._account,
        }
        if route not in signed:
            raise _ApiError(404, -1000, f"The fake has no {request.method} {request.path}.")
        params = await self._verify(request)
        answer = signed[route](params)
        if route == ("POST", "/api/v3/order"):
            await self.answer_late()
        return web.json_response(answer)

    async def _verify(self, request: web.Request) -> dict[str, str]:
        """The request's parameters, once its API key, signature and timestamp passed Binance's checks."""
        if request.headers.get("X-MBX-APIKEY") != self._api_key:
            raise _ApiError(401, -2014, "API-key format invalid.")
        query = request.rel_url.raw_query_string
        body = (await request.text()) if request.can_read_body else ""
        total = query + body
        payload, sep, signature = total.rpartition("&signature=")
        if not sep:
            raise _ApiError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        expected = hmac.new(self._secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise _ApiError(400, -1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(payload, keep_blank_values=True))
        try:
            ts = int(params["timestamp"])
            window = int(params.get("recvWindow", "5000"))
        except (KeyError, ValueError):
            raise _ApiError(
                400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
            ) from None
        now = _now_ms()
        if ts > now + 1000 or now - ts > window:
            raise _ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return params

    # -- endpoints ---------------------------------------------------------------------------------------

    def _exchange_info(self) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": _now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [],
            "symbols": [m.info() for m in self._markets.values()],
        }

    def _market(self, symbol: str) -> _Market:
        m = self._markets.get(symbol) or self._by_id.get(symbol)
        if m is None:
            raise _ApiError(400, -1121, "Invalid symbol.")
        return m

    @staticmethod
    def _required(params: dict[str, str], name: str) -> str:
        value = params.get(name)
        if not value:
            raise _ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        return value

    @staticmethod
    def _decimal(params: dict[str, str], name: str) -> Decimal:
        raw = FakeBinance._required(params, name)
        try:
            return Decimal(raw)
        except ArithmeticError:
            raise _ApiError(
                400,
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is "
                r"'^([0-9]{1,20})(\.[0-9]{1,20})?$'.",
            ) from None

    def _new_order(self, params: dict[str, str]) -> dict[str, Any]:
        m = self._market(self._required(params, "symbol"))
        side = self._required(params, "side")
        kind = self._required(params, "type")
        if side not in ("BUY", "SELL"):
            raise _ApiError(400, -1100, "Illegal characters found in parameter 'side'.")
        if kind not in ("MARKET", "LIMIT", "STOP_LOSS", "STOP_LOSS_LIMIT"):
            raise _ApiError(400, -1116, "Invalid orderType.")
        stop = kind.startswith("STOP_LOSS")
        limit = kind in ("LIMIT", "STOP_LOSS_LIMIT")
        coid = params.get("newClientOrderId") or f"fake-{next(self._order_ids)}"
        if not _COID.match(coid):
            raise _ApiError(
                400,
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; legal range is "
                r"'^[\.A-Z\:/a-z0-9_-]{1,36}$'.",
            )
        qty = self._decimal(params, "quantity")
        price = self._decimal(params, "price") if limit else Decimal(0)
        stop_price = self._decimal(params, "stopPrice") if stop else Decimal(0)
        if limit and params.get("timeInForce") not in ("GTC", "IOC", "FOK"):
            raise _ApiError(400, -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
        if qty < m.min_qty or qty % m.step != 0:
            raise _ApiError(400, -1013, "Filter failure: LOT_SIZE")
        if limit and (price <= 0 or price % m.tick != 0):
            raise _ApiError(400, -1013, "Filter failure: PRICE_FILTER")
        if stop and (stop_price <= 0 or stop_price % m.tick != 0):
            raise _ApiError(400, -1013, "Filter failure: PRICE_FILTER")
        last = self._prices.get(m.id)
        if kind != "LIMIT" and last is None:
            raise _ApiError(400, -1013, "Market is closed.")
        if stop and last is not None and (last >= stop_price if side == "BUY" else last <= stop_price):
            raise _ApiError(400, -2010, "Stop price would trigger immediately.")
        ref = price if limit else stop_price if stop else last
        assert ref is not None
        if qty * ref < m.min_notional:
            raise _ApiError(400, -1013, "Filter failure: NOTIONAL")
        if any(o.client_order_id == coid for o in self._orders):  # stricter than Binance (open orders only)
            self._unseen.discard(coid)
            raise _ApiError(400, -2010, "Duplicate order sent.")
        # funds: a buy spends quote (notional and fee), a sell spends base
        spend_cur, spend = (m.quote, qty * ref * (1 + FEE_RATE)) if side == "BUY" else (m.base, qty)
        if self._free.get(spend_cur, Decimal(0)) < spend:
            raise _ApiError(400, -2010, "Account has insufficient balance for requested action.")
        now = _now_ms()
        o = _Order(
            m,
            next(self._order_ids),
            coid,
            side,
            kind,
            qty,
            price,
            params.get("timeInForce") if limit else None,
            now,
            time.monotonic(),
            update_ms=now,
            stop_price=stop_price,
        )
        self._orders.append(o)
        if self._hide_until_resent:
            self._unseen.add(coid)
        marketable = (
            not stop
            and last is not None
            and (kind == "MARKET" or (side == "BUY" and price >= last) or (side == "SELL" and price <= last))
        )
        if marketable:
            assert last is not None
            self._fill(o, last, maker=False)
        elif o.time_in_force in ("IOC", "FOK"):
            o.status = "EXPIRED"
        else:
            o.locked = spend
            self._free[spend_cur] -= spend
            self._locked[spend_cur] = self._locked.get(spend_cur, Decimal(0)) + spend
        answer = o.json()
        answer["transactTime"] = now
        answer["fills"] = [dict(f) for f in o.fills]
        return answer

    def _fill(self, o: _Order, price: Decimal, *, maker: bool) -> None:
        m = o.market
        qty = o.qty - o.executed
        notional = qty * price
        fee = (notional * FEE_RATE).quantize(Decimal("0.00000001"))
        if o.locked:  # release what the resting order held
            cur = m.quote if o.side == "BUY" else m.base
            self._locked[cur] -= o.locked
            self._free[cur] += o.locked
            o.locked = Decimal(0)
        if o.side == "BUY":
            self._free[m.quote] -= notional + fee
            self._free[m.base] = self._free.get(m.base, Decimal(0)) + qty
        else:
            self._free[m.base] -= qty
            self._free[m.quote] = self._free.get(m.quote, Decimal(0)) + notional - fee
        now = _now_ms()
        trade_id = next(self._trade_ids)
        o.executed += qty
        o.quote += notional
        o.status = "FILLED"
        o.update_ms = now
        o.fills.append(
            {
                "price": _fmt(price),
                "qty": _fmt(qty),
                "commission": _fmt(fee),
                "commissionAsset": m.quote,
                "tradeId": trade_id,
            }
        )
        self._trades.append(
            {
                "symbol": m.id,
                "id": trade_id,
                "orderId": o.order_id,
                "orderListId": -1,
                "price": _fmt(price),
                "qty": _fmt(qty),
                "quoteQty": _fmt(notional),
                "commission": _fmt(fee),
                "commissionAsset": m.quote,
                "time": now,
                "isBuyer": o.side == "BUY",
                "isMaker": maker,
                "isBestMatch": True,
                "clientOrderId": o.client_order_id,
            }
        )

    def _find(self, params: dict[str, str], *, hide: bool) -> _Order:
        m = self._market(self._required(params, "symbol"))
        coid, oid = params.get("origClientOrderId"), params.get("orderId")
        if not coid and not oid:
            raise _ApiError(
                400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
            )
        for o in self._orders:
            if o.market is m and ((coid and o.client_order_id == coid) or (oid and str(o.order_id) == oid)):
                if hide and (self.hidden(o) or o.client_order_id in self._unseen):
                    break
                return o
        raise _ApiError(400, -2013, "Order does not exist.") if hide else _ApiError(400, -2011, "Unknown order sent.")

    def _get_order(self, params: dict[str, str]) -> dict[str, Any]:
        return self._find(params, hide=True).json()

    def _cancel_order(self, params: dict[str, str]) -> dict[str, Any]:
        o = self._find(params, hide=False)
        if o.status not in ("NEW", "PARTIALLY_FILLED"):
            raise _ApiError(400, -2011, "Unknown order sent.")
        if o.locked:
            cur = o.market.quote if o.side == "BUY" else o.market.base
            self._locked[cur] -= o.locked
            self._free[cur] += o.locked
            o.locked = Decimal(0)
        o.status = "CANCELED"
        o.update_ms = _now_ms()
        answer = o.json()
        answer.update(
            origClientOrderId=o.client_order_id, clientOrderId=f"cancel-{o.order_id}", transactTime=o.update_ms
        )
        return answer

    def _open_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        m = self._market(params["symbol"]) if params.get("symbol") else None
        return [
            o.json() for o in self._orders if o.status in ("NEW", "PARTIALLY_FILLED") and (m is None or o.market is m)
        ]

    def _all_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        m = self._market(self._required(params, "symbol"))
        start = int(params.get("startTime", "0"))
        limit = min(int(params.get("limit", "500")), 1000)
        return [o.json() for o in self._orders if o.market is m and o.created_ms >= start][:limit]

    def _my_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        m = self._market(self._required(params, "symbol"))
        start = int(params.get("startTime", "0"))
        end = int(params["endTime"]) if params.get("endTime") else None
        from_id = int(params["fromId"]) if params.get("fromId") else None
        order_id = int(params["orderId"]) if params.get("orderId") else None
        limit = min(int(params.get("limit", "500")), 1000)
        out = []
        for t in self._trades:
            if t["symbol"] != m.id or t["time"] < start or (end is not None and t["time"] > end):
                continue
            if (from_id is not None and t["id"] < from_id) or (order_id is not None and t["orderId"] != order_id):
                continue
            public = {k: v for k, v in t.items() if k != "clientOrderId"}
            out.extend([public, dict(public)] if self.listed_twice else [public])
        return out[:limit]

    def _account(self, params: dict[str, str]) -> dict[str, Any]:
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": "0.00100000",
                "taker": "0.00100000",
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": _now_ms(),
            "accountType": "SPOT",
            "balances": [
                {"asset": cur, "free": _fmt(self._free[cur]), "locked": _fmt(self._locked.get(cur, Decimal(0)))}
                for cur in sorted(self._free)
            ],
            "permissions": ["SPOT"],
            "uid": 354937868,
        }


def ccxt_venue_for(fake: FakeBinance, *, api_key: str, secret: str, **kw: Any) -> CcxtVenue:
    """A :class:`CcxtVenue` (ccxt's real binance class) pointed at ``fake``, which must be started."""
    from adapters.venues.base import Credentials
    from adapters.venues.ccxt import CcxtVenue

    if not fake.base_url:
        raise RuntimeError("start the FakeBinance before building a venue for it")
    kw.setdefault("timeout_ms", 2_000)
    return CcxtVenue("binance", credentials=Credentials(api_key, secret), base_url=fake.base_url, **kw)
