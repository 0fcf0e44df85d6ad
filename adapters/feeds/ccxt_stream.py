"""Live public trades from any exchange ccxt knows: a websocket stream, with REST polling to bridge outages.

- With ``watchTrades`` (ccxt.pro) the feed streams; one connection for all symbols when the exchange has
  ``watchTradesForSymbols``. When the stream fails it reports ``lost``, polls ``fetch_trades`` every
  ``poll_interval`` while it retries the stream with exponential backoff (capped at ``max_backoff``), and
  reports ``restored`` as soon as the stream is connected again. It keeps polling until the stream delivers
  its first trade, then polls once more before emitting it: trades printed between the last poll and the
  resubscription are fetched, none is missed, and REST and stream overlap harmlessly.
- Without ``watchTrades`` it polls; failed polls report ``lost`` and the first good one ``restored``.

Every trade passes through one per-symbol filter: trades older than the feed's start are skipped (no history),
trade ids already emitted are dropped (bounded memory: the last ``_DEDUP_CAPACITY`` ids per symbol), and each
batch is emitted in (time, id) order. Prices and quantities come from the exchange's raw strings in the trade's
``info`` when it has them (binance: ``p``/``q`` on the stream, ``price``/``qty`` over REST), else from ccxt's
float through ``repr``: never a binary float rounded into a Decimal.

``rest_url`` / ``ws_url`` replace the origin (``scheme://host[:port]``) of every REST / websocket URL ccxt has for
the exchange, keeping the paths: ``rest_url="http://127.0.0.1:8080"`` makes binance's
``https://api.binance.com/api/v3`` into ``http://127.0.0.1:8080/api/v3``, ``ws_url="ws://127.0.0.1:8080"`` makes
``wss://stream.binance.com:9443/ws`` into ``ws://127.0.0.1:8080/ws``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import structlog

from events import Side, TickReceived

log = structlog.get_logger(__name__)

OnConnection = Callable[[str, str], Awaitable[None]]
_Item = tuple[int, TickReceived] | BaseException

_DEDUP_CAPACITY = 20_000  # trade ids remembered per symbol (more than ccxt's 1000-trade cache, and a REST page)
_QUEUE_SIZE = 10_000
_FIRST_BACKOFF = 0.5

# errors that no retry can cure: they end the feed
_FATAL: tuple[type[BaseException], ...] = (
    ccxt.AuthenticationError,
    ccxt.PermissionDenied,
    ccxt.AccountSuspended,
    ccxt.BadSymbol,
    ccxt.NotSupported,
    ccxt.ArgumentsRequired,
)
# errors of the connection or the venue that a retry may cure
_TRANSIENT: tuple[type[BaseException], ...] = (
    ccxt.NetworkError,
    ccxt.ExchangeError,
    OSError,
    TimeoutError,
    aiohttp.ClientError,
)

_ORIGIN = re.compile(r"^(?P<scheme>https?|wss?)://[^/]+")


@dataclass(frozen=True)
class _Profile:
    """What an exchange needs beyond ccxt's defaults for public trades."""

    options: Mapping[str, Any] = field(default_factory=dict)
    poll_since: bool = True  # pass ``since`` to fetch_trades (the endpoint filters by time)
    poll_limit: int | None = None
    sequential_ids: bool = False  # trade ids are consecutive integers per symbol: a jump is a gap


_PROFILES: dict[str, _Profile] = {
    # spot only: load_markets needs just /api/v3/exchangeInfo. REST polls /api/v3/trades (ids are the real trade
    # ids, as on the <symbol>@trade stream; ccxt's default, aggTrades, numbers aggregates). That endpoint returns
    # the latest trades and takes no time filter, so no ``since``; 1000 is its maximum page.
    "binance": _Profile(
        options={
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchTradesMethod": "publicGetTrades",
            "watchTrades": {"name": "trade"},
            "watchTradesForSymbols": {"name": "trade"},
        },
        poll_since=False,
        poll_limit=1000,
        sequential_ids=True,
    ),
}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_fatal(exc: BaseException) -> bool:
    return isinstance(exc, _FATAL) or not isinstance(exc, _TRANSIENT)


def _rebase_urls(node: Any, rest_url: str | None, ws_url: str | None) -> Any:
    """``node`` (ccxt's ``urls['api']``) with every REST / websocket origin replaced."""
    if isinstance(node, dict):
        return {k: _rebase_urls(v, rest_url, ws_url) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase_urls(v, rest_url, ws_url) for v in node]
    if isinstance(node, str):
        m = _ORIGIN.match(node)
        if m is not None:
            base = rest_url if m.group("scheme").startswith("http") else ws_url
            if base is not None:
                return base.rstrip("/") + node[m.end() :]
    return node


def _raw_decimal(trade: Mapping[str, Any], unified: str, raw_keys: Sequence[str]) -> Decimal | None:
    """The exchange's own text for a number when ``info`` has it (and it agrees with ccxt's float), else repr."""
    value = trade.get(unified)
    info = trade.get("info")
    if isinstance(info, Mapping):
        for key in raw_keys:
            raw = info.get(key)
            if isinstance(raw, bool) or not isinstance(raw, str | int):
                continue
            try:
                d = Decimal(str(raw))
            except InvalidOperation:
                continue
            if not d.is_finite():
                continue
            if value is None or abs(d - Decimal(repr(float(value)))) <= abs(d) * Decimal("1e-9"):
                return d
    if value is None:
        return None
    try:
        d = Decimal(value) if isinstance(value, str) else Decimal(repr(float(value)))
    except (InvalidOperation, TypeError, ValueError):
        return None
    return d if d.is_finite() else None


def _order_key(trade: Mapping[str, Any]) -> tuple[int, int, int, str]:
    tid = str(trade.get("id"))
    ts = int(trade.get("timestamp") or 0)
    return (ts, 0, int(tid), "") if tid.isdigit() else (ts, 1, 0, tid)


class _SymbolFilter:
    """One symbol's trades: skip those before the start, drop ids already emitted, emit in order."""

    def __init__(self, symbol: str, venue: str, start_ms: int, sequential_ids: bool) -> None:
        self.symbol = symbol
        self.venue = venue
        self.start_ms = start_ms
        self.sequential_ids = sequential_ids
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.last_ts = start_ms  # time of the newest trade emitted (or the start)
        self.last_id: int | None = None

    def fresh(self, trades: Sequence[Mapping[str, Any]]) -> list[tuple[int, TickReceived]]:
        out: list[tuple[int, TickReceived]] = []
        for t in sorted(trades, key=_order_key):
            tid, ts = t.get("id"), t.get("timestamp")
            if tid is None or ts is None:
                log.warning(
                    "feed.trade_skipped",
                    venue=self.venue,
                    symbol=self.symbol,
                    reason="no id or time",
                    trade=t.get("info"),
                )
                continue
            tid, ts = str(tid), int(ts)
            if ts < self.start_ms or tid in self.seen:
                continue
            tick = self._tick(t, tid, ts)
            if tick is None:
                continue
            self.seen[tid] = None
            if len(self.seen) > _DEDUP_CAPACITY:
                self.seen.popitem(last=False)
            if ts < self.last_ts:
                log.warning(
                    "feed.trade_late", venue=self.venue, symbol=self.symbol, trade_id=tid, behind_ms=self.last_ts - ts
                )
            self.last_ts = max(self.last_ts, ts)
            if self.sequential_ids and tid.isdigit():
                n = int(tid)
                if self.last_id is not None and n > self.last_id + 1:
                    log.warning(
                        "feed.trade_ids_skipped",
                        venue=self.venue,
                        symbol=self.symbol,
                        after=self.last_id,
                        next=n,
                        missing=n - self.last_id - 1,
                    )
                self.last_id = n if self.last_id is None else max(self.last_id, n)
            out.append(tick)
        return out

    def _tick(self, t: Mapping[str, Any], tid: str, ts: int) -> tuple[int, TickReceived] | None:
        side = t.get("side")
        price = _raw_decimal(t, "price", ("p", "price", "px"))
        qty = _raw_decimal(t, "amount", ("q", "qty", "amount", "size", "sz", "quantity", "volume"))
        if side not in ("buy", "sell") or price is None or qty is None:
            log.warning(
                "feed.trade_skipped",
                venue=self.venue,
                symbol=self.symbol,
                trade_id=tid,
                reason="no side, price or amount",
                trade=t.get("info"),
            )
            return None
        return ts * 1_000_000, TickReceived(
            instrument=self.symbol,
            venue=self.venue,
            trade_id=tid,
            price=price,
            quantity=qty,
            side=Side(side),
        )


class CcxtTradeFeed:
    """Public trades of ``symbols`` on ``exchange_id`` as ``(ts_event_ns, TickReceived)``; see the module doc."""

    def __init__(
        self,
        exchange_id: str,
        symbols: Sequence[str],
        *,
        rest_url: str | None = None,
        ws_url: str | None = None,
        poll_interval: float = 1.0,
        on_connection: OnConnection | None = None,
        max_backoff: float = 10.0,
    ) -> None:
        if exchange_id not in ccxt_async.exchanges:
            raise ValueError(f"ccxt does not know the exchange {exchange_id!r}")
        if not symbols:
            raise ValueError("CcxtTradeFeed needs at least one symbol")
        if poll_interval <= 0 or max_backoff <= 0:
            raise ValueError("poll_interval and max_backoff must be positive")
        self.exchange_id = exchange_id
        self.symbols = tuple(symbols)
        self.rest_url = rest_url
        self.ws_url = ws_url
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.on_connection = on_connection
        self.source = f"feed:{exchange_id}"
        self.venue = exchange_id
        self._profile = _PROFILES.get(exchange_id, _Profile())
        self._exchange: Any = None
        self._closed = False
        self._down: set[str] = set()  # parts (stream groups, pollers) whose connection is down now
        self._filters: dict[str, _SymbolFilter] = {}

    # ---- the exchange ----------------------------------------------------------------------------------

    def _create_exchange(self) -> Any:
        """A ccxt instance (ccxt.pro when it has the exchange), its options and URLs set."""
        module: Any = ccxt_pro if self.exchange_id in ccxt_pro.exchanges else ccxt_async
        exchange = getattr(module, self.exchange_id)(
            {
                "enableRateLimit": True,
                "options": dict(self._profile.options),
            }
        )
        if self.rest_url is not None or self.ws_url is not None:
            exchange.urls = dict(exchange.urls)
            exchange.urls["api"] = _rebase_urls(exchange.urls.get("api"), self.rest_url, self.ws_url)
        return exchange

    async def close(self) -> None:
        """Close the exchange's sessions and sockets; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        exchange, self._exchange = self._exchange, None
        if exchange is not None:
            try:
                await exchange.close()
            except Exception as exc:  # closing is best effort: the feed is over either way
                log.warning("feed.close_failed", venue=self.venue, error=_describe(exc))

    # ---- connection state ------------------------------------------------------------------------------

    async def _report(self, state: str, detail: str) -> None:
        log.warning("feed.connection", venue=self.venue, state=state, detail=detail)
        if self.on_connection is None:
            return
        try:
            await self.on_connection(state, detail)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the callback's failure must not stop the market data
            log.error("feed.on_connection_failed", venue=self.venue, state=state, error=_describe(exc))

    async def _lost(self, part: str, detail: str) -> None:
        first = not self._down
        self._down.add(part)
        if first:
            await self._report("lost", f"{part}: {detail}")

    async def _restored(self, part: str, detail: str) -> None:
        if part not in self._down:
            return
        self._down.discard(part)
        if not self._down:
            await self._report("restored", f"{part}: {detail}")

    # ---- ticks -----------------------------------------------------------------------------------------

    async def ticks(self) -> AsyncGenerator[tuple[int, TickReceived], None]:
        start_ms = _now_ms()
        queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=_QUEUE_SIZE)
        tasks: list[asyncio.Task[None]] = []
        if self._closed:
            return
        self._exchange = exchange = self._create_exchange()
        try:
            await self._load_markets(exchange)
            symbols = [exchange.market(s)["symbol"] for s in self.symbols]
            self._filters = {s: _SymbolFilter(s, self.venue, start_ms, self._profile.sequential_ids) for s in symbols}
            if exchange.has.get("watchTrades"):
                groups = (
                    [tuple(symbols)]
                    if exchange.has.get("watchTradesForSymbols") and len(symbols) > 1
                    else [(s,) for s in symbols]
                )
                mode = "stream"
                workers = [self._stream(exchange, g, queue) for g in groups]
            else:
                mode = "poll"
                workers = [self._poll_only(exchange, tuple(symbols), queue)]
            log.info(
                "feed.started",
                venue=self.venue,
                mode=mode,
                symbols=symbols,
                rest=exchange.urls.get("api", {}).get("public")
                if isinstance(exchange.urls.get("api"), dict)
                else exchange.urls.get("api"),
            )
            tasks = [
                asyncio.create_task(self._guard(w, queue), name=f"feed:{self.venue}:{i}") for i, w in enumerate(workers)
            ]
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.shield(self._shutdown(tasks))

    async def _shutdown(self, tasks: Sequence[asyncio.Task[None]]) -> None:
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.close()

    async def _guard(self, worker: Awaitable[None], queue: asyncio.Queue[_Item]) -> None:
        try:
            await worker
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("feed.failed", venue=self.venue, error=_describe(exc))
            await queue.put(exc)

    async def _load_markets(self, exchange: Any) -> None:
        backoff = _FIRST_BACKOFF
        while True:
            try:
                await exchange.load_markets(reload=True)
            except Exception as exc:
                if _is_fatal(exc):
                    raise
                await self._lost("markets", _describe(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            await self._restored("markets", "markets loaded")
            missing = [s for s in self.symbols if s not in exchange.markets and s not in exchange.markets_by_id]
            if missing:
                raise ValueError(f"{self.exchange_id} does not list {missing}")
            return

    async def _emit(self, trades: Sequence[Mapping[str, Any]], queue: asyncio.Queue[_Item]) -> None:
        by_symbol: dict[str, list[Mapping[str, Any]]] = {}
        for t in trades:
            by_symbol.setdefault(str(t.get("symbol")), []).append(t)
        for symbol, batch in by_symbol.items():
            flt = self._filters.get(symbol)
            if flt is None:
                continue
            for item in flt.fresh(batch):
                await queue.put(item)

    async def _poll(self, exchange: Any, symbols: Sequence[str], queue: asyncio.Queue[_Item]) -> BaseException | None:
        """One REST poll of each symbol; returns the transient error that stopped it, if any."""
        for symbol in symbols:
            since = self._filters[symbol].last_ts if self._profile.poll_since else None
            try:
                trades = await exchange.fetch_trades(symbol, since, self._profile.poll_limit)
            except Exception as exc:
                if _is_fatal(exc):
                    raise
                log.info("feed.poll_failed", venue=self.venue, symbol=symbol, error=_describe(exc))
                return exc
            await self._emit(trades, queue)
        return None

    @staticmethod
    def _open_clients(exchange: Any) -> list[Any]:
        """ccxt's websocket clients that are connected now."""
        out = []
        for client in list((getattr(exchange, "clients", None) or {}).values()):
            fut = getattr(client, "connected", None)
            if (
                isinstance(fut, asyncio.Future)
                and fut.done()
                and not fut.cancelled()
                and fut.exception() is None
                and not client.closed()
            ):
                out.append(client)
        return out

    def _stream_connected(self, exchange: Any) -> bool:
        return bool(self._open_clients(exchange))

    async def _watch(self, exchange: Any, symbols: tuple[str, ...]) -> list[Mapping[str, Any]]:
        # ccxt keeps its own growing dial delay per URL; the feed's backoff governs instead
        backoff = getattr(exchange, "ws_dial_backoff", None)
        if isinstance(backoff, dict):
            backoff.clear()
        if len(symbols) == 1:
            trades: list[Mapping[str, Any]] = await exchange.watch_trades(symbols[0])
        else:
            trades = await exchange.watch_trades_for_symbols(list(symbols))
        return list(trades)

    async def _stream(self, exchange: Any, symbols: tuple[str, ...], queue: asyncio.Queue[_Item]) -> None:
        part = "stream " + ",".join(symbols)
        loop = asyncio.get_running_loop()
        down = False  # the stream failed and is not connected again yet
        # until the stream delivers (at the start, or after a failure) REST bridges: the subscription may not be
        # active yet, and the trades printed before it are fetched before the stream's first ones are emitted
        catching_up = True
        backoff = min(_FIRST_BACKOFF, self.max_backoff)
        watch: asyncio.Task[list[Mapping[str, Any]]] | None = None
        clients: list[Any] = []  # the connections the last batch came through
        try:
            while True:
                if watch is None:
                    # a connection that dropped between two reads raised nothing: ccxt would just dial again
                    if not down and any(c.closed() for c in clients):
                        down = catching_up = True
                        await self._lost(part, "stream closed between reads")
                    clients = []
                    watch = asyncio.create_task(self._watch(exchange, symbols))
                if down or catching_up:
                    await asyncio.wait({watch}, timeout=self.poll_interval)
                else:
                    await asyncio.wait({watch})
                if not watch.done():  # connecting, or connected and quiet: bridge with REST
                    await self._poll(exchange, symbols, queue)
                    if down and self._stream_connected(exchange):
                        down, backoff = False, min(_FIRST_BACKOFF, self.max_backoff)
                        await self._restored(part, "stream reconnected")
                    continue
                done, watch = watch, None
                try:
                    trades = done.result()
                except Exception as exc:
                    if _is_fatal(exc):
                        raise
                    log.info(
                        "feed.stream_failed", venue=self.venue, symbols=symbols, error=_describe(exc), retry_in=backoff
                    )
                    if not down:
                        down = catching_up = True
                        await self._lost(part, _describe(exc))
                    retry_at = loop.time() + backoff
                    backoff = min(backoff * 2, self.max_backoff)
                    next_poll = loop.time()
                    while (now := loop.time()) < retry_at:
                        if now >= next_poll:
                            await self._poll(exchange, symbols, queue)
                            next_poll = loop.time() + self.poll_interval
                        await asyncio.sleep(max(0.0, min(next_poll, retry_at) - loop.time()))
                    continue
                if down:
                    down, backoff = False, min(_FIRST_BACKOFF, self.max_backoff)
                    await self._restored(part, "stream delivered trades")
                # REST first: whatever was printed before the stream resumed comes out before the stream's trades
                if catching_up and await self._poll(exchange, symbols, queue) is None:
                    catching_up = False
                clients = self._open_clients(exchange)
                await self._emit(trades, queue)
        finally:
            if watch is not None:
                watch.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.shield(asyncio.wait({watch}))

    async def _poll_only(self, exchange: Any, symbols: tuple[str, ...], queue: asyncio.Queue[_Item]) -> None:
        part = "rest " + ",".join(symbols)
        backoff = min(_FIRST_BACKOFF, self.max_backoff)
        while True:
            error = await self._poll(exchange, symbols, queue)
            if error is None:
                backoff = min(_FIRST_BACKOFF, self.max_backoff)
                await self._restored(part, "poll succeeded")
                await asyncio.sleep(self.poll_interval)
            else:
                await self._lost(part, _describe(error))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
