"""Ticks per second of the pure core with the strategy API, against the built-in path before it, on the same log.

The log is the real trades file (12,477 XRP/ETH trades, tests/data), run ``--repeat`` times over (each pass shifted
by a day, so no tick is a duplicate of another), through a fresh core (the paper venue) per run. The core before
the strategy API (``--baseline``, a commit: by default the last one before it) is extracted from git into a temporary
folder and run by the same script in another process; runs alternate (baseline, API, baseline, ...) so that both
share whatever else the machine was doing, and each figure is the best of ``--rounds``.

Figures: ma_cross (the same events byte for byte, tests/unit/test_golden_strategies.py) with market orders and
with limit orders and shorts, the other built-ins (bollinger, quoting) and the example user strategies of
tests/data/strategies (no baseline: they need the API).

Usage: python benchmarks/strategies.py [--repeat N] [--rounds N] [--baseline COMMIT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "505af3f"  # the last commit before the strategy API
DAY_NS = 86_400_000_000_000
CASES: dict[str, dict[str, Any]] = {
    "ma_cross market": {
        "strategy": {"order_quantity": "100"},
        "risk": {"max_position": "300", "max_order_notional": "1"},
    },
    "ma_cross limit+short": {
        "strategy": {"fast": 3, "slow": 8, "order_quantity": "40", "order_type": "limit", "allow_short": True},
        "risk": {"max_position": "120", "max_order_notional": "1", "max_orders_per_minute": 20},
    },
    "bollinger (new)": {
        "strategy": {"kind": "bollinger", "params": {"quantity": "100", "window": 30}},
        "risk": {"max_position": "300", "max_order_notional": "1"},
    },
    "quoting (new)": {
        "strategy": {
            "kind": "quoting",
            "params": {"quantity": "50", "tick_size": "0.00000001", "max_inventory": "150"},
        },
        "risk": {"max_position": "300", "max_order_notional": "1"},
    },
    "dip (user)": {
        "strategy": {"kind": "dip:Dip", "path": str(ROOT / "tests/data/strategies")},
        "risk": {"max_position": "300", "max_order_notional": "1"},
    },
    "seeded (user)": {
        "strategy": {"kind": "planted:Seeded", "path": str(ROOT / "tests/data/strategies")},
        "risk": {"max_position": "300", "max_order_notional": "1"},
    },
}


def _measure(case: str, repeat: int) -> dict[str, float]:
    """In this process: run the case's core over the log; the ticks per second and the events made."""
    sys.path.insert(0, os.getcwd())
    from decimal import Decimal

    from adapters.feeds.recorded import load_trades
    from engine.app import make_core_factory
    from engine.config import load
    from events import Envelope, Side, TickReceived

    rows = load_trades(ROOT / "tests/data/binance-xrpeth-trades-2019-10-11.json.gz")
    envs = [
        Envelope.of_trade(
            TickReceived(
                instrument="XRP/ETH",
                venue="binance",
                trade_id=f"{k}-{r[1]}",
                price=Decimal(r[4]),
                quantity=Decimal(r[5]),
                side=Side(r[3]),
            ),
            ts_event=int(r[0]) * 1_000_000 + k * DAY_NS,
            ts_init=0,
            source="bench",
        )
        for k in range(repeat)
        for r in rows
    ]
    core = make_core_factory(load(**CASES[case]))()
    events = 0
    t0 = time.perf_counter()
    for env in envs:
        events += len(core.on_input(env, ts_init=0))
    seconds = time.perf_counter() - t0
    return {"ticks_per_second": len(envs) / seconds, "events": events, "ticks": len(envs)}


def _run(code: Path, case: str, repeat: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", case, "--repeat", str(repeat)],
        cwd=code,
        env={**os.environ, "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def _extract(commit: str, into: Path) -> Path:
    archive = into / "baseline.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), commit], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "code", filter="data")
    return into / "code"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=4, help="passes over the trades file per run (default 4)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each (default 3; the best counts)")
    ap.add_argument("--baseline", default=BASELINE, help=f"the commit before the API (default {BASELINE})")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(_measure(args.worker, args.repeat)))
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="bench-strategies-") as tmp:
        old = _extract(args.baseline, Path(tmp))
        for case in CASES:
            has_baseline = case.startswith("ma_cross")  # the others need the API
            best: dict[str, dict[str, float]] = {}
            for _ in range(args.rounds):
                sides = (("baseline", old), ("api", ROOT)) if has_baseline else (("api", ROOT),)
                for label, code in sides:
                    r = _run(code, case, args.repeat)
                    if label not in best or r["ticks_per_second"] > best[label]["ticks_per_second"]:
                        best[label] = r
            api = best["api"]
            made = f"({api['ticks']:,.0f} ticks, {api['events']:,.0f} events)"
            line = f"{case:<22} {api['ticks_per_second']:>9,.0f} ticks/s  {made}"
            if has_baseline:
                base = best["baseline"]
                same = "same events" if base["events"] == api["events"] else "OTHER EVENT COUNT"
                ratio = api["ticks_per_second"] / base["ticks_per_second"]
                line += f"  before the API {base['ticks_per_second']:>9,.0f} ticks/s: {ratio - 1:+.1%} ({same})"
            print(line)


if __name__ == "__main__":
    main()
