"""Kafka: topic creation, the event producer, consumers and the dead-letter topic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from adapters.kafka_security import client_args
from adapters.telemetry import KAFKA_PRODUCED
from events import Envelope, Topics, encode

log = structlog.get_logger(__name__)


class TopicLayoutError(Exception):
    """The replication asked for cannot be had on this cluster; the message names the setting."""


async def _known_brokers(admin: AIOKafkaAdminClient, names: list[str]) -> tuple[set[int], dict[str, int]]:
    """The ids of the cluster's brokers (those that answer, and those holding a replica of an existing topic, which
    may be down for now), and each existing topic's replication (its first partition's replica count)."""
    cluster = await admin.describe_cluster()
    brokers = {int(b["node_id"]) for b in cluster["brokers"]}
    replication: dict[str, int] = {}
    if names:
        for t in await admin.describe_topics(names):
            parts = t.get("partitions") or []
            for p in parts:
                brokers.update(int(r) for r in p["replicas"])
            if parts:
                replication[t["topic"]] = len(parts[0]["replicas"])
    return brokers, replication


async def ensure_topics(
    bootstrap: str,
    partitions: int,
    topics: Topics,
    *,
    replication: int = 1,
    min_insync: int | None = None,
) -> None:
    """Create the trading topics if missing (auto-create is off on our brokers), ``replication`` copies of each
    partition and, if given, ``min.insync.replicas`` in their config. Idempotent.

    :class:`TopicLayoutError` if ``replication`` is more than the cluster's brokers. A topic that exists with
    another replication is kept as it is, with a warning: changing it is a partition reassignment, an operator's
    job (``kafka-reassign-partitions``), not something to do at an engine's start."""
    admin = AIOKafkaAdminClient(**client_args(bootstrap), client_id="engine-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        ours = [s.name for s in topics.specs()]
        brokers, have = await _known_brokers(admin, [n for n in ours if n in existing])
        if replication > len(brokers):
            raise TopicLayoutError(
                f"kafka.replication_factor is {replication} but the cluster at {bootstrap} has "
                f"{len(brokers)} broker{'s' if len(brokers) != 1 else ''}: set kafka.replication_factor "
                f"(ENGINE_KAFKA__REPLICATION_FACTOR) to at most {len(brokers)}"
            )
        differ = {name: n for name, n in have.items() if n != replication}
        if differ:
            log.warning(
                "kafka.replication_differs",
                topics=sorted(differ),
                replication=sorted(set(differ.values())),
                setting=replication,
                hint="kept as they are: change it with kafka-reassign-partitions, or set kafka.replication_factor",
            )
        extra = {} if min_insync is None else {"min.insync.replicas": str(min_insync)}
        new = [
            NewTopic(s.name, partitions, replication, topic_configs={**s.config, **extra})
            for s in topics.specs()
            if s.name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process created them first
                await admin.create_topics(new)
            log.info(
                "kafka.topics_created",
                topics=[t.name for t in new],
                partitions=partitions,
                replication=replication,
                min_insync_replicas=min_insync,
            )
    finally:
        await admin.close()


def _count_ack(topic: str) -> Callable[[asyncio.Future[Any]], None]:
    counter = KAFKA_PRODUCED.labels(topic)

    def done(f: asyncio.Future[Any]) -> None:
        if not f.cancelled() and f.exception() is None:
            counter.inc()

    return done


def _count_acks(topic: str, n: int) -> Callable[[asyncio.Future[Any]], None]:
    counter = KAFKA_PRODUCED.labels(topic)

    def done(f: asyncio.Future[Any]) -> None:
        if not f.cancelled() and f.exception() is None:
            counter.inc(n)

    return done


def _timestamp_ms(env: Envelope) -> int:
    return env.ts_event // 1_000_000


def _headers(env: Envelope) -> list[tuple[str, bytes]]:
    return [("type", env.event.TYPE.encode()), ("v", str(env.event.VERSION).encode())]


class EventProducer:
    """Publishes envelopes: idempotent, acks=all, keyed by instrument, timestamped with ts_event.

    ``async with EventProducer(...) as p: await p.publish(envs)``; ``stop()`` is safe twice.
    """

    def __init__(self, bootstrap: str, topics: Topics, *, client_id: str = "engine", linger_ms: int = 2) -> None:
        self.topics = topics
        self._producer = AIOKafkaProducer(
            **client_args(bootstrap),
            client_id=client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=linger_ms,
            max_batch_size=256 * 1024,
        )
        self._started = False
        self._stopped = False
        self._partition_of: dict[tuple[str, int, str], int] = {}  # (topic, its partitions, key) -> partition
        self.sent = 0

    async def start(self) -> EventProducer:
        if not self._started:
            await self._producer.start()
            self._started = True
        return self

    async def stop(self) -> None:
        if self._started and not self._stopped:
            self._stopped = True
            # flush and close even if the caller is being cancelled
            await asyncio.shield(self._producer.stop())

    async def __aenter__(self) -> EventProducer:
        return await self.start()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def enqueue(self, env: Envelope, topic: str | None = None) -> asyncio.Future[Any]:
        """Hand one envelope to the producer; the returned future resolves when the broker acknowledged it.

        ``topic`` defaults to the event type's topic (:meth:`Topics.for_event`)."""
        topic = topic or self.topics.for_event(env.event)
        fut: asyncio.Future[Any] = await self._producer.send(
            topic,
            value=encode(env),
            key=env.key.encode(),
            timestamp_ms=_timestamp_ms(env),
            headers=_headers(env),
        )
        self.sent += 1
        fut.add_done_callback(_count_ack(topic))
        return fut

    async def enqueue_batches(
        self, envs: Sequence[Envelope], on_batch: Callable[[list[Envelope], asyncio.Future[Any]], object]
    ) -> None:
        """Hand envelopes to the producer in record batches made here, ``on_batch`` told each batch's envelopes and
        its one future (resolved when the broker acknowledged the batch) as soon as the batch is handed over.

        The records are those :meth:`enqueue` makes one by one, to the same partitions in the same order: each to
        its event type's topic, at the partition the default partitioner gives its key (murmur2 of it, modulo the
        topic's partitions), each partition's in the order given. What it saves per record: the partitioner (once
        per key), a future and a callback, the accumulator's bookkeeping; the metric is counted per batch."""
        groups: dict[tuple[str, int], list[Envelope]] = {}
        counts: dict[str, int] = {}
        for env in envs:
            topic = self.topics.for_event(env.event)
            n = counts.get(topic)
            if n is None:
                n = counts[topic] = len(await self._producer.partitions_for(topic))
            where = (topic, n, env.key)
            partition = self._partition_of.get(where)
            if partition is None:
                partition = self._partition_of[where] = (murmur2(env.key.encode()) & 0x7FFFFFFF) % n
            groups.setdefault((topic, partition), []).append(env)
        for (topic, partition), group in groups.items():
            batch = self._producer.create_batch()
            members: list[Envelope] = []
            for env in group:
                value, key, ts, headers = encode(env), env.key.encode(), env.ts_event // 1_000_000, _headers(env)
                if batch.append(key=key, value=value, timestamp=ts, headers=headers) is None:  # full: send it
                    await self._send_batch(batch, topic, partition, members, on_batch)
                    batch, members = self._producer.create_batch(), []
                    if batch.append(key=key, value=value, timestamp=ts, headers=headers) is None:
                        raise MessageSizeTooLargeError(f"a record of {len(value)} bytes does not fit in a batch")
                members.append(env)
            if members:
                await self._send_batch(batch, topic, partition, members, on_batch)

    async def _send_batch(
        self,
        batch: Any,
        topic: str,
        partition: int,
        members: list[Envelope],
        on_batch: Callable[[list[Envelope], asyncio.Future[Any]], object],
    ) -> None:
        fut: asyncio.Future[Any] = await self._producer.send_batch(batch, topic, partition=partition)
        self.sent += len(members)
        fut.add_done_callback(_count_acks(topic, len(members)))
        on_batch(members, fut)

    async def publish(self, envs: Sequence[Envelope], topic: str | None = None) -> None:
        """Send every envelope and wait until the broker acknowledged all of them."""
        if envs:
            await asyncio.gather(*[await self.enqueue(env, topic) for env in envs])

    async def send_raw(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, bytes]],
        partition: int | None = None,
    ) -> None:
        await (await self._producer.send(topic, value=value, key=key, headers=headers, partition=partition))


def make_consumer(
    bootstrap: str, topics: Iterable[str] = (), *, group_id: str | None, client_id: str, **kw: Any
) -> AIOKafkaConsumer:
    """A consumer that never commits by itself and never jumps to the end of the log."""
    return AIOKafkaConsumer(
        *topics,
        **client_args(bootstrap),
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **kw,
    )


class LogInspector:
    """Reads the log's shape (partitions, start and end offsets, offsets at a time) without consuming it."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = make_consumer(bootstrap, group_id=None, client_id="engine-inspector")

    async def __aenter__(self) -> LogInspector:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.shield(self._consumer.stop())

    async def partitions(self, topics: Iterable[str], *, missing_ok: bool = False) -> list[TopicPartition]:
        """The partitions of the topics; a missing topic is an error, or (``missing_ok``) holds no events."""
        out: list[TopicPartition] = []
        for t in topics:
            parts = self._consumer.partitions_for_topic(t)
            if parts is None:
                await self._consumer._client.force_metadata_update()
                parts = self._consumer.partitions_for_topic(t)
            if not parts and missing_ok:
                continue
            if not parts:
                raise LookupError(f"topic {t!r} does not exist: start the engine once (it creates its topics)")
            out.extend(TopicPartition(t, p) for p in sorted(parts))
        return out

    async def ping(self) -> None:
        """A metadata round trip to the cluster; raises if no broker answers (``force_metadata_update`` only says
        False, which made a health check pass with the broker gone)."""
        await self._consumer._client.fetch_all_metadata()

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict(await self._consumer.end_offsets(tps))

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict(await self._consumer.beginning_offsets(tps))

    async def range_by_scan(
        self,
        tps: list[TopicPartition],
        start_ms: int | None,
        end_ms: int | None,
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """Per partition, the offsets from the first record timed in ``[start_ms, end_ms)`` to just after the last
        (start = stop where there is none), found by reading the partitions whole.

        For a partition whose record times go back and forth, where :meth:`offsets_at` can be wrong: Kafka answers
        with the first offset timed at or after a time, so one early record timed later than the range (an engine
        started today, on a partition of events replayed from a recorded day) makes the range look empty."""
        begin = await self.beginning_offsets(tps)
        end = await self.end_offsets(tps)
        first: dict[TopicPartition, int] = {}
        last: dict[TopicPartition, int] = {}
        todo = {tp for tp in tps if end[tp] > begin[tp]}
        if todo:
            self._consumer.assign(sorted(todo, key=lambda tp: (tp.topic, tp.partition)))
            for tp in todo:
                self._consumer.seek(tp, begin[tp])
            while todo:
                for tp, msgs in (await self._consumer.getmany(timeout_ms=500, max_records=10_000)).items():
                    for m in msgs:
                        if (start_ms is None or m.timestamp >= start_ms) and (end_ms is None or m.timestamp < end_ms):
                            first.setdefault(tp, m.offset)
                            last[tp] = m.offset
                    if msgs and msgs[-1].offset + 1 >= end[tp]:
                        todo.discard(tp)
                        self._consumer.pause(tp)
            self._consumer.assign([])
        start = {tp: first.get(tp, begin[tp]) for tp in tps}
        stop = {tp: last[tp] + 1 if tp in last else start[tp] for tp in tps}
        return start, stop

    async def last_trade(self, topic: str, source: str, venue: str, instrument: str) -> tuple[int, str] | None:
        """(ts_event, trade id) of the last tick of ``instrument`` from ``venue`` written by ``source`` in ``topic``,
        or None: where a recorded run resumes. It reads the instrument's partition backwards, a growing window at a
        time, until it finds one."""
        from aiokafka.partitioner import murmur2

        from events import DecodeError, TickReceived, decode

        parts = await self.partitions([topic], missing_ok=True)
        if not parts:
            return None
        tp = TopicPartition(topic, (murmur2(instrument.encode()) & 0x7FFFFFFF) % len(parts))
        begin = (await self.beginning_offsets([tp]))[tp]
        stop = (await self.end_offsets([tp]))[tp]
        window = 1000
        self._consumer.assign([tp])
        try:
            while stop > begin:
                start = max(begin, stop - window)
                self._consumer.seek(tp, start)
                found: tuple[int, str] | None = None
                position = start
                while position < stop:
                    msgs = (await self._consumer.getmany(tp, timeout_ms=1000, max_records=5000)).get(tp, [])
                    for m in msgs:
                        if m.offset >= stop:
                            break
                        try:
                            env = decode(m.value)
                        except DecodeError:
                            continue
                        t = env.event
                        if (
                            isinstance(t, TickReceived)
                            and env.source == source
                            and t.venue == venue
                            and t.instrument == instrument
                        ):
                            found = (env.ts_event, t.trade_id)
                    if msgs:
                        position = msgs[-1].offset + 1
                if found is not None:
                    return found
                stop, window = start, window * 4
            return None
        finally:
            self._consumer.assign([])

    async def offsets_at(self, tps: list[TopicPartition], ts_ms: int) -> dict[TopicPartition, int]:
        """The first offset at or after ``ts_ms`` (the log end where there is none)."""
        found = await self._consumer.offsets_for_times({tp: ts_ms for tp in tps})
        end = await self.end_offsets(tps)
        return {tp: (found[tp].offset if found.get(tp) is not None else end[tp]) for tp in tps}
