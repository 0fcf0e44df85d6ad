"""A fake Alpaca crypto trading account (trading API v2, key headers checked) for ccxt's unmodified ``alpaca`` class.

Only the origin differs from the real thing: :func:`tests.fakes.ccxt_venue` points ccxt's ``trader`` (and ``market``,
``broker``) URLs here through :class:`~adapters.venues.ccxt.CcxtVenue`'s ``base_url``. Every endpoint needs
the ``APCA-API-KEY-ID`` and ``APCA-API-SECRET-KEY`` headers (else HTTP 401 ``{"code": 40110000, "message":
"request is not authorized"}``). What it speaks, as ccxt 4.5 calls it for what CcxtVenue does:

- ``GET /v2/assets`` (crypto pairs with ``min_order_size``, ``min_trade_increment``, ``price_increment``, so
  ccxt's rounding is real), ``/v2/clock``;
- ``POST /v2/orders`` (JSON: ``symbol``, ``side``, ``type`` market|limit, ``qty``, ``limit_price``,
  ``time_in_force`` gtc|ioc, ``client_order_id``: one already used is HTTP 422 ``client_order_id must be
  unique``; a field Alpaca does not define is refused, which Alpaca may not do; the answer is the order as
  accepted, ``pending_new``, before it is matched);
- ``GET /v2/orders/{id}``, ``GET /v2/orders:by_client_order_id?client_order_id=``, ``DELETE /v2/orders/{id}``
  (HTTP 204; an unknown id 404 ``40410000``, an order no longer open 422 ``order is already in "filled"
  state``), ``GET /v2/orders`` (``status`` open|closed|all, ``symbols``, ``after``, ``direction``, ``limit``
  50 by default, 500 at most);
- ``GET /v2/account/activities/{FILL|CFEE}`` (``after``, ``direction`` desc by default, ``page_size`` at most
  100, ``page_token`` = the id after which to continue), ``/v2/account`` (``cash`` excludes what open orders
  hold; ``equity`` - ``position_market_value`` is cash plus holds), ``/v2/positions`` (``qty`` and
  ``qty_available`` per crypto, symbol ``BTCUSD``).

Matching and faults: see :mod:`tests.fakes`. Fees are Alpaca's crypto tier 1 (0.25 % taker, 0.15 % maker),
taken from the asset the fill credits and reported, as Alpaca does, only as ``CFEE`` activities without an order
id (here at once; Alpaca posts them at the end of the day), never on the ``FILL`` itself. Refusals are Alpaca's
JSON ``{"code": ..., "message": ...}`` with its HTTP status.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from tests.fakes import ZERO, Book, FakeServer, Fill, Market, Order, Refused, iso, num, parse_iso

TAKER, MAKER = Decimal("0.0025"), Decimal("0.0015")
_STATUS = {"open": "new", "filled": "filled", "cancelled": "canceled", "expired": "expired"}
_NAMES = {"BTC": "Bitcoin", "ETH": "Ethereum", "USD": "US Dollar", "USDT": "Tether", "USDC": "USD Coin"}
_TICK = {"BTC": Decimal("1"), "ETH": Decimal("0.1")}
_ORDER_FIELDS = {
    "symbol",
    "qty",
    "notional",
    "side",
    "type",
    "time_in_force",
    "limit_price",
    "stop_price",
    "trail_price",
    "trail_percent",
    "extended_hours",
    "client_order_id",
    "order_class",
    "take_profit",
    "stop_loss",
    "position_intent",
}


class _Error(Exception):
    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"code": code, "message": message, **extra}


def _activity_id(ns: int, suffix: str) -> str:
    """Alpaca's activity ids sort by time: ``YYYYMMDDHHMMSSmmm::uuid``."""
    return iso(ns)[:23].replace("-", "").replace("T", "").replace(":", "").replace(".", "") + "::" + suffix


class FakeAlpaca(FakeServer):
    """An Alpaca crypto account on 127.0.0.1: see the module docstring."""

    def __init__(
        self,
        *,
        api_key: str,
        secret: str,
        symbols: dict[str, tuple[str, str]] | None = None,
        balances: dict[str, Decimal] | None = None,
    ) -> None:
        super().__init__()
        self._api_key, self._secret = api_key, secret
        symbols = symbols if symbols is not None else {"BTC/USD": ("BTC", "USD"), "ETH/USD": ("ETH", "USD")}
        markets = {
            s: Market(s, b, q, Decimal("0.000000001"), _TICK.get(b, Decimal("0.0001")), Decimal("0.00001"))
            for s, (b, q) in symbols.items()
        }
        self.book = Book(
            markets,
            {"USD": Decimal("100000")} if balances is None else balances,
            taker=TAKER,
            maker=MAKER,
            fee_from_received=True,
        )
        self._asset_ids = {s: str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca/{s}")) for s in markets}

    # -- HTTP plumbing -----------------------------------------------------------------------------------

    def too_many_requests(self) -> web.Response:
        return web.json_response({"code": 42910000, "message": "rate limit exceeded"}, status=429)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        method, path, q = request.method, request.path, request.query
        try:
            if (
                request.headers.get("APCA-API-KEY-ID") != self._api_key
                or request.headers.get("APCA-API-SECRET-KEY") != self._secret
            ):
                raise _Error(401, 40110000, "request is not authorized")
            if method == "POST" and path == "/v2/orders":
                answer = self._create(await request.json())
                await self.answer_late()
                return web.json_response(answer)
            if method == "DELETE" and path.startswith("/v2/orders/"):
                self._cancel(path.rsplit("/", 1)[1])
                return web.Response(status=204)
            routes: dict[Any, Callable[[], Any]] = {
                "/v2/assets": self._assets,
                "/v2/clock": self._clock,
                "/v2/account": self._account,
                "/v2/positions": self._positions,
                "/v2/orders": lambda: self._list_orders(q),
                "/v2/orders:by_client_order_id": lambda: self.render_order(self._find(q.get("client_order_id", ""))),
                "/v2/account/activities/FILL": lambda: self._activities(q, self.render_fill),
                "/v2/account/activities/CFEE": lambda: self._activities(q, self._fee),
            }
            if method == "GET" and path in routes:
                return web.json_response(routes[path]())
            if method == "GET" and path.startswith("/v2/orders/"):
                return web.json_response(self.render_order(self._find(path.rsplit("/", 1)[1], by_id=True)))
            raise _Error(404, 40410000, f"endpoint not found: {method} {path}")
        except _Error as exc:
            return web.json_response(exc.body, status=exc.status)

    # -- endpoints ---------------------------------------------------------------------------------------

    def _assets(self) -> list[dict[str, Any]]:
        return [
            {
                "id": self._asset_ids[m.symbol],
                "class": "crypto",
                "exchange": "CRYPTO",
                "symbol": m.symbol,
                "name": f"{_NAMES.get(m.base, m.base)} / {_NAMES.get(m.quote, m.quote)}",
                "status": "active",
                "tradable": True,
                "marginable": False,
                "maintenance_margin_requirement": 100,
                "margin_requirement_long": "100",
                "margin_requirement_short": "100",
                "shortable": False,
                "easy_to_borrow": False,
                "fractionable": True,
                "attributes": [],
                "min_order_size": num(m.min_qty),
                "min_trade_increment": num(m.step),
                "price_increment": num(m.tick),
            }
            for m in self.book.markets.values()
        ]

    def _clock(self) -> dict[str, Any]:
        now = iso(time.time_ns())
        return {"timestamp": now, "is_open": True, "next_open": now, "next_close": now}

    def _positions(self) -> list[dict[str, Any]]:
        out = []
        for m in self.book.markets.values():
            qty = self.book.balances().get(m.base, ZERO)
            if not qty:
                continue
            price = self.book.prices.get(m.symbol, ZERO)
            out.append(
                {
                    "asset_id": self._asset_ids[m.symbol],
                    "symbol": f"{m.base}{m.quote}",
                    "exchange": "CRYPTO",
                    "asset_class": "crypto",
                    "asset_marginable": False,
                    "qty": num(qty),
                    "avg_entry_price": num(price),
                    "side": "long",
                    "market_value": num(qty * price),
                    "cost_basis": num(qty * price),
                    "unrealized_pl": "0",
                    "unrealized_plpc": "0",
                    "unrealized_intraday_pl": "0",
                    "unrealized_intraday_plpc": "0",
                    "current_price": num(price),
                    "lastday_price": num(price),
                    "change_today": "0",
                    "qty_available": num(self.book.free[m.base]),
                }
            )
        return out

    def _account(self) -> dict[str, Any]:
        cash = self.book.free.get("USD", ZERO)
        positions = sum((Decimal(p["market_value"]) for p in self._positions()), ZERO)
        equity = cash + self.book.held.get("USD", ZERO) + positions
        return {
            "id": "fake-account",
            "account_number": "PA0000000000",
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": num(cash),
            "regt_buying_power": num(cash),
            "daytrading_buying_power": "0",
            "non_marginable_buying_power": num(cash),
            "cash": num(cash),
            "accrued_fees": "0",
            "portfolio_value": num(equity),
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": "2024-01-02T03:04:05.000000Z",
            "trade_suspended_by_user": False,
            "multiplier": "1",
            "shorting_enabled": False,
            "equity": num(equity),
            "last_equity": num(equity),
            "long_market_value": num(positions),
            "short_market_value": "0",
            "position_market_value": num(positions),
            "initial_margin": "0",
            "maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": 0,
            "crypto_tier": 1,
        }

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - _ORDER_FIELDS
        if unknown:  # stricter than Alpaca may be: catches a client's own option sent along
            raise _Error(422, 40010001, f"unknown field {sorted(unknown)[0]!r}")
        m = self.book.markets.get(str(body.get("symbol")))
        if m is None:
            raise _Error(422, 40010001, f"asset {body.get('symbol')!r} not found")
        side, kind, tif = body.get("side"), body.get("type"), body.get("time_in_force")
        if side not in ("buy", "sell") or kind not in ("market", "limit"):
            raise _Error(422, 40010001, "invalid order type for crypto order")
        if tif not in ("gtc", "ioc"):
            raise _Error(422, 42210000, "invalid crypto time_in_force")
        coid = str(body.get("client_order_id") or uuid.uuid4())
        if len(coid) > 128:
            raise _Error(422, 40010001, "client_order_id must be no more than 128 characters")
        if self.book.by_client_id(coid) is not None:
            raise _Error(422, 40010001, "client_order_id must be unique")
        try:
            qty = Decimal(body["qty"])
            price = Decimal(body["limit_price"]) if kind == "limit" else None
        except (KeyError, InvalidOperation, TypeError):
            raise _Error(422, 40010001, "qty and limit_price must be decimal numbers") from None
        if qty < m.min_qty or qty % m.step:
            raise _Error(422, 40010001, f"qty must be >= {num(m.min_qty)} and a multiple of {num(m.step)}")
        if price is not None and (price <= 0 or price % m.tick):
            raise _Error(422, 40010001, f"limit price must be a multiple of {num(m.tick)}")
        ref = price if price is not None else self.book.prices.get(m.symbol)
        if side == "buy" and m.quote == "USD" and ref is not None and qty * ref < 10:
            raise _Error(403, 40310000, "cost basis must be >= minimal amount of order 10")
        o = Order(m, coid, side, kind, qty, price, tif=tif)
        accepted = self.render_order(o) | {"status": "pending_new"}
        try:
            self.book.place(o)
        except Refused as exc:
            if exc.kind == "funds":
                spend = m.quote if side == "buy" else m.base
                raise _Error(
                    403,
                    40310000,
                    str(exc),
                    available=num(self.book.free.get(spend, ZERO)),
                    balance=num(self.book.balances().get(spend, ZERO)),
                    symbol=spend,
                ) from None
            raise _Error(422, 40010001, str(exc)) from None
        return accepted

    def _find(self, key: str, *, by_id: bool = False) -> Order:
        o = next((o for o in self.book.orders if (o.id if by_id else o.client_order_id) == key), None)
        if o is None or self.hidden(o):
            raise _Error(404, 40410000, f"order not found for {key}")
        return o

    def _cancel(self, order_id: str) -> None:
        o = next((o for o in self.book.orders if o.id == order_id), None)
        if o is None:
            raise _Error(404, 40410000, "order not found")
        if not o.open:
            raise _Error(422, 42210000, f'order is already in "{_STATUS[o.status]}" state')
        self.book.cancel(o)

    def _list_orders(self, q: Any) -> list[dict[str, Any]]:
        status, symbols = q.get("status", "open"), set(q.get("symbols", "").split(",")) - {""}
        after = parse_iso(q["after"]) if q.get("after") else 0
        rows = [
            o
            for o in self.book.orders
            if not self.hidden(o)
            and o.created_ns > after
            and (not symbols or o.market.symbol in symbols)
            and (status == "all" or (status == "open") == o.open)
        ]
        rows = rows if q.get("direction") == "asc" else rows[::-1]
        return [self.render_order(o) for o in rows[: min(int(q.get("limit") or 50), 500)]]

    def _activities(self, q: Any, render: Any) -> list[dict[str, Any]]:
        after = parse_iso(q["after"]) if q.get("after") else 0
        rows: list[dict[str, Any]] = []
        for f in self.book.fills:
            row = render(f)
            if f.ts_ns > after:
                rows.extend([row, dict(row)] if self.listed_twice and render == self.render_fill else [row])
        if q.get("direction") != "asc":
            rows.reverse()
        if q.get("page_token"):
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(q["page_token"]) + 1 :] if q["page_token"] in ids else []
        return rows[: min(int(q.get("page_size") or 100), 100)]

    # -- rendering ---------------------------------------------------------------------------------------

    def render_order(self, o: Order) -> dict[str, Any]:
        done = iso(o.updated_ns or o.created_ns)
        return {
            "id": o.id,
            "client_order_id": o.client_order_id,
            "created_at": iso(o.created_ns),
            "updated_at": done,
            "submitted_at": iso(o.created_ns),
            "filled_at": done if o.status == "filled" else None,
            "expired_at": done if o.status == "expired" else None,
            "canceled_at": done if o.status == "cancelled" else None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": self._asset_ids[o.market.symbol],
            "symbol": o.market.symbol,
            "asset_class": "crypto",
            "notional": None,
            "qty": num(o.qty),
            "filled_qty": num(o.filled),
            "filled_avg_price": num(o.notional / o.filled) if o.filled else None,
            "order_class": "",
            "order_type": o.kind,
            "type": o.kind,
            "side": o.side,
            "position_intent": f"{o.side}_to_{'open' if o.side == 'buy' else 'close'}",
            "time_in_force": o.tif,
            "limit_price": num(o.price) if o.price is not None else None,
            "stop_price": None,
            "status": _STATUS[o.status],
            "extended_hours": False,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": "access_key",
            "expires_at": None,
        }

    def render_fill(self, f: Fill) -> dict[str, Any]:
        o = f.order
        return {
            "id": _activity_id(f.ts_ns, f.id),
            "activity_type": "FILL",
            "transaction_time": iso(f.ts_ns),
            "type": "fill",
            "price": num(f.price),
            "qty": num(f.qty),
            "side": o.side,
            "symbol": o.market.symbol,
            "leaves_qty": num(o.qty - o.filled),
            "order_id": o.id,
            "cum_qty": num(o.filled),
            "order_status": _STATUS[o.status],
            "swap_rate": "1",
        }

    def _fee(self, f: Fill) -> dict[str, Any]:
        m = f.order.market
        usd = f.fee_currency == "USD"
        return {
            "id": _activity_id(f.ts_ns, str(uuid.uuid5(uuid.NAMESPACE_URL, f.id))),
            "activity_type": "CFEE",
            "date": iso(f.ts_ns)[:10],
            "net_amount": num(-f.fee) if usd else "0",
            "description": f"Coin Pair Transaction Fee ({'USD' if usd else 'Non USD'})",
            "symbol": f"{f.fee_currency}USD" if not usd else f"{m.base}{m.quote}",
            "qty": "0" if usd else num(-f.fee),
            "price": num(f.price),
            "status": "executed",
        }
