"""The trading loop's live latency histograms on the real Kafka: a paced synthetic feed, the loop deciding orders,
its /metrics scraped over HTTP. Each histogram counts exactly the order decisions the loop published (the log read
back), and their means are plausible (below a second here, where ticks are decided within milliseconds)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.feeds import SyntheticFeed, publish_feed
from adapters.http import HttpServer
from adapters.kafka import EventProducer, ensure_topics, make_consumer
from engine.app import make_core_factory
from engine.config import load
from engine.loop import DECISIONS, TradingLoop
from events import Topics, decode
from tests.support import unique, wait_for

pytestmark = pytest.mark.servers

NAMES = ("engine_tick_to_decision_seconds", "engine_decision_to_ack_seconds")


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[tuple[str, str, str], float]:
    """(histogram, sample suffix, instrument) -> value, for the two latency histograms' _count and _sum."""
    async with http.get(url) as r:
        assert r.status == 200
        text = await r.text()
    out: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name in NAMES:
            for s in family.samples:
                suffix = s.name[len(family.name) :]
                if suffix in ("_count", "_sum"):
                    out[(family.name, suffix, s.labels["instrument"])] = s.value
    return out


async def decisions_in_log(bootstrap: str, topics: Topics, end: dict[Any, int]) -> Counter[str]:
    """The order decisions in the trading topic, by instrument (read to ``end``)."""
    reader = make_consumer(bootstrap, group_id=None, client_id="latency-test-reader")
    await reader.start()
    found: Counter[str] = Counter()
    try:
        reader.assign(list(end))
        await reader.seek_to_beginning(*end)
        todo = {tp for tp, off in end.items() if off > 0}
        while todo:
            for tp, msgs in (await reader.getmany(timeout_ms=500)).items():
                for m in msgs:
                    if m.offset < end[tp]:
                        env = decode(m.value)
                        if isinstance(env.event, DECISIONS):
                            found[env.event.instrument] += 1
                if msgs and msgs[-1].offset + 1 >= end[tp]:
                    todo.discard(tp)
    finally:
        await reader.stop()
    return found


async def test_latency_histograms_count_every_published_decision(servers: Any) -> None:
    topics = Topics(unique("latency") + ".")
    # a short moving-average pair: orders every few ticks, many of them refused by the order-rate limit (decisions too)
    settings = load(
        kafka={"bootstrap": servers.kafka_bootstrap, "topic_prefix": topics.prefix}, strategy={"fast": 2, "slow": 4}
    )
    await ensure_topics(servers.kafka_bootstrap, settings.kafka.partitions, topics)
    n_ticks = 1500
    async with (
        EventProducer(servers.kafka_bootstrap, topics, client_id="latency-test") as producer,
        HttpServer("127.0.0.1", 0) as server,
        aiohttp.ClientSession() as http,
    ):
        url = f"http://127.0.0.1:{server.port}/metrics"
        before = await scrape(http, url)  # the registry is the process's: other tests' loops may have observed
        loop = TradingLoop(settings.kafka.bootstrap, producer, make_core_factory(settings), topics)
        await loop.start()
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        try:
            await loop.wait_assigned(60)
            feed = SyntheticFeed(
                settings.feed.instruments,
                settings.feed.start_prices,
                settings.feed.tick_size,
                seed=3,
                ticks_per_second=500,
                limit=n_ticks,
            )
            assert await publish_feed(feed, producer, asyncio.Event()) == n_ticks
            reader = make_consumer(servers.kafka_bootstrap, group_id=None, client_id="latency-test-ends")
            await reader.start()
            try:
                tick_tps = [tp for tp in await _partitions(reader, topics.ticks)]
                tick_end = await reader.end_offsets(tick_tps)

                async def committed() -> bool:
                    return await loop.caught_up(tick_end) and sum(loop.positions.values()) >= n_ticks

                await wait_for(committed, 60, f"the loop to decide on, publish and commit {n_ticks} ticks")
                trading_end = await reader.end_offsets(await _partitions(reader, topics.trading))
            finally:
                await reader.stop()
            published = await decisions_in_log(servers.kafka_bootstrap, topics, dict(trading_end))
            assert sum(published.values()) >= 10, published  # the feed made the loop decide: the test means something
            got: dict[tuple[str, str, str], float] = {}

            async def counted() -> bool:
                got.update(await scrape(http, url))
                return all(
                    got.get((name, "_count", i), 0) - before.get((name, "_count", i), 0) >= n
                    for name in NAMES
                    for i, n in published.items()
                )

            await wait_for(counted, 15, "both histograms to count every decision published")
        finally:
            stop.set()
            await task
            await loop.stop()
    for name in NAMES:
        for instrument in settings.feed.instruments:
            count = got.get((name, "_count", instrument), 0) - before.get((name, "_count", instrument), 0)
            total = got.get((name, "_sum", instrument), 0) - before.get((name, "_sum", instrument), 0)
            assert count == published[instrument], (name, instrument, count, published)
            if count:
                assert 0 < total / count < 1.0, (name, instrument, total / count)


async def _partitions(reader: Any, topic: str) -> list[Any]:
    from aiokafka import TopicPartition

    parts = reader.partitions_for_topic(topic)
    if not parts:
        await reader._client.force_metadata_update()
        parts = reader.partitions_for_topic(topic)
    assert parts, topic
    return [TopicPartition(topic, p) for p in sorted(parts)]
