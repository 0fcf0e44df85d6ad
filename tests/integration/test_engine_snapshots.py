"""An engine that restarts recovers each partition from its latest state snapshot and runs only the records after it,
to exactly the state a run over the whole log gives; a snapshot of other settings is never used."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from adapters.feeds import SyntheticFeed
from adapters.kafka import EventProducer, ensure_topics, make_consumer
from engine.app import make_core_factory
from engine.config import Settings, load
from engine.core.trading import TradingCore
from engine.loop import TradingLoop
from events import Envelope, Topics, decode
from tests.support import unique, wait_for

pytestmark = pytest.mark.servers


def _recoveries(start: str) -> float:
    return REGISTRY.get_sample_value("engine_recovery_duration_seconds_count", {"start": start}) or 0.0


async def _ticks(settings: Settings, n: int) -> list[Envelope]:
    feed = SyntheticFeed(
        settings.feed.instruments, settings.feed.start_prices, settings.feed.tick_size, seed=5, paced=False, limit=n
    )
    return [Envelope.new(tick, ts_event=ts, ts_init=ts, source="test") async for ts, tick in feed.ticks()]


async def _run(settings: Settings, topics: Topics, producer: EventProducer, until: int, **kw: Any) -> TradingLoop:
    """A trading loop (one engine of the group) until it has processed and committed ``until`` records."""
    loop = TradingLoop(settings.kafka.bootstrap, producer, make_core_factory(settings), topics, **kw)
    await loop.start()
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await loop.wait_assigned(60)

    async def done() -> bool:
        return sum(loop.processed.values()) >= until

    await wait_for(done, 60, f"the engine to process {until} records")
    stop.set()
    await task  # flushes: commits, then snapshots what is due
    await loop.stop()
    return loop


async def _whole_log(settings: Settings, topics: Topics, tps: list[TopicPartition]) -> dict[int, TradingCore]:
    """Each partition's core after running its whole log from the start (what a recovery without snapshots does)."""
    reader = make_consumer(settings.kafka.bootstrap, group_id=None, client_id="test-whole-log")
    await reader.start()
    cores = {tp.partition: make_core_factory(settings)() for tp in tps}
    try:
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        while [tp for tp in tps if await reader.position(tp) < ends[tp]]:
            for tp, msgs in (await reader.getmany(timeout_ms=500)).items():
                for m in msgs:
                    cores[tp.partition].on_input(decode(m.value), ts_init=0)
    finally:
        await reader.stop()
    return cores


async def test_a_restart_recovers_from_the_snapshot_to_the_state_of_the_whole_log(servers: Any) -> None:
    topics = Topics(unique("snap") + ".")
    settings = load(strategy={"fast": 2, "slow": 5})
    await ensure_topics(servers.kafka_bootstrap, settings.kafka.partitions, topics)
    ticks = await _ticks(settings, 1200)
    async with EventProducer(servers.kafka_bootstrap, topics) as producer:
        await producer.publish(ticks[:800])
        first = await _run(settings, topics, producer, 800, snapshot_every=100)
        assert first.events_published > 0
        await producer.publish(ticks[800:])
        # the next start runs only what follows each partition's snapshot
        before = _recoveries("snapshot")
        second = await _run(settings, topics, producer, 1200, snapshot_every=100)
        used = {tp.partition: at for tp, at in second.recovered_from.items() if at is not None}
        owned = {tp.partition for tp, core in second.cores.items() if core.states}
        assert owned and set(used) == owned, (used, owned)
        assert all(at > 0 for at in used.values())
        assert _recoveries("snapshot") == before + len(used)  # as /metrics shows it
        whole = await _whole_log(settings, topics, list(second.cores))
        for tp, core in second.cores.items():
            assert core.states == whole[tp.partition].states, f"partition {tp.partition}"
        # other settings: the snapshots do not fit, and the whole log is run again
        other = load(strategy={"fast": 2, "slow": 5, "order_quantity": Decimal("0.002")})
        third = await _run(other, topics, producer, 1200, snapshot_every=0)
        assert set(third.recovered_from.values()) == {None}
