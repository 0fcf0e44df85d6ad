"""Benchmarks of the pipeline on the real Kafka and PostgreSQL (figures printed; nothing asserted).

1. Audit projection throughput: N synthetic ticks run through the trading core; all resulting
   events are published to fresh topics, then the audit projection folds them from Kafka into a
   fresh schema (the same runner and code as `python -m engine replay`, in one worker process and in
   two: `replay --workers 2`). Prints events/s, and the
   raw ceiling of the same machine in the same run: the same rows (every row of every table the
   projection wrote) written with asyncpg `copy_records_to_table` with no projection logic, and the
   ratio; and, for comparison with earlier figures, the ceiling of the `events` table alone.
2. Tick-to-order latency through Kafka: a paced synthetic feed publishes ticks; the trading loop
   consumes them from Kafka and publishes orders; a consumer reads the orders back. Prints p50/p99 of
   (order's ts_init - tick's ts_init: decision latency, tick in Kafka -> order decided) and of
   (order read back from Kafka - tick created: the full round trip).

Usage: python benchmarks/pipeline.py [--events N] [--runs N] [--order-heavy] [--latency-ticks N] [--rate R]
       [--cluster BOOTSTRAP]
Servers: ENGINE_KAFKA__BOOTSTRAP / ENGINE_POSTGRES__DSN, default the local stack. ``--cluster`` runs both benchmarks
again, in the same run, on a replicated cluster (``python -m engine stack up --brokers 3`` prints its bootstrap):
topics of replication factor 3 and min.insync.replicas 2, producers acks=all as always.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.kafka import EventProducer, ensure_topics, make_consumer
from adapters.postgres import create_pool
from benchmarks._cpu import StackCpu
from benchmarks._steal import Steal
from events import Envelope, OrderSubmitted, Topics, decode
from projections.replay import TABLES, replay


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


# The engine's modules beyond the projections (its settings, the feeds, the core, the trading loop) are imported in
# the functions that use them: a replay worker process is spawned, and a spawned process imports the script that
# started it again (not so `python -m engine replay`), which cost the second worker's start about 0.4 s here.


async def throughput(n_ticks: int, runs: int, order_heavy: bool) -> None:
    from adapters.feeds import SyntheticFeed
    from engine.app import make_core_factory
    from engine.config import load

    # order-heavy: no limit on the order rate or open orders, so every signal becomes an order, which the paper
    # venue fills (by default the rate limit refuses almost all of them: a log of ticks and refusals)
    risk = {"max_orders_per_minute": 10**9, "max_open_orders": 10**6} if order_heavy else {}
    settings = load(strategy={"fast": 3, "slow": 8}, risk=risk)
    topics = Topics(f"bench_{uuid.uuid4().hex[:6]}.")
    await ensure_topics(
        settings.kafka.bootstrap,
        settings.kafka.partitions,
        topics,
        replication=settings.kafka.replication_factor,
        min_insync=settings.kafka.min_insync_replicas,
    )
    feed = SyntheticFeed(
        settings.feed.instruments,
        settings.feed.start_prices,
        settings.feed.tick_size,
        seed=1,
        paced=False,
        limit=n_ticks,
    )
    make_core = make_core_factory(settings)
    cores = {i: make_core() for i in settings.feed.instruments}
    t0 = time.monotonic()
    envs: list[Envelope] = []
    with Steal() as steal:
        async for ts, tick in feed.ticks():
            env = Envelope.new(tick, ts_event=ts, ts_init=ts, source="bench")
            envs.append(env)
            envs.extend(cores[tick.instrument].on_input(env, ts_init=ts))
    core_s = time.monotonic() - t0
    print(
        f"trading core: {n_ticks:,} ticks -> {len(envs) - n_ticks:,} events in {core_s:.2f} s "
        f"({n_ticks / core_s:,.0f} ticks/s, pure Python, one core; {steal})"
    )
    print("the log: " + ", ".join(f"{n:,} {t}" for t, n in collections.Counter(e.type for e in envs).most_common()))
    async with EventProducer(settings.kafka.bootstrap, topics, linger_ms=20) as producer:
        t0 = time.monotonic()
        for i in range(0, len(envs), 20_000):
            await producer.publish(envs[i : i + 20_000])
        pub_s = time.monotonic() - t0
    print(f"publish: {len(envs):,} events to Kafka in {pub_s:.2f} s ({len(envs) / pub_s:,.0f} events/s, acks=all)")
    # the replays run as `python -m engine replay` does, in a process that does not hold the log (the worker processes
    # are forked from this one)
    del envs, cores, feed

    pool = await create_pool(settings.postgres.dsn)
    rates: dict[int, list[float]] = {1: [], 2: []}
    ratios: dict[int, list[float]] = {1: [], 2: []}
    try:
        for run in range(1, runs + 1):
            if runs > 1:
                print(f"run {run} of {runs}:")
            first, raw_s = "", 0.0
            for workers in (1, 2):
                schema = f"bench_{uuid.uuid4().hex[:6]}"
                with Steal() as steal, StackCpu() as cpu:
                    res = await replay(
                        settings.kafka.bootstrap,
                        settings.postgres.dsn,
                        settings.postgres.writer,
                        schema,
                        topics=topics,
                        progress=False,
                        workers=workers,
                    )
                print(
                    f"audit projection, {workers} worker process(es): {res.events:,} events from Kafka into "
                    f"PostgreSQL in {res.seconds:.2f} s = {res.events_per_second:,.0f} events/s ({steal})"
                )
                print(f"  {cpu.report(res.events)}")
                rates[workers].append(res.events_per_second)
                if workers == 1:
                    first = schema
                    raw_s = await raw_ceiling(pool, schema, res.events, res.seconds)
                else:
                    print(f"  ratio to the same-rows ceiling above: {raw_s / res.seconds:.2f}")
                    await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
                ratios[workers].append(raw_s / res.seconds)
            await pool.execute(f'DROP SCHEMA "{first}" CASCADE')
        if runs > 1:
            for workers in (1, 2):
                print(
                    f"{workers} worker process(es), {runs} runs: median {statistics.median(rates[workers]):,.0f} "
                    f"events/s (from {min(rates[workers]):,.0f} to {max(rates[workers]):,.0f}), median ratio "
                    f"{statistics.median(ratios[workers]):.2f}"
                )
    finally:
        await pool.close()


async def raw_ceiling(pool: asyncpg.Pool, schema: str, events: int, projection_s: float) -> float:
    """The raw ceiling: the same rows the projection wrote, every table, read back and written again with
    ``copy_records_to_table`` (5,000 rows a call, as the projection's batches) into empty copies of the tables
    with their keys and indexes: no Kafka, no decoding, no projection logic. Also printed: the ``events`` table
    alone (the ceiling this script printed before; it leaves out the rows of the other tables)."""
    seconds: dict[str, float] = {}
    rows_of: dict[str, int] = {}
    with Steal() as steal:
        async with pool.acquire() as conn:
            for table in TABLES:
                cols = [
                    r["attname"]
                    for r in await conn.fetch(
                        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 "
                        "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                        f'"{schema}".{table}',
                    )
                ]
                quoted = ", ".join(f'"{c}"' for c in cols)
                rows = [tuple(r) for r in await conn.fetch(f'SELECT {quoted} FROM "{schema}".{table}')]
                await conn.execute(f'CREATE TABLE "{schema}".raw_{table} (LIKE "{schema}".{table} INCLUDING ALL)')
                t0 = time.monotonic()
                for i in range(0, len(rows), 5000):
                    await conn.copy_records_to_table(
                        f"raw_{table}", schema_name=schema, records=rows[i : i + 5000], columns=cols
                    )
                seconds[table], rows_of[table] = time.monotonic() - t0, len(rows)
    raw_s = sum(seconds.values())
    written = sum(rows_of.values())
    print(
        f"raw ceiling, the same rows (COPY of all {written:,} rows the projection wrote, {len(TABLES)} tables, "
        f"into copies with their keys and indexes): {raw_s:.2f} s = {events / raw_s:,.0f} events/s; "
        f"ratio projection/ceiling = {raw_s / projection_s:.2f} ({steal})"
    )
    print("  " + ", ".join(f"{t} {rows_of[t]:,} rows {seconds[t]:.2f} s" for t in TABLES if rows_of[t]))
    print(
        f"raw ceiling, the events table alone: {events / seconds['events']:,.0f} events/s; "
        f"ratio = {seconds['events'] / projection_s:.2f}"
    )
    return raw_s


async def latency(n_ticks: int, rate: float) -> None:
    from adapters.feeds import SyntheticFeed, publish_feed
    from engine.app import make_core_factory
    from engine.config import load
    from engine.loop import TradingLoop

    settings = load(strategy={"fast": 2, "slow": 4})
    topics = Topics(f"lat_{uuid.uuid4().hex[:6]}.")
    await ensure_topics(
        settings.kafka.bootstrap,
        settings.kafka.partitions,
        topics,
        replication=settings.kafka.replication_factor,
        min_insync=settings.kafka.min_insync_replicas,
    )
    created: dict[uuid.UUID, int] = {}
    async with EventProducer(settings.kafka.bootstrap, topics, client_id="bench-engine") as producer:
        loop = TradingLoop(settings.kafka.bootstrap, producer, make_core_factory(settings), topics)
        await loop.start()
        reader = make_consumer(settings.kafka.bootstrap, [topics.trading], group_id=None, client_id="bench-reader")
        await reader.start()
        stop = asyncio.Event()
        loop_task = asyncio.create_task(loop.run(stop))
        await loop.wait_assigned(60)
        decision: list[float] = []
        round_trip: list[float] = []

        async def read_orders() -> None:
            while not stop.is_set():
                for msgs in (await reader.getmany(timeout_ms=100)).values():
                    now = time.time_ns()
                    for m in msgs:
                        env = decode(m.value)
                        if isinstance(env.event, OrderSubmitted) and env.causation_id in created:
                            decision.append((env.ts_init - created[env.causation_id]) / 1e6)
                            round_trip.append((now - created[env.causation_id]) / 1e6)

        read_task = asyncio.create_task(read_orders())

        feed = SyntheticFeed(
            settings.feed.instruments,
            settings.feed.start_prices,
            settings.feed.tick_size,
            seed=3,
            ticks_per_second=rate,
            limit=n_ticks,
        )
        orig_enqueue = producer.enqueue

        async def enqueue(env: Envelope, topic: str | None = None) -> asyncio.Future[Any]:
            created[env.event_id] = env.ts_init
            return await orig_enqueue(env, topic)

        producer.enqueue = enqueue  # type: ignore[method-assign]
        await publish_feed(feed, producer, asyncio.Event())
        producer.enqueue = orig_enqueue  # type: ignore[method-assign]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and loop.ticks_processed < n_ticks:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(loop_task, read_task)
        await reader.stop()
        await loop.stop()
    print(f"tick-to-order latency over {len(decision):,} orders ({n_ticks:,} ticks at {rate:,.0f}/s):")
    print(
        f"  decision (tick created -> through Kafka -> order decided): p50 {pct(decision, 50):.2f} ms, "
        f"p99 {pct(decision, 99):.2f} ms"
    )
    print(
        f"  round trip (tick created -> order read back from Kafka):   p50 {pct(round_trip, 50):.2f} ms, "
        f"p99 {pct(round_trip, 99):.2f} ms, mean {statistics.fmean(round_trip):.2f} ms"
    )


async def main() -> None:
    from engine.config import export_connections, load

    export_connections(load())  # PGPASSFILE (the local stack's <state>/pgpass), PGSSL*, Kafka security
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--events", type=int, default=100_000, help="ticks for the throughput run (default 100,000; 0: skip it)"
    )
    ap.add_argument(
        "--runs",
        type=int,
        default=1,
        help="replays of the throughput log, each with one and two workers (the speed of a shared VM "
        "varies from minute to minute: several runs show by how much); default 1",
    )
    ap.add_argument(
        "--order-heavy",
        action="store_true",
        help="the throughput log with every signal an order, filled (no order-rate limit; the trading core "
        "then counts every order of the feed's compressed minutes in its rate window and runs slower "
        "than a live engine would: its figure is not one)",
    )
    ap.add_argument("--latency-ticks", type=int, default=5_000, help="ticks for the latency run (0: skip it)")
    ap.add_argument("--rate", type=float, default=500.0, help="ticks per second in the latency run")
    ap.add_argument(
        "--cluster",
        metavar="BOOTSTRAP",
        help="then the same benchmarks on this replicated cluster (replication factor 3, min.insync.replicas 2)",
    )
    args = ap.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}"
    )
    kafkas: list[tuple[str, dict[str, str]]] = [("the configured Kafka", {})]
    if args.cluster:
        kafkas.append(
            (
                f"the cluster at {args.cluster} (replication factor 3, min.insync.replicas 2)",
                {
                    "ENGINE_KAFKA__BOOTSTRAP": args.cluster,
                    "ENGINE_KAFKA__REPLICATION_FACTOR": "3",
                    "ENGINE_KAFKA__MIN_INSYNC_REPLICAS": "2",
                },
            )
        )
    for name, env in kafkas:
        os.environ.update(env)  # read by load(), here and in the replay's worker processes
        if args.cluster:
            print(f"== on {name}")
        if args.events > 0:
            await throughput(args.events, max(args.runs, 1), args.order_heavy)
        if args.latency_ticks > 0:
            await latency(args.latency_ticks, args.rate)


if __name__ == "__main__":
    asyncio.run(main())
