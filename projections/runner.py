"""The projection runner: batch from Kafka -> one PostgreSQL transaction with guarded offsets -> Kafka commit.

For every batch:

1. records that do not decode go to the dead-letter topic (with the reason) and are skipped;
2. the projection applies the rest inside one transaction, in which the runner also moves each
   partition's stored offset from the value it expected to the next one (guarded: see
   :mod:`projections.offsets`);
3. after the commit, the same offsets are committed to Kafka, so standard lag tools see them.

On assignment it seeks to the stored offsets; it never uses Kafka's committed offsets to decide where to
start and never jumps to the end of the log. A stored offset below the log start (the events were deleted)
stops the runner with :class:`OffsetNotInLog` instead of silently skipping.

One transaction is in flight at a time; the next batch is fetched and decoded meanwhile (see
:meth:`ProjectionRunner._next_batch`). A replay pauses each partition once it is fetched up to its stop offset.

Two ways to run: as a consumer group (``group_id``; workers on many machines share the partitions) or
on a fixed set of partitions between given offsets (replays).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import msgspec
import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition

from adapters.kafka import EventProducer, make_consumer
from adapters.telemetry import KAFKA_CONSUMED, PG_WRITE_SECONDS, PG_WRITES
from events import DecodeError, Envelope, decode
from projections import lag as lagm
from projections.offsets import OffsetStore, StaleOffset

log = structlog.get_logger(__name__)


class OffsetNotInLog(Exception):
    """The projection's stored position is older than the oldest event still in the log."""

    retriable = False


class Record(msgspec.Struct, frozen=True, gc=False):
    """One record of a batch. Made once per record, it is on the hot path of every projection: a msgspec
    struct is made in C, and is not tracked by the cyclic garbage collector (it is in no reference cycle),
    which would otherwise scan every record of a batch at least once."""

    topic: str
    partition: int
    offset: int
    envelope: Any  # an Envelope, or what the projection's ``decode`` made of the record
    raw: bytes | None = None  # the record value as read


class Projection(Protocol):
    """``apply`` folds a batch inside the runner's transaction.

    A projection may also define ``decode(topic, partition, offset, value)``, which makes what the runner
    puts in ``Record.envelope``: it must raise :class:`events.DecodeError`, with the same reason, for every
    record :func:`events.decode` refuses, and give an object with ``ts_init``. Without it, records are
    decoded by :func:`events.decode`.
    """

    name: str
    topics: tuple[str, ...]

    async def apply(self, conn: Any, records: Sequence[Record]) -> None: ...


_YOUNG_GC = 100_000  # allocations between sweeps of the youngest generation while a runner runs (Python: 700)
_gc_runners = 0
_gc_saved = gc.get_threshold()


@contextlib.contextmanager
def _rare_young_collections() -> Iterator[None]:
    """While a runner runs, the youngest generation is swept every 100,000 allocations instead of 700.

    A batch makes a few objects per event (rows, ids) that live until its transaction ends and then die all at
    once. Swept every 700 allocations, each was scanned two or three times (generations 0, 1 and sometimes 2)
    before it died: a tenth of the projection's time in ``benchmarks/pipeline.py``. The older generations keep
    their thresholds; the setting is the process's, so it is restored when the last runner of the process ends.
    (It also made pausing the collector while a chunk is decoded, which this replaced, gain nothing measurable.)
    """
    global _gc_runners, _gc_saved
    if _gc_runners == 0:
        _gc_saved = gc.get_threshold()
        gc.set_threshold(max(_YOUNG_GC, _gc_saved[0]), *_gc_saved[1:])
    _gc_runners += 1
    try:
        yield
    finally:
        _gc_runners -= 1
        if _gc_runners == 0:
            gc.set_threshold(*_gc_saved)


def _decode(topic: str, partition: int, offset: int, value: bytes | None) -> Envelope:
    return decode(value)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: ProjectionRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._runner.ready.clear()  # mid-rebalance: what it owns is unknown until the next assignment
        self._runner.assignments += 1
        for tp in revoked:
            self._runner.lag.pop(tp, None)
            self._runner._planned.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._runner._seek_stored(assigned)
        self._runner.ready.set()


class ProjectionRunner:
    def __init__(
        self,
        projection: Projection,
        store: OffsetStore,
        bootstrap: str,
        dlq: EventProducer,
        *,
        group_id: str | None = None,
        partitions: Iterable[TopicPartition] | None = None,
        start_at: dict[TopicPartition, int] | None = None,
        stop_at: dict[TopicPartition, int] | None = None,
        batch: int = 20000,
        export_lag: bool = True,
    ) -> None:
        if (group_id is None) == (partitions is None):
            raise ValueError("give either group_id (consumer group) or partitions (fixed assignment)")
        self.projection = projection
        self._store = store
        self._dlq = dlq
        self._group_id = group_id
        self._partitions = list(partitions or [])
        self._start_at = start_at or {}
        self._stop_at = stop_at
        self._batch = batch
        self._export_lag = export_lag
        # a fetch for partitions with nothing new waits on the broker up to fetch_max_wait_ms, and meanwhile
        # no other partition of that broker can be fetched: 500 ms (the default) stalls a catching-up worker
        self._consumer = make_consumer(bootstrap, group_id=group_id, client_id=f"projection-{projection.name}",
                                       fetch_max_wait_ms=100)
        self._decode: Any = getattr(projection, "decode", None) or _decode
        self.lag: dict[TopicPartition, lagm.PartitionLag] = {}
        self._planned: dict[TopicPartition, int] = {}  # next offset of the batches prepared so far
        self.applied = 0
        self.dead_lettered = 0
        self.ready = asyncio.Event()
        self._last_refresh = 0.0
        self._refresh: asyncio.Task[None] | None = None
        self._chunk_size = 2000  # records fetched at a time (decoding yields every hundred records anyway)
        self.assignments = 0  # counts revocations and seeks: a batch ends where the assignment changed

    @property
    def name(self) -> str:
        return self.projection.name

    async def start(self) -> None:
        await self._consumer.start()
        if self._group_id is not None:
            self._consumer.subscribe(list(self.projection.topics), listener=_Listener(self))
        else:
            self._consumer.assign(self._partitions)
            await self._seek_stored(self._partitions)

    async def stop(self) -> None:
        await asyncio.shield(self._consumer.stop())

    async def _seek_stored(self, tps: list[TopicPartition]) -> None:
        if not tps:
            self.ready.set()
            return
        begin = await self._consumer.beginning_offsets(tps)
        end = await self._consumer.end_offsets(tps)
        default = {tp: self._start_at.get(tp, begin[tp]) for tp in tps}
        stored = await self._store.load(self.name, tps, default)
        for tp in tps:
            if stored[tp] < begin[tp]:
                raise OffsetNotInLog(
                    f"projection {self.name}: stored offset {stored[tp]} of {tp.topic}[{tp.partition}] is no longer "
                    f"in the log (it starts at {begin[tp]}); rebuild the projection from the log"
                )
            self._consumer.seek(tp, stored[tp])
            self.assignments += 1
            if self._stop_at is not None:  # a replay: fetch only the partitions that have records left
                if stored[tp] >= self._stop_at.get(tp, 0):
                    self._consumer.pause(tp)
                else:
                    self._consumer.resume(tp)
            self._planned[tp] = stored[tp]
            self.lag[tp] = lagm.PartitionLag(next_offset=stored[tp], log_end=end[tp])
            self._publish_lag(tp)
        log.info("projection.assigned", projection=self.name,
                 partitions={f"{tp.topic}[{tp.partition}]": stored[tp] for tp in tps})
        self.ready.set()

    def _publish_lag(self, tp: TopicPartition, applied: int = 0) -> None:
        if self._export_lag:
            lagm.publish(self.name, tp.topic, tp.partition, self.lag[tp], applied)

    def _refresh_log_end(self) -> None:
        """Every second, look the log end up again, in the background: the batches must not wait for it."""
        if not self.lag or time.monotonic() - self._last_refresh < 1.0:
            return
        if self._refresh is not None and not self._refresh.done():
            return
        self._last_refresh = time.monotonic()
        self._refresh = asyncio.create_task(self._fetch_log_end(list(self.lag)))

    async def _fetch_log_end(self, tps: list[TopicPartition]) -> None:
        try:
            end = await self._consumer.end_offsets(tps)
        except Exception as exc:  # the lag figures wait for the next try; the batches go on
            log.warning("projection.log_end_failed", projection=self.name, error=repr(exc))
            return
        for tp in tps:
            if tp in self.lag:
                self.lag[tp].log_end = end[tp]
                self._publish_lag(tp)

    def done(self) -> bool:
        """In fixed mode with ``stop_at``: every partition has reached its stop offset."""
        if self._stop_at is None:
            return False
        return self.ready.is_set() and all(
            self.lag[tp].next_offset >= off for tp, off in self._stop_at.items() if tp in self.lag
        )

    def caught_up(self, end_offsets: dict[TopicPartition, int]) -> bool:
        """Every partition it owns has been applied up to ``end_offsets`` (False while a rebalance is under way)."""
        return self.ready.is_set() and all(
            st.next_offset >= end_offsets.get(tp, 0) for tp, st in self.lag.items()
        )

    def _planned_to_stop(self) -> bool:
        """In fixed mode with ``stop_at``: every batch up to the stop offsets has been prepared."""
        if self._stop_at is None:
            return False
        return self.ready.is_set() and all(
            self._planned.get(tp, 0) >= off for tp, off in self._stop_at.items() if tp in self.lag
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and decode the next batch while the previous one commits (one transaction at a time)."""
        with _rare_young_collections():
            await self._run(stop)

    async def _run(self, stop: asyncio.Event) -> None:
        inflight: asyncio.Task[bool] | None = None
        try:
            while not stop.is_set() and not self.done():
                if inflight is not None and self._planned_to_stop():
                    await inflight  # the last batch: nothing more to fetch (and no poll to sit out)
                    inflight = None
                    continue
                batch = await self._next_batch(inflight)
                self._refresh_log_end()
                if inflight is not None:
                    committed = await inflight
                    inflight = None
                    if not committed:
                        batch = None  # prepared against positions that were just reloaded
                if batch is not None:
                    inflight = asyncio.create_task(self._commit(*batch))
        finally:
            if inflight is not None:
                await inflight
            if self._refresh is not None and not self._refresh.done():
                self._refresh.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._refresh

    async def _next_batch(
        self, inflight: asyncio.Task[bool] | None = None,
    ) -> tuple[list[Record], dict[TopicPartition, tuple[int, int, int | None, int]]] | None:
        """Up to ``batch`` records, fetched and decoded a chunk at a time.

        Decoding yields to the event loop every hundred records, so the transaction in flight takes its
        next step at once (PostgreSQL works on the previous batch while this one is decoded, instead of
        waiting for the decoder). While that transaction is still running, the batch keeps growing.
        """
        records: list[Record] = []
        moves: dict[TopicPartition, tuple[int, int, int | None, int]] = {}
        assignments = self.assignments
        fetched = await self._chunk(200, min(self._chunk_size, self._batch), records, moves)
        while True:
            if len(records) >= self._batch or self._planned_to_stop() or self.assignments != assignments:
                break
            busy = inflight is not None and not inflight.done()
            if not fetched and not busy:
                break
            await asyncio.sleep(0)
            fetched = await self._chunk(5 if busy else 0, min(self._chunk_size, self._batch - len(records)),
                                        records, moves)
        return (records, moves) if moves else None

    async def _chunk(self, timeout_ms: int, max_records: int, records: list[Record],
                     moves: dict[TopicPartition, tuple[int, int, int | None, int]]) -> bool:
        """Fetch the records at hand (waiting up to ``timeout_ms`` for some) and decode them into ``records``
        (see :meth:`_prepare`); False if there were none."""
        data = await self._consumer.getmany(timeout_ms=0, max_records=max_records)
        if not data and timeout_ms:
            data = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        if data:
            await self._prepare(data, records, moves)
        return bool(data)

    async def _prepare(
        self, data: dict[TopicPartition, list[Any]], records: list[Record],
        moves: dict[TopicPartition, tuple[int, int, int | None, int]],
    ) -> None:
        """Decode a chunk into ``records`` (undecodable records go to the dead-letter topic) and extend the
        batch's offset moves in ``moves``: partition -> (expected, new, last ts_init, records applied)."""
        decode_one = self._decode
        for tp, msgs in data.items():
            state = self.lag.get(tp)
            expected = self._planned.get(tp)
            if state is None or expected is None:
                continue  # revoked while fetched
            if msgs and msgs[0].offset < expected:
                msgs = [m for m in msgs if m.offset >= expected]
            if self._stop_at is not None and msgs and msgs[-1].offset >= self._stop_at.get(tp, 0):
                msgs = [m for m in msgs if m.offset < self._stop_at.get(tp, 0)]
            if not msgs:
                continue
            KAFKA_CONSUMED.labels(f"projection:{self.name}").inc(len(msgs))
            first, _, last_ts, good = moves.get(tp, (expected, expected, state.last_ts_init, 0))
            append = records.append
            topic, partition = tp.topic, tp.partition
            for start in range(0, len(msgs), 100):
                if start:
                    await asyncio.sleep(0)  # let the transaction in flight send its next statement
                for m in msgs[start : start + 100]:
                    try:
                        env = decode_one(topic, partition, m.offset, m.value)
                    except DecodeError as exc:
                        await self._dlq.dead_letter(m, exc.reason, consumer=f"projection:{self.name}")
                        self.dead_lettered += 1
                        good -= 1
                        continue
                    append(Record(topic, partition, m.offset, env, m.value))
                    last_ts = env.ts_init
            good += len(msgs)
            moves[tp] = (first, msgs[-1].offset + 1, last_ts, good)
            self._planned[tp] = msgs[-1].offset + 1
            if self._stop_at is not None and self._planned[tp] >= self._stop_at.get(tp, 0):
                self._consumer.pause(tp)  # no fetch waits on the broker for a partition that is done

    async def _commit(
        self, records: list[Record], moves: dict[TopicPartition, tuple[int, int, int | None, int]]
    ) -> bool:
        """Apply one batch and its offsets in one transaction; False if the offsets were stale (reloaded)."""
        t0 = time.perf_counter()
        try:
            async with self._store.batch(self.name) as b:
                await self.projection.apply(b.conn, records)
                await b.advance_all({tp: (expected, new) for tp, (expected, new, _, _) in moves.items()})
            if b.conn is not None:
                PG_WRITES.labels(self.name).inc()
                PG_WRITE_SECONDS.labels(self.name).observe(time.perf_counter() - t0)
        except StaleOffset as exc:
            log.warning("projection.stale_offset", projection=self.name, error=str(exc))
            await self._store.reset()
            reset = getattr(self.projection, "reset", None)
            if reset is not None:
                reset()
            await self._seek_stored(list(self.lag))
            return False
        for tp, (_, new, last_ts, good) in moves.items():
            st = self.lag.get(tp)
            if st is None:
                continue  # revoked meanwhile; the next owner reads the stored offset
            st.next_offset = new
            st.last_ts_init = last_ts
            st.log_end = max(st.log_end, self._consumer.highwater(tp) or 0, new)
            self._publish_lag(tp, good)
        self.applied += len(records)
        if self._group_id is not None:
            try:
                await self._consumer.commit({tp: new for tp, (_, new, _, _) in moves.items() if tp in self.lag})
            except Exception as exc:  # PostgreSQL is the truth; Kafka's copy is for lag tools
                log.warning("projection.kafka_commit_failed", projection=self.name, error=repr(exc))
        return True


async def run_to_stop(runner: ProjectionRunner) -> int:
    """Start a runner with fixed partitions and stop offsets, run it until it reached them, stop it (even when
    cancelled); return the events it applied."""
    await runner.start()
    try:
        await runner.run(asyncio.Event())
    finally:
        await runner.stop()
    return runner.applied
