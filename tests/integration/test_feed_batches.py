"""A recorded feed read as fast as it goes is handed to Kafka in record batches made by the feed (one
acknowledgement per batch); the records are exactly those the producer makes tick by tick: the same keys, values
(but ``ts_init``, the wall clock of publishing), headers, timestamps, partitions and order."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiokafka import TopicPartition

from adapters.feeds import publish_feed
from adapters.feeds.recorded import RecordedFeed
from adapters.kafka import EventProducer, ensure_topics, make_consumer
from events import Topics
from tests.support import TRADES, unique

pytestmark = pytest.mark.servers

_TS_INIT = re.compile(rb'"ts_init":\s*\d+')


class _TickByTick(RecordedFeed):
    """The same feed, handed to the producer one record at a time (as a paced feed is)."""

    @property
    def paced(self) -> bool:
        return True


async def _records(bootstrap: str, topic: str, partitions: int) -> dict[int, list[tuple[Any, ...]]]:
    """Every record of ``topic`` by partition, in order: key, value (its ts_init blanked), headers, timestamp."""
    consumer = make_consumer(bootstrap, group_id=None, client_id="test-feed-batches")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: dict[int, list[tuple[Any, ...]]] = {p: [] for p in range(partitions)}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while any(len(out[tp.partition]) < end[tp] for tp in tps):
            assert loop.time() < deadline, f"timed out reading {topic}"
            for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
                for m in msgs:
                    value = _TS_INIT.sub(b'"ts_init":0', m.value)
                    out[tp.partition].append((m.key, value, tuple(m.headers), m.timestamp))
        return out
    finally:
        await consumer.stop()


async def test_batched_records_are_those_sent_one_by_one(servers: Any) -> None:
    bootstrap, partitions = servers.kafka_bootstrap, 3
    files = ((TRADES, "XRP/ETH", "auto", None), (TRADES, "ETH/BTC", "auto", None), (TRADES, "BNB/ETH", "auto", None))
    got = {}
    for name, kind in (("one", _TickByTick), ("batched", RecordedFeed)):
        topics = Topics(unique(f"feedbatch_{name}") + ".")
        await ensure_topics(bootstrap, partitions, topics)
        feed = kind(TRADES, "XRP/ETH", files=files, source="feed:recorded")
        async with EventProducer(bootstrap, topics) as producer:
            acknowledged = await publish_feed(feed, producer, asyncio.Event())
        got[name] = (acknowledged, await _records(bootstrap, topics.ticks, partitions))
    one, batched = got["one"], got["batched"]
    n = 3 * sum(1 for _ in RecordedFeed(TRADES, "XRP/ETH")._sources()[0][1])
    assert one[0] == batched[0] == n
    assert sum(len(r) for r in batched[1].values()) == n
    assert len([p for p, r in batched[1].items() if r]) >= 2  # the instruments are on more than one partition
    for p in range(partitions):
        assert batched[1][p] == one[1][p], f"partition {p} differs"


async def test_a_single_instrument_is_published_whole_and_counted(servers: Any) -> None:
    topics = Topics(unique("feedbatch_single") + ".")
    await ensure_topics(servers.kafka_bootstrap, 2, topics)
    feed = RecordedFeed(TRADES, "XRP/ETH")
    async with EventProducer(servers.kafka_bootstrap, topics) as producer:
        acknowledged = await publish_feed(feed, producer, asyncio.Event())
        assert producer.sent == acknowledged
    records = await _records(servers.kafka_bootstrap, topics.ticks, 2)
    n = sum(1 for _ in RecordedFeed(TRADES, "XRP/ETH")._sources()[0][1])
    assert acknowledged == sum(len(r) for r in records.values()) == n
    assert feed.ended
