"""A record that makes a projection raise is dead-lettered with the error and every other record is applied; with
``on_error = "stop"`` the worker stops instead, and nothing of the batch is written. A PostgreSQL connection lost
under a batch is an outage: the batch is applied once, after it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiokafka import TopicPartition

from adapters.kafka import EventProducer, ensure_topics
from adapters.postgres import create_pool
from events import Envelope, Side, TickReceived, Topics
from projections.audit import create_schema
from projections.offsets import PgOffsets
from projections.runner import ProjectionFailed, ProjectionRunner, Record
from tests.support import unique

pytestmark = pytest.mark.servers


class Exploding:
    """Stores the offset of every tick; raises on a tick whose trade id is "boom"; loses its connection once if
    told to (as a PostgreSQL restart does)."""

    name = "explode"

    def __init__(self, topics: Topics, schema: str, *, drop_connection_once: bool = False) -> None:
        self.topics: tuple[str, ...] = (topics.ticks,)
        self._schema = schema
        self._drop = drop_connection_once
        self.attempts = 0

    async def apply(self, conn: asyncpg.Connection, records: Sequence[Record]) -> None:
        self.attempts += 1
        await conn.executemany(f"INSERT INTO {self._schema}.seen VALUES ($1)", [(r.offset,) for r in records])
        if self._drop:
            self._drop = False
            conn.terminate()  # the server is gone in the middle of the transaction
            await conn.execute("SELECT 1")
        for r in records:
            if r.envelope.event.trade_id == "boom":
                raise ValueError(f"cannot fold trade {r.offset}")


def tick(n: int, trade_id: str) -> Envelope:
    ev = TickReceived(
        instrument="BTC/USDT",
        venue="test",
        trade_id=trade_id,
        price=Decimal("100"),
        quantity=Decimal("1"),
        side=Side.BUY,
    )
    ts = time.time_ns() + n
    return Envelope.of_trade(ev, ts_event=ts, ts_init=ts, source="test")


async def _setup(servers: Any, name: str, bombs: set[int]) -> tuple[Topics, str, asyncpg.Pool, TopicPartition]:
    topics = Topics(unique(name) + ".")
    schema = unique(name)
    await ensure_topics(servers.kafka_bootstrap, 1, topics)
    async with EventProducer(servers.kafka_bootstrap, topics) as p:
        await p.publish([tick(i, "boom" if i in bombs else f"t{i}") for i in range(50)])
    pool = await create_pool(servers.pg_dsn)
    await create_schema(pool, schema, roles=False)
    await pool.execute(f"CREATE TABLE {schema}.seen (kafka_offset bigint PRIMARY KEY)")
    return topics, schema, pool, TopicPartition(topics.ticks, 0)


async def _dead_letters(servers: Any, topics: Topics) -> list[dict[str, str]]:
    from benchmarks.faults import _read_topic

    return [
        {k: bytes(v).decode() for k, v in m.headers}
        for m in await _read_topic(servers.kafka_bootstrap, topics.deadletter)
    ]


async def test_a_record_that_raises_is_dead_lettered_and_the_rest_of_its_batch_applied(servers: Any) -> None:
    topics, schema, pool, tp = await _setup(servers, "iso", {17, 33})
    try:
        async with EventProducer(servers.kafka_bootstrap, topics) as dlq:
            projection = Exploding(topics, schema)
            runner = ProjectionRunner(
                projection, PgOffsets(pool, schema), servers.kafka_bootstrap, dlq, partitions=[tp], stop_at={tp: 50}
            )
            await runner.start()
            await asyncio.wait_for(runner.run(asyncio.Event()), 60)
            await runner.stop()
        seen = sorted(r[0] for r in await pool.fetch(f"SELECT kafka_offset FROM {schema}.seen"))
        assert seen == [i for i in range(50) if i not in (17, 33)]
        assert await pool.fetchval(f"SELECT next_offset FROM {schema}.projection_offsets") == 50
        assert runner.dead_lettered == 2
        parked = await _dead_letters(servers, topics)
        assert sorted(int(h["dlq.offset"]) for h in parked) == [17, 33]
        assert all(h["dlq.consumer"] == "projection:explode" and "ValueError" in h["dlq.reason"] for h in parked)
        assert projection.attempts < 30  # found by halves, not one transaction per record
    finally:
        await pool.close()


async def test_with_on_error_stop_the_worker_stops_and_writes_nothing_of_the_batch(servers: Any) -> None:
    topics, schema, pool, tp = await _setup(servers, "isostop", {5})
    try:
        async with EventProducer(servers.kafka_bootstrap, topics) as dlq:
            runner = ProjectionRunner(
                Exploding(topics, schema),
                PgOffsets(pool, schema),
                servers.kafka_bootstrap,
                dlq,
                partitions=[tp],
                stop_at={tp: 50},
                on_error="stop",
            )
            await runner.start()
            with pytest.raises(ProjectionFailed, match="on_error = 'stop'"):
                await asyncio.wait_for(runner.run(asyncio.Event()), 60)
            await runner.stop()
        assert await pool.fetchval(f"SELECT count(*) FROM {schema}.seen") == 0
        assert await pool.fetchval(f"SELECT next_offset FROM {schema}.projection_offsets") == 0
        assert await _dead_letters(servers, topics) == []
    finally:
        await pool.close()


async def test_a_connection_lost_under_a_batch_is_waited_out_and_the_batch_applied_once(servers: Any) -> None:
    topics, schema, pool, tp = await _setup(servers, "isodrop", set())
    try:
        async with EventProducer(servers.kafka_bootstrap, topics) as dlq:
            projection = Exploding(topics, schema, drop_connection_once=True)
            runner = ProjectionRunner(
                projection, PgOffsets(pool, schema), servers.kafka_bootstrap, dlq, partitions=[tp], stop_at={tp: 50}
            )
            await runner.start()
            await asyncio.wait_for(runner.run(asyncio.Event()), 60)
            await runner.stop()
        assert sorted(r[0] for r in await pool.fetch(f"SELECT kafka_offset FROM {schema}.seen")) == list(range(50))
        assert await pool.fetchval(f"SELECT next_offset FROM {schema}.projection_offsets") == 50
        assert runner.dead_lettered == 0 and projection.attempts >= 2
        assert runner.backoff.retries == 0  # the outage ended (and was logged as over)
    finally:
        await pool.close()
