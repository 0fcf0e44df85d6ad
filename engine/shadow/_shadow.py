"""A shadow run: production's ticks up to the end of a day, through a candidate strategy on the paper venue, under
topics and a schema of the shadow's own; then the day's decisions of both, compared.

The candidate is handed every tick of production's ticks topic from the log's start to the end of the day (as
:class:`adapters.feeds.log_feed.LogFeed` reads them: each partition in its order), so on the day it holds the
state it would have had, running all along: its indicators, positions and open orders. That is what makes a
shadow of the strategy production ran, with its parameters, decide exactly as production did. Only the day's
decisions are compared. Production's topics and schema are only read: the feed reads with a consumer of no group
(nothing committed), the comparison with the read-only role.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg
from aiokafka import TopicPartition

from adapters.feeds.log_feed import LogFeed
from adapters.kafka import LogInspector
from adapters.postgres import ident
from engine.backtest import Run
from engine.shadow._compare import Comparison, compare
from engine.shadow._read import DayPnl, day_orders, day_pnl, day_switches
from events import Topics
from projections.audit import SCHEMA_VERSION, schema_version
from projections.replay import day_bounds

PREFIX = "sh_"


class NothingToShadow(ValueError):
    """The production log has no ticks on that day (or no ticks topic), or production's schema has not applied the
    day's events yet: a comparison would list what is missing as differences."""


@dataclass(frozen=True)
class Plan:
    """What a shadow of ``day`` reads: per partition of production's ticks topic, from the log's start to the day's
    end; ``day_records``: the records of the day itself."""

    day: date
    topic: str
    ranges: dict[int, tuple[int, int]]
    day_records: int
    trading_ends: dict[tuple[str, int], int]  # the trading topic's offsets at the day's end: the audit must be there

    @property
    def records(self) -> int:
        return sum(end - begin for begin, end in self.ranges.values())


async def plan(bootstrap: str, topics: Topics, day: date) -> Plan:
    start, end = day_bounds(day)
    async with LogInspector(bootstrap) as inspector:
        tps: list[TopicPartition] = await inspector.partitions([topics.ticks], missing_ok=True)
        if not tps:
            raise NothingToShadow(f"there is no ticks topic {topics.ticks!r} in the log")
        begin = await inspector.beginning_offsets(tps)
        day_start = await inspector.offsets_at(tps, int(start.timestamp() * 1000))
        day_end = await inspector.offsets_at(tps, int(end.timestamp() * 1000))
        trading = await inspector.partitions([topics.trading], missing_ok=True)
        trading_end = await inspector.offsets_at(trading, int(end.timestamp() * 1000)) if trading else {}
    day_records = sum(day_end[tp] - day_start[tp] for tp in tps)
    if day_records <= 0:
        raise NothingToShadow(f"production's log has no ticks on {day} (topic {topics.ticks})")
    return Plan(
        day,
        topics.ticks,
        {tp.partition: (begin[tp], day_end[tp]) for tp in tps},
        day_records,
        {(tp.topic, tp.partition): n for tp, n in trading_end.items()},
    )


async def check_applied(reader_dsn: str, schema: str, p: Plan) -> None:
    """Production's audit is of this code's version and has applied every trading event up to the day's end, or
    :class:`NothingToShadow`."""
    conn = await asyncpg.connect(reader_dsn)
    try:
        version = await schema_version(conn, schema)
        if version != SCHEMA_VERSION:
            built = "no audit schema" if version is None else f"audit version {version or 'before 3'}"
            raise NothingToShadow(
                f"production's schema {schema} holds {built}; a shadow compares with version {SCHEMA_VERSION}: "
                f"build it with python -m engine rebuild"
            )
        rows = await conn.fetch(
            f"SELECT topic, partition, next_offset FROM {ident(schema)}.projection_offsets "  # noqa: S608 - ident
            "WHERE projection = 'audit'"
        )
    finally:
        await conn.close()
    applied = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
    behind = sum(max(end - applied.get(tp, 0), 0) for tp, end in p.trading_ends.items())
    if behind:
        raise NothingToShadow(
            f"production's schema {schema} has not applied {p.day}'s trading events yet ({behind} behind): "
            "run its projection (python -m engine project) and try again"
        )


def feed_of(bootstrap: str, p: Plan) -> LogFeed:
    return LogFeed(bootstrap, p.topic, dict(p.ranges))


@dataclass(frozen=True)
class Outcome:
    comparison: Comparison
    production_pnl: list[DayPnl]
    candidate_pnl: list[DayPnl]
    switches: int  # breaker switches production had that day (not applied by a shadow)


async def compare_day(
    reader_dsn: str,
    production_schema: str,
    shadow_schema: str,
    day: date,
    *,
    production_strategies: list[str] | None,
    window_ns: int,
) -> Outcome:
    conn = await asyncpg.connect(reader_dsn)
    try:
        prod = await day_orders(conn, production_schema, day, production_strategies)
        cand = await day_orders(conn, shadow_schema, day, None)
        return Outcome(
            compare(prod, cand, window_ns=window_ns),
            await day_pnl(conn, production_schema, day, production_strategies),
            await day_pnl(conn, shadow_schema, day, None),
            await day_switches(conn, production_schema, day),
        )
    finally:
        await conn.close()


def shadow_run(name: str) -> Run:
    return Run(name, prefix=PREFIX)


def default_name(strategy: str, day: date, now: datetime | None = None) -> str:
    """``<strategy>_<day>_<UTC time>``, e.g. ``ma_cross_20191012_094512``."""
    from engine.backtest import default_name as stem

    t = now or datetime.now(UTC)
    return stem(strategy, t).removesuffix(f"_{t:%Y%m%d_%H%M%S}")[:20] + f"_{day:%Y%m%d}_{t:%H%M%S}"
