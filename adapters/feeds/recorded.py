"""Replays a ccxt trade list file (``.json`` or ``.json.gz``) as ticks.

The file is a JSON array of ``[timestamp_ms, trade_id, order_type, side, price, amount, cost]``
(ccxt's compact form). Numbers are parsed straight into Decimal from their text, never through a
float. ``speed=0`` publishes as fast as possible; ``speed=N`` keeps the recorded gaps divided by N.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from events import Side, TickReceived, validation


class RecordedFileError(ValueError):
    """The file is not a ccxt trade list; the message (one line) says which file, which row and why."""


_READ_ERRORS = (OSError, EOFError, zlib.error, ValueError, RecursionError)


def load_trades(path: Path) -> list[list[Any]]:
    """The trades of a ccxt trade list, sorted by time, every row checked (:class:`RecordedFileError` otherwise).

    A row is ``[timestamp_ms, trade_id, order_type, side, price, amount, ...]``: the timestamp an integer number of
    milliseconds of a tick's time (from 2000-01-01 to before 2200-01-01, as :mod:`events.validation` takes), the
    trade id a non-empty string or an integer, the side ``buy`` or ``sell``, price and amount JSON numbers that the
    rules of a tick's price and quantity take (finite, > 0, at most 1e15, 20 digits after the point), read from
    their text into Decimal (an integer amount too). Rows are numbered from 1 in the messages. A file that cannot
    be read (missing, not gzip, truncated, not UTF-8, not JSON), is not an array, or holds no trade is refused."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            rows = json.load(fh, parse_float=Decimal, parse_int=int, parse_constant=Decimal)
    except json.JSONDecodeError as exc:
        raise RecordedFileError(f"{path}: not a JSON trade list: {exc}") from None
    except UnicodeDecodeError as exc:
        raise RecordedFileError(f"{path}: not UTF-8 text: {exc}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise RecordedFileError(f"{path}: a truncated or corrupt gzip file: {exc}") from None
    except RecursionError:
        raise RecordedFileError(f"{path}: not a trade list: JSON nested too deeply") from None
    except _READ_ERRORS as exc:
        raise RecordedFileError(f"{path}: cannot be read: {exc}") from None
    if not isinstance(rows, list):
        raise RecordedFileError(f"{path}: expected a JSON array of trades, got {_json_kind(rows)}")
    if not rows:
        raise RecordedFileError(f"{path}: no trades (an empty JSON array)")
    for i, row in enumerate(rows):
        problem = _row_problem(row)
        if problem is not None:
            raise RecordedFileError(f"{path}: row {i + 1}: {problem}".replace("\n", " "))
    rows.sort(key=lambda r: r[0])
    return rows


def _json_kind(v: Any) -> str:
    return {dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(type(v), "a number")


def _row_problem(row: Any) -> str | None:
    """Why a row is not a trade (its price and amount are made Decimal, if given as integers), or None."""
    if not (isinstance(row, list) and len(row) >= 6):
        return f"not [timestamp, id, type, side, price, amount, ...]: {_shown(row)}"
    ts, trade_id, _, side, price, amount = row[:6]
    if type(ts) is not int:
        return f"timestamp {_shown(ts)} is not an integer number of milliseconds"
    if not validation.TICK_TS_MIN <= ts * 1_000_000 < validation.TS_MAX:
        return f"timestamp {ts} (ms) is not between 2000-01-01 and 2200-01-01"
    if not (type(trade_id) is int and trade_id >= 0) and not (type(trade_id) is str and trade_id):
        return f"trade id {_shown(trade_id)} is not a non-empty string or an integer"
    problem = validation.TRADE_ID.problem(str(trade_id))
    if problem is not None:
        return f"trade id: {problem}"
    if side not in ("buy", "sell"):
        return f'side {_shown(side)} is not "buy" or "sell"'
    for index, name, value in ((4, "price", price), (5, "amount", amount)):
        if type(value) is int:
            row[index] = value = Decimal(value)
        if type(value) is not Decimal:
            return f"{name} {_shown(value)} is not a number"
        problem = validation.POSITIVE.problem(value)
        if problem is not None:
            return f"{name}: {problem}"
    return None


def _shown(v: Any) -> str:
    s = str(v) if isinstance(v, Decimal) else json.dumps(v, default=str)
    return s if len(s) <= 60 else s[:57] + "..."


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
            rows = rows[self.skipped :]
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
            yield (
                ts_ms * 1_000_000,
                TickReceived(
                    instrument=self.symbol,
                    venue=self.venue,
                    trade_id=str(row[1]),
                    price=row[4],
                    quantity=row[5],
                    side=Side(row[3]),
                ),
            )
