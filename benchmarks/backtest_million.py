"""A backtest of 1,000,000 recorded trades end to end, as a user runs it: ``python -m engine backtest --file F``.

The file is made in a temporary folder: Binance's spot trades dump layout (CSV), the shared real trades' prices,
amounts and sides in turn, one trade every 17 ms (about 4.7 hours of market time). ``backtest`` runs in a child
process (feed -> Kafka -> engine on the paper venue -> Kafka -> audit projection in PostgreSQL, until the audit has
applied the last event), and this process watches each stage from outside every 0.2 s: the ticks published (the end
offsets of the run's ticks topic), the ticks the engine has taken (its consumer group's committed offsets), and the
events the audit has applied (its projection_offsets rows against the topics' ends). Each stage's time is when it
reached its final count. The ceilings, measured in the same run: the feed alone reading the same file into ticks
(no Kafka), and the trading core alone taking those ticks (each decoded from the record the feed publishes, through
the command's strategy on the paper venue; no Kafka, no daily-loss supervision): the pipeline cannot go faster
than its slowest stage alone.

Usage: python benchmarks/backtest_million.py [--trades N] [--strategy NAME] [--param k=v ...] [--keep]
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
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.feeds.formats import read_trades  # noqa: E402
from adapters.feeds.recorded import RecordedFeed  # noqa: E402
from adapters.kafka import LogInspector  # noqa: E402
from adapters.kafka_security import client_args  # noqa: E402
from benchmarks._steal import Steal  # noqa: E402
from engine.config import export_connections, load  # noqa: E402
from tests.support import TRADES  # noqa: E402

STEP_MS = 17


def write_file(path: Path, n: int) -> None:
    """Binance's spot trades layout (id, price, qty, quote_qty, time, is_buyer_maker, is_best_match), no header."""
    real = [(t.side, str(t.price), str(t.amount)) for t in read_trades(TRADES)]
    start = 1_570_752_011_620
    with path.open("w") as out:
        for i in range(n):
            side, price, amount = real[i % len(real)]
            out.write(f"{13_519_807 + i},{price},{amount},0,{start + i * STEP_MS},{str(side == 'sell').lower()},true\n")


async def feed_alone(path: Path) -> tuple[int, float]:
    """The ceiling: the recorded feed turning the file into ticks, nothing published."""
    feed = RecordedFeed(path, "XRP/ETH", speed=0)
    t0, n = time.perf_counter(), 0
    async for _ in feed.ticks():
        n += 1
    return n, time.perf_counter() - t0


async def core_alone(path: Path, strategy: str, params: list[str]) -> tuple[int, float, int]:
    """The engine stage's ceiling: the core of the command's settings (strategy, risk, paper venue) taking every
    tick of the file, decoded from its record as the engine reads it; (ticks, seconds, events made). The records
    are made 50,000 at a time, outside the time taken."""
    from engine.app import make_core_factory
    from events import Envelope, decode, encode

    over: dict[str, Any] = {"strategy": {"kind": strategy, "params": dict(p.split("=", 1) for p in params)}}
    core = make_core_factory(load(**over))()
    feed = RecordedFeed(path, "XRP/ETH", speed=0)
    ticks, seconds, events = 0, 0.0, 0
    records: list[bytes] = []

    def take() -> None:
        nonlocal seconds, events
        t0 = time.perf_counter()
        for raw in records:
            events += len(core.on_input(decode(raw), ts_init=0))
        seconds += time.perf_counter() - t0
        records.clear()

    async for ts, tick in feed.ticks():
        records.append(encode(Envelope.of_trade(tick, ts_event=ts, ts_init=ts, source=feed.source)))
        ticks += 1
        if len(records) == 50_000:
            take()
    take()
    return ticks, seconds, events


async def watch(run: str, proc: subprocess.Popen[bytes], t0: float) -> dict[str, float]:
    """Every 0.2 s until the child ends: the counts of each stage, and when each last changed."""
    settings = load()
    prefix = f"bt_{run}."
    seen: dict[str, tuple[int, float]] = {}
    conn: asyncpg.Connection | None = None
    async with LogInspector(settings.kafka.bootstrap) as inspector:
        group = AIOKafkaConsumer(**client_args(settings.kafka.bootstrap), group_id=f"{prefix}engine")
        await group.start()
        try:
            while proc.poll() is None:
                now = time.perf_counter() - t0
                tps = await inspector.partitions([prefix + "market.ticks"], missing_ok=True)
                if tps:
                    published = sum((await inspector.end_offsets(tps)).values())
                    taken = 0
                    for tp in tps:
                        taken += await group.committed(TopicPartition(tp.topic, tp.partition)) or 0
                    _note(seen, "published", published, now)
                    _note(seen, "engine", taken, now)
                    if conn is None:
                        conn = await _connect(settings.postgres.dsn, f"bt_{run}")
                    if conn is not None:
                        applied = await conn.fetchval(f'SELECT sum(next_offset) FROM "bt_{run}".projection_offsets')
                        _note(seen, "audit", int(applied or 0), now)
                await asyncio.sleep(0.2)
        finally:
            await group.stop()
            if conn is not None:
                await conn.close()
    return {k: t for k, (_, t) in seen.items()}


def _note(seen: dict[str, tuple[int, float]], stage: str, count: int, now: float) -> None:
    if stage not in seen or seen[stage][0] != count:
        seen[stage] = (count, now)


async def _connect(dsn: str, schema: str) -> asyncpg.Connection | None:
    conn = await asyncpg.connect(dsn)
    if await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".projection_offsets') is None:
        await conn.close()
        return None
    return conn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--strategy", default="ma_cross")
    ap.add_argument("--param", action="append", default=[])
    ap.add_argument("--keep", action="store_true", help="keep the run's topics and schema")
    args = ap.parse_args()
    export_connections(load())
    run = f"bench_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trades.csv"
        t = time.perf_counter()
        write_file(path, args.trades)
        print(
            f"file: {args.trades:,} trades, {path.stat().st_size / 2**20:.0f} MiB, "
            f"made in {time.perf_counter() - t:.1f} s"
        )
        n, secs = asyncio.run(feed_alone(path))
        print(f"ceiling, the feed alone (file -> ticks, nothing published): {n / secs:,.0f} trades/s ({secs:.1f} s)")
        n, secs, made = asyncio.run(core_alone(path, args.strategy, args.param))
        print(
            f"ceiling, the core alone (records -> decode -> core, no Kafka): {n / secs:,.0f} ticks/s "
            f"({secs:.1f} s, {made:,} events)"
        )
        cmd = [
            sys.executable,
            "-m",
            "engine",
            "backtest",
            "--file",
            str(path),
            "--symbol",
            "XRP/ETH",
            "--strategy",
            args.strategy,
            "--run",
            run,
            "--no-html",
            *(x for p in args.param for x in ("--param", p)),
        ]
        with Steal() as steal:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            stages = asyncio.run(watch(run, proc, t0))
            out, err = proc.communicate()
            wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"backtest failed: {err.decode()[-2000:]}")
        print(f"backtest end to end (the command, start to exit): {wall:.1f} s, {args.trades / wall:,.0f} trades/s")
        last = 0.0
        for stage, what in (
            ("published", "feed: every trade published to Kafka"),
            ("engine", "engine: every tick taken (its group's committed offsets)"),
            ("audit", "audit: the last event applied"),
        ):
            at = stages.get(stage, float("nan"))
            print(f"  {what:<58} at {at:6.1f} s (+{at - last:5.1f} s)")
            last = at
        print(f"  until the audit's last event: {args.trades / stages.get('audit', wall):,.0f} trades/s")
        print(f"  {out.decode().splitlines()[0]}")
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {steal}")
        if not args.keep:
            subprocess.run([sys.executable, "-m", "engine", "backtest", "drop", run], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
