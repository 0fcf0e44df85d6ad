"""Bad input is parked with its reason and loses nothing; a stale worker cannot apply a batch twice."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from adapters.kafka import EventProducer, ensure_topics, make_consumer
from adapters.kafka_security import client_args
from adapters.postgres import create_pool
from events import Envelope, Side, TickReceived, Topics, encode
from projections.audit import AuditProjection, create_schema
from projections.offsets import PgOffsets, StaleOffset
from projections.runner import ProjectionRunner, Record
from tests.support import project_until, unique

pytestmark = pytest.mark.servers


def tick(n: int, instrument: str = "BTC/USDT") -> Envelope:
    ev = TickReceived(
        instrument=instrument,
        venue="test",
        trade_id=str(n),
        price=Decimal("100.5"),
        quantity=Decimal("0.25"),
        side=Side.BUY,
    )
    return Envelope.new(ev, ts_event=time.time_ns(), ts_init=time.time_ns(), source="test")


async def test_a_malformed_message_goes_to_the_dead_letter_topic_and_the_projection_carries_on(servers: Any) -> None:
    topics = Topics(unique("dlq") + ".")
    schema = unique("dlq")
    await ensure_topics(servers.kafka_bootstrap, 1, topics)
    good_before, good_after = tick(1), tick(2)
    raw = AIOKafkaProducer(**client_args(servers.kafka_bootstrap))
    await raw.start()
    try:
        for value in (
            encode(good_before),
            b'{"type": "TickReceived", "v": 1, "data": {"price": 1.5}}',
            b"\xff not json",
            encode(good_after),
        ):
            await raw.send_and_wait(topics.ticks, value, key=b"BTC/USDT")
    finally:
        await raw.stop()

    pool = await create_pool(servers.pg_dsn)
    try:
        await create_schema(pool, schema)
        runner = await project_until(servers.kafka_bootstrap, pool, schema, topics, topics.ticks, 4)
        ids = {r[0] for r in await pool.fetch(f"select event_id from {schema}.events")}
        assert ids == {good_before.event_id, good_after.event_id}
        assert runner.dead_lettered == 2
    finally:
        await pool.close()

    reader = make_consumer(servers.kafka_bootstrap, group_id=None, client_id="test")
    await reader.start()
    try:
        tp = TopicPartition(topics.deadletter, 0)
        reader.assign([tp])
        reader.seek(tp, 0)
        parked = []
        end = time.monotonic() + 30
        while len(parked) < 2 and time.monotonic() < end:
            for msgs in (await reader.getmany(timeout_ms=500)).values():
                parked.extend(msgs)
    finally:
        await reader.stop()
    assert [m.value for m in parked] == [b'{"type": "TickReceived", "v": 1, "data": {"price": 1.5}}', b"\xff not json"]
    headers = [dict(m.headers) for m in parked]
    assert headers[0]["dlq.reason"] == b"TickReceived: missing field 'instrument'"
    assert headers[1]["dlq.reason"].startswith(b"not JSON")
    assert headers[0]["dlq.topic"] == topics.ticks.encode() and headers[0]["dlq.offset"] == b"1"


async def test_a_worker_holding_a_stale_offset_cannot_apply_its_batch(servers: Any) -> None:
    """After a rebalance the old owner still has a batch in hand: its write is refused and rolled back."""
    schema = unique("guard")
    topics = Topics("guard.")
    pool = await create_pool(servers.pg_dsn)
    try:
        await create_schema(pool, schema)
        store = PgOffsets(pool, schema)
        projection = AuditProjection(schema, topics)
        tp = TopicPartition(topics.ticks, 0)
        assert await store.load("audit", [tp], {tp: 0}) == {tp: 0}
        first, second = tick(1), tick(2)
        # the new owner applies offsets 0..1
        async with store.batch("audit") as b:
            await projection.apply(b.conn, [Record(tp.topic, 0, 0, first)])
            await b.advance(tp, 0, 1)
        # the old owner, who also expected offset 0, tries to apply its own batch
        with pytest.raises(StaleOffset):
            async with store.batch("audit") as b:
                await projection.apply(b.conn, [Record(tp.topic, 0, 0, second)])
                await b.advance(tp, 0, 1)
        rows = await pool.fetch(f"select event_id from {schema}.events")
        assert [r[0] for r in rows] == [first.event_id]  # the stale batch left nothing behind
        assert await store.load("audit", [tp], {tp: 0}) == {tp: 1}
    finally:
        await pool.close()


async def test_a_stored_offset_that_is_no_longer_in_the_log_stops_the_projection(servers: Any) -> None:
    from projections.runner import OffsetNotInLog

    topics = Topics(unique("gone") + ".")
    schema = unique("gone")
    await ensure_topics(servers.kafka_bootstrap, 1, topics)
    async with EventProducer(servers.kafka_bootstrap, topics) as p:
        await p.publish([tick(i) for i in range(3)])
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

    admin = AIOKafkaAdminClient(**client_args(servers.kafka_bootstrap))
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topics.ticks, 0): RecordsToDelete(before_offset=2)})
    finally:
        await admin.close()
    pool = await create_pool(servers.pg_dsn)
    try:
        await create_schema(pool, schema)
        store = PgOffsets(pool, schema)
        tp = TopicPartition(topics.ticks, 0)
        trading = TopicPartition(topics.trading, 0)
        await store.load("audit", [tp, trading], {tp: 0, trading: 0})
        async with EventProducer(servers.kafka_bootstrap, topics) as dlq:
            runner = ProjectionRunner(
                AuditProjection(schema, topics),
                store,
                servers.kafka_bootstrap,
                dlq,
                partitions=[tp, TopicPartition(topics.trading, 0)],
            )
            await runner.start()
            with pytest.raises(OffsetNotInLog, match="no longer in the log"):
                await runner.run(asyncio.Event())
            await runner.stop()
        assert await pool.fetchval(f"select count(*) from {schema}.events") == 0
    finally:
        await pool.close()
