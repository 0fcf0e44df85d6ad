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

from adapters.deadletter import DeadLetters
from adapters.kafka import EventProducer, make_consumer
from adapters.outage import Backoff, is_outage
from adapters.telemetry import KAFKA_CONSUMED, PG_WRITE_SECONDS, PG_WRITES
from events import DecodeError, Envelope, decode
from events.arithmetic import exact
from projections import lag as lagm
from projections.offsets import OffsetStore, StaleOffset

log = structlog.get_logger(__name__)
PREPARE_TIMEOUT_S = 30.0  # a projection's prepare() (the audit: create its schema) before it is retried
KAFKA_COMMIT_TIMEOUT_S = 5.0  # how long a batch, or the stop, waits for Kafka's copy of the offsets


class OffsetNotInLog(Exception):
    """The projection's stored position is older than the oldest event still in the log."""

    retriable = False


class ProjectionFailed(Exception):
    """Applying a record failed and the projection is set to stop on such a failure (``on_error="stop"``)."""

    retriable = False


_Moves = dict[TopicPartition, tuple[int, int, int | None, int]]  # partition -> (expected, new, last ts_init, applied)


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


# Optional, on a projection: ``async prepare()``, run (and retried through an outage) before its first batch;
# ``refused``, a list of (record, reason) it fills during ``apply`` (see _refused); ``reset()`` after a stale offset.


def _refused(projection: Any) -> list[tuple[Record, str]]:
    """The records a projection without a transaction (in memory) could not apply, and why (it keeps them in
    ``refused`` during ``apply``); taken, so each is dead-lettered once."""
    refused: list[tuple[Record, str]] | None = getattr(projection, "refused", None)
    if not refused:
        return []
    out = list(refused)
    refused.clear()
    return out


class _Parked(msgspec.Struct, frozen=True):
    """A record of a batch as the dead-letter topic takes it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


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


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a finished task's exception as seen (it is Kafka's copy of some offsets: nothing to do with it)."""
    if not task.cancelled():
        task.exception()


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
            self._runner._pending.discard(tp)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # no I/O here (PostgreSQL may be down): the run loop reads the stored offsets, and seeks, before it fetches
        self._runner._assign(assigned)


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
        on_error: str = "deadletter",
    ) -> None:
        """``on_error``: what to do when applying a record raises (anything but an outage): ``"deadletter"`` parks
        that record on the dead-letter topic with the reason and goes on; ``"stop"`` stops the runner with
        :class:`ProjectionFailed`."""
        if (group_id is None) == (partitions is None):
            raise ValueError("give either group_id (consumer group) or partitions (fixed assignment)")
        if on_error not in ("deadletter", "stop"):
            raise ValueError(f"on_error must be 'deadletter' or 'stop', not {on_error!r}")
        self.projection = projection
        self._store = store
        self._dead = DeadLetters(dlq, bootstrap, f"projection:{projection.name}")
        self._group_id = group_id
        self._partitions = list(partitions or [])
        self._start_at = start_at or {}
        self._stop_at = stop_at
        self._batch = batch
        self._export_lag = export_lag
        self._on_error = on_error
        # a fetch for partitions with nothing new waits on the broker up to fetch_max_wait_ms, and meanwhile
        # no other partition of that broker can be fetched: 500 ms (the default) stalls a catching-up worker
        self._consumer = make_consumer(
            bootstrap, group_id=group_id, client_id=f"projection-{projection.name}", fetch_max_wait_ms=100
        )
        self._decode: Any = getattr(projection, "decode", None) or _decode
        # a consumer group's lag is also exported under kafka-lag-exporter's names, with its labels
        self._member = (
            None
            if group_id is None
            else lagm.Member(bootstrap, group_id, f"projection-{projection.name}", self._member_id)
        )
        self.lag: dict[TopicPartition, lagm.PartitionLag] = {}
        self._planned: dict[TopicPartition, int] = {}  # next offset of the batches prepared so far
        self._pending: set[TopicPartition] = set()  # assigned, not yet sought to their stored offsets
        self.applied = 0
        self.dead_lettered = 0
        self.ready = asyncio.Event()
        self._last_refresh = 0.0
        self._refresh: asyncio.Task[None] | None = None
        self._chunk_size = 2000  # records fetched at a time (decoding yields every hundred records anyway)
        self.assignments = 0  # counts revocations and seeks: a batch ends where the assignment changed
        self.backoff = Backoff(f"projection.{projection.name}")
        self._started = False
        self._stopped = False
        self._kafka_commit: asyncio.Task[None] | None = None  # Kafka's copy of the offsets, while it is on its way

    @property
    def name(self) -> str:
        return self.projection.name

    @property
    def outage(self) -> str | None:
        """The error the runner is waiting out (a server unreachable), or None."""
        return self.backoff.error

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self._consumer.start()
        if self._group_id is not None:
            self._consumer.subscribe(list(self.projection.topics), listener=_Listener(self))
        else:
            self._consumer.assign(self._partitions)
            self._assign(self._partitions)

    async def stop(self) -> None:
        """Leave the group and close the consumer; safe twice, and shielded from the caller's cancellation."""
        if self._started and not self._stopped:
            self._stopped = True
            await asyncio.shield(self._close())

    async def _close(self) -> None:
        commit = self._kafka_commit
        if commit is not None and not commit.done():  # its last copy of the offsets, if it comes soon
            await asyncio.wait({commit}, timeout=KAFKA_COMMIT_TIMEOUT_S)
        try:
            await self._consumer.stop()
        finally:  # even if stopping raised (with the broker gone, aiokafka's stop may raise CancelledError)
            if commit is not None and not commit.done():
                # aiokafka retries a commit forever once its consumer is closed: end it, and retrieve the outcome
                # of the request it may be awaiting shielded (cancelled, its waiter drops that request unobserved)
                for task in asyncio.all_tasks():
                    if getattr(task.get_coro(), "__qualname__", "") == "GroupCoordinator._do_commit_offsets":
                        task.add_done_callback(_retrieve)
                commit.cancel()
                await asyncio.wait({commit})

    def _commit_to_kafka(self, offsets: dict[TopicPartition, int]) -> asyncio.Task[None] | None:
        """Commit ``offsets`` to Kafka in a task of its own, whose outcome is always retrieved (logged at debug
        level); None, and nothing sent, while the one before is still on its way (the next carries newer offsets).

        Never cancelled while the consumer runs: aiokafka sends the request shielded, and a waiter cancelled (as
        ``asyncio.wait_for`` did after 5 s with the broker gone) leaves that request to fail later with nobody to
        see it: asyncio's "Task exception was never retrieved", with a traceback, in the log."""
        if self._kafka_commit is not None and not self._kafka_commit.done():
            log.debug("projection.kafka_commit_skipped", projection=self.name, reason="the last one is still pending")
            return None
        task = asyncio.create_task(self._consumer.commit(offsets), name=f"projection-{self.name}-kafka-commit")
        task.add_done_callback(self._commit_done)
        self._kafka_commit = task
        return task

    def _commit_done(self, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.debug("projection.kafka_commit_failed", projection=self.name, error=repr(exc))

    async def __aenter__(self) -> ProjectionRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _assign(self, tps: Iterable[TopicPartition]) -> None:
        """Partitions handed to this runner: paused (nothing is fetched for them) until :meth:`_seek_pending` has
        read their stored offsets and sought there."""
        assigned = self._consumer.assignment()
        tps = [tp for tp in tps if tp in assigned]
        if tps:
            self._consumer.pause(*tps)
        self._pending.update(tps)
        if not self._pending:
            self.ready.set()

    async def _seek_pending(self) -> None:
        tps = sorted(self._pending, key=lambda tp: (tp.topic, tp.partition))
        if tps:
            await self._seek_stored(tps)
        self._pending.difference_update(tps)
        if not self._pending:
            self.ready.set()

    async def _seek_stored(self, tps: list[TopicPartition]) -> None:
        if not tps:
            return
        await self._dead.refresh()  # what was parked meanwhile, maybe by the partitions' last owner
        begin = await self._consumer.beginning_offsets(tps)
        end = await self._consumer.end_offsets(tps)
        default = {tp: self._start_at.get(tp, begin[tp]) for tp in tps}
        stored = await self._store.load(self.name, tps, default)
        assigned = self._consumer.assignment()
        for tp in tps:
            if tp not in assigned:
                continue  # revoked meanwhile
            if stored[tp] < begin[tp]:
                raise OffsetNotInLog(
                    f"projection {self.name}: stored offset {stored[tp]} of {tp.topic}[{tp.partition}] is no longer "
                    f"in the log (it starts at {begin[tp]}); rebuild the projection from the log"
                )
            self._consumer.seek(tp, stored[tp])
            self.assignments += 1
            if self._stop_at is not None and stored[tp] >= self._stop_at.get(tp, 0):
                self._consumer.pause(tp)  # a replay: fetch only the partitions that have records left
            else:
                self._consumer.resume(tp)
            self._planned[tp] = stored[tp]
            self.lag[tp] = lagm.PartitionLag(next_offset=stored[tp], log_end=end[tp])
            self._publish_lag(tp)
        log.info(
            "projection.assigned",
            projection=self.name,
            partitions={f"{tp.topic}[{tp.partition}]": stored[tp] for tp in tps},
        )

    def _reload(self) -> None:
        """Forget what was prepared and read every owned partition's stored offset again (after a stale offset, or
        an outage, when whether the last transaction committed is unknown)."""
        owned = set(self.lag) | self._pending
        if self._group_id is None:
            owned |= set(self._partitions)
        self.assignments += 1
        self._assign(owned)

    def _publish_lag(self, tp: TopicPartition, applied: int = 0) -> None:
        if self._export_lag:
            lagm.publish(self.name, tp.topic, tp.partition, self.lag[tp], applied, self._member)

    def _member_id(self) -> str:
        """The member id the group coordinator gave this consumer ("" before it joined)."""
        coordinator = getattr(self._consumer, "_coordinator", None)
        return str(getattr(coordinator, "member_id", "") or "")

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
            end = await asyncio.wait_for(self._consumer.end_offsets(tps), 5)
        except Exception as exc:  # the lag figures wait for the next try; the batches go on
            log.debug("projection.log_end_failed", projection=self.name, error=repr(exc))
            return
        for tp in tps:
            if tp in self.lag:
                self.lag[tp].observe_end(end[tp])
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
        return self.ready.is_set() and all(st.next_offset >= end_offsets.get(tp, 0) for tp, st in self.lag.items())

    async def all_applied(self, end_offsets: dict[TopicPartition, int]) -> bool:
        """Every partition of ``end_offsets`` is applied up to it by the projection, whichever worker of the group
        applied it (the positions in PostgreSQL); for an in-memory projection, :meth:`caught_up`."""
        if not self.caught_up(end_offsets):
            return False
        stored_of = getattr(self._store, "stored", None)
        if stored_of is None:
            return True
        stored = await stored_of(self.name)
        return all(stored.get(tp, 0) >= end for tp, end in end_offsets.items() if end)

    def _planned_to_stop(self) -> bool:
        """In fixed mode with ``stop_at``: every batch up to the stop offsets has been prepared."""
        if self._stop_at is None:
            return False
        return self.ready.is_set() and all(
            self._planned.get(tp, 0) >= off for tp, off in self._stop_at.items() if tp in self.lag
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and decode the next batch while the previous one commits (one transaction at a time).

        An outage (Kafka or PostgreSQL unreachable, see :func:`adapters.outage.is_outage`) is waited out with
        backoff: whatever was prepared is dropped, and once the servers answer again the runner reads its stored
        offsets and goes on from there, so nothing is lost or applied twice."""
        prepare = getattr(self.projection, "prepare", None)
        with _rare_young_collections():
            while True:
                try:
                    if prepare is not None:
                        # bounded: a schema that cannot be created in time is an outage (logged, retried), not a
                        # silent wait (a CI run once saw an audit runner apply nothing for 2 minutes at start)
                        log.info("projection.preparing", projection=self.name)
                        await asyncio.wait_for(prepare(), PREPARE_TIMEOUT_S)
                        log.info("projection.prepared", projection=self.name)
                        prepare = None
                    await self._run(stop)
                    return
                except Exception as exc:
                    if not is_outage(exc) or stop.is_set():
                        raise
                    await self.backoff.wait(exc, stop, projection=self.name)
                    self._reload()

    async def _run(self, stop: asyncio.Event) -> None:
        inflight: asyncio.Task[bool] | None = None
        try:
            while not stop.is_set() and not self.done():
                if self._pending:
                    if inflight is not None:
                        await inflight
                        inflight = None
                    await self._seek_pending()
                    self.backoff.reset(projection=self.name)
                    continue
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
                await inflight  # an outage there, as here, makes run() reload the stored offsets
            if self._refresh is not None and not self._refresh.done():
                self._refresh.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._refresh

    async def _next_batch(self, inflight: asyncio.Task[bool] | None = None) -> tuple[list[Record], _Moves] | None:
        """Up to ``batch`` records, fetched and decoded a chunk at a time.

        Decoding yields to the event loop every hundred records, so the transaction in flight takes its
        next step at once (PostgreSQL works on the previous batch while this one is decoded, instead of
        waiting for the decoder). While that transaction is still running, the batch keeps growing.
        """
        records: list[Record] = []
        moves: _Moves = {}
        assignments = self.assignments
        fetched = await self._chunk(200, min(self._chunk_size, self._batch), records, moves)
        while True:
            if len(records) >= self._batch or self._planned_to_stop() or self.assignments != assignments:
                break
            busy = inflight is not None and not inflight.done()
            if not fetched and not busy:
                break
            await asyncio.sleep(0)
            fetched = await self._chunk(
                5 if busy else 0, min(self._chunk_size, self._batch - len(records)), records, moves
            )
        return (records, moves) if moves else None

    async def _chunk(self, timeout_ms: int, max_records: int, records: list[Record], moves: _Moves) -> bool:
        """Fetch the records at hand (waiting up to ``timeout_ms`` for some) and decode them into ``records``
        (see :meth:`_prepare`); False if there were none."""
        data = await self._consumer.getmany(timeout_ms=0, max_records=max_records)
        if not data and timeout_ms:
            data = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        if data:
            await self._prepare(data, records, moves)
        return bool(data)

    async def _prepare(self, data: dict[TopicPartition, list[Any]], records: list[Record], moves: _Moves) -> None:
        """Decode a chunk into ``records`` (undecodable records go to the dead-letter topic) and extend the
        batch's offset moves in ``moves``: partition -> (expected, new, last ts_init, records applied)."""
        decode_one = self._decode
        for tp, msgs in data.items():
            state = self.lag.get(tp)
            expected = self._planned.get(tp)
            if state is None or expected is None or tp in self._pending:
                continue  # revoked while fetched, or to be sought again
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
                        await self._dead.park(m, exc.reason)
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

    async def _apply(self, records: Sequence[Record], moves: _Moves) -> None:
        """One transaction: the records and the offset moves. The records the projection refused (see
        :func:`_refused`) are parked before it commits: a crash in between applies the batch again, and the book
        of the dead-letter topic knows them."""
        t0 = time.perf_counter()
        _refused(self.projection)  # left by an attempt that was rolled back
        async with self._store.batch(self.name) as b:
            if records:
                with exact():  # the same rounding in every process (see events.arithmetic)
                    await self.projection.apply(b.conn, records)
            for rec, reason in _refused(self.projection):
                await self._park(rec, reason)
            await b.advance_all({tp: (expected, new) for tp, (expected, new, _, _) in moves.items()})
        if b.conn is not None:
            PG_WRITES.labels(self.name).inc()
            PG_WRITE_SECONDS.labels(self.name).observe(time.perf_counter() - t0)

    async def _park(self, rec: Record, reason: str) -> None:
        key = getattr(rec.envelope, "key", None)
        await self._dead.park(
            _Parked(rec.topic, rec.partition, rec.offset, key.encode() if key else None, rec.raw), reason
        )
        self.dead_lettered += 1

    async def _commit(self, records: list[Record], moves: _Moves) -> bool:
        """Apply one batch and its offsets in one transaction; False if the offsets were stale (reloaded).

        If applying raises (anything but an outage), the batch is rolled back and applied again in halves, down to
        the records that fail alone: each of those is dead-lettered with the error (or, with ``on_error="stop"``,
        the runner stops), and every other record is applied."""
        try:
            try:
                await self._apply(records, moves)
            except Exception as exc:
                if isinstance(exc, StaleOffset) or is_outage(exc):
                    raise
                self._check_may_isolate(exc)
                log.warning("projection.apply_failed", projection=self.name, records=len(records), error=repr(exc))
                await self._isolate(records, moves)
        except StaleOffset as exc:
            log.warning("projection.stale_offset", projection=self.name, error=str(exc))
            await self._store.reset()
            reset = getattr(self.projection, "reset", None)
            if reset is not None:
                reset()
            self._reload()
            return False
        for tp, (_, new, last_ts, good) in moves.items():
            st = self.lag.get(tp)
            if st is None:
                continue  # revoked meanwhile; the next owner reads the stored offset
            st.observe_end(self._consumer.highwater(tp) or 0)
            st.applied(new, last_ts)
            self._publish_lag(tp, good)
        self.applied += len(records)
        self.backoff.reset(projection=self.name)
        if self._group_id is not None:
            # PostgreSQL is the truth; Kafka's copy is for lag tools, and must not hold the batches up
            commit = self._commit_to_kafka({tp: new for tp, (_, new, _, _) in moves.items() if tp in self.lag})
            if commit is not None:
                await asyncio.wait({commit}, timeout=KAFKA_COMMIT_TIMEOUT_S)
        return True

    def _check_may_isolate(self, exc: Exception) -> None:
        if self._on_error == "stop":
            raise ProjectionFailed(
                f"projection {self.name} could not apply a batch ({exc!r}) and is set to stop on such a failure "
                f"(on_error = 'stop'); with 'deadletter' the failing record is parked and the rest applied"
            ) from exc
        if not getattr(self._store, "transactional", True):  # nothing to roll back: applying again would double
            raise ProjectionFailed(f"projection {self.name} failed in the middle of a batch: {exc!r}") from exc

    async def _isolate(self, records: list[Record], moves: _Moves) -> None:
        """Apply ``records`` in halves, recursively, each with its share of ``moves``; dead-letter the records that
        fail alone (their offsets move past them)."""
        if len(records) <= 1:
            try:
                await self._apply(records, moves)
                return
            except Exception as exc:
                if isinstance(exc, StaleOffset) or is_outage(exc) or not records:
                    raise
                self._check_may_isolate(exc)
                reason = f"projection {self.name} could not apply it: {exc!r}"
                log.error(
                    "projection.record_failed",
                    projection=self.name,
                    topic=records[0].topic,
                    partition=records[0].partition,
                    offset=records[0].offset,
                    error=repr(exc),
                )
                await self._apply([], moves)  # past it
                await self._park(records[0], reason[:4000])
                return
        half = len(records) // 2
        for part, part_moves in _split(records, moves, half):
            try:
                await self._apply(part, part_moves)
            except Exception as exc:
                if isinstance(exc, StaleOffset) or is_outage(exc):
                    raise
                await self._isolate(part, part_moves)


def _split(records: list[Record], moves: _Moves, half: int) -> list[tuple[list[Record], _Moves]]:
    """``records[:half]`` and ``records[half:]``, each with the offset moves that cover it: a partition moves in
    the first part from its expected offset to just after its last record there, and in the second from there to
    where the whole batch moves it (records dead-lettered while decoding, between them, are covered too)."""
    first, second = records[:half], records[half:]
    last_in_first: dict[TopicPartition, tuple[int, int]] = {}  # partition -> (last offset, records)
    for r in first:
        tp = TopicPartition(r.topic, r.partition)
        _, n = last_in_first.get(tp, (0, 0))
        last_in_first[tp] = (r.offset, n + 1)
    first_moves: _Moves = {}
    second_moves: _Moves = {}
    for tp, (expected, new, last_ts, good) in moves.items():
        if tp in last_in_first:
            last, n = last_in_first[tp]
            first_moves[tp] = (expected, last + 1, last_ts, n)
            if new > last + 1:
                second_moves[tp] = (last + 1, new, last_ts, good - n)
        else:
            second_moves[tp] = (expected, new, last_ts, good)
    return [(first, first_moves), (second, second_moves)]


async def run_to_stop(runner: ProjectionRunner) -> int:
    """Start a runner with fixed partitions and stop offsets, run it until it reached them, stop it (even when
    cancelled); return the events it applied."""
    await runner.start()
    try:
        await runner.run(asyncio.Event())
    finally:
        await runner.stop()
    return runner.applied
