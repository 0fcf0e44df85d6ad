"""Replays a ccxt trade list file (``.json`` or ``.json.gz``) as ticks.

The file is a JSON array of ``[timestamp_ms, trade_id, order_type, side, price, amount, cost]``
(ccxt's compact form). Numbers are parsed straight into Decimal from their text, never through a
float. ``speed=0`` publishes as fast as possible; ``speed=N`` keeps the recorded gaps divided by N.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from events import Side, TickReceived


class RecordedFileError(ValueError):
    """The file is not a ccxt trade list; the message says where and why."""


def load_trades(path: Path) -> list[list[Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            rows = json.load(fh, parse_float=Decimal, parse_int=Decimal)
    except (OSError, ValueError) as exc:
        raise RecordedFileError(f"{path}: cannot read a JSON trade list: {exc}") from None
    if not isinstance(rows, list):
        raise RecordedFileError(f"{path}: expected a JSON array of trades")
    for i, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) >= 6):
            raise RecordedFileError(f"{path}: trade #{i} is not [ts, id, type, side, price, amount, ...]")
        if row[3] not in ("buy", "sell"):
            raise RecordedFileError(f"{path}: trade #{i} has side {row[3]!r}, expected 'buy' or 'sell'")
    rows.sort(key=lambda r: r[0])
    return rows


def resume_index(rows: list[list[Any]], ts_ns: int, trade_id: str) -> int:
    """Where a run resumes whose last trade in the log is (``ts_ns``, ``trade_id``): just after that trade, or, if
    the file does not hold it, at the first trade of its time (the ones already there are duplicates by id, which
    every consumer skips: nothing is lost)."""
    ts_ms = ts_ns // 1_000_000
    for i in range(len(rows) - 1, -1, -1):
        if int(rows[i][0]) < ts_ms:
            break
        if int(rows[i][0]) == ts_ms and str(rows[i][1]) == trade_id:
            return i + 1
    return next((i for i, row in enumerate(rows) if int(row[0]) >= ts_ms), len(rows))


@dataclass
class RecordedFeed:
    path: Path
    symbol: str
    speed: float = 0.0
    venue: str = "recorded"
    source: str = "feed:recorded"
    resume_after: tuple[int, str] | None = None  # (ts_event ns, trade id) of the last trade already in the log
    skipped: int = 0  # trades of the file left out because the log has them

    @property
    def paced(self) -> bool:
        return self.speed > 0

    async def ticks(self) -> AsyncIterator[tuple[int, TickReceived]]:
        rows = await asyncio.to_thread(load_trades, self.path)
        if self.resume_after is not None:
            self.skipped = resume_index(rows, *self.resume_after)
            rows = rows[self.skipped:]
        loop = asyncio.get_running_loop()
        start_wall = loop.time()
        first_ts = int(rows[0][0]) if rows else 0
        for n, row in enumerate(rows):
            ts_ms = int(row[0])
            if self.speed > 0:
                delay = start_wall + (ts_ms - first_ts) / 1000.0 / self.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif n % 1000 == 0:
                await asyncio.sleep(0)
            yield ts_ms * 1_000_000, TickReceived(
                instrument=self.symbol, venue=self.venue, trade_id=str(row[1]),
                price=row[4], quantity=row[5], side=Side(row[3]),
            )
