"""A fake Coinbase Advanced Trade account (REST, JWT-authenticated) for ccxt's unmodified ``coinbase`` class.

Only the origin differs from the real thing: :func:`tests.fakes.ccxt_venue` points ``urls['api']['rest']``
here through :class:`~adapters.venues.ccxt.CcxtVenue`'s ``base_url``. What it speaks, as ccxt 4.5 calls it
for what CcxtVenue does:

- public: ``GET /v2/currencies``, ``/v2/currencies/crypto``, ``/v2/exchange-rates``, ``/v2/time`` (ccxt loads
  currencies with the markets), ``/api/v3/brokerage/time``, ``/api/v3/brokerage/market/products`` (spot
  products with their increments and minimum sizes, so ccxt's rounding is real; none for ``product_type=FUTURE``);
- private, each with a CDP API key's JWT (``Authorization: Bearer``, ES256 over P-256; ``kid`` and ``sub`` the
  key name, signature checked against the key's public key, ``nbf``/``exp`` window, ``uri`` = this method, host
  and path; anything else is HTTP 401 ``Unauthorized`` as Coinbase answers), under ``/api/v3/brokerage``:
  ``GET /transaction_summary`` (the fee tier), ``GET /accounts`` (``available_balance`` and ``hold`` per
  currency), ``POST /orders`` (``market_market_ioc`` with ``base_size`` or ``quote_size``, ``limit_limit_gtc``,
  ``sor_limit_ioc``; a ``client_order_id`` already used returns that order and creates none, as Coinbase
  documents; a field Coinbase does not define is HTTP 400 ``INVALID_ARGUMENT``), ``POST /orders/batch_cancel``,
  ``GET /orders/historical/{order_id}``, ``GET /orders/historical/batch`` (newest first, ``product_id`` or
  ``product_ids``, ``order_status``, ``limit``, ``cursor``), ``GET /orders/historical/fills`` (newest first,
  ``product_id``, ``start_sequence_timestamp``, ``limit``, ``cursor``).

ccxt signs the URI as ``url.replace('https://', '')``; over this fake's plain http the ``http://`` is therefore
still in the claim and is dropped before the comparison. Matching and faults: see :mod:`tests.fakes` (fees 0.6 %
taker / 0.4 % maker, in the quote currency). Refusals are Coinbase's JSON: a failed create is HTTP 200 with
``success: false`` and an ``error_response``; an unknown order id is HTTP 404 ``NOT_FOUND``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_private_key

from tests.fakes import ZERO, Book, FakeServer, Fill, Market, Order, Refused, iso, num, parse_iso

TAKER, MAKER = Decimal("0.006"), Decimal("0.004")
API = "/api/v3/brokerage"
_STATUS = {"open": "OPEN", "filled": "FILLED", "cancelled": "CANCELLED", "expired": "EXPIRED"}
_NAMES = {"BTC": "Bitcoin", "ETH": "Ethereum", "USDC": "USDC", "USD": "US Dollar", "EUR": "Euro"}
_FIAT = {"USD", "EUR", "GBP"}
_ORDER_FIELDS = {
    "client_order_id",
    "product_id",
    "side",
    "order_configuration",
    "self_trade_prevention_id",
    "leverage",
    "margin_type",
    "retail_portfolio_id",
    "preview_id",
    "attached_order_configuration",
}


def cdp_key(name: str = "organizations/fake-org/apiKeys/fake-key") -> tuple[str, str]:
    """A fresh CDP API key as Coinbase hands it out: (key name, EC P-256 private key in PEM)."""
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption()
    )
    return name, pem.decode()


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class _Error(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status, self.body = status, body


def _not_found() -> _Error:
    text = "order with this orderID was not found"
    return _Error(404, {"error": "NOT_FOUND", "error_details": text, "message": text})


class FakeCoinbase(FakeServer):
    """A Coinbase Advanced Trade account on 127.0.0.1: see the module docstring."""

    def __init__(
        self,
        *,
        api_key: str,
        private_key_pem: str,
        symbols: dict[str, tuple[str, str]] | None = None,
        balances: dict[str, Decimal] | None = None,
    ) -> None:
        super().__init__()
        self._api_key = api_key
        key = load_pem_private_key(private_key_pem.encode(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("a CDP API key's secret is an EC private key")
        self._public_key = key.public_key()
        symbols = symbols if symbols is not None else {"BTC/USD": ("BTC", "USD"), "ETH/USD": ("ETH", "USD")}
        markets = {
            s: Market(s, b, q, Decimal("0.00000001"), Decimal("0.01"), Decimal("0.00000001"))
            for s, (b, q) in symbols.items()
        }
        self.book = Book(
            markets, {"USD": Decimal("100000")} if balances is None else balances, taker=TAKER, maker=MAKER
        )
        self._uuids = {c: str(uuid.uuid5(uuid.NAMESPACE_URL, f"coinbase/{c}")) for c in self.book.free}

    # -- HTTP plumbing -----------------------------------------------------------------------------------

    def too_many_requests(self) -> web.Response:
        return web.json_response(
            {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}, status=429
        )

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path, method = request.path, request.method
        public: dict[Any, Callable[[], Any]] = {
            "/v2/currencies": self._fiat,
            "/v2/currencies/crypto": self._crypto,
            "/v2/exchange-rates": self._rates,
            "/v2/time": self._v2_time,
            f"{API}/time": self._time,
            f"{API}/market/products": lambda: self._products(request.query.get("product_type", "SPOT")),
        }
        try:
            if method == "GET" and path in public:
                return web.json_response(public[path]())
            if not self._authorized(request):
                return web.Response(status=401, text="Unauthorized\n")
            body = (await request.json()) if method == "POST" and request.can_read_body else {}
            q = request.query
            if method == "POST" and path == f"{API}/orders":
                answer = self._create(body)
                await self.answer_late()
                return web.json_response(answer)
            private: dict[Any, Callable[[], Any]] = {
                ("GET", f"{API}/transaction_summary"): self._summary,
                ("GET", f"{API}/accounts"): self._accounts,
                ("POST", f"{API}/orders/batch_cancel"): lambda: self._cancel(body.get("order_ids") or []),
                ("GET", f"{API}/orders/historical/batch"): lambda: self._list_orders(q),
                ("GET", f"{API}/orders/historical/fills"): lambda: self._list_fills(q),
            }
            if (method, path) in private:
                return web.json_response(private[(method, path)]())
            if method == "GET" and path.startswith(f"{API}/orders/historical/"):
                return web.json_response({"order": self.render_order(self._find(path.rsplit("/", 1)[1]))})
            raise _Error(
                404, {"error": "NOT_FOUND", "error_details": f"no route {method} {path}", "message": "Not Found"}
            )
        except _Error as exc:
            return web.json_response(exc.body, status=exc.status)

    def _authorized(self, request: web.Request) -> bool:
        """The CDP JWT of ``request`` checks out: key, ES256 signature, time window and the request's URI."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            head64, claims64, sig64 = token.split(".")
            header, claims, sig = json.loads(_b64(head64)), json.loads(_b64(claims64)), _b64(sig64)
            if scheme != "Bearer" or header.get("alg") != "ES256" or len(sig) != 64:
                return False
            if header.get("kid") != self._api_key or claims.get("sub") != self._api_key:
                return False
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            self._public_key.verify(der, f"{head64}.{claims64}".encode(), ec.ECDSA(hashes.SHA256()))
            now = time.time()
            fresh = float(claims["nbf"]) - 5 <= now <= float(claims["exp"]) and claims["exp"] - claims["nbf"] <= 300
            uri = str(claims.get("uri", "")).replace(" http://", " ", 1)
            return (
                fresh
                and claims.get("iss") in ("cdp", "coinbase-cloud")
                and (uri == f"{request.method} {request.host}{request.path}")
            )
        except (ValueError, KeyError, TypeError, InvalidSignature):
            return False

    # -- public ------------------------------------------------------------------------------------------

    def _fiat(self) -> dict[str, Any]:
        return {
            "data": [
                {"id": c, "name": _NAMES.get(c, c), "min_size": "0.01"} for c in sorted(self.book.free) if c in _FIAT
            ]
        }

    def _crypto(self) -> dict[str, Any]:
        return {
            "data": [
                {
                    "asset_id": self._uuids[c],
                    "code": c,
                    "name": _NAMES.get(c, c),
                    "color": "#000000",
                    "sort_index": i,
                    "exponent": 8,
                    "type": "crypto",
                    "address_regex": "^.+$",
                }
                for i, c in enumerate(sorted(self.book.free))
                if c not in _FIAT
            ]
        }

    def _rates(self) -> dict[str, Any]:
        return {"data": {"currency": "USD", "rates": {c: "1" for c in sorted(self.book.free)}}}

    def _v2_time(self) -> dict[str, Any]:
        return {"data": {"iso": iso(time.time_ns()), "epoch": int(time.time())}}

    def _time(self) -> dict[str, Any]:
        now = time.time_ns()
        return {"iso": iso(now), "epochSeconds": str(now // 10**9), "epochMillis": str(now // 10**6)}

    def _products(self, product_type: str) -> dict[str, Any]:
        products: list[dict[str, Any]] = (
            []
            if product_type != "SPOT"
            else [
                {
                    "product_id": f"{m.base}-{m.quote}",
                    "price": num(self.book.prices.get(m.symbol, ZERO)),
                    "price_percentage_change_24h": "0",
                    "volume_24h": "0",
                    "volume_percentage_change_24h": "0",
                    "base_increment": num(m.step),
                    "quote_increment": num(m.tick),
                    "quote_min_size": "1",
                    "quote_max_size": "150000000",
                    "base_min_size": num(m.min_qty),
                    "base_max_size": "3400",
                    "base_name": _NAMES.get(m.base, m.base),
                    "quote_name": _NAMES.get(m.quote, m.quote),
                    "watched": False,
                    "is_disabled": False,
                    "new": False,
                    "status": "online",
                    "cancel_only": False,
                    "limit_only": False,
                    "post_only": False,
                    "trading_disabled": False,
                    "auction_mode": False,
                    "product_type": "SPOT",
                    "quote_currency_id": m.quote,
                    "base_currency_id": m.base,
                    "fcm_trading_session_details": None,
                    "mid_market_price": "",
                    "alias": "",
                    "alias_to": [],
                    "base_display_symbol": m.base,
                    "quote_display_symbol": m.quote,
                    "view_only": False,
                    "price_increment": num(m.tick),
                    "display_name": f"{m.base}-{m.quote}",
                    "product_venue": "CBE",
                }
                for m in self.book.markets.values()
            ]
        )
        return {"products": products, "num_products": len(products)}

    # -- private -----------------------------------------------------------------------------------------

    def _summary(self) -> dict[str, Any]:
        return {
            "total_volume": 0,
            "total_fees": 0,
            "fee_tier": {
                "pricing_tier": "Advanced 1",
                "usd_from": "0",
                "usd_to": "1000",
                "taker_fee_rate": num(TAKER),
                "maker_fee_rate": num(MAKER),
                "aop_from": "",
                "aop_to": "",
            },
            "margin_rate": None,
            "goods_and_services_tax": None,
            "advanced_trade_only_volume": 0,
            "advanced_trade_only_fees": 0,
            "coinbase_pro_volume": 0,
            "coinbase_pro_fees": 0,
            "total_balance": "",
            "has_promo_fee": False,
        }

    def _accounts(self) -> dict[str, Any]:
        accounts = [
            {
                "uuid": self._uuids[c],
                "name": f"{c} Wallet",
                "currency": c,
                "available_balance": {"value": num(self.book.free[c]), "currency": c},
                "default": True,
                "active": True,
                "created_at": "2024-01-02T03:04:05.000Z",
                "updated_at": iso(time.time_ns()),
                "deleted_at": None,
                "type": "ACCOUNT_TYPE_FIAT" if c in _FIAT else "ACCOUNT_TYPE_CRYPTO",
                "ready": True,
                "hold": {"value": num(self.book.held.get(c, ZERO)), "currency": c},
                "retail_portfolio_id": "fake-portfolio",
                "platform": "ACCOUNT_PLATFORM_CONSUMER",
            }
            for c in sorted(self.book.free)
        ]
        return {"accounts": accounts, "has_next": False, "cursor": "", "size": len(accounts)}

    @staticmethod
    def _failure(error: str, message: str, config: Any) -> dict[str, Any]:
        return {
            "success": False,
            "failure_reason": "UNKNOWN_FAILURE_REASON",
            "order_id": "",
            "error_response": {
                "error": error,
                "message": message,
                "error_details": "",
                "preview_failure_reason": f"PREVIEW_{error}",
            },
            "order_configuration": config,
        }

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - _ORDER_FIELDS
        if unknown:  # as a protobuf gateway does: a client's own option sent along is an error
            raise _Error(
                400,
                {
                    "error": "INVALID_ARGUMENT",
                    "error_details": f"unknown field {sorted(unknown)[0]!r}",
                    "message": "invalid request",
                },
            )
        config = body.get("order_configuration")
        product, side, coid = body.get("product_id"), body.get("side"), body.get("client_order_id")
        m = next((m for m in self.book.markets.values() if f"{m.base}-{m.quote}" == product), None)
        if m is None or side not in ("BUY", "SELL") or not coid or not isinstance(config, dict) or len(config) != 1:
            return self._failure("INVALID_ARGUMENT", "invalid product, side, client_order_id or configuration", config)
        existing = self.book.by_client_id(coid)
        if existing is not None:  # as documented: no second order, the first one is returned
            return {
                "success": True,
                "success_response": {
                    "order_id": existing.id,
                    "product_id": product,
                    "side": side,
                    "client_order_id": coid,
                },
            }
        ((kind, cfg),) = config.items()
        if kind not in ("market_market_ioc", "limit_limit_gtc", "sor_limit_ioc") or not isinstance(cfg, dict):
            return self._failure("UNSUPPORTED_ORDER_CONFIGURATION", f"{kind} is not supported here", config)
        try:
            price = Decimal(cfg["limit_price"]) if kind != "market_market_ioc" else None
            if "base_size" in cfg:
                qty = Decimal(cfg["base_size"])
            else:  # a market buy for a quote amount
                last = self.book.prices.get(m.symbol)
                qty = (Decimal(cfg["quote_size"]) / last).quantize(m.step, "ROUND_DOWN") if last else ZERO
        except (KeyError, InvalidOperation, TypeError):
            return self._failure("INVALID_ARGUMENT", "base_size/quote_size and limit_price must be numbers", config)
        if qty < m.min_qty or qty % m.step:
            return self._failure("INVALID_SIZE_PRECISION", "Too many decimals in order amount", config)
        if price is not None and (price <= 0 or price % m.tick):
            return self._failure("INVALID_PRICE_PRECISION", "Too many decimals in order price", config)
        o = Order(
            m,
            coid,
            side.lower(),
            "limit" if price is not None else "market",
            qty,
            price,
            tif="ioc" if kind != "limit_limit_gtc" else "gtc",
        )
        try:
            self.book.place(o)
        except Refused as exc:
            error = "INSUFFICIENT_FUND" if exc.kind == "funds" else "INVALID_LIMIT_PRICE"
            return self._failure(
                error, "Insufficient balance in source account" if exc.kind == "funds" else str(exc), config
            )
        return {
            "success": True,
            "success_response": {"order_id": o.id, "product_id": product, "side": side, "client_order_id": coid},
            "order_configuration": config,
        }

    def _find(self, order_id: str) -> Order:
        o = next((o for o in self.book.orders if o.id == order_id), None)
        if o is None or self.hidden(o):
            raise _not_found()
        return o

    def _cancel(self, ids: list[str]) -> dict[str, Any]:
        results = []
        for order_id in ids:
            o = next((o for o in self.book.orders if o.id == order_id), None)
            reason = (
                "UNKNOWN_CANCEL_ORDER"
                if o is None
                else "ORDER_IS_FULLY_FILLED"
                if o.status == "filled"
                else "DUPLICATE_CANCEL_REQUEST"
                if not o.open
                else ""
            )
            if o is not None and not reason:
                self.book.cancel(o)
            results.append(
                {
                    "success": not reason,
                    "failure_reason": reason or "UNKNOWN_CANCEL_FAILURE_REASON",
                    "order_id": order_id,
                }
            )
        return {"results": results}

    @staticmethod
    def _page(rows: list[dict[str, Any]], q: Any, key: str) -> dict[str, Any]:
        start = int(q.get("cursor") or 0)
        limit = min(int(q.get("limit") or 100), 1000)
        more = start + limit < len(rows)
        return {key: rows[start : start + limit], "has_next": more, "cursor": str(start + limit) if more else ""}

    def _products_asked(self, q: Any) -> set[str]:
        return set(q.getall("product_ids", [])) | set(q.getall("product_id", []))

    def _list_orders(self, q: Any) -> dict[str, Any]:
        products, statuses = self._products_asked(q), set(q.getall("order_status", []))
        rows = [
            self.render_order(o)
            for o in reversed(self.book.orders)
            if not self.hidden(o)
            and (not products or f"{o.market.base}-{o.market.quote}" in products)
            and (not statuses or _STATUS[o.status] in statuses)
        ]
        return {**self._page(rows, q, "orders"), "sequence": "0"}

    def _list_fills(self, q: Any) -> dict[str, Any]:
        products = self._products_asked(q)
        start = parse_iso(q["start_sequence_timestamp"]) if q.get("start_sequence_timestamp") else 0
        rows = []
        for f in reversed(self.book.fills):
            row = self.render_fill(f)
            if (not products or row["product_id"] in products) and f.ts_ns >= start:
                rows.extend([row, dict(row)] if self.listed_twice else [row])
        return self._page(rows, q, "fills")

    # -- rendering ---------------------------------------------------------------------------------------

    def render_order(self, o: Order) -> dict[str, Any]:
        size = {"base_size": num(o.qty)}
        config = (
            {"market_market_ioc": size}
            if o.kind == "market"
            else {
                "limit_limit_gtc" if o.tif == "gtc" else "sor_limit_ioc": {
                    **size,
                    "limit_price": num(o.price or ZERO),
                    **({"post_only": False} if o.tif == "gtc" else {}),
                }
            }
        )
        fills = [f for f in self.book.fills if f.order is o]
        return {
            "order_id": o.id,
            "product_id": f"{o.market.base}-{o.market.quote}",
            "user_id": "fake-user",
            "order_configuration": config,
            "side": o.side.upper(),
            "client_order_id": o.client_order_id,
            "status": _STATUS[o.status],
            "time_in_force": "GOOD_UNTIL_CANCELLED" if o.tif == "gtc" else "IMMEDIATE_OR_CANCEL",
            "created_time": iso(o.created_ns),
            "completion_percentage": num(o.filled / o.qty * 100),
            "filled_size": num(o.filled),
            "average_filled_price": num(o.notional / o.filled) if o.filled else "0",
            "fee": "",
            "number_of_fills": str(len(fills)),
            "filled_value": num(o.notional),
            "pending_cancel": False,
            "size_in_quote": False,
            "total_fees": num(o.fees),
            "size_inclusive_of_fees": False,
            "total_value_after_fees": num(o.notional + o.fees),
            "trigger_status": "INVALID_ORDER_TYPE",
            "order_type": o.kind.upper(),
            "reject_reason": "REJECT_REASON_UNSPECIFIED",
            "settled": not o.open,
            "product_type": "SPOT",
            "reject_message": "",
            "cancel_message": "User requested cancel" if o.status == "cancelled" else "",
            "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": num(o.held),
            "is_liquidation": False,
            "last_fill_time": iso(fills[-1].ts_ns) if fills else None,
            "edit_history": [],
            "leverage": "",
            "margin_type": "UNKNOWN_MARGIN_TYPE",
            "retail_portfolio_id": "fake-portfolio",
        }

    def render_fill(self, f: Fill) -> dict[str, Any]:
        return {
            "entry_id": f"entry-{f.id}",
            "trade_id": f.id,
            "order_id": f.order.id,
            "trade_time": iso(f.ts_ns),
            "trade_type": "FILL",
            "price": num(f.price),
            "size": num(f.qty),
            "commission": num(f.fee),
            "product_id": f"{f.order.market.base}-{f.order.market.quote}",
            "sequence_timestamp": iso(f.ts_ns),
            "liquidity_indicator": "MAKER" if f.maker else "TAKER",
            "size_in_quote": False,
            "user_id": "fake-user",
            "side": f.order.side.upper(),
            "retail_portfolio_id": "fake-portfolio",
        }
