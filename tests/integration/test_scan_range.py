"""A day's range of a partition whose record times go back and forth (the control topic in a backtest: an engine's
start carries the wall clock, its equity reports the recorded market's time) is found by reading it."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from adapters.kafka import LogInspector
from adapters.kafka_security import client_args
from tests.support import unique

pytestmark = pytest.mark.servers

DAY_MS = 86_400_000
DAY = 1_570_752_000_000  # 2019-10-11T00:00Z
NOW = 1_796_000_000_000  # 2026


async def test_a_record_timed_later_before_the_day_does_not_hide_the_day(servers: Any) -> None:
    topic = unique("scan")
    admin = AIOKafkaAdminClient(**client_args(servers.kafka_bootstrap))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**client_args(servers.kafka_bootstrap))
    await producer.start()
    try:
        # offsets: 0 engine started (now), 1-3 the recorded day, 4 the next day, 5 engine stopped (now)
        for ts in (NOW, DAY + 1, DAY + 5, DAY + DAY_MS - 1, DAY + DAY_MS + 1, NOW + 1):
            await producer.send_and_wait(topic, b"x", partition=0, timestamp_ms=ts)
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    async with LogInspector(servers.kafka_bootstrap) as inspector:
        # what Kafka answers: the first offset timed at or after the day's end is the engine's start
        assert (await inspector.offsets_at([tp], DAY + DAY_MS))[tp] == 0
        start, stop = await inspector.range_by_scan([tp], DAY, DAY + DAY_MS)
        assert (start[tp], stop[tp]) == (1, 4)
        start, stop = await inspector.range_by_scan([tp], DAY + 2 * DAY_MS, DAY + 3 * DAY_MS)
        assert start[tp] == stop[tp]  # nothing that day
        start, stop = await inspector.range_by_scan([tp], DAY + DAY_MS, None)
        assert (start[tp], stop[tp]) == (0, 6)  # from the next day on: everything timed after it
