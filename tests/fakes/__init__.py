"""Local fake venues for the tests: servers that speak a real exchange's or broker's API on 127.0.0.1.

This module also holds what the Coinbase and Alpaca fakes share (the Binance and OpenAlgo fakes predate it):

- :class:`Book`: one account on one venue, with its markets, balances, orders and fills, and the matching:
  MARKET orders fill in full at the last price (``set_price``) as taker; LIMIT orders fill at once at the last
  price as taker if marketable, otherwise rest with their funds held and fill in full at their limit price as
  maker when ``set_price`` crosses them. The fee is a rate of the notional, charged in the quote currency or
  (``fee_from_received``) in whatever the fill credits, as Alpaca does for crypto.
- :class:`LocalServer`: the aiohttp plumbing and the fault injection (the Binance fake uses it too): answers delayed
  after the order was taken, 429 bursts, every trade listed twice, new orders invisible to lookups for a while;
  :class:`FakeServer` adds a :class:`Book`.

Money is Decimal here and plain decimal strings on the wire (:func:`num`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from adapters.venues.ccxt import CcxtVenue

ZERO = Decimal(0)


def num(v: Decimal) -> str:
    """A decimal string without exponent (what the venues send)."""
    return format(v.normalize(), "f") if v else "0"


def iso(ns: int) -> str:
    """RFC 3339 in UTC with microseconds, e.g. ``2026-11-23T10:00:00.123456Z``."""
    t = datetime.fromtimestamp(ns // 10**9, UTC).replace(microsecond=ns // 1000 % 10**6)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> int:
    """ns since the epoch of an RFC 3339 time (as clients send it: ``...Z``, milliseconds or none)."""
    delta = datetime.fromisoformat(text.replace("Z", "+00:00")) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


class Refused(Exception):
    """The book refuses an order: ``kind`` is ``funds`` or ``no_price``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Market:
    symbol: str  # unified, BTC/USD
    base: str
    quote: str
    step: Decimal  # quantity increment
    tick: Decimal  # price increment
    min_qty: Decimal


@dataclass
class Order:
    market: Market
    client_order_id: str
    side: str  # buy | sell
    kind: str  # market | limit
    qty: Decimal
    price: Decimal | None  # the limit price
    tif: str = "gtc"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_ns: int = field(default_factory=time.time_ns)
    created_mono: float = field(default_factory=time.monotonic)
    status: str = "open"  # open | filled | cancelled | expired
    filled: Decimal = ZERO
    notional: Decimal = ZERO  # of the fills, in the quote currency
    fees: Decimal = ZERO
    updated_ns: int = 0
    held: Decimal = ZERO  # funds held for the resting order, in the currency it spends

    @property
    def open(self) -> bool:
        return self.status == "open"


@dataclass(frozen=True)
class Fill:
    id: str
    order: Order
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    maker: bool
    ts_ns: int


class Book:
    """One account on one venue: see the module docstring."""

    def __init__(
        self,
        markets: Mapping[str, Market],
        balances: Mapping[str, Decimal],
        *,
        taker: Decimal,
        maker: Decimal,
        fee_from_received: bool = False,
    ) -> None:
        self.markets = dict(markets)
        self.taker, self.maker, self.fee_from_received = taker, maker, fee_from_received
        self.free: dict[str, Decimal] = {c: ZERO for m in self.markets.values() for c in (m.base, m.quote)}
        self.free.update({c: Decimal(v) for c, v in balances.items()})
        self.held: dict[str, Decimal] = dict.fromkeys(self.free, ZERO)
        self.prices: dict[str, Decimal] = {}
        self.orders: list[Order] = []
        self.fills: list[Fill] = []

    def set_price(self, symbol: str, price: Decimal) -> None:
        self.prices[symbol] = Decimal(price)
        for o in self.orders:
            if (
                o.market.symbol == symbol
                and o.open
                and o.kind == "limit"
                and o.price is not None
                and ((o.side == "buy" and price <= o.price) or (o.side == "sell" and price >= o.price))
            ):
                self._fill(o, o.price, maker=True)

    def balances(self) -> dict[str, Decimal]:
        """Total (free + held) per currency."""
        return {c: self.free[c] + self.held.get(c, ZERO) for c in self.free}

    def by_client_id(self, client_order_id: str) -> Order | None:
        return next((o for o in self.orders if o.client_order_id == client_order_id), None)

    def place(self, o: Order) -> Order:
        """Take ``o`` (already validated by the venue's rules): match it, or rest it with its funds held."""
        m, last = o.market, self.prices.get(o.market.symbol)
        ref = o.price if o.kind == "limit" else last
        if ref is None:
            raise Refused("no_price", f"no market price for {m.symbol}")
        fee = ZERO if self.fee_from_received else o.qty * ref * self.taker
        spend_cur, spend = (m.quote, o.qty * ref + fee) if o.side == "buy" else (m.base, o.qty)
        if self.free.get(spend_cur, ZERO) < spend:
            raise Refused(
                "funds",
                f"insufficient balance for {spend_cur} (requested: {num(spend)}, "
                f"available: {num(self.free.get(spend_cur, ZERO))})",
            )
        self.orders.append(o)
        o.updated_ns = o.created_ns
        if last is not None and (
            o.kind == "market"
            or (o.side == "buy" and o.price is not None and o.price >= last)
            or (o.side == "sell" and o.price is not None and o.price <= last)
        ):
            self._fill(o, last, maker=False)
        elif o.tif != "gtc":
            o.status = "expired"
        else:
            o.held = spend
            self.free[spend_cur] -= spend
            self.held[spend_cur] += spend
        return o

    def cancel(self, o: Order) -> None:
        self._release(o)
        o.status, o.updated_ns = "cancelled", time.time_ns()

    def _release(self, o: Order) -> None:
        if o.held:
            cur = o.market.quote if o.side == "buy" else o.market.base
            self.held[cur] -= o.held
            self.free[cur] += o.held
            o.held = ZERO

    def _fill(self, o: Order, price: Decimal, *, maker: bool) -> None:
        m, qty = o.market, o.qty - o.filled
        notional = qty * price
        rate = self.maker if maker else self.taker
        self._release(o)
        if self.fee_from_received:  # the fee comes out of what the fill credits
            fee_cur, fee = (m.base, qty * rate) if o.side == "buy" else (m.quote, notional * rate)
        else:
            fee_cur, fee = m.quote, notional * rate
        if o.side == "buy":
            self.free[m.quote] -= notional + (fee if fee_cur == m.quote else ZERO)
            self.free[m.base] += qty - (fee if fee_cur == m.base else ZERO)
        else:
            self.free[m.base] -= qty
            self.free[m.quote] += notional - fee
        now = time.time_ns()
        o.filled += qty
        o.notional += notional
        o.fees += fee
        o.status, o.updated_ns = "filled", now
        self.fills.append(Fill(str(uuid.uuid4()), o, qty, price, fee, fee_cur, maker, now))


class LocalServer:
    """An aiohttp server on 127.0.0.1 running ``dispatch``, with the fault injection every venue fake shares."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._delays: list[float] = []
        self._rate_limited = 0
        self.listed_twice = False
        self._hide_for = 0.0

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    def too_many_requests(self) -> web.Response:
        """The venue's answer to a request over its rate limit (HTTP 429)."""
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = getattr(site, "_server", None)
        port = server.sockets[0].getsockname()[1] if server is not None and server.sockets else 0
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- fault injection ---------------------------------------------------------------------------------

    def delay_responses_after_accept(self, count: int, seconds: float) -> None:
        """The next ``count`` new-order requests are taken (and matched), but answered ``seconds`` later."""
        self._delays.extend([seconds] * count)

    def rate_limit(self, count: int) -> None:
        """The next ``count`` requests (any endpoint) are refused with HTTP 429."""
        self._rate_limited += count

    def duplicate_trades(self, on: bool) -> None:
        """Every fill is listed twice while on."""
        self.listed_twice = on

    def hide_new_orders(self, seconds: float) -> None:
        """Lookups do not find orders younger than ``seconds`` (0 turns it off)."""
        self._hide_for = seconds

    def hidden(self, o: Any) -> bool:
        """``o`` (anything with ``created_mono``) is too young to be found by a lookup."""
        return time.monotonic() - o.created_mono < self._hide_for

    async def answer_late(self) -> None:
        """Called after a new order was taken: waits the next injected delay, if any."""
        if self._delays:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._delays.pop(0))

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if self._rate_limited > 0:
            self._rate_limited -= 1
            return self.too_many_requests()
        return await handler(request)


class FakeServer(LocalServer):
    """A :class:`LocalServer` for a venue's :class:`Book`; the venue's fake renders orders and fills its way
    (``render_order``, ``render_fill``)."""

    book: Book

    def render_order(self, o: Order) -> dict[str, Any]:
        raise NotImplementedError

    def render_fill(self, f: Fill) -> dict[str, Any]:
        raise NotImplementedError

    # -- the market and introspection --------------------------------------------------------------------

    def set_price(self, symbol: str, price: Decimal) -> None:
        """The last price of ``symbol``; resting limit orders it crosses fill in full at their price (maker)."""
        self.book.set_price(symbol, price)

    def orders_by_client_id(self, client_order_id: str) -> list[dict[str, Any]]:
        return [self.render_order(o) for o in self.book.orders if o.client_order_id == client_order_id]

    def all_orders(self) -> list[dict[str, Any]]:
        return [self.render_order(o) for o in self.book.orders]

    def all_trades(self) -> list[dict[str, Any]]:
        """Every fill, as the venue lists it."""
        return [self.render_fill(f) for f in self.book.fills]

    def balances(self) -> dict[str, Decimal]:
        """Total (free + held) per currency."""
        return self.book.balances()


def ccxt_venue(exchange_id: str, fake: FakeServer, *, api_key: str, secret: str, **kw: Any) -> CcxtVenue:
    """A :class:`CcxtVenue` (ccxt's real ``exchange_id`` class) pointed at ``fake``, which must be started."""
    from adapters.venues.base import Credentials
    from adapters.venues.ccxt import CcxtVenue

    if not fake.base_url:
        raise RuntimeError(f"start the fake {exchange_id} before building a venue for it")
    kw.setdefault("timeout_ms", 2_000)
    return CcxtVenue(exchange_id, credentials=Credentials(api_key, secret), base_url=fake.base_url, **kw)
