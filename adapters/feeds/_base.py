from __future__ import annotations

import asyncio
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
    feed: Feed, producer: EventProducer, stop: asyncio.Event, *, window: int = 5000
) -> int:
    """Write the feed's ticks to Kafka until it ends or ``stop`` is set; return how many were acknowledged.

    Each tick is handed to the producer at once (no added latency); acknowledgements are awaited in
    windows, so a broker error stops the feed within ``window`` ticks, and all are awaited at the end.
    """
    in_flight: list[asyncio.Future[object]] = []
    count = 0
    async for ts_event, tick in feed.ticks():
        if stop.is_set():
            break
        env = Envelope.new(tick, ts_event=ts_event, ts_init=time.time_ns(), source=feed.source)
        in_flight.append(await producer.enqueue(env))
        if len(in_flight) >= window:
            await asyncio.gather(*in_flight)
            count += len(in_flight)
            in_flight = []
    await asyncio.gather(*in_flight)
    count += len(in_flight)
    log.info("feed.finished", source=feed.source, ticks=count)
    return count
