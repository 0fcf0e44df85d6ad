"""The recorded feed alone publishing a file into Kafka, as ``backtest`` runs it: ticks per second.

The feed's child process (``python -m adapters.feeds.child``, the very process ``backtest`` starts) publishes the
file to a topic prefix of its own on the stack named by the environment (``ENGINE_KAFKA__BOOTSTRAP``), and is timed
from its start until it says how many ticks the broker acknowledged; the topics are deleted afterwards. The file is
that of ``benchmarks/backtest_million.py`` (Binance's trades layout, the shared real trades in turn), made in a
temporary folder unless ``--file`` names one.

Usage: python benchmarks/feed_publish.py [--trades N] [--file F] [--partitions P]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402

from adapters.feeds.child import ChildFeed  # noqa: E402
from adapters.feeds.recorded import RecordedFeed  # noqa: E402
from adapters.kafka import LogInspector, ensure_topics  # noqa: E402
from adapters.kafka_security import client_args  # noqa: E402
from benchmarks.backtest_million import write_file  # noqa: E402
from engine.config import export_connections, load  # noqa: E402
from events import Topics  # noqa: E402


async def publish(path: Path, partitions: int) -> tuple[int, float, int]:
    """(ticks acknowledged, seconds, records in the ticks topic) of the child publishing ``path``."""
    bootstrap = load().kafka.bootstrap
    prefix = f"feedbench_{uuid.uuid4().hex[:8]}."
    topics = Topics(prefix)
    await ensure_topics(bootstrap, partitions, topics)
    feed = ChildFeed.of(
        RecordedFeed(path, "XRP/ETH", speed=0),
        bootstrap=bootstrap,
        topic_prefix=prefix,
        client_id="feed-bench",
        log_level="warning",
    )
    try:
        t0 = time.perf_counter()
        acknowledged = await feed.publish(None, asyncio.Event())  # type: ignore[arg-type]  # unused by a ChildFeed
        seconds = time.perf_counter() - t0
        async with LogInspector(bootstrap) as inspector:
            tps = await inspector.partitions([topics.ticks])
            stored = sum((await inspector.end_offsets(tps)).values())
    finally:
        admin = AIOKafkaAdminClient(**client_args(bootstrap), client_id="feed-bench")
        await admin.start()
        try:
            await admin.delete_topics([s.name for s in topics.specs()])
        finally:
            await admin.close()
    return acknowledged, seconds, stored


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trades", type=int, default=200_000)
    ap.add_argument("--file", type=Path, help="a recorded file (Binance trades layout) instead of a made one")
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()
    export_connections(load())
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        if path is None:
            path = Path(tmp) / "trades.csv"
            write_file(path, args.trades)
        acknowledged, seconds, stored = asyncio.run(publish(path, args.partitions))
    load_avg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"feed child publishing {path.name}: {acknowledged:,} ticks acknowledged ({stored:,} records) in "
        f"{seconds:.2f} s = {acknowledged / seconds:,.0f} ticks/s (load average before the end: {load_avg})"
    )


if __name__ == "__main__":
    main()
