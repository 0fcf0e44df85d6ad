"""The async shell around the trading core: consume ticks from Kafka -> core -> produce events.

The engine is a consumer group on ``market.ticks``: several engines split the partitions. For each
partition it owns, it keeps one :class:`TradingCore`. When it is handed a partition it rebuilds that
core by running the partition's ticks from the start of the log up to the group's committed offset
through the same code, publishing nothing (the core is deterministic, so this is exactly the state it
had); from the latest snapshot of that core it can use (``engine.snapshots``, written after a commit every
``snapshot_every`` records of the partition: :mod:`engine.state_snapshot`), only the records after it.
Then it consumes: each tick's derived events are handed to the producer at once (no wait on the hot path);
every ``commit_interval`` (and before giving up a partition, and on stop) it waits until the broker has
acknowledged everything handed over, and only then commits the tick offsets. A crash in between
re-processes those ticks and re-publishes the very same events with the same ids, which every
projection recognises as duplicates.

The engine-wide decisions (the breaker's switches and where they apply, equity reports, daily-loss trips) are
the pure :class:`~engine.core.supervisor.Supervisor`'s: the loop hands it each control record and each input record
once the core took it, and publishes what it returns. Recovery and snapshots are :mod:`engine.recovery`'s. What is
left here is consume, core, produce, commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition

from adapters.deadletter import DeadLetters
from adapters.kafka import EventProducer, make_consumer
from adapters.outage import Backoff, is_outage
from adapters.telemetry import DECISION_TO_ACK, INDICATORS, KAFKA_CONSUMED, TICK_TO_DECISION
from engine.core.breaker import Where
from engine.core.supervisor import Supervisor
from engine.core.trading import TradingCore
from engine.recovery import Recovery
from events import DecodeError, Envelope, OrderCancelRequested, OrderRejected, OrderSubmitted, Topics, decode

log = structlog.get_logger(__name__)

GROUP = "engine"

# The core's order decisions, whose latency the loop observes (engine_tick_to_decision_seconds and
# engine_decision_to_ack_seconds). A live venue's report the core relays (the input itself, same id) is none.
DECISIONS = (OrderSubmitted, OrderRejected, OrderCancelRequested)


class _Latency:
    """The two latency histograms' children by instrument, and one decision's observation: wall clock of the shell
    only, taken once per input that decided an order (never per tick, never in the core, never in an event)."""

    def __init__(self) -> None:
        self._children: dict[str, tuple[Any, Any]] = {}

    def decided(
        self, instrument: str, input_ts_init: int, now_ns: int, now: float
    ) -> Callable[[asyncio.Future[Any]], None]:
        """Observe input record -> decision (``now_ns``: wall clock, ``now``: ``perf_counter``, both taken when the
        core returned); return the callback that observes decision -> acknowledgement."""
        children = self._children.get(instrument)
        if children is None:
            children = self._children[instrument] = (
                TICK_TO_DECISION.labels(instrument),
                DECISION_TO_ACK.labels(instrument),
            )
        children[0].observe(max(now_ns - input_ts_init, 0) / 1e9)
        to_ack = children[1]

        def acked(f: asyncio.Future[Any]) -> None:
            if not f.cancelled() and f.exception() is None:
                to_ack.observe(time.perf_counter() - now)

        return acked


_Acked = Callable[[asyncio.Future[Any]], None]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: TradingLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # publish and commit what was processed, so the next owner starts right after it
        async with self._loop.batch_lock:
            self._loop.assigned.clear()  # mid-rebalance: what it owns is unknown until the next assignment
            self._loop.pending.difference_update(revoked)
            await self._loop.flush()
            self._loop.revoked.update(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self._loop.batch_lock:
            for tp in self._loop.revoked - set(assigned):
                self._loop.cores.pop(tp, None)
                self._loop.processed.pop(tp, None)
                self._loop.positions.pop(tp, None)
            self._loop.revoked.clear()
            # recovered by the run loop before anything is fetched for them (it retries through an outage)
            if assigned:
                self._loop._consumer.pause(*assigned)
            self._loop.pending.update(assigned)
            if not self._loop.pending:
                self._loop.assigned.set()


class TradingLoop:
    def __init__(
        self,
        bootstrap: str,
        producer: EventProducer,
        make_core: Callable[[], TradingCore],
        topics: Topics,
        *,
        batch: int = 1000,
        commit_interval: float = 0.2,
        fetch_max_wait_ms: int = 5,
        starting_balances: Mapping[str, Decimal] | None = None,
        daily_loss_limit: Decimal | None = None,
        snapshot_every: int = 100_000,
    ) -> None:
        self._bootstrap = bootstrap
        self._producer = producer
        self._make_core = make_core
        self._topics = topics
        self._group_id = topics.group(GROUP)
        self._batch = batch
        self._commit_interval = commit_interval
        self.cores: dict[TopicPartition, TradingCore] = {}
        self.processed: dict[TopicPartition, int] = {}  # next offset fed to the core
        self.positions: dict[TopicPartition, int] = {}  # next offset acknowledged and committed
        # handed over, not acknowledged (with a decision's callback observing its acknowledgement)
        self._unacked: list[tuple[Envelope, str | None, asyncio.Future[Any], _Acked | None]] = []
        self._latency = _Latency()
        self._to_commit: dict[TopicPartition, int] = {}
        self.ticks_processed = 0
        self.events_published = 0
        # a short fetch wait keeps tick-to-order latency low when the log is quiet
        self._consumer = make_consumer(
            bootstrap, group_id=self._group_id, client_id="engine-loop", fetch_max_wait_ms=fetch_max_wait_ms
        )
        self.assigned = asyncio.Event()
        # no starting balances: a live venue's, taken from the first BalanceReconciled of each currency in the log
        self.supervisor = Supervisor.of(starting_balances, daily_loss_limit)
        self._recovery = Recovery(bootstrap, topics, make_core, producer)
        self._control = make_consumer(bootstrap, group_id=None, client_id="engine-control")
        self._indicators_reported: dict[tuple[TopicPartition, str], int] = {}
        self.batch_lock = asyncio.Lock()
        self.revoked: set[TopicPartition] = set()
        self._snapshot_every = snapshot_every  # records of a partition between snapshots of its core (0: none)
        self._since_snapshot: dict[TopicPartition, int] = {}
        self.recovered_from: dict[TopicPartition, int | None] = {}  # where the last recovery started: a snapshot
        self.pending: set[TopicPartition] = set()  # assigned, to be recovered before they are consumed
        self._dead = DeadLetters(producer, bootstrap, self._group_id)
        self.backoff = Backoff("engine.kafka")
        self.failed_inputs = 0  # input records the core could not take (dead-lettered)
        self._stopped = False

    async def _read_control(self, *, to_end: bool = False) -> None:
        """Fold new halt/resume events into the breaker (all of them up to the log end with ``to_end``)."""
        tps = list(self._control.assignment())
        end = await self._control.end_offsets(tps) if to_end else {}
        while True:
            batch = await self._control.getmany(timeout_ms=0 if not to_end else 200)
            for msgs in batch.values():
                for msg in msgs:
                    try:
                        env = decode(msg.value)
                    except DecodeError:
                        continue
                    await self._fold_control(env)
            if not to_end:
                return
            positions = [await self._control.position(tp) for tp in tps]
            if all(pos >= end[tp] for pos, tp in zip(positions, tps, strict=True)):
                return

    async def _fold_control(self, env: Envelope) -> None:
        """One record of the control topic, to the supervisor; publish the markers it returns."""
        for marker in self.supervisor.on_control(env, self._trading, ts_init=time.time_ns()):
            await self._send(marker)

    def _trading(self) -> dict[Where, int]:
        """The partitions this engine trades -> the next offset it will take on each."""
        return {(tp.topic, tp.partition): self.processed.get(tp, 0) for tp in self.cores}

    async def recover(self, tp: TopicPartition) -> None:
        """Rebuild the core of ``tp`` from the log up to the committed offset, publishing nothing."""
        await self._read_control(to_end=True)
        committed = await self._consumer.committed(tp)
        begin = (await self._consumer.beginning_offsets([tp]))[tp]
        start = begin if committed is None else committed
        if tp in self.cores and self.processed.get(tp) == start:
            self._consumer.seek(tp, start)  # kept through the rebalance: the state is already exact
            return
        restored = await self._recovery.restore(tp, begin, start, self.supervisor.halted_at)
        core, self.recovered_from[tp] = restored.core, restored.from_snapshot
        self.cores[tp] = core
        self._indicators_reported.update({(tp, i): n for i, n in core.indicators.items()})
        self.processed[tp] = self.positions[tp] = start
        self._consumer.seek(tp, start)

    async def start(self) -> None:
        await self._control.start()
        parts = self._control.partitions_for_topic(self._topics.control) or set()
        if not parts:
            await self._control._client.force_metadata_update()
            parts = self._control.partitions_for_topic(self._topics.control) or set()
        control_tps = [TopicPartition(self._topics.control, p) for p in sorted(parts)]
        self._control.assign(control_tps)
        await self._control.seek_to_beginning(*control_tps)
        await self._consumer.start()
        self._consumer.subscribe([self._topics.ticks], listener=_Rebalance(self))

    async def stop(self) -> None:
        """Leave the group and close the consumers; safe twice, and shielded from the caller's cancellation."""
        if self._stopped:
            return
        self._stopped = True
        await asyncio.shield(self._consumer.stop())
        await asyncio.shield(self._control.stop())

    async def __aenter__(self) -> TradingLoop:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_assigned(self, seconds: float) -> None:
        await asyncio.wait_for(self.assigned.wait(), seconds)

    async def _send(self, env: Envelope, topic: str | None = None, acked: _Acked | None = None) -> None:
        """Hand one event to the producer (acknowledged by :meth:`flush` before the input's offset is committed);
        ``acked``, a decision's, is called with its future when the broker answers (again after a resend)."""
        while True:
            try:
                fut = await self._producer.enqueue(env, topic)
                if acked is not None:
                    fut.add_done_callback(acked)
                self._unacked.append((env, topic, fut, acked))
                self.events_published += 1
                return
            except Exception as exc:
                if not is_outage(exc):
                    raise
                await self.backoff.wait(exc, None, during="publish")

    async def flush(self) -> None:
        """Wait for the broker to acknowledge every event handed over, then commit the tick offsets.

        Through a broker outage it waits: what was not acknowledged is handed over again, in order and with the
        same ids (an event the broker had stored after all is a duplicate downstream), until all of it is; only
        then are the offsets committed, so an input is never committed before what it caused is in the log."""
        while self._unacked:
            sent, self._unacked = self._unacked, []
            results = await asyncio.gather(*(f for _, _, f, _ in sent), return_exceptions=True)
            failed = [
                (env, topic, acked)
                for (env, topic, _, acked), r in zip(sent, results, strict=True)
                if isinstance(r, BaseException)
            ]
            if not failed:
                break
            exc = next(r for r in results if isinstance(r, BaseException))
            if not is_outage(exc):
                raise exc
            await self.backoff.wait(exc, None, during="flush", unacknowledged=len(failed))
            for env, topic, acked in failed:
                self.events_published -= 1  # counted again when handed over again
                await self._send(env, topic, acked)
        offsets, self._to_commit = self._to_commit, {}
        if offsets:
            while True:
                try:
                    await self._consumer.commit(offsets)
                    break
                except Exception as exc:
                    if not is_outage(exc):
                        # the group moved on (a rebalance): the partitions' next owner goes on from the last commit
                        log.warning("engine.commit_failed", error=repr(exc))
                        return
                    await self.backoff.wait(exc, None, during="commit")
            self.positions.update(offsets)
            for tp in offsets:
                core = self.cores.get(tp)
                if core and self._snapshot_every and self._since_snapshot.get(tp, 0) >= self._snapshot_every:
                    await self._recovery.checkpoint(tp, core, self.processed[tp])
                    self._since_snapshot[tp] = 0
        self.backoff.reset()

    async def _recover_pending(self) -> None:
        """Recover the partitions handed over (paused until then); retried by :meth:`run` through an outage."""
        for tp in sorted(self.pending, key=lambda t: (t.topic, t.partition)):
            await self.recover(tp)
            self.pending.discard(tp)
            self._consumer.resume(tp)
        self.assigned.set()
        self.backoff.reset()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume, decide, publish, commit until ``stop``; a broker outage is waited out (see :meth:`flush`)."""
        try:
            while not stop.is_set():
                try:
                    await self._run(stop)
                except Exception as exc:
                    if not is_outage(exc) or stop.is_set():
                        raise
                    # a record was maybe fetched and not taken: go back to the first one not taken
                    assigned = self._consumer.assignment()
                    for tp, offset in self.processed.items():
                        if tp in self.cores and tp in assigned:
                            self._consumer.seek(tp, offset)
                    await self.backoff.wait(exc, stop, during="consume")
        finally:
            async with self.batch_lock:
                await asyncio.shield(self.flush())

    async def _run(self, stop: asyncio.Event) -> None:
        last_flush = time.monotonic()
        while not stop.is_set():
            if self.pending:
                async with self.batch_lock:
                    await self._recover_pending()
            batches = await self._consumer.getmany(timeout_ms=100, max_records=self._batch)
            async with self.batch_lock:
                if batches:
                    await self._process(batches)
                if not batches or time.monotonic() - last_flush >= self._commit_interval:
                    await self.flush()
                    last_flush = time.monotonic()

    async def _process(self, batches: dict[TopicPartition, list[Any]]) -> None:
        await self._read_control()
        for tp, msgs in batches.items():
            core = self.cores.get(tp)
            # records fetched before a rebalance moved the position are stale: never feed a tick twice
            msgs = [m for m in msgs if m.offset >= self.processed.get(tp, 0)]
            if core is None or not msgs or tp in self.pending:
                continue
            where = (tp.topic, tp.partition)
            for msg in msgs:
                try:
                    env = decode(msg.value)
                except DecodeError as exc:
                    await self._dead.park(msg, exc.reason)
                else:
                    halted = self.supervisor.halted_at(env.ts_event, where, msg.offset)
                    failures = core.strategy_failures
                    try:
                        produced = core.on_input(env, ts_init=time.time_ns(), halted=halted)
                    except Exception as exc:  # a record the core cannot take must not stop trading
                        produced = []
                        self.failed_inputs += 1
                        log.error("engine.input_failed", partition=tp.partition, offset=msg.offset, error=repr(exc))
                        await self._dead.park(msg, f"the trading core could not take it: {exc!r}"[:4000])
                    if core.strategy_failures != failures:  # its intents were dropped; trading goes on
                        log.error(
                            "engine.strategy_failed", partition=tp.partition, offset=msg.offset, error=core.last_failure
                        )
                    if produced:  # the moment the core returned: the decisions' latency is measured from it
                        returned = (time.time_ns(), time.perf_counter())
                    for out in produced:
                        acked = None
                        if out is not env and isinstance(out.event, DECISIONS):  # an order decision (rare)
                            acked = self._latency.decided(out.event.instrument, env.ts_init, *returned)
                        await self._send(out, None, acked)
                    self.processed[tp] = msg.offset + 1  # where a switch decided now applies on this partition
                    if self.supervisor.daily_loss_limit is not None:
                        await self._supervise(env, core)
                # taken: a failure after this point goes on from the next record
                self.processed[tp] = self._to_commit[tp] = msg.offset + 1
                self.ticks_processed += 1
                self._since_snapshot[tp] = self._since_snapshot.get(tp, 0) + 1
            KAFKA_CONSUMED.labels("engine").inc(len(msgs))
            for instrument, n in core.indicators.items():
                INDICATORS.labels(instrument).inc(n - self._indicators_reported.get((tp, instrument), 0))
                self._indicators_reported[(tp, instrument)] = n

    async def _supervise(self, env: Envelope, core: TradingCore) -> None:
        """After one input record: the equity report and the daily-loss trip the supervisor decides, published."""
        instrument = getattr(env.event, "instrument", "")
        own = (v for c in self.cores.values() if c.states for v in c.views())  # a core with no state has no view
        decided = self.supervisor.after_input(
            env,
            core.view(instrument),
            own,
            self._trading,
            ts_init=time.time_ns(),
            own_key=tuple(self.cores.values()),  # an input changes its instrument's state alone, in its core
        )
        for out in decided.events:
            await self._send(out)
        if (breach := decided.breach) is not None:
            log.warning(
                "risk.daily_loss_limit",
                currency=breach.currency,
                loss=str(breach.loss),
                limit=str(breach.threshold),
                start_of_day=str(breach.start_of_day),
                equity=str(breach.equity),
            )

    async def caught_up(self, end_offsets: dict[TopicPartition, int]) -> bool:
        """True once every partition this engine owns is processed, published and committed to ``end_offsets``."""
        return self.assigned.is_set() and all(
            self.positions.get(tp, 0) >= end_offsets.get(tp, 0) for tp in self.positions
        )

    async def group_caught_up(self, end_offsets: dict[TopicPartition, int]) -> bool:
        """True once the engines' group committed every partition of ``end_offsets`` up to it, whoever owns it: a
        partition still held by an engine that died (until its session expires and the group hands it on) is not
        caught up, though this engine owns nothing behind."""
        if not await self.caught_up(end_offsets):
            return False
        for tp, end in end_offsets.items():
            if end and tp not in self.positions:
                committed = await self._consumer.committed(tp)
                if committed is None or committed < end:
                    return False
        return True
