"""Rebuild the audit projection from the log into a fresh schema, and compare two schemas.

``replay`` folds the whole log, a time range, or one UTC day (``day``: from the day's first event to
its end; the day's snapshots seed the state, so the day stands alone) into a schema that must not
exist yet, in one process or in several (``workers``: the partitions are shared out, as in a live
consumer group). ``diff`` compares two schemas table by table; with ``day`` it compares only that day's rows
(the current-state tables are then left out: they hold the end of the log, not the end of the day).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, Literal

import asyncpg
import structlog
from aiokafka import TopicPartition
from tqdm import tqdm

from adapters import kafka_security
from adapters.kafka import EventProducer, LogInspector
from adapters.postgres import create_pool, ident
from events import Topics
from projections.audit import AuditProjection, create_schema, schema_version
from projections.offsets import PgOffsets
from projections.runner import ProjectionRunner, run_to_stop

log = structlog.get_logger(__name__)

# table -> (ordering key, the column that dates a row, or None for current-state tables)
TABLES: dict[str, tuple[str, str | None]] = {
    "events": ("event_id", "ts_event"),
    "event_ids": ("event_id", "ts_event"),
    "order_events": ("event_id", "ts_event"),
    "fills": ("venue, trade_id", "ts_event"),
    "position_changes": ("event_id", "ts_event"),
    "round_trips": ("closing_event_id", "closed_ts"),
    "balance_changes": ("event_id, currency", "ts_event"),
    "balance_snapshots": ("event_id", "ts_event"),
    "signals": ("event_id", "ts_event"),
    "risk_decisions": ("event_id", "ts_event"),
    "system_events": ("event_id", "ts_event"),
    "candles_1m": ("instrument, bucket", "bucket"),
    "orders": ("client_order_id", None),
    "positions": ("strategy, instrument", None),
    "open_trips": ("strategy, instrument", None),
    "stops": ("client_order_id", None),
}
DAY_NS = 86_400 * 1_000_000_000


class SchemaExists(Exception):
    retriable = False


@dataclass(frozen=True)
class ReplayResult:
    schema: str
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


async def _schema_exists(pool: asyncpg.Pool, schema: str) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema))


async def _folded(owner: asyncpg.Pool, schema: str, start_at: dict[TopicPartition, int]) -> int:
    """The events a replay into ``schema`` has folded so far (what its workers committed)."""
    rows = await owner.fetch(
        f"SELECT topic, partition, next_offset FROM {ident(schema)}.projection_offsets "  # noqa: S608
        "WHERE projection = 'audit'"
    )
    return sum(
        max(r["next_offset"] - start_at.get(TopicPartition(r["topic"], r["partition"]), r["next_offset"]), 0)
        for r in rows
    )


async def _progress(seen: Callable[[], Awaitable[int]], total: int, done: asyncio.Event) -> None:
    """A progress bar on a terminal (done/total, events/s, time left); plain log lines otherwise."""
    tty = sys.stderr.isatty()
    bar = tqdm(total=total, unit="ev", unit_scale=True, disable=not tty, desc="replay", smoothing=0.1)
    t0, last_log, shown = time.monotonic(), 0.0, 0
    try:
        while not done.is_set():
            await asyncio.sleep(0.25)
            now_seen = await seen()
            bar.update(now_seen - shown)
            shown = now_seen
            now = time.monotonic()
            if not tty and now - last_log >= 5:
                last_log = now
                rate = shown / (now - t0) if now > t0 else 0.0
                log.info(
                    "replay.progress",
                    done=shown,
                    total=total,
                    events_per_second=round(rate),
                    seconds_left=round((total - shown) / rate, 1) if rate else None,
                )
        bar.update(total - shown)
    finally:
        bar.close()


@dataclass(frozen=True)
class _Part:
    """A worker's share of a replay: the partitions (of every topic) it folds, and where it starts and stops."""

    tps: tuple[TopicPartition, ...]
    start_at: dict[TopicPartition, int]
    stop_at: dict[TopicPartition, int]


def _split(
    tps: list[TopicPartition], start_at: dict[TopicPartition, int], stop_at: dict[TopicPartition, int], workers: int
) -> list[_Part]:
    """At most ``workers`` shares, by partition number (an instrument's ticks, trading and control events, keyed
    alike, are in the same partition number of each topic and stay in one worker, as in a live consumer group),
    balanced by the number of records: the largest partition number first, to the share with the fewest."""
    size: dict[int, int] = {}
    for tp in tps:
        size[tp.partition] = size.get(tp.partition, 0) + max(stop_at[tp] - start_at[tp], 0)
    busy = sorted((n for n in size if size[n]), key=lambda n: (-size[n], n))
    if not busy:  # nothing to fold (or no topic yet): one share, which records where it stands
        return [_Part(tuple(tps), start_at, stop_at)]
    groups: list[list[int]] = [[] for _ in range(min(workers, len(busy)))]
    loads = [0] * len(groups)
    for n in busy:
        i = loads.index(min(loads))
        groups[i].append(n)
        loads[i] += size[n]
    for n in sorted(set(size) - set(busy)):  # empty partitions: someone must still record their offsets
        groups[0].append(n)
    return [
        _Part(
            tuple(tp for tp in tps if tp.partition in g),
            {tp: start_at[tp] for tp in tps if tp.partition in g},
            {tp: stop_at[tp] for tp in tps if tp.partition in g},
        )
        for g in groups
    ]


async def _replay_part(
    bootstrap: str, owner_dsn: str, writer_dsn: str, schema: str, topics: Topics, part: _Part, batch: int, mid_log: bool
) -> int:
    """Fold one share of the log into ``schema`` (which exists); return the events applied. ``mid_log``: the replay
    starts at a time, not at the start of the log (see :class:`AuditProjection`)."""
    owner = await create_pool(owner_dsn, max_size=2)
    writer = await create_pool(writer_dsn)
    try:
        async with EventProducer(bootstrap, topics, client_id="replay") as dlq:
            return await run_to_stop(
                ProjectionRunner(
                    AuditProjection(schema, topics, owner_pool=owner, mid_log=mid_log),
                    PgOffsets(writer, schema),
                    bootstrap,
                    dlq,
                    partitions=part.tps,
                    start_at=part.start_at,
                    stop_at=part.stop_at,
                    batch=batch,
                    export_lag=False,
                )
            )
    finally:
        await writer.close()
        await owner.close()


def _worker(args: tuple[Any, ...]) -> int:
    """A replay worker process: warnings and errors to stderr, the rest is the parent's to say. A forked one drops
    what it inherited of its parent's signal handling (an event loop's handlers, and their wakeup fd, which is the
    parent loop's): Ctrl-C and SIGTERM stop it as they stop a spawned one. Its garbage collector leaves alone what it
    inherited (``gc.freeze``): the parent's objects are the parent's to free, and a collection that went through
    them would copy every page of the parent's heap into this process."""
    gc.freeze()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    return asyncio.run(_replay_part(*args))


def _started() -> None:
    """A worker's first task, which makes the pool start its processes at once. It does nothing, but a spawned process
    imports this module to unpickle it (the projections and their libraries, most of its start)."""


def _start_method() -> str:
    """How the worker processes are made: forked where that is safe, spawned otherwise.

    A forked process starts at once, with everything imported: a spawned one first starts Python and imports, about
    half a second of CPU here, which on two cores cost a replay of 121,552 events about a fifth of its speed (see the
    README's benchmarks). A fork copies only the thread that calls it: it is safe in a process with no other thread
    (none can hold a lock the copy would then never see released), on Linux (macOS frameworks are not fork-safe).
    The pool forks all its processes at its first task, before it starts its own thread (Python >= 3.11). A forked
    worker starts its own event loop (``asyncio.run``); it never touches the connections it inherited, and leaves
    with ``os._exit``, so nothing of the parent's is closed by it (the pool flushes stdout and stderr before it forks,
    so nothing is written twice either)."""
    return "fork" if _forkable() else "spawn"


def _forkable() -> bool:
    """Linux, and no thread but this one (see :func:`_start_method`)."""
    return sys.platform == "linux" and threading.active_count() == 1


class _ThreadFree:
    """Keeps this process free of other threads until a replay's workers are made, so that they can be forked.

    asyncio resolves host names (a Kafka bootstrap or a PostgreSQL DSN given by name, as in ``compose.yaml``) in its
    loop's default executor, whose threads outlive the call; a process with another thread is not forked (see
    :func:`_start_method`). When a replay starts in a process with no other thread, its loop resolves in an executor
    of the replay's own until :meth:`release`, which joins that executor's threads (idle by then: every name the
    replay has needed so far is resolved) and gives the loop a fresh executor, which starts threads only when it next
    resolves a name. Released on leaving the ``with`` block too; safe to release twice."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None

    def __enter__(self) -> _ThreadFree:
        if _forkable():
            self._executor = ThreadPoolExecutor(thread_name_prefix="replay-resolve")
            asyncio.get_running_loop().set_default_executor(self._executor)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._executor is not None:
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())
            self._executor.shutdown(wait=True)
            self._executor = None


@contextlib.contextmanager
def _worker_processes(n: int, method: str) -> Iterator[ProcessPoolExecutor | None]:
    """``n`` worker processes (None for 0), started at once (see :func:`_start_method`): spawned ones start Python
    and import while the replay creates its schema."""
    if n < 1:
        yield None
        return
    with ProcessPoolExecutor(
        max_workers=n,
        mp_context=multiprocessing.get_context(method),
        initializer=kafka_security.restore,  # a spawned worker's Kafka clients: the parent's security (pickled)
        initargs=(kafka_security.saved(),),
    ) as pool:
        for _ in range(n):
            pool.submit(_started)
        yield pool


# the events a share must hold for one more process to fold it sooner: a spawned process costs about half a second of
# CPU to start, a forked one about a tenth (its own Kafka and PostgreSQL connections); see auto_workers
EVENTS_PER_WORKER = {"fork": 10_000, "spawn": 50_000}


def auto_workers(events: int, busy_partitions: int, cpus: int | None = None, method: str = "fork") -> int:
    """The processes ``workers="auto"`` uses: one per core, at most one per partition number with records to fold,
    and one per :data:`EVENTS_PER_WORKER` events (for processes made by ``method``). Measured here (2 cores, 2 busy
    partitions, forked): two processes folded 10,153 events in 0.30-0.40 s against one's 0.50-0.64 s, and 3,835 in
    as long as one did, with more CPU."""
    return max(1, min(cpus or os.cpu_count() or 1, busy_partitions, events // EVENTS_PER_WORKER[method]))


async def _in_processes(args: list[tuple[Any, ...]], pool: ProcessPoolExecutor) -> int:
    """Fold the first share here and each other one in a process of ``pool``; return the events applied.

    This process starts at once; a spawned one first starts Python and imports (about half a second here, mostly
    done while the schema was created), so folding a share here saves one of those. Should a share fail, the
    replay raises that error (not wrapped in a group): the share here is cancelled at once; another process
    cannot be interrupted cleanly, so the pool waits for it to end its share
    (each commits whole batches, so what it wrote is consistent; the failed replay's schema is to be dropped or
    replaced in any case)."""
    loop = asyncio.get_running_loop()

    async def elsewhere(a: tuple[Any, ...]) -> int:
        applied: int = await loop.run_in_executor(pool, _worker, a)
        return applied

    try:
        async with asyncio.TaskGroup() as tg:
            others = [tg.create_task(elsewhere(a)) for a in args[1:]]
            here = tg.create_task(_replay_part(*args[0]))
    except ExceptionGroup as group:
        raise group.exceptions[0] from None  # the error itself (e.g. OffsetNotInLog), as with one process
    return here.result() + sum(t.result() for t in others)


async def replay(
    bootstrap: str,
    owner_dsn: str,
    writer_dsn: str,
    schema: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    day: date | None = None,
    replace: bool = False,
    batch: int = 20000,
    topics: Topics = Topics(),
    progress: bool = True,
    workers: int | Literal["auto"] = 1,
) -> ReplayResult:
    """Fold the log (all of it, ``start``..``end``, or one UTC ``day``) into the fresh schema ``schema``.

    With ``workers`` > 1 the partitions are shared among up to that many processes (this one, and others forked or
    spawned: see :func:`_start_method`), each folding its share into the same schema, as the workers of a live
    consumer group do: the result is the same schema. ``"auto"``: as many as :func:`auto_workers` says for the log's
    range.
    """
    ident(schema)
    if workers != "auto" and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be 'auto' or at least 1, not {workers!r}")
    if day is not None:
        start, end = day_bounds(day)
    async with contextlib.AsyncExitStack() as stack:
        threads = stack.enter_context(_ThreadFree())
        owner = await create_pool(owner_dsn, max_size=2)
        stack.push_async_callback(owner.close)
        if await _schema_exists(owner, schema):
            if not replace:
                raise SchemaExists(f"schema {schema!r} exists; pass --replace to drop and rebuild it")
            await owner.execute(f"DROP SCHEMA {ident(schema)} CASCADE")
        start_at, stop_at = await _range(bootstrap, topics, start, end)
        total = sum(max(stop_at[tp] - start_at[tp], 0) for tp in start_at)
        threads.release()
        method = _start_method()
        if workers == "auto":
            workers = auto_workers(
                total, len({tp.partition for tp in start_at if stop_at[tp] > start_at[tp]}), method=method
            )
        parts = _split(list(start_at), start_at, stop_at, workers)

        with _worker_processes(len(parts) - 1, method) as pool:  # they start while the schema is created
            await create_schema(owner, schema)
            mid_log = start is not None
            args = [(bootstrap, owner_dsn, writer_dsn, schema, topics, part, batch, mid_log) for part in parts]
            t0 = time.monotonic()
            done = asyncio.Event()
            bar = (
                asyncio.create_task(_progress(partial(_folded, owner, schema, start_at), total, done))
                if progress
                else None
            )
            try:
                log.info(
                    "replay.started",
                    schema=schema,
                    events=total,
                    workers=len(parts),
                    processes=method if len(parts) > 1 else None,
                    start=start.isoformat() if start else None,
                    end=end.isoformat() if end else None,
                )
                applied = await (_replay_part(*args[0]) if pool is None else _in_processes(args, pool))
            finally:
                done.set()
                if bar is not None:
                    await bar
            seconds = time.monotonic() - t0  # not the pool's shutdown: its processes have done their shares
        result = ReplayResult(schema, applied, seconds)
        log.info(
            "replay.finished",
            schema=schema,
            events=result.events,
            seconds=round(seconds, 3),
            events_per_second=round(result.events_per_second),
        )
        return result


async def _range(
    bootstrap: str,
    topics: Topics,
    start: datetime | None,
    end: datetime | None,
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Where the replay starts and stops in each partition of the log's topics."""
    async with LogInspector(bootstrap) as inspector:
        tps = await inspector.partitions((topics.ticks, topics.trading, topics.control), missing_ok=True)
        begin = await inspector.beginning_offsets(tps)
        start_at = await inspector.offsets_at(tps, int(start.timestamp() * 1000)) if start else begin
        stop_at = (
            await inspector.offsets_at(tps, int(end.timestamp() * 1000)) if end else (await inspector.end_offsets(tps))
        )
        if start or end:
            # the control topic mixes times: an engine's start and stop carry the wall clock, its equity
            # reports the market's (a recorded day's, in a backtest); Kafka's offsets for a time can then be
            # wrong for it, so its range is found by reading it (it is small)
            control = [tp for tp in tps if tp.topic == topics.control]
            c_start, c_stop = await inspector.range_by_scan(
                control, int(start.timestamp() * 1000) if start else None, int(end.timestamp() * 1000) if end else None
            )
            start_at.update(c_start)
            stop_at.update(c_stop)
    return {tp: max(start_at[tp], begin[tp]) for tp in tps}, stop_at


def _day_filter(column: str | None, day: date | None) -> str:
    if day is None:
        return ""
    start, _ = day_bounds(day)
    if column == "bucket":
        return f" WHERE bucket >= '{start.isoformat()}' AND bucket < '{(start + timedelta(days=1)).isoformat()}'"
    lo = int(start.timestamp()) * 1_000_000_000
    return f" WHERE {column} >= {lo} AND {column} < {lo + DAY_NS}"


class NotComparable(Exception):
    """Two schemas ``diff`` cannot compare row by row: one holds no audit projection, or they were built by
    different versions of it (their tables differ)."""

    retriable = False


def _version_name(version: int) -> str:
    return f"version {version}" if version else "a version before 3"


async def diff(dsn: str, a: str, b: str, *, day: date | None = None, limit: int = 5) -> dict[str, list[str]]:
    """Row-by-row differences between the audit tables of two schemas (empty lists when equal); raises
    :class:`NotComparable` for schemas that are not of the same audit projection version."""
    sa, sb = ident(a), ident(b)
    out: dict[str, list[str]] = {}
    conn = await asyncpg.connect(dsn)
    try:
        versions = [await schema_version(conn, name) for name in (a, b)]
        for name, version in zip((a, b), versions, strict=True):
            if version is None:
                raise NotComparable(f"schema {name!r} holds no audit projection")
        if versions[0] != versions[1]:
            raise NotComparable(
                f"schema {a!r} holds the audit projection {_version_name(versions[0] or 0)} and {b!r} "
                f"{_version_name(versions[1] or 0)}: their tables differ. Replay the log into a fresh schema with "
                f"this code (`python -m engine replay --schema NAME`) and compare with that."
            )
        for table, (key, dated) in TABLES.items():
            if day is not None and dated is None:
                continue
            where = _day_filter(dated, day)
            lines: list[str] = []
            for left, right, label in ((sa, sb, f"only in {a}"), (sb, sa, f"only in {b}")):
                query = (
                    f"SELECT * FROM {left}.{table}{where} EXCEPT ALL "  # noqa: S608 - validated identifiers
                    f"SELECT * FROM {right}.{table}{where}"
                )
                count = await conn.fetchval(f"SELECT count(*) FROM ({query}) d")  # noqa: S608
                if count:
                    rows = await conn.fetch(f"SELECT * FROM ({query}) d ORDER BY {key} LIMIT {int(limit)}")  # noqa: S608
                    lines.append(f"{count} row(s) {label}:")
                    lines.extend(f"  {dict(r)}" for r in rows)
            out[table] = lines
        return out
    finally:
        await conn.close()


__all__ = ["TABLES", "NotComparable", "ReplayResult", "SchemaExists", "day_bounds", "diff", "replay"]
