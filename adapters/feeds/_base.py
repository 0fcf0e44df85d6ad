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
    paced: bool  # True when ticks arrive in (scaled) real time: publish each at once

    def ticks(self) -> AsyncIterator[tuple[int, TickReceived]]: ...


async def publish_feed(
    feed: Feed, producer: EventProducer, stop: asyncio.Event, *, batch: int = 1000
) -> int:
    """Write the feed's ticks to Kafka until it ends or ``stop`` is set; return how many."""
    pending: list[Envelope] = []
    count = 0
    async for ts_event, tick in feed.ticks():
        if stop.is_set():
            break
        pending.append(Envelope.new(tick, ts_event=ts_event, ts_init=time.time_ns(), source=feed.source))
        if feed.paced or len(pending) >= batch:
            await producer.publish(pending)
            count += len(pending)
            pending = []
    if pending:
        await producer.publish(pending)
        count += len(pending)
    log.info("feed.finished", source=feed.source, ticks=count)
    return count
