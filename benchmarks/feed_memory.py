"""Peak memory of the recorded feed reading a large trade file (default 5,000,000 trades; target under 200 MiB).

The file is made in a temporary folder from the shape of the shared real trades (tests/data: their prices, amounts
and sides in turn, ids counting up, one trade every 17 ms: a day of 5,000,000 trades), in each format measured:
Binance's trades dump (CSV, gzip), ccxt's trade objects (JSON lines, gzip), ccxt's compact list (one JSON array,
plain) and a generic CSV through a column mapping (plain). Each is read in a fresh child process, as
``python -m engine run --file`` reads it: every trade turned into a tick by :class:`adapters.feeds.RecordedFeed`
(nothing is published: this measures the feed alone); with ``--check``, the whole file checked first as ``run``
does (``check_file``, the same reader: a second pass). The
child reports its resident memory after its imports, and its high-water mark (``getrusage``: the kernel's
``ru_maxrss``) at the end, with trades per second of each pass.

Usage: python benchmarks/feed_memory.py [--trades N] [--check] [--only binance-trades.csv.gz ccxt-dicts.jsonl.gz ...]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GENERIC = "time=when:ms,price=px,amount=qty,side=dir:B/S,id=tid,delimiter=semicolon"
STEP_MS = 17
FILES = ("binance-trades.csv.gz", "ccxt-dicts.jsonl.gz", "ccxt.json", "generic.csv")


def _rows(n: int) -> Iterator[tuple[int, int, str, str, str]]:
    """(ts_ms, id, side, price, amount) of ``n`` trades in the shared trades' shape."""
    from adapters.feeds.formats import read_trades
    from tests.support import TRADES

    real = [(t.side, str(t.price), str(t.amount)) for t in read_trades(TRADES)]
    start = 1_570_752_011_620
    for i in range(n):
        side, price, amount = real[i % len(real)]
        yield start + i * STEP_MS, 13_519_807 + i, side, price, amount


def _write(path: Path, n: int) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8", newline="") as fh:
        out: IO[str] = fh
        kind = path.name.split(".")[0]
        if kind == "generic":
            out.write("when;tid;px;qty;dir\n")
        if kind == "ccxt":
            out.write("[")
        for k, (ts, tid, side, price, amount) in enumerate(_rows(n)):
            if kind == "binance-trades":
                maker = "true" if side == "sell" else "false"
                out.write(f"{tid},{price},{amount},0,{ts},{maker},true\n")
            elif kind == "ccxt-dicts":
                out.write(
                    f'{{"info": {{"a": {tid}}}, "timestamp": {ts}, "datetime": null, "symbol": "XRP/ETH", '
                    f'"id": "{tid}", "order": null, "type": null, "side": "{side}", "takerOrMaker": null, '
                    f'"price": {price}, "amount": {amount}, "cost": null, "fee": null}}\n'
                )
            elif kind == "ccxt":
                out.write(f'{"," if k else ""}\n[{ts}, "{tid}", null, "{side}", {price}, {amount}]')
            else:
                out.write(f"{ts};{tid};{price};{amount};{'B' if side == 'buy' else 'S'}\n")
        if kind == "ccxt":
            out.write("]\n")


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(path: Path, check: bool) -> None:
    """In the child: check the file, then read it through the feed; print the figures as JSON."""
    from adapters.feeds import RecordedFeed
    from adapters.feeds.recorded import check_file

    columns = GENERIC if path.name.startswith("generic") else None
    base = _rss_mib()
    t0 = time.perf_counter()
    checked = check_file(path, "auto", columns) if check else None
    t1 = time.perf_counter()
    feed = RecordedFeed(path, "XRP/ETH", columns=columns)

    async def ticks() -> int:
        n = 0
        async for _ in feed.ticks():
            n += 1
        return n

    fed = asyncio.run(ticks())
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "trades": fed,
                "checked": checked,
                "check_s": t1 - t0,
                "feed_s": t2 - t1,
                "rss_after_imports_mib": base,
                "peak_rss_mib": peak,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trades", type=int, default=5_000_000)
    ap.add_argument("--only", nargs="*", choices=FILES, default=list(FILES))
    ap.add_argument("--check", action="store_true", help="first check the whole file, as run does (a second pass)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.check)
        return
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, {args.trades:,} trades")
    with tempfile.TemporaryDirectory(prefix="feed-memory-") as tmp:
        for name in args.only:
            path = Path(tmp) / name
            t = time.perf_counter()
            _write(path, args.trades)
            made = time.perf_counter() - t
            res = subprocess.run(
                [sys.executable, __file__, "--child", str(path), *(["--check"] if args.check else [])],
                capture_output=True,
                text=True,
                check=False,
            )
            if res.returncode != 0:
                print(f"{name}: failed: {res.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            assert r["trades"] == args.trades and r["checked"] in (None, args.trades), r
            size = path.stat().st_size / 2**20
            verdict = "under" if r["peak_rss_mib"] < 200 else "OVER"
            print(
                f"{name:22} {size:8.1f} MiB on disk (made in {made:.0f} s): "
                + (f"check {r['check_s']:.1f} s ({args.trades / r['check_s']:,.0f} trades/s), " if args.check else "")
                + f"feed {r['feed_s']:.1f} s "
                f"({args.trades / r['feed_s']:,.0f} trades/s); RSS {r['rss_after_imports_mib']:.0f} MiB after imports, "
                f"peak {r['peak_rss_mib']:.0f} MiB ({verdict} 200 MiB)",
                flush=True,
            )
            path.unlink()


if __name__ == "__main__":
    main()
