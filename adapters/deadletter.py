"""The dead-letter topic: a record no consumer can use is parked there once per consumer, with the reason.

A consumer that meets a bad record (it does not decode, it fails validation, or applying it raised) parks its
bytes on ``events.deadletter`` with headers saying why and where it came from (``dlq.reason``, ``dlq.topic``,
``dlq.partition``, ``dlq.offset``, ``dlq.consumer``), then goes on with the next record.

A consumer may meet the same bad record again: after a crash before its position was saved, on every start of an
in-memory projection (which folds the log from its start), or when a partition moves to another worker of its
group. :class:`DeadLetters` keeps what the topic already holds for its consumer name, read from the topic itself
(at start and before a newly assigned partition is consumed), so a record is parked once per consumer, not once
per restart.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiokafka import TopicPartition

from adapters.kafka import EventProducer, make_consumer
from adapters.telemetry import DEAD_LETTERED
from events import Envelope, encode

log = structlog.get_logger(__name__)

_Where = tuple[str, int, int]  # topic, partition, offset of the bad record


def _headers(reason: str, topic: str, partition: int, offset: int, consumer: str) -> list[tuple[str, bytes]]:
    """The headers of a dead-letter entry: why, where it came from, and who parked it."""
    return [
        ("dlq.reason", reason.encode()[:4000]),
        ("dlq.topic", topic.encode()),
        ("dlq.partition", str(partition).encode()),
        ("dlq.offset", str(offset).encode()),
        ("dlq.consumer", consumer.encode()),
    ]


def _header(headers: Any, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return bytes(value).decode(errors="replace")
    return None


class DeadLetters:
    """Parks bad records of one consumer (``name``: a consumer group, ``projection:audit``...) on the dead-letter
    topic, each at most once (see the module's docstring).

    ``await refresh()`` reads what was parked since the last call; :meth:`park` refreshes once by itself before
    its first use."""

    def __init__(self, producer: EventProducer, bootstrap: str, name: str) -> None:
        self._producer = producer
        self._bootstrap = bootstrap
        self.name = name
        self._seen: set[_Where] = set()
        self._positions: dict[TopicPartition, int] = {}
        self._loaded = False
        self._lock = asyncio.Lock()
        self.parked = 0  # records this process parked
        self.skipped = 0  # bad records met again, parked before

    async def refresh(self) -> None:
        """Read the dead-letter topic from where the last call stopped to its end."""
        async with self._lock:
            await self._read_to_end()
            self._loaded = True

    async def _read_to_end(self) -> None:
        topic = self._producer.topics.deadletter
        reader = make_consumer(self._bootstrap, group_id=None, client_id="engine-deadletters")
        await reader.start()
        try:
            parts = reader.partitions_for_topic(topic)
            if parts is None:
                await reader._client.force_metadata_update()
                parts = reader.partitions_for_topic(topic)
            if not parts:
                return  # no dead-letter topic yet: nothing was parked
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            end = await reader.end_offsets(tps)
            todo = [tp for tp in tps if end[tp] > self._positions.get(tp, 0)]
            if not todo:
                return
            reader.assign(todo)
            for tp in todo:
                reader.seek(tp, self._positions.get(tp, 0))
            left = set(todo)
            while left:
                for tp, msgs in (await reader.getmany(*left, timeout_ms=500, max_records=10_000)).items():
                    for m in msgs:
                        if _header(m.headers, "dlq.consumer") == self.name:
                            src_topic = _header(m.headers, "dlq.topic")
                            part, off = _header(m.headers, "dlq.partition"), _header(m.headers, "dlq.offset")
                            if src_topic is not None and part and off and part.isdigit() and off.isdigit():
                                self._seen.add((src_topic, int(part), int(off)))
                    if msgs:
                        self._positions[tp] = msgs[-1].offset + 1
                    if self._positions.get(tp, 0) >= end[tp]:
                        left.discard(tp)
        finally:
            await asyncio.shield(reader.stop())

    def parked_before(self, topic: str, partition: int, offset: int) -> bool:
        return (topic, partition, offset) in self._seen

    async def park(self, msg: Any, reason: str) -> bool:
        """Park one record (anything with ``topic``, ``partition``, ``offset``, ``key``, ``value``); False if this
        consumer had parked it before (then nothing is written)."""
        if not self._loaded:
            await self.refresh()
        where = (msg.topic, msg.partition, msg.offset)
        if where in self._seen:
            self.skipped += 1
            log.info(
                "kafka.dead_letter_known",
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                consumer=self.name,
            )
            return False
        headers = _headers(reason, msg.topic, msg.partition, msg.offset, self.name)
        await self._producer.send_raw(self._producer.topics.deadletter, msg.value, msg.key, headers)
        self._seen.add(where)
        self.parked += 1
        DEAD_LETTERED.labels(self.name).inc()
        log.warning(
            "kafka.dead_lettered",
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            reason=reason[:500],
            consumer=self.name,
        )
        return True


async def park_unpublished(producer: EventProducer, env: Envelope, topic: str, source: str, reason: str) -> None:
    """An event that breaks a rule of ``events.validation`` at the edge where it would enter the log (a feed's
    trade, a venue's report): parked with the reason instead of published to ``topic`` (it has no log position:
    ``dlq.partition`` and ``dlq.offset`` are -1)."""
    log.warning("kafka.refused_at_the_edge", source=source, type=env.type, event_id=str(env.event_id), reason=reason)
    headers = _headers(reason, topic, -1, -1, source)
    await producer.send_raw(producer.topics.deadletter, encode(env), env.key.encode(), headers)
    DEAD_LETTERED.labels(source).inc()
