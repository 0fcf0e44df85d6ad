"""The ticks of a range of another log's ticks topic, as a feed: what ``shadow`` hands a candidate strategy.

It reads the partitions of ``topic`` from ``start`` to ``stop`` (exclusive, per partition) with a consumer of no
group (it commits nothing, so the log it reads is left exactly as it was) and yields each ``TickReceived`` with its
event time, merged by time across partitions and in each partition's own order: published again under another prefix
with as many partitions, each tick lands in the partition of the same number, after the same ticks as in the log it
came from, so a core reading them meets them in the same order. A tick's id is derived from its trade, so the copy
has the same ids, and the events a core derives from it too. Records that are not ticks (a live venue's reports,
which a paper venue does not need) and records the codec refuses (they were dead-lettered where they were first
read) are left out and counted.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from adapters.kafka import make_consumer
from events import DecodeError, TickReceived, decode

BATCH = 2000  # records asked per partition at a time


@dataclass
class LogFeed:
    bootstrap: str
    topic: str
    ranges: dict[int, tuple[int, int]]  # partition -> (first offset, end offset exclusive)
    source: str = "feed:log"
    read: int = 0  # records read
    skipped: int = 0  # records that are not ticks, or were refused by the codec
    _buffers: dict[int, deque[tuple[int, TickReceived]]] = field(default_factory=dict, repr=False)

    async def ticks(self) -> AsyncIterator[tuple[int, TickReceived]]:
        wanted = {p: r for p, r in self.ranges.items() if r[1] > r[0]}
        if not wanted:
            return
        consumer = make_consumer(self.bootstrap, group_id=None, client_id="engine-log-feed")
        await consumer.start()
        try:
            tps = {p: TopicPartition(self.topic, p) for p in wanted}
            consumer.assign(list(tps.values()))
            for p, (first, _) in wanted.items():
                consumer.seek(tps[p], first)
            position = {p: first for p, (first, _) in wanted.items()}
            self._buffers = {p: deque() for p in wanted}
            heads: list[tuple[int, int, TickReceived]] = []  # (ts_event, partition, tick): one per partition
            for p in wanted:
                head = await self._next(consumer, tps[p], position, wanted[p][1])
                if head is not None:
                    heapq.heappush(heads, (head[0], p, head[1]))
            while heads:
                ts, p, tick = heapq.heappop(heads)
                yield ts, tick
                head = await self._next(consumer, tps[p], position, wanted[p][1])
                if head is not None:
                    heapq.heappush(heads, (head[0], p, head[1]))
        finally:
            await consumer.stop()

    async def _next(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, position: dict[int, int], stop: int
    ) -> tuple[int, TickReceived] | None:
        """The partition's next tick before ``stop``, or None when it has no more."""
        buf = self._buffers[tp.partition]
        while not buf:
            if position[tp.partition] >= stop:
                return None
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=BATCH)
            if not batch.get(tp):  # nothing more to read before stop: what is left are markers, or gone
                position[tp.partition] = max(position[tp.partition], await consumer.position(tp))
                continue
            for rec in batch[tp]:
                if rec.offset >= stop:
                    position[tp.partition] = stop
                    break
                position[tp.partition] = rec.offset + 1
                self.read += 1
                try:
                    env = decode(rec.value)
                except DecodeError:
                    self.skipped += 1
                    continue
                if isinstance(env.event, TickReceived):
                    buf.append((env.ts_event, env.event))
                else:
                    self.skipped += 1
        return buf.popleft()
