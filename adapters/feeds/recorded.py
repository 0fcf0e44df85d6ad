"""Replays a trade file as ticks: ccxt's trade lists or objects, Binance's trades or aggTrades dumps
(:mod:`adapters.feeds.formats`), streamed, every row checked. ``speed=0`` publishes as fast as possible;
``speed=N`` keeps the recorded gaps divided by N.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.feeds.formats import RecordedFileError, Trade, read_trades
from events import Side, TickReceived

__all__ = ["RecordedFeed", "RecordedFileError", "StopPoint", "check_file", "load_trades", "resume_after"]

BATCH = 1000  # trades read at a time, in a thread


def load_trades(path: Path, fmt: str = "auto", columns: str | None = None) -> list[list[Any]]:
    """Every trade of a file as a ccxt compact row ``[timestamp_ms, id, None, side, price, amount]`` (in memory:
    for tests and tools on small files; the feed itself streams, :func:`adapters.feeds.formats.read_trades`)."""
    return [
        [t.ts_ns // 1_000_000, t.trade_id, None, t.side, t.price, t.amount] for t in read_trades(path, fmt, columns)
    ]


def check_file(path: Path, fmt: str = "auto", columns: str | None = None) -> int:
    """Read the whole file (streamed) and check every row before anything is published: its number of trades, or
    :class:`RecordedFileError` naming the first bad row."""
    return sum(1 for _ in read_trades(path, fmt, columns))


def resume_after(trades: Iterator[Trade], ts_ns: int, trade_id: str) -> Iterator[Trade]:
    """The trades of a run that resumes after (``ts_ns``, ``trade_id``), its last trade in the log: those after that
    trade, or, if the file does not hold it, from the first trade of its time (the ones already there are
    duplicates by id, which every consumer skips: nothing is lost). Streamed: only the trades of that one time are
    held."""
    same: list[Trade] = []
    for t in trades:
        if t.ts_ns < ts_ns:
            continue
        if t.ts_ns == ts_ns:
            same.append(t)
            continue
        yield from _after(same, trade_id)
        same = []
        yield t
        break
    yield from _after(same, trade_id)
    yield from trades


def _after(same: list[Trade], trade_id: str) -> list[Trade]:
    ids = [t.trade_id for t in same]
    return same[ids.index(trade_id) + 1 :] if trade_id in ids else same


@dataclass(frozen=True)
class StopPoint:
    """Where a recorded feed stopped: ``outcome`` ``end`` (its files' end), ``failed`` (a row it could not read:
    ``reason`` says why) or ``stopped`` (the engine stopped it); ``file`` and ``where`` (``line N`` / ``row N``):
    the bad row, else the last trade handed on (empty if none)."""

    outcome: str
    reason: str
    file: str
    where: str


@dataclass
class RecordedFeed:
    """The trades of one file (``path``, ``symbol``), or of several (``files``: path, symbol, format, columns each),
    merged by time: for several instruments, or several days of one (a trade at the same time as another's comes
    after it if its file is listed later)."""

    path: Path
    symbol: str
    speed: float = 0.0
    format: str = "auto"
    files: tuple[tuple[Path, str, str, str | None], ...] = ()
    columns: str | None = None  # a generic CSV's column mapping (adapters.feeds.generic_csv)
    venue: str = "recorded"
    source: str = "feed:recorded"
    resume_after: tuple[int, str] | None = None  # (ts_event ns, trade id) of the last trade already in the log
    resume: dict[str, tuple[int, str]] | None = None  # the same per instrument, with several files
    skipped: int = 0  # trades of the file left out because the log has them
    last: Trade | None = None  # the last trade handed on
    ended: bool = False  # every file read to its end

    @property
    def paced(self) -> bool:
        return self.speed > 0

    def _sources(self) -> list[tuple[str, Iterator[Trade]]]:
        """Per instrument, its files' trades merged by time, from where a resumed run goes on."""
        files = self.files or ((self.path, self.symbol, self.format, self.columns),)
        resume = dict(self.resume or {})
        if self.resume_after is not None:
            resume.setdefault(self.symbol, self.resume_after)
        out = []
        for symbol in dict.fromkeys(f[1] for f in files):
            streams = [read_trades(p, fmt, columns) for p, s, fmt, columns in files if s == symbol]
            trades = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda t: t.ts_ns)
            if symbol in resume:
                trades = self._count_skipped(trades, *resume[symbol])
            out.append((symbol, trades))
        return out

    async def ticks(self) -> AsyncIterator[tuple[int, TickReceived]]:
        sources = self._sources()
        merged: Iterator[tuple[Trade, str]]
        if len(sources) == 1:  # one instrument: nothing to merge
            symbol, trades = sources[0]
            merged = zip(trades, itertools.repeat(symbol))
        else:
            merged = heapq.merge(*(_tagged(trades, s) for s, trades in sources), key=lambda pair: pair[0].ts_ns)
        loop = asyncio.get_running_loop()
        start_wall = loop.time()
        first_ts: int | None = None
        while batch := await asyncio.to_thread(list, itertools.islice(merged, BATCH)):  # file reads off the loop
            for t, symbol in batch:
                if first_ts is None:
                    first_ts = t.ts_ns
                if self.speed > 0:
                    delay = start_wall + (t.ts_ns - first_ts) / 1e9 / self.speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                self.last = t
                yield (
                    t.ts_ns,
                    TickReceived(
                        instrument=symbol,
                        venue=self.venue,
                        trade_id=t.trade_id,
                        price=t.price,
                        quantity=t.amount,
                        side=Side(t.side),
                    ),
                )
            await asyncio.sleep(0)
        self.ended = True

    def stop_point(self, error: BaseException | None = None) -> StopPoint:
        """Where the feed stopped: at ``error`` (a row it could not read), at its files' end, or where it was
        stopped."""
        last_file = "" if self.last is None or self.last.file is None else str(self.last.file)
        last_where = "" if self.last is None else self.last.where
        if isinstance(error, RecordedFileError):
            names = [str(f[0]) for f in self.files] or [str(self.path)]
            text = str(error)
            file = max((n for n in names if text.startswith(f"{n}: ")), key=len, default="")
            where, why = error.parts(file) if file else ("", text)
            return StopPoint("failed", why, file, where)
        if error is not None:
            return StopPoint("failed", str(error)[:2000], last_file, last_where)
        if self.ended:
            return StopPoint("end", "end of its files", last_file, last_where)
        return StopPoint("stopped", "stopped by the engine", last_file, last_where)

    def _count_skipped(self, trades: Iterator[Trade], ts_ns: int, trade_id: str) -> Iterator[Trade]:
        counted = _Counting(trades)
        rest = resume_after(counted, ts_ns, trade_id)
        first = next(rest, None)
        self.skipped += counted.n - (1 if first is not None else 0)
        if first is not None:
            yield first
        yield from rest


def _tagged(trades: Iterator[Trade], symbol: str) -> Iterator[tuple[Trade, str]]:
    for t in trades:
        yield t, symbol


class _Counting:
    """An iterator that counts what it gave."""

    def __init__(self, it: Iterator[Trade]) -> None:
        self._it, self.n = it, 0

    def __iter__(self) -> _Counting:
        return self

    def __next__(self) -> Trade:
        t = next(self._it)
        self.n += 1
        return t
