"""Every long-lived component works with ``async with``, and stopping it twice is harmless."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from adapters.http import HttpServer
from adapters.kafka import EventProducer, ensure_topics
from adapters.venues.base import Credentials
from adapters.venues.openalgo import OpenAlgoVenue
from engine.app import make_core_factory
from engine.config import load
from engine.loop import TradingLoop
from events import Topics
from tests.fakes.openalgo import FakeOpenAlgo
from tests.support import unique


async def test_the_http_server() -> None:
    async with aiohttp.ClientSession() as http:
        async with HttpServer("127.0.0.1", 0) as server:
            url = f"http://127.0.0.1:{server.port}/healthz"
            async with http.get(url) as r:
                assert r.status == 200
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(url):
                pass  # closed on leaving the block
    await server.stop()  # and again: nothing happens


async def test_the_openalgo_venue() -> None:
    fake = FakeOpenAlgo("k" * 32, cash=Decimal(1000))
    await fake.start()
    try:
        async with OpenAlgoVenue(fake.url, credentials=Credentials("k" * 32, ""), timeout_s=5) as venue:
            assert (await venue.balances())["INR"] == Decimal(1000)
        await venue.close()
    finally:
        await fake.stop()


@pytest.mark.servers
async def test_the_trading_loop(servers: Any) -> None:
    topics = Topics(unique("life") + ".")
    settings = load(kafka={"bootstrap": servers.kafka_bootstrap, "topic_prefix": topics.prefix, "partitions": 1})
    await ensure_topics(servers.kafka_bootstrap, 1, topics)
    async with (
        EventProducer(servers.kafka_bootstrap, topics) as producer,
        TradingLoop(servers.kafka_bootstrap, producer, make_core_factory(settings), topics) as loop,
    ):
        assert loop.ticks_processed == 0
    await loop.stop()
