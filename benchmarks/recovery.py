"""How long an engine takes to get its partitions back (start, restart, rebalance): from its state snapshots,
and by running the whole log (what it does when no snapshot fits, e.g. after a change of settings).

It publishes N synthetic ticks (default 200,000) to fresh topics, lets one engine process them all (writing state
snapshots every ``--every`` records of a partition), then times a second engine's start until its partitions are
assigned and recovered: once with the same settings (from the snapshots) and once with another order quantity
(the snapshots do not fit: the whole log).

Usage: python benchmarks/recovery.py [--ticks N] [--every N]
Servers: ENGINE_KAFKA__BOOTSTRAP, default the local stack.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.feeds import SyntheticFeed
from adapters.kafka import EventProducer, ensure_topics
from engine.app import make_core_factory
from engine.config import Settings, load
from engine.loop import TradingLoop
from events import Envelope, Topics


async def engine(settings: Settings, topics: Topics, producer: EventProducer, every: int, until: int) -> float:
    """Start an engine; return the seconds until it owns its partitions (recovered); run it to ``until``."""
    loop = TradingLoop(settings.kafka.bootstrap, producer, make_core_factory(settings), topics, snapshot_every=every)
    t0 = time.monotonic()
    await loop.start()
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await loop.wait_assigned(600)
    ready = time.monotonic() - t0
    while sum(loop.processed.values()) < until:  # noqa: ASYNC110 - a benchmark polls its own loop
        await asyncio.sleep(0.1)
    stop.set()
    await task
    await loop.stop()
    return ready


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ticks", type=int, default=200_000)
    ap.add_argument("--every", type=int, default=20_000, help="records of a partition between snapshots")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    settings = load(strategy={"fast": 3, "slow": 8})
    topics = Topics(f"recovery_{uuid.uuid4().hex[:6]}.")
    await ensure_topics(settings.kafka.bootstrap, settings.kafka.partitions, topics)
    feed = SyntheticFeed(
        settings.feed.instruments,
        settings.feed.start_prices,
        settings.feed.tick_size,
        seed=7,
        paced=False,
        limit=args.ticks,
    )
    ticks = [Envelope.new(t, ts_event=ts, ts_init=ts, source="bench") async for ts, t in feed.ticks()]
    async with EventProducer(settings.kafka.bootstrap, topics, linger_ms=20) as producer:
        for i in range(0, len(ticks), 20_000):
            await producer.publish(ticks[i : i + 20_000])
        t0 = time.monotonic()
        await engine(settings, topics, producer, args.every, len(ticks))
        print(
            f"first engine: {len(ticks):,} ticks processed in {time.monotonic() - t0:.1f} s "
            f"(snapshots every {args.every:,} records of a partition)"
        )
        from_snapshot = await engine(settings, topics, producer, args.every, len(ticks))
        print(f"restart, same settings (from the latest snapshots): ready in {from_snapshot:.2f} s")
        other = load(strategy={"fast": 3, "slow": 8, "order_quantity": "0.002"})
        whole = await engine(other, topics, producer, 0, len(ticks))
        print(f"restart, other settings (no snapshot fits: the whole log): ready in {whole:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
