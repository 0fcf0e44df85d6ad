from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import structlog

from adapters.deadletter import park_unpublished
from adapters.kafka import EventProducer
from adapters.outage import Backoff, is_outage
from events import Envelope, InvalidEvent, TickReceived, validate_tick

log = structlog.get_logger(__name__)


class Feed(Protocol):
    source: str

    def ticks(self) -> AsyncIterator[tuple[int, TickReceived]]: ...


BATCH_TICKS = 500  # ticks of a feed read as fast as it goes handed to the producer at a time, in batches


class _Window:
    """The ticks handed to the producer and not yet acknowledged, in order, each with its acknowledgement (one
    future per record batch: per tick, or per batch of many); resent after an outage (with the same ids: a tick the
    broker had stored after all is a duplicate, which every consumer takes once)."""

    def __init__(self, producer: EventProducer, backoff: Backoff) -> None:
        self._producer = producer
        self._backoff = backoff
        self.sent: list[tuple[list[Envelope], asyncio.Future[Any]]] = []
        self.unacknowledged = 0  # the ticks of ``sent``
        self.acknowledged = 0

    def _add(self, envs: list[Envelope], fut: asyncio.Future[Any]) -> None:
        self.sent.append((envs, fut))
        self.unacknowledged += len(envs)

    async def send(self, envs: list[Envelope], stop: asyncio.Event | None = None) -> None:
        """Hand ``envs`` to the producer: one record each if one, else in record batches made here."""
        while envs:
            try:
                if len(envs) == 1:
                    self._add(envs, await self._producer.enqueue(envs[0]))
                else:
                    await self._producer.enqueue_batches(envs, self._add)
                return
            except Exception as exc:
                if not is_outage(exc) or (stop is not None and stop.is_set()):
                    raise
                handed = {id(e) for batch, _ in self.sent for e in batch}  # batches handed before the outage stay
                envs = [e for e in envs if id(e) not in handed]
                await self._backoff.wait(exc, None, component="feed")

    async def settle(self, stop: asyncio.Event | None = None) -> None:
        """Wait until the broker acknowledged every tick of the window, resending after an outage; raise a failure
        that is not an outage, or the outage itself once ``stop`` is set."""
        while self.sent:
            results = await asyncio.gather(*(f for _, f in self.sent), return_exceptions=True)
            failed = [
                e for (envs, _), r in zip(self.sent, results, strict=True) if isinstance(r, BaseException) for e in envs
            ]
            self.acknowledged += self.unacknowledged - len(failed)
            self.sent, self.unacknowledged = [], 0
            if not failed:
                self._backoff.reset(component="feed")
                return
            exc = next(r for r in results if isinstance(r, BaseException))
            if not is_outage(exc) or (stop is not None and stop.is_set()):
                raise exc
            await self._backoff.wait(exc, None, component="feed", unacknowledged=len(failed))
            await self.send(failed, stop)


async def publish_feed(
    feed: Feed,
    producer: EventProducer,
    stop: asyncio.Event,
    *,
    window: int = 5000,
    grace: float = 2.0,
    final_wait: float = 30.0,
    on_finished: Callable[[int], object] | None = None,
) -> int:
    """Write the feed's ticks to Kafka until it ends or ``stop`` is set; return how many were acknowledged.

    Each tick is handed to the producer at once (no added latency); acknowledgements are awaited in windows of
    ``window`` ticks. A tick that breaks a rule of :mod:`events.validation` is never published: it is parked on the
    dead-letter topic with the reason, and the feed goes on. A broker outage is waited out: the window's
    unacknowledged ticks are resent once it answers again (a tick's id is derived from its trade, so one stored
    twice is one event). A live feed may be silent for a long time: once ``stop`` is set it gets ``grace`` seconds
    to yield its next tick, then it is cancelled; what was handed to the producer is awaited for at most
    ``final_wait`` seconds more. ``on_finished`` is told how many were acknowledged, whether the feed ended or
    failed.
    """
    own = getattr(feed, "publish", None)
    if own is not None:  # a feed that publishes itself (from a child process: adapters.feeds.child)
        acknowledged: int = await own(producer, stop, on_finished=on_finished)
        return acknowledged
    pending = _Window(producer, Backoff("kafka.feed"))
    # a feed read as fast as it goes is handed over in batches; a paced or live one tick by tick, at once
    batch = 1 if getattr(feed, "paced", True) else BATCH_TICKS
    read: list[Envelope] = []  # valid ticks read and not yet handed to the producer

    async def hand_over() -> None:
        envs = read[:]
        read.clear()
        await pending.send(envs)

    async def pump() -> None:
        async for ts_event, tick in feed.ticks():
            if stop.is_set():
                break
            env = Envelope.of_trade(tick, ts_event=ts_event, ts_init=time.time_ns(), source=feed.source)
            try:
                validate_tick(tick, ts_event)
            except InvalidEvent as exc:  # never published as a tick: parked with the reason, the feed goes on
                await park_unpublished(producer, env, producer.topics.ticks, feed.source, exc.reason)
                continue
            read.append(env)
            if len(read) >= batch:
                await hand_over()
                if pending.unacknowledged >= window:
                    await pending.settle()

    async def finish() -> None:  # what was read before the feed ended, failed or was stopped is published too
        if read:
            await hand_over()
        await pending.settle()

    task = asyncio.ensure_future(pump())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            done, _ = await asyncio.wait({task}, timeout=grace)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not task.cancelled():
            task.result()  # a failing feed fails here
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
        try:
            await asyncio.shield(asyncio.wait_for(finish(), final_wait))
        except Exception as exc:  # the broker is gone at the end: say what was not acknowledged
            log.warning(
                "feed.unacknowledged", source=feed.source, ticks=pending.unacknowledged + len(read), error=repr(exc)
            )
        if on_finished is not None:
            on_finished(pending.acknowledged)
    log.info("feed.finished", source=feed.source, ticks=pending.acknowledged)
    return pending.acknowledged
