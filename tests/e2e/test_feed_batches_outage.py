"""A broker killed (kill -9) while a recorded feed publishes in batches, and started again: the feed waits it out,
resends what was not acknowledged, and ends with every trade of the file in the log once by id, each where the
per-record producer would have put it, and the acknowledged count that of the file."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2

from adapters.feeds import publish_feed
from adapters.feeds.recorded import RecordedFeed
from adapters.kafka import EventProducer, LogInspector, ensure_topics, make_consumer
from benchmarks import faults
from benchmarks.backtest_million import write_file
from benchmarks.faults import PrivateStack
from events import Topics, decode
from tests.support import unique

pytestmark = pytest.mark.servers

TRADES = 60_000
PARTITIONS = 3


@pytest.fixture(scope="module")
def stack() -> Iterator[PrivateStack]:
    state = faults.REPO / ".state" / f"feed-outage-tests-{uuid.uuid4().hex[:8]}"
    try:
        with faults.private_stack(state) as s:
            yield s
    finally:
        shutil.rmtree(state, ignore_errors=True)


async def _published(bootstrap: str, topic: str) -> int:
    async with LogInspector(bootstrap) as inspector:
        tps = await inspector.partitions([topic])
        return sum((await inspector.end_offsets(tps)).values())


async def test_a_broker_killed_mid_batch_is_waited_out_and_nothing_is_lost(stack: PrivateStack, tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    write_file(path, TRADES)
    topics = Topics(unique("feedoutage") + ".")
    await ensure_topics(stack.bootstrap, PARTITIONS, topics)
    feed = RecordedFeed(path, "XRP/ETH")
    async with EventProducer(stack.bootstrap, topics) as producer:
        task = asyncio.ensure_future(publish_feed(feed, producer, asyncio.Event(), final_wait=120))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while await _published(stack.bootstrap, topics.ticks) < TRADES // 10:
            assert loop.time() < deadline and not task.done(), "the feed did not get going"
            await asyncio.sleep(0.05)
        await asyncio.to_thread(stack.kill_kafka)
        assert not task.done(), "the feed ended before the broker was killed: make the file longer"
        await asyncio.to_thread(stack.restart)
        acknowledged = await asyncio.wait_for(task, 240)
    assert acknowledged == TRADES
    assert feed.ended

    consumer = make_consumer(stack.bootstrap, group_id=None, client_id="test-feed-outage")
    await consumer.start()
    try:
        tps = [TopicPartition(topics.ticks, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        seen: dict[str, int] = {}
        read = dict.fromkeys(range(PARTITIONS), 0)
        deadline = asyncio.get_running_loop().time() + 60
        while any(read[tp.partition] < end[tp] for tp in tps):
            assert asyncio.get_running_loop().time() < deadline, "timed out reading the ticks"
            for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
                read[tp.partition] += len(msgs)
                for m in msgs:
                    env = decode(m.value)
                    seen[str(env.event_id)] = tp.partition
    finally:
        await consumer.stop()
    assert len(seen) == TRADES  # every trade, duplicates (resent after all stored) being one event
    assert set(seen.values()) == {(murmur2(b"XRP/ETH") & 0x7FFFFFFF) % PARTITIONS}
