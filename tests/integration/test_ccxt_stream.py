"""CcxtTradeFeed against a fake binance (real ccxt, real HTTP and websockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from adapters.feeds.ccxt_stream import CcxtTradeFeed
from events import Side, TickReceived
from tests.fakes.binance_stream import FakeBinanceMarket, FakeTrade
from tests.support import until

SYMBOLS = ("BTC/USDT", "ETH/USDT")
UNIFIED = {"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"}


class Run:
    """A feed consumed in the background, with what it emitted and the connection changes it reported."""

    def __init__(self, feed: CcxtTradeFeed) -> None:
        self.feed = feed
        self.ticks: list[tuple[int, TickReceived]] = []
        self.connection: list[tuple[str, str]] = []
        self.error: BaseException | None = None
        feed.on_connection = self._on_connection
        self.task = asyncio.create_task(self._consume())

    async def _on_connection(self, state: str, detail: str) -> None:
        self.connection.append((state, detail))

    async def _consume(self) -> None:
        try:
            async with contextlib.aclosing(self.feed.ticks()) as ticks:
                async for item in ticks:
                    self.ticks.append(item)
        except Exception as exc:
            self.error = exc

    def states(self) -> list[str]:
        return [s for s, _ in self.connection]

    def ids(self) -> list[str]:
        return [t.trade_id for _, t in self.ticks]

    async def got(self, trades: list[FakeTrade], what: str, timeout: float = 15.0) -> None:
        want = {str(t.id) for t in trades}
        await until(lambda: want <= set(self.ids()) or self.error is not None, what, timeout)
        assert self.error is None, self.error

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeBinanceMarket, str, str]]:
    market = FakeBinanceMarket()
    rest, ws = await market.start()
    try:
        yield market, rest, ws
    finally:
        await market.stop()


def expect(run: Run, trades: list[FakeTrade]) -> None:
    """Every trade exactly once, each symbol's in the venue's order, with the venue's exact values."""
    ids = run.ids()
    assert len(ids) == len(set(ids)), f"a trade was delivered twice: {ids}"
    assert sorted(ids) == sorted(str(t.id) for t in trades), "a trade was lost or invented"
    by_id = {str(t.id): t for t in trades}
    for ts_event, tick in run.ticks:
        t = by_id[tick.trade_id]
        assert tick.instrument == UNIFIED[t.symbol]
        assert tick.venue == "binance"
        assert tick.price == t.price and isinstance(tick.price, Decimal)
        assert tick.quantity == t.qty and isinstance(tick.quantity, Decimal)
        assert tick.side is (Side.SELL if t.buyer_maker else Side.BUY)
        assert ts_event == t.time_ms * 1_000_000
    for symbol in UNIFIED.values():
        mine = [int(tick.trade_id) for _, tick in run.ticks if tick.instrument == symbol]
        assert mine == sorted(mine), f"{symbol} out of order: {mine}"


async def test_stream_delivers_exact_trades(fake: tuple[FakeBinanceMarket, str, str]) -> None:
    market, rest, ws = fake
    before = await market.trade("BTC/USDT", Decimal("1.00"), Decimal("1"))  # history: not emitted
    while time.time_ns() // 1_000_000 <= before.time_ms:
        await asyncio.sleep(0.001)
    run = Run(CcxtTradeFeed("binance", SYMBOLS, rest_url=rest, ws_url=ws, poll_interval=0.2, max_backoff=0.5))
    try:
        await until(lambda: market.subscribers == 1, "the feed to subscribe to the trade streams")
        # 18 significant digits: a float cannot carry them, only the venue's own text can
        price = Decimal("9876543210.12345678")
        assert Decimal(repr(float(price))) != price
        trades = [
            await market.trade("BTC/USDT", price, Decimal("0.00000001")),
            await market.trade("ETH/USDT", Decimal("3000.50"), Decimal("1.25"), buyer_maker=True),
            await market.trade("BTC/USDT", Decimal("9876543210.12345679"), Decimal("12.3456789")),
        ]
        await run.got(trades, "three trades from the stream")
        expect(run, trades)
        assert str(run.ticks[0][1].price) == "9876543210.12345678"
        assert run.connection == []
        assert market.connections == 1, "one websocket for both symbols"
        assert run.feed.source == "feed:binance"
    finally:
        await run.stop()


async def test_outage_is_bridged_by_rest_without_loss_or_duplicates(
    fake: tuple[FakeBinanceMarket, str, str],
) -> None:
    market, rest, ws = fake
    run = Run(CcxtTradeFeed("binance", SYMBOLS, rest_url=rest, ws_url=ws, poll_interval=0.1, max_backoff=0.4))
    try:
        await until(lambda: market.subscribers == 1, "the feed to subscribe")
        trades = [await market.trade("BTC/USDT", Decimal("60000.01"), Decimal("0.5"))]
        await run.got(trades, "a trade from the stream")

        market.refuse_streams(True)
        await market.disconnect_streams()
        await until(lambda: run.states() == ["lost"], "the feed to report the stream lost")
        during = [
            await market.trade("BTC/USDT", Decimal("60000.02"), Decimal("0.1")),
            await market.trade("ETH/USDT", Decimal("3000.01"), Decimal("2"), buyer_maker=True),
            await market.trade("BTC/USDT", Decimal("60000.03"), Decimal("0.2"), buyer_maker=True),
        ]
        trades += during
        await run.got(during, "trades made during the outage, polled over REST")
        assert market.connections == 1 and market.subscribers == 0, "they came over REST, the stream is down"
        # the feed keeps retrying: refused attempts do not count as connections, and do not report again
        assert run.states() == ["lost"]

        market.refuse_streams(False)
        # printed while the stream comes back: REST or the stream, whichever, exactly once
        trades.append(await market.trade("ETH/USDT", Decimal("3000.02"), Decimal("0.7")))
        await until(lambda: run.states() == ["lost", "restored"], "the feed to report the stream restored")
        await until(lambda: market.subscribers == 1, "the feed to subscribe again")
        assert market.connections == 2
        after = [
            await market.trade("BTC/USDT", Decimal("60000.04"), Decimal("0.3")),
            await market.trade("ETH/USDT", Decimal("3000.03"), Decimal("0.4")),
        ]
        trades += after
        await run.got(trades, "every trade, before, during and after the outage")
        # a second disconnect: lost and restored again (one report per transition)
        await market.disconnect_streams()
        await until(lambda: run.states() == ["lost", "restored", "lost", "restored"], "a second outage and recovery")
        await until(lambda: market.subscribers == 1, "the feed to subscribe a third time")
        trades.append(await market.trade("BTC/USDT", Decimal("60000.05"), Decimal("0.6")))
        await run.got(trades, "a trade after the second recovery")
        expect(run, trades)
        assert all(detail for _, detail in run.connection)
    finally:
        await run.stop()


class _RestOnlyFeed(CcxtTradeFeed):
    """The same exchange, as if ccxt had no websocket for it (a venue without watchTrades)."""

    def _create_exchange(self) -> Any:
        exchange = super()._create_exchange()
        exchange.has = {**exchange.has, "watchTrades": False, "watchTradesForSymbols": False}
        return exchange


async def test_venue_without_watch_trades_polls(fake: tuple[FakeBinanceMarket, str, str]) -> None:
    market, rest, ws = fake
    run = Run(_RestOnlyFeed("binance", SYMBOLS, rest_url=rest, ws_url=ws, poll_interval=0.1, max_backoff=0.4))
    try:
        await until(lambda: market.requests.count("/api/v3/trades") >= 2, "the feed to poll both symbols")
        trades = [
            await market.trade("ETH/USDT", Decimal("3000.11"), Decimal("0.01")),
            await market.trade("BTC/USDT", Decimal("61000.5"), Decimal("0.25"), buyer_maker=True),
            await market.trade("BTC/USDT", Decimal("61000.6"), Decimal("0.125")),
        ]
        await run.got(trades, "polled trades")
        polls = market.requests.count("/api/v3/trades")
        await until(lambda: market.requests.count("/api/v3/trades") >= polls + 4, "a few more polls")
        expect(run, trades)  # polled again and again, delivered once
        assert market.connections == 0
        assert run.connection == []
    finally:
        await run.stop()


async def test_rest_outage_of_a_polling_venue_is_reported(fake: tuple[FakeBinanceMarket, str, str]) -> None:
    market, rest, ws = fake
    run = Run(_RestOnlyFeed("binance", SYMBOLS, rest_url=rest, ws_url=ws, poll_interval=0.1, max_backoff=0.4))
    try:
        # a trade printed before the feed started is history, skipped by design: print it once the feed polls
        await until(lambda: market.requests.count("/api/v3/trades") >= 2, "the feed to poll both symbols")
        trades = [await market.trade("BTC/USDT", Decimal("1.5"), Decimal("2"))]
        await run.got(trades, "a polled trade")
        market.fail_rest(True)
        await until(lambda: run.states() == ["lost"], "the feed to report the REST API lost")
        trades.append(await market.trade("ETH/USDT", Decimal("2.5"), Decimal("3")))  # made during the outage
        market.fail_rest(False)
        await until(lambda: run.states() == ["lost", "restored"], "the feed to report the REST API restored")
        await run.got(trades, "the trade made during the outage")
        expect(run, trades)
    finally:
        await run.stop()


async def test_stops_cleanly_and_close_is_idempotent(fake: tuple[FakeBinanceMarket, str, str]) -> None:
    market, rest, ws = fake
    feed = CcxtTradeFeed("binance", SYMBOLS, rest_url=rest, ws_url=ws, poll_interval=0.2)
    got: list[TickReceived] = []
    async with contextlib.aclosing(feed.ticks()) as ticks:

        async def first() -> None:
            async for _, tick in ticks:
                got.append(tick)
                return

        consumer = asyncio.create_task(first())
        await until(lambda: market.subscribers == 1, "the feed to subscribe")
        await market.trade("ETH/USDT", Decimal("3100"), Decimal("1"))
        await asyncio.wait_for(consumer, 15)
    # leaving the block closed the generator: workers stopped, exchange closed, sockets gone
    assert [t.price for t in got] == [Decimal("3100")]
    assert feed._exchange is None
    await until(lambda: market.subscribers == 0, "the websocket to be closed")
    assert not [t for t in asyncio.all_tasks() if (t.get_name() or "").startswith("feed:binance")]
    await feed.close()
    await feed.close()


def test_rejects_unknown_exchange_and_empty_symbols() -> None:
    with pytest.raises(ValueError, match="does not know"):
        CcxtTradeFeed("no_such_exchange", SYMBOLS)
    with pytest.raises(ValueError, match="at least one symbol"):
        CcxtTradeFeed("binance", [])


async def test_a_symbol_the_venue_does_not_list_ends_the_feed(fake: tuple[FakeBinanceMarket, str, str]) -> None:
    _, rest, ws = fake
    feed = CcxtTradeFeed("binance", ["XRP/USDT"], rest_url=rest, ws_url=ws)
    with pytest.raises(ValueError, match=r"does not list \['XRP/USDT'\]"):
        async with contextlib.aclosing(feed.ticks()) as ticks:
            async for _ in ticks:
                pass
    assert feed._exchange is None  # closed on the way out


def test_urls_keep_their_paths_on_the_new_origins() -> None:
    feed = CcxtTradeFeed("binance", SYMBOLS, rest_url="http://127.0.0.1:8080/", ws_url="ws://127.0.0.1:9090")
    api = feed._create_exchange().urls["api"]
    assert api["public"] == "http://127.0.0.1:8080/api/v3"
    assert api["sapi"] == "http://127.0.0.1:8080/sapi/v1"
    assert api["ws"]["spot"] == "ws://127.0.0.1:9090/ws"
    untouched = CcxtTradeFeed("binance", SYMBOLS)._create_exchange().urls["api"]
    assert untouched["public"] == "https://api.binance.com/api/v3"
