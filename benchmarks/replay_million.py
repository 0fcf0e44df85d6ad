"""Replay of a large synthetic log (default 1,000,000 events) into a fresh schema: wall time, events per
second, and peak memory of the replay process.

It first writes the log (synthetic ticks run through the trading core, all resulting events published to
fresh topics), then runs `python -m engine replay` on it as a separate process, as a user would, and reads
that process's peak resident memory from the kernel (getrusage of the child).

Usage: python benchmarks/replay_million.py [--events N | --log PREFIX] [--workers N [N ...]]
(``--log``: replay a log written before, the topic prefix it printed, instead of writing a new one.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.feeds import SyntheticFeed  # noqa: E402
from adapters.kafka import EventProducer, LogInspector, ensure_topics  # noqa: E402
from benchmarks._cpu import StackCpu  # noqa: E402
from benchmarks._steal import Steal  # noqa: E402
from engine.app import make_core_factory  # noqa: E402
from engine.config import export_connections, load  # noqa: E402
from events import Envelope, Topics  # noqa: E402


async def write_log(target_events: int, prefix: str) -> int:
    settings = load(strategy={"fast": 3, "slow": 8})
    topics = Topics(prefix)
    await ensure_topics(settings.kafka.bootstrap, settings.kafka.partitions, topics)
    feed = SyntheticFeed(
        settings.feed.instruments, settings.feed.start_prices, settings.feed.tick_size, seed=11, paced=False
    )
    make_core = make_core_factory(settings)
    cores = {i: make_core() for i in settings.feed.instruments}
    written = 0
    chunk: list[Envelope] = []
    async with EventProducer(settings.kafka.bootstrap, topics, linger_ms=20) as producer:
        async for ts, tick in feed.ticks():
            env = Envelope.new(tick, ts_event=ts, ts_init=ts, source="bench")
            chunk.append(env)
            chunk.extend(cores[tick.instrument].on_input(env, ts_init=ts))
            if len(chunk) >= 20_000:
                await producer.publish(chunk)
                written += len(chunk)
                chunk = []
                if written >= target_events:
                    break
        if chunk:
            await producer.publish(chunk)
            written += len(chunk)
    return written


async def log_size(prefix: str) -> int:
    topics = Topics(prefix)
    async with LogInspector(load().kafka.bootstrap) as inspector:
        tps = await inspector.partitions((topics.ticks, topics.trading, topics.control))
        begin, end = await inspector.beginning_offsets(tps), await inspector.end_offsets(tps)
    return sum(end[tp] - begin[tp] for tp in tps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="replay with each (default: 1 2)")
    ap.add_argument("--log", metavar="PREFIX", help="replay the log with this topic prefix (written before)")
    args = ap.parse_args()
    export_connections(load())  # PGPASSFILE: the database's passwords (the local stack's <state>/pgpass)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    if args.log:
        prefix, written = args.log, asyncio.run(log_size(args.log))
        print(f"log {prefix}: {written:,} events")
    else:
        prefix = f"million_{uuid.uuid4().hex[:6]}."
        t0 = time.monotonic()
        written = asyncio.run(write_log(args.events, prefix))
        print(f"log written: {written:,} events in {time.monotonic() - t0:.1f} s (topic prefix {prefix})")
    env = {**os.environ, "ENGINE_KAFKA__TOPIC_PREFIX": prefix}
    for workers in args.workers:
        schema = f"million_{uuid.uuid4().hex[:6]}"
        t0 = time.monotonic()
        with (
            Steal() as steal,
            StackCpu() as cpu,
            tempfile.TemporaryFile("w+") as out,
            tempfile.TemporaryFile("w+") as err,
        ):
            proc = subprocess.Popen(
                [sys.executable, "-m", "engine", "replay", "--schema", schema, "--workers", str(workers)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=err,
                text=True,
            )
            # wait4 gives the usage of the child and of its reaped children: the largest of the replay's processes
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.monotonic() - t0
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        peak_kib = usage.ru_maxrss
        if os.waitstatus_to_exitcode(status) != 0:
            print(stderr[-3000:])
            raise SystemExit(1)
        print(stdout.strip())
        print(
            f"replay of {written:,} events, {workers} worker process(es): {wall:.1f} s wall (process start to "
            f"exit), {written / wall:,.0f} events/s; peak memory of the largest replay process "
            f"{peak_kib / 1024:,.0f} MiB ({steal})"
        )
        print(f"  {cpu.report(written)} (the replay's process from its start to its exit)")
        subprocess.run(
            [
                "psql",
                load().postgres.dsn,
                "-qc",
                "SET client_min_messages = warning",
                "-c",
                f"DROP SCHEMA {schema} CASCADE",
            ],
            check=False,
        )


if __name__ == "__main__":
    main()
