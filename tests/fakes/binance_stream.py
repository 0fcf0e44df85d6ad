"""A fake binance spot market-data server for ccxt: REST (exchangeInfo, trades, aggTrades) and the trade streams.

It speaks just enough of binance's public API for ``ccxt.pro.binance`` with
``options={'fetchMarkets': {'types': ['spot']}, 'fetchCurrencies': False}`` and every URL's origin pointed here:

- ``GET /api/v3/exchangeInfo``: BTCUSDT and ETHUSDT (spot), what ``load_markets`` parses;
- ``GET /api/v3/trades?symbol=&limit=``: the most recent trades, oldest first (binance ignores time filters here);
- ``GET /api/v3/aggTrades?symbol=&fromId=|startTime=&endTime=&limit=``: one aggregate per trade (same id);
- ``GET /api/v3/time``, ``GET /api/v3/ping``;
- websocket ``/ws`` and ``/ws/<anything>`` (ccxt appends a stream index): ``{"method": "SUBSCRIBE", "params":
  ["btcusdt@trade"], "id": 1}`` is answered ``{"result": null, "id": 1}``; then every trade of a subscribed
  symbol is pushed as binance's ``<symbol>@trade`` (or ``@aggTrade``) payload.

Prices and quantities are formatted like binance's (8 decimals, strings). Times are the wall clock in ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import WSMsgType, web

_SYMBOLS = {"BTCUSDT": ("BTC", "USDT"), "ETHUSDT": ("ETH", "USDT")}


def _fmt(v: Decimal) -> str:
    return f"{v:.8f}"


@dataclass(frozen=True)
class FakeTrade:
    symbol: str  # binance id, e.g. BTCUSDT
    id: int
    price: Decimal
    qty: Decimal
    time_ms: int
    buyer_maker: bool

    def rest(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "price": _fmt(self.price),
            "qty": _fmt(self.qty),
            "quoteQty": _fmt(self.price * self.qty),
            "time": self.time_ms,
            "isBuyerMaker": self.buyer_maker,
            "isBestMatch": True,
        }

    def agg(self) -> dict[str, Any]:
        return {
            "a": self.id,
            "p": _fmt(self.price),
            "q": _fmt(self.qty),
            "f": self.id,
            "l": self.id,
            "T": self.time_ms,
            "m": self.buyer_maker,
            "M": True,
        }

    def stream(self, name: str) -> dict[str, Any]:
        now = int(time.time() * 1000)
        if name == "aggTrade":
            return {"e": "aggTrade", "E": now, "s": self.symbol, **self.agg()}
        return {
            "e": "trade",
            "E": now,
            "s": self.symbol,
            "t": self.id,
            "p": _fmt(self.price),
            "q": _fmt(self.qty),
            "T": self.time_ms,
            "m": self.buyer_maker,
            "M": True,
        }


def _market(symbol: str, base: str, quote: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01000000",
            },
            {"filterType": "LOT_SIZE", "minQty": "0.00000001", "maxQty": "9000.00000000", "stepSize": "0.00000001"},
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _binance_id(symbol: str) -> str:
    """``BTC/USDT`` or ``BTCUSDT`` → ``BTCUSDT``."""
    sid = symbol.replace("/", "").upper()
    if sid not in _SYMBOLS:
        raise ValueError(f"the fake market lists only {sorted(_SYMBOLS)}, not {symbol!r}")
    return sid


class FakeBinanceMarket:
    def __init__(self) -> None:
        self._trades: dict[str, list[FakeTrade]] = {s: [] for s in _SYMBOLS}
        # binance numbers trades per symbol, consecutively
        self._ids = {s: itertools.count(n) for s, n in zip(_SYMBOLS, (1_000_001, 5_000_001), strict=True)}
        self._sockets: dict[web.WebSocketResponse, dict[str, str]] = {}  # socket → {binance id: stream name}
        self._refuse = False
        self._fail_rest = False
        self.connections = 0
        self.requests: list[str] = []  # paths of every REST request, in order
        self._runner: web.AppRunner | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    # ---- control ---------------------------------------------------------------------------------------

    async def start(self) -> tuple[str, str]:
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/trades", self._recent_trades)
        app.router.add_get("/api/v3/aggTrades", self._agg_trades)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/api/v3/ping", self._ping)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/ws/{stream:.*}", self._ws)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self.disconnect_streams()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def trade(self, symbol: str, price: Decimal, qty: Decimal, *, buyer_maker: bool = False) -> FakeTrade:
        """Print one trade: kept for REST and pushed to every subscribed websocket."""
        sid = _binance_id(symbol)
        t = FakeTrade(sid, next(self._ids[sid]), price, qty, int(time.time() * 1000), buyer_maker)
        self._trades[sid].append(t)
        for ws, subs in list(self._sockets.items()):
            name = subs.get(sid)
            if name is None or ws.closed:
                continue
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_bytes(orjson.dumps(t.stream(name)))
        return t

    async def disconnect_streams(self) -> None:
        """Drop every websocket abruptly: the TCP connection is aborted, no close frame is sent."""
        sockets = list(self._sockets)
        self._sockets.clear()
        for ws in sockets:
            transport = getattr(ws, "_fake_transport", None)
            if transport is not None:
                transport.abort()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)

    def fail_rest(self, on: bool) -> None:
        """While on, every REST request is answered 503 (binance's "service unavailable")."""
        self._fail_rest = on

    def refuse_streams(self, on: bool) -> None:
        """While on, new websocket connections are answered 503 (no upgrade)."""
        self._refuse = on

    @property
    def subscribers(self) -> int:
        """Open websockets with at least one subscription."""
        return sum(1 for ws, subs in self._sockets.items() if subs and not ws.closed)

    def trades_of(self, symbol: str) -> list[FakeTrade]:
        return list(self._trades[_binance_id(symbol)])

    # ---- REST ------------------------------------------------------------------------------------------

    def _seen(self, request: web.Request) -> None:
        self.requests.append(request.path)
        if self._fail_rest:
            raise web.HTTPServiceUnavailable(text="REST refused by the test")

    def _symbol(self, request: web.Request) -> str:
        sid = request.query.get("symbol", "")
        if sid not in _SYMBOLS:
            raise web.HTTPBadRequest(
                body=orjson.dumps({"code": -1121, "msg": "Invalid symbol."}), content_type="application/json"
            )
        return sid

    async def _exchange_info(self, request: web.Request) -> web.Response:
        self._seen(request)
        now = int(time.time() * 1000)
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": now,
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
                ],
                "exchangeFilters": [],
                "symbols": [_market(s, b, q) for s, (b, q) in _SYMBOLS.items()],
            }
        )

    async def _recent_trades(self, request: web.Request) -> web.Response:
        self._seen(request)
        sid = self._symbol(request)
        limit = min(int(request.query.get("limit", "500")), 1000)
        rows = self._trades[sid][-limit:]
        return web.json_response([t.rest() for t in rows])

    async def _agg_trades(self, request: web.Request) -> web.Response:
        self._seen(request)
        sid = self._symbol(request)
        q = request.query
        limit = min(int(q.get("limit", "500")), 1000)
        rows = self._trades[sid]
        if "fromId" in q:
            from_id = int(q["fromId"])
            rows = [t for t in rows if t.id >= from_id][:limit]
        else:
            if "startTime" in q:
                rows = [t for t in rows if t.time_ms >= int(q["startTime"])]
            if "endTime" in q:
                rows = [t for t in rows if t.time_ms <= int(q["endTime"])]
            rows = rows[-limit:] if "startTime" not in q else rows[:limit]
        return web.json_response([t.agg() for t in rows])

    async def _time(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.json_response({"serverTime": int(time.time() * 1000)})

    async def _ping(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.json_response({})

    # ---- websocket -------------------------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if self._refuse:
            raise web.HTTPServiceUnavailable(text="streams refused by the test")
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        ws._fake_transport = request.transport  # type: ignore[attr-defined]
        self.connections += 1
        subs: dict[str, str] = {}
        self._sockets[ws] = subs
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = orjson.loads(msg.data)
                except orjson.JSONDecodeError:
                    await ws.send_bytes(orjson.dumps({"error": {"code": 3, "msg": "Invalid JSON"}}))
                    continue
                method, params, rid = req.get("method"), req.get("params") or [], req.get("id")
                if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
                    for p in params:
                        stream_sym, _, name = str(p).partition("@")
                        if stream_sym.upper() not in _SYMBOLS:
                            continue
                        if method == "SUBSCRIBE":
                            subs[stream_sym.upper()] = name
                        else:
                            subs.pop(stream_sym.upper(), None)
                    await ws.send_bytes(orjson.dumps({"result": None, "id": rid}))
                elif method == "LIST_SUBSCRIPTIONS":
                    await ws.send_bytes(
                        orjson.dumps({"result": [f"{s.lower()}@{n}" for s, n in subs.items()], "id": rid})
                    )
                else:
                    await ws.send_bytes(orjson.dumps({"error": {"code": 2, "msg": "Invalid request"}, "id": rid}))
        except ConnectionError:
            pass
        finally:
            self._sockets.pop(ws, None)
            self._handlers.discard(task)
        return ws
