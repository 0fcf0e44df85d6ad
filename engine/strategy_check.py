"""``python -m engine strategy check``: is a strategy a deterministic function of the log?

The strategy runs on the paper venue over the same ticks (a recorded file, or the synthetic feed's seeded walk) in
three fresh processes, each with another ``PYTHONHASHSEED``:

1. all the ticks, writing the core's state snapshot half way;
2. all the ticks again;
3. the second half only, restarted from that snapshot (as an engine recovers after a restart).

Every event must be the same, byte for byte (``ts_init``, the wall clock of recording, is left out). A strategy that
reads the wall clock, uses ``random`` without the seed it is given, iterates over a set of strings (whose order
changes with the hash seed), keeps state outside the value it returns, or holds state that cannot be snapshotted
fails, with the first differing event and the tick that caused it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.config import Settings
from events import Envelope, TickReceived, decode, encode

T0 = 1_704_067_200 * 1_000_000_000  # 2024-01-01 UTC: the synthetic ticks' first event time
STEP_NS = 250_000_000  # and their spacing


@dataclass(frozen=True)
class Outcome:
    ok: bool
    ticks: int
    events: int
    message: str


def _ticks(spec: dict[str, Any]) -> list[Envelope]:
    if spec.get("file"):
        from adapters.feeds.recorded import load_trades
        from events import Side

        rows = load_trades(Path(spec["file"]))
        return [
            Envelope.of_trade(
                TickReceived(
                    instrument=spec["symbol"],
                    venue="recorded",
                    trade_id=str(r[1]),
                    price=Decimal(r[4]),
                    quantity=Decimal(r[5]),
                    side=Side(r[3]),
                ),
                ts_event=int(r[0]) * 1_000_000,
                ts_init=0,
                source="feed:recorded",
            )
            for r in rows[: spec["limit"]]
        ]
    from adapters.feeds.synthetic import SyntheticFeed

    feed = SyntheticFeed(spec["instruments"], [Decimal(p) for p in spec["prices"]], [Decimal(t) for t in spec["sizes"]])

    async def walk() -> list[Envelope]:
        out = []
        steps = feed._steps()
        for n in range(spec["limit"]):
            instrument, price, qty, side = await steps.__anext__()
            tick = TickReceived(
                instrument=instrument, venue="synthetic", trade_id=f"check-{n}", price=price, quantity=qty, side=side
            )
            out.append(Envelope.of_trade(tick, ts_event=T0 + n * STEP_NS, ts_init=0, source="feed:synthetic"))
        return out

    return asyncio.run(walk())


def _worker(job: dict[str, Any]) -> None:
    """One run, in a fresh process: the events, encoded, one a line (and the snapshot half way, or from it)."""
    from engine.app import make_core_factory
    from engine.core import state_snapshot

    settings = Settings(**job["settings"])
    ticks = _ticks(job["ticks"])
    half = len(ticks) // 2
    core = make_core_factory(settings)()
    if job["mode"] == "restart":
        state_snapshot.load(Path(job["snapshot"]).read_bytes(), core)
        ticks = ticks[half:]
    lines: list[bytes] = []
    split = 0  # the events derived before the half-way tick
    for i, env in enumerate(ticks):
        if job["mode"] == "first" and i == half:
            Path(job["snapshot"]).write_bytes(state_snapshot.dump(core, half))
            split = len(lines)
        lines.extend(encode(out) for out in core.on_input(env, ts_init=0))
    lines = [b"%d" % split, *lines]
    with gzip.open(job["out"], "wb") as fh:
        fh.write(b"\n".join(lines))


def _run(job: dict[str, Any], hash_seed: int, folder: Path, name: str) -> tuple[list[bytes], str]:
    job = {**job, "out": str(folder / f"{name}.gz")}
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    res = subprocess.run(
        [sys.executable, "-m", "engine.strategy_check", json.dumps(job)], env=env, capture_output=True, text=True
    )
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        return [], f"the {name} run failed: {last}"
    with gzip.open(job["out"], "rb") as fh:
        data = fh.read()
    return (data.split(b"\n") if data else []), ""


def _first_difference(a: list[bytes], b: list[bytes], what: str, ticks: dict[str, Envelope]) -> str | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            ex, ey = decode(x), decode(y)
            cause = ticks.get(str(ex.causation_id))
            trade = getattr(cause.event, "trade_id", "?") if cause else "?"
            tick = f"tick {trade} at {cause.ts_event} ns" if cause else f"cause {ex.causation_id}"
            return (
                f"{what}: event {i} differs (caused by {tick}):\n"
                f"  first:  {ex.event.TYPE} {_short(x)}\n"
                f"  second: {ey.event.TYPE} {_short(y)}"
            )
    if len(a) != len(b):
        return f"{what}: {len(a)} events against {len(b)}"
    return None


def _short(line: bytes) -> str:
    data = json.loads(line)
    return json.dumps(data.get("data"), sort_keys=True)[:400]


def check(settings: Settings, *, file: Path | None, symbol: str | None, limit: int) -> Outcome:
    """Run the three runs and compare them (see the module's docstring)."""
    paper = settings.venue.model_dump(mode="json", include={"taker_fee_rate", "maker_fee_rate", "fee_currency"})
    job_settings = {
        "strategy": settings.strategy.model_dump(mode="json"),
        "risk": settings.risk.model_dump(mode="json"),
        "venue": {"kind": "paper", **paper},
    }
    feed = settings.feed
    ticks_spec: dict[str, Any] = (
        {"file": str(file), "symbol": symbol, "limit": limit}
        if file is not None
        else {
            "instruments": list(feed.instruments),
            "prices": [str(p) for p in feed.start_prices],
            "sizes": [str(t) for t in feed.tick_size],
            "limit": limit,
        }
    )
    with tempfile.TemporaryDirectory(prefix="strategy-check-") as tmp:
        folder = Path(tmp)
        job = {"settings": job_settings, "ticks": ticks_spec, "snapshot": str(folder / "snapshot.json")}
        first, err = _run({**job, "mode": "first"}, 1, folder, "first")
        if err:
            return Outcome(False, 0, 0, err)
        second, err = _run({**job, "mode": "full"}, 2, folder, "second")
        if err:
            return Outcome(False, 0, 0, err)
        restarted, err = _run({**job, "mode": "restart"}, 3, folder, "restarted")
        if err:
            return Outcome(False, 0, 0, err)
    envs = _ticks(ticks_spec)
    by_id = {str(e.event_id): e for e in envs}
    split, first = int(first[0]), first[1:]
    diff = _first_difference(first, second[1:], "two runs over the same ticks", by_id)
    if diff is None:
        diff = _first_difference(first[split:], restarted[1:], "restarted from a snapshot half way", by_id)
    if diff is not None:
        return Outcome(False, len(envs), len(first), diff)
    return Outcome(True, len(envs), len(first), "")


def _main() -> int:
    from engine.core.state_snapshot import SnapshotError

    try:
        _worker(json.loads(sys.argv[1]))
    except SnapshotError as exc:
        print(
            f"its state cannot be snapshotted (it must be a value: frozen dataclasses, tuples...): {exc}",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:
        print(f"the strategy raised {exc!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
