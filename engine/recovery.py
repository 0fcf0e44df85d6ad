"""Recovery and checkpoints of the trading cores: rebuild a partition's core from the log, write its snapshots.

A core is a deterministic fold of its partition's records, so its state at an offset is rebuilt by running the
records before it through the same code, publishing nothing (:meth:`Recovery.restore`). A snapshot
(``engine.snapshots``, compacted, one key per ticks partition: :mod:`engine.core.state_snapshot`) shortens that: the
latest one taken between the log's start and the offset, by the same code with the same settings, is loaded and only
the records after it are run. A snapshot of other code or settings, or a malformed one, is never used.
:meth:`Recovery.checkpoint` writes one, after the offsets it covers were committed.

A record the core could not take when it was first consumed was dead-lettered then; a recovery skips it the same way,
so it reaches the very state the live engine had.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiokafka import TopicPartition

from adapters.kafka import EventProducer, make_consumer
from adapters.telemetry import RECOVERY_RECORDS, RECOVERY_SECONDS, SNAPSHOTS
from engine.core import state_snapshot
from engine.core.breaker import Where
from engine.core.trading import TradingCore
from events import Topics, decode

log = structlog.get_logger(__name__)

HaltedAt = Callable[[int, Where, int], bool]  # (ts_event, partition, offset) -> traded under a halt?


@dataclass(frozen=True, slots=True)
class Restored:
    core: TradingCore
    replayed: int  # records run through the core
    from_snapshot: int | None  # the offset of the snapshot it started from; None: the start of the log


class Recovery:
    def __init__(
        self, bootstrap: str, topics: Topics, make_core: Callable[[], TradingCore], producer: EventProducer
    ) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._make_core = make_core
        self._producer = producer

    async def restore(self, tp: TopicPartition, begin: int, start: int, halted_at: HaltedAt) -> Restored:
        """The core of ``tp`` after every record before ``start`` (``begin``: the log's first offset)."""
        core = self._make_core()
        if start <= begin:
            return Restored(core, 0, None)
        t0 = time.monotonic()
        snapshot = await self._load_snapshot(tp, core, begin, start)
        replayed = await self._run_log(tp, core, begin if snapshot is None else snapshot, start, halted_at)
        seconds = time.monotonic() - t0
        origin = "log" if snapshot is None else "snapshot"
        RECOVERY_SECONDS.labels(origin).observe(seconds)
        RECOVERY_RECORDS.labels(origin).inc(replayed)
        log.info(
            "engine.recovered",
            partition=tp.partition,
            ticks=replayed,
            offset=start,
            from_snapshot=snapshot,
            seconds=round(seconds, 3),
        )
        return Restored(core, replayed, snapshot)

    async def _run_log(self, tp: TopicPartition, core: TradingCore, begin: int, start: int, halted_at: HaltedAt) -> int:
        """Run the records of ``tp`` from ``begin`` to ``start`` through ``core``, publishing nothing."""
        if start <= begin:
            return 0
        replayed = 0
        where = (tp.topic, tp.partition)
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
                        env = decode(msg.value)
                        core.on_input(env, ts_init=0, halted=halted_at(env.ts_event, where, msg.offset))
                    except Exception:  # noqa: S112 - dead-lettered when it was first consumed, as here
                        continue
                    replayed += 1
        finally:
            await reader.stop()
        return replayed

    def _key(self, tp: TopicPartition) -> bytes:
        return f"{tp.topic}:{tp.partition}".encode()

    async def _load_snapshot(self, tp: TopicPartition, core: TradingCore, begin: int, start: int) -> int | None:
        """Restore ``core`` from the latest snapshot of ``tp`` it can use (same code and settings, taken between
        ``begin`` and ``start``); return its offset, or None (then the whole log is run)."""
        snap_tp = TopicPartition(self._topics.snapshots, tp.partition)
        reader = make_consumer(self._bootstrap, group_id=None, client_id="engine-snapshots")
        await reader.start()
        best: tuple[int, bytes] | None = None
        try:
            if self._topics.snapshots not in (await reader.topics()):
                return None  # a deployment made before snapshots: nothing to read
            end = (await reader.end_offsets([snap_tp]))[snap_tp]
            if not end:
                return None  # (and an assigned consumer that never fetched can hang in stop())
            reader.assign([snap_tp])
            await reader.seek_to_beginning(snap_tp)
            key = self._key(tp)
            while await reader.position(snap_tp) < end:
                for msg in (await reader.getmany(snap_tp, timeout_ms=1000)).get(snap_tp, []):
                    offset = state_snapshot.offset_of(msg.value, core) if msg.key == key and msg.value else None
                    if offset is not None and begin <= offset <= start and (best is None or offset >= best[0]):
                        best = (offset, msg.value)
        finally:
            await reader.stop()
        if best is None:
            return None
        try:
            return state_snapshot.load(best[1], core)
        except state_snapshot.SnapshotError as exc:
            log.warning("engine.snapshot_unusable", partition=tp.partition, error=str(exc))
            return None

    async def checkpoint(self, tp: TopicPartition, core: TradingCore, offset: int) -> None:
        """Write ``core`` as it stands after every record of ``tp`` before ``offset`` (committed already)."""
        data = state_snapshot.dump(core, offset)
        await self._producer.send_raw(self._topics.snapshots, data, self._key(tp), [], partition=tp.partition)
        SNAPSHOTS.inc()
        log.info("engine.snapshot", partition=tp.partition, offset=offset, size=len(data))
