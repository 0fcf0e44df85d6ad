"""Rebuild the audit projection from the log into a fresh schema, and compare two schemas."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog

from adapters.kafka import EventProducer, LogInspector
from adapters.postgres import create_pool, ident
from events import Topics
from projections.audit import AuditProjection, create_schema
from projections.offsets import PgOffsets
from projections.runner import ProjectionRunner

log = structlog.get_logger(__name__)

TABLES: dict[str, tuple[str, ...]] = {
    # table -> ordering key; every column is compared
    "events": ("event_id",),
    "orders": ("client_order_id",),
    "fills": ("venue", "trade_id"),
    "positions": ("instrument",),
}


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


async def _schema_exists(pool: asyncpg.Pool, schema: str) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema))


async def replay(
    bootstrap: str,
    dsn: str,
    schema: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    replace: bool = False,
    batch: int = 5000,
    topics: Topics = Topics(),
) -> ReplayResult:
    """Fold the log (or the part of it between ``start`` and ``end``) into the fresh schema ``schema``."""
    ident(schema)
    pool = await create_pool(dsn)
    try:
        if await _schema_exists(pool, schema):
            if not replace:
                raise SchemaExists(f"schema {schema!r} exists; pass --replace to drop and rebuild it")
            await pool.execute(f"DROP SCHEMA {ident(schema)} CASCADE")
        await create_schema(pool, schema)
        projection = AuditProjection(schema, topics)
        async with LogInspector(bootstrap) as inspector, EventProducer(bootstrap, topics, client_id="replay") as dlq:
            tps = await inspector.partitions(projection.topics)
            begin = await inspector.beginning_offsets(tps)
            start_at = await inspector.offsets_at(tps, int(start.timestamp() * 1000)) if start else begin
            stop_at = await inspector.offsets_at(tps, int(end.timestamp() * 1000)) if end else (
                await inspector.end_offsets(tps)
            )
            total = sum(max(stop_at[tp] - start_at[tp], 0) for tp in tps)
            runner = ProjectionRunner(
                projection, PgOffsets(pool, schema), bootstrap, dlq, partitions=tps,
                start_at=start_at, stop_at=stop_at, batch=batch, export_lag=False,
            )
            t0 = time.monotonic()
            await runner.start()
            try:
                log.info("replay.started", schema=schema, events=total)
                await runner.run(asyncio.Event())
            finally:
                await runner.stop()
            seconds = time.monotonic() - t0
        result = ReplayResult(schema, runner.applied, seconds)
        log.info("replay.finished", schema=schema, events=result.events, seconds=round(seconds, 3),
                 events_per_second=round(result.events_per_second))
        return result
    finally:
        await pool.close()


async def diff(dsn: str, a: str, b: str, *, limit: int = 5) -> dict[str, list[str]]:
    """Row-by-row differences between the audit tables of two schemas (empty lists when equal)."""
    sa, sb = ident(a), ident(b)
    out: dict[str, list[str]] = {}
    conn = await asyncpg.connect(dsn)
    try:
        for table, key in TABLES.items():
            order = ", ".join(key)
            lines: list[str] = []
            for left, right, label in ((sa, sb, f"only in {a}"), (sb, sa, f"only in {b}")):
                rows = await conn.fetch(
                    f"SELECT * FROM (SELECT * FROM {left}.{table} EXCEPT ALL SELECT * FROM {right}.{table}) d "  # noqa: S608
                    f"ORDER BY {order} LIMIT {int(limit)}"
                )
                count = await conn.fetchval(
                    f"SELECT count(*) FROM (SELECT * FROM {left}.{table} EXCEPT ALL SELECT * FROM {right}.{table}) d"  # noqa: S608
                )
                if count:
                    lines.append(f"{count} row(s) {label}:")
                    lines.extend(f"  {dict(r)}" for r in rows)
            out[table] = lines
        return out
    finally:
        await conn.close()
