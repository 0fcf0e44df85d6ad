"""The async shell around the trading core: consume ticks from Kafka -> core -> produce events.

The engine is a consumer group on ``market.ticks``: several engines split the partitions. For each
partition it owns, it keeps one :class:`TradingCore`. When it is handed a partition it rebuilds that
core by running the partition's ticks from the start of the log up to the group's committed offset
through the same code, publishing nothing (the core is deterministic, so this is exactly the state it
had). Then it consumes: for each batch it publishes the derived events, waits for the broker's
acknowledgement, and only then commits the offset. A crash between the two re-processes the batch and
re-publishes the same events with the same ids, which every projection recognises as duplicates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition

from adapters.kafka import EventProducer, make_consumer
from engine.core import TradingCore
from events import DecodeError, Topics, decode

log = structlog.get_logger(__name__)

GROUP = "engine"


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: TradingLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # wait for the batch in hand to be published and committed, so the next owner starts after it
        async with self._loop.batch_lock:
            self._loop.revoked.update(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self._loop.batch_lock:
            for tp in self._loop.revoked - set(assigned):
                self._loop.cores.pop(tp, None)
                self._loop.positions.pop(tp, None)
            self._loop.revoked.clear()
            for tp in assigned:
                await self._loop.recover(tp)


class TradingLoop:
    def __init__(
        self,
        bootstrap: str,
        producer: EventProducer,
        make_core: Callable[[], TradingCore],
        topics: Topics,
        *,
        batch: int = 1000,
    ) -> None:
        self._bootstrap = bootstrap
        self._producer = producer
        self._make_core = make_core
        self._topics = topics
        self._group_id = topics.group(GROUP)
        self._batch = batch
        self.cores: dict[TopicPartition, TradingCore] = {}
        self.positions: dict[TopicPartition, int] = {}
        self.ticks_processed = 0
        self.events_published = 0
        self._consumer = make_consumer(bootstrap, group_id=self._group_id, client_id="engine-loop")
        self._assigned = asyncio.Event()
        self.batch_lock = asyncio.Lock()
        self.revoked: set[TopicPartition] = set()

    async def recover(self, tp: TopicPartition) -> None:
        """Rebuild the core of ``tp`` from the log up to the committed offset, publishing nothing."""
        committed = await self._consumer.committed(tp)
        begin = (await self._consumer.beginning_offsets([tp]))[tp]
        start = begin if committed is None else committed
        if tp in self.cores and self.positions.get(tp) == start:
            self._consumer.seek(tp, start)  # kept through the rebalance: the state is already exact
            self._assigned.set()
            return
        core = self._make_core()
        replayed = 0
        if start > begin:
            t0 = time.monotonic()
            reader = make_consumer(self._bootstrap, group_id=None, client_id="engine-recovery")
            await reader.start()
            try:
                reader.assign([tp])
                reader.seek(tp, begin)
                while await reader.position(tp) < start:
                    batch = await reader.getmany(tp, timeout_ms=1000, max_records=5000)
                    for msg in batch.get(tp, []):
                        if msg.offset >= start:
                            break
                        try:
                            core.on_tick(decode(msg.value), ts_init=0)
                        except DecodeError:
                            continue  # dead-lettered when it was first consumed
                        replayed += 1
            finally:
                await reader.stop()
            log.info("engine.recovered", partition=tp.partition, ticks=replayed, offset=start,
                     seconds=round(time.monotonic() - t0, 3))
        self.cores[tp] = core
        self.positions[tp] = start
        self._consumer.seek(tp, start)
        self._assigned.set()

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.subscribe([self._topics.ticks], listener=_Rebalance(self))

    async def stop(self) -> None:
        await asyncio.shield(self._consumer.stop())

    async def wait_assigned(self, timeout: float) -> None:
        await asyncio.wait_for(self._assigned.wait(), timeout)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batches = await self._consumer.getmany(timeout_ms=200, max_records=self._batch)
            if batches:
                async with self.batch_lock:
                    await self._process(batches)

    async def _process(self, batches: dict[TopicPartition, list[Any]]) -> None:
        for tp, msgs in batches.items():
            core = self.cores.get(tp)
            # records fetched before a rebalance moved the position are stale: never feed a tick twice
            msgs = [m for m in msgs if m.offset >= self.positions.get(tp, 0)]
            if core is None or not msgs:
                continue
            out = []
            for msg in msgs:
                try:
                    env = decode(msg.value)
                except DecodeError as exc:
                    await self._producer.dead_letter(msg, exc.reason, consumer=self._group_id)
                    continue
                out.extend(core.on_tick(env, ts_init=time.time_ns()))
            await self._producer.publish(out)
            next_offset = msgs[-1].offset + 1
            await self._consumer.commit({tp: next_offset})
            self.positions[tp] = next_offset
            self.ticks_processed += len(msgs)
            self.events_published += len(out)

    async def caught_up(self, end_offsets: dict[TopicPartition, int]) -> bool:
        """True once every partition this engine owns has been processed up to ``end_offsets``."""
        return all(self.positions.get(tp, 0) >= end_offsets.get(tp, 0) for tp in self.positions)
