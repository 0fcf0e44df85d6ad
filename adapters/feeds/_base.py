from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Protocol

import structlog

from adapters.kafka import EventProducer
from events import Envelope, TickReceived

log = structlog.get_logger(__name__)


class Feed(Protocol):
    source: str

    def ticks(self) -> AsyncIterator[tuple[int, TickReceived]]: ...


async def publish_feed(
    feed: Feed, producer: EventProducer, stop: asyncio.Event, *, window: int = 5000, grace: float = 2.0
) -> int:
    """Write the feed's ticks to Kafka until it ends or ``stop`` is set; return how many were acknowledged.

    Each tick is handed to the producer at once (no added latency); acknowledgements are awaited in
    windows, so a broker error stops the feed within ``window`` ticks, and all are awaited at the end.
    A live feed may be silent for a long time: once ``stop`` is set it gets ``grace`` seconds to yield its
    next tick, then it is cancelled (what was handed to the producer is still awaited).
    """
    in_flight: list[asyncio.Future[object]] = []
    count = 0

    async def pump() -> None:
        nonlocal in_flight, count
        async for ts_event, tick in feed.ticks():
            if stop.is_set():
                break
            env = Envelope.new(tick, ts_event=ts_event, ts_init=time.time_ns(), source=feed.source)
            in_flight.append(await producer.enqueue(env))
            if len(in_flight) >= window:
                await asyncio.gather(*in_flight)
                count += len(in_flight)
                in_flight = []

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
        await asyncio.shield(asyncio.gather(*in_flight))
    count += len(in_flight)
    log.info("feed.finished", source=feed.source, ticks=count)
    return count
