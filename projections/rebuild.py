"""Blue/green rebuild: build a new version of the audit schema from the start of the log while the current
one keeps serving, then switch readers (and the live workers) to it in one transaction.

1. ``replay`` the whole log into ``<schema>_next_<time>`` with the current code (a changed projection
   ships this way, never by hand-written ALTER scripts);
2. catch it up with the log end, a few rounds, while the live schema keeps serving;
3. in one transaction: lock the live ``projection_offsets`` (live workers finish the batch in hand and
   then wait), bring the new schema at least to the live offsets, rename the live schema to
   ``<schema>_old_<time>`` and the new one to ``<schema>``, commit. Readers see the old tables or the new
   ones, never a mix or nothing. Live workers notice the switch at their next batch (see
   :class:`projections.offsets.PgOffsets`), roll it back and carry on from the new schema's offsets.

The old version is kept for comparison; drop it with ``DROP SCHEMA ... CASCADE`` when satisfied.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import structlog
from aiokafka import TopicPartition

from adapters.kafka import EventProducer, LogInspector
from adapters.postgres import create_pool, ident
from events import Topics
from projections.audit import AuditProjection
from projections.offsets import PgOffsets
from projections.replay import replay
from projections.runner import ProjectionRunner, run_to_stop

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RebuildResult:
    schema: str
    old: str | None
    events: int
    seconds: float


async def _offsets(conn: Any, schema: str) -> dict[TopicPartition, int]:
    rows = await conn.fetch(
        f"SELECT topic, partition, next_offset FROM {ident(schema)}.projection_offsets "  # noqa: S608
        "WHERE projection = 'audit'"
    )
    return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def _catch_up(
    bootstrap: str,
    owner: asyncpg.Pool,
    writer: asyncpg.Pool,
    schema: str,
    topics: Topics,
    stop_at: dict[TopicPartition, int] | None = None,
) -> int:
    """Fold the new schema forward to ``stop_at`` (default: the log end now); return the events applied."""
    projection = AuditProjection(schema, topics, owner_pool=owner)
    async with LogInspector(bootstrap) as inspector, EventProducer(bootstrap, topics, client_id="rebuild") as dlq:
        tps = await inspector.partitions(projection.topics, missing_ok=True)
        end = await inspector.end_offsets(tps)
        target = end if stop_at is None else {tp: stop_at.get(tp, 0) for tp in tps}
        return await run_to_stop(
            ProjectionRunner(
                projection, PgOffsets(writer, schema), bootstrap, dlq, partitions=tps, stop_at=target, export_lag=False
            )
        )


async def rebuild(
    bootstrap: str,
    owner_dsn: str,
    writer_dsn: str,
    schema: str,
    *,
    topics: Topics = Topics(),
    rounds: int = 5,
    workers: int | Literal["auto"] = 1,
) -> RebuildResult:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    new, old = f"{schema}_next_{stamp}"[:63], f"{schema}_old_{stamp}"[:63]
    ident(new)
    ident(old)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    built = await replay(bootstrap, owner_dsn, writer_dsn, new, topics=topics, workers=workers)
    applied = built.events
    owner = await create_pool(owner_dsn, max_size=3)
    writer = await create_pool(writer_dsn)
    try:
        for _ in range(rounds):
            n = await _catch_up(bootstrap, owner, writer, new, topics)
            applied += n
            if n < 1000:
                break
        async with owner.acquire() as conn, conn.transaction():
            live = await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema)
            if live:
                # live workers block at their next offset update until the switch is committed
                await conn.execute(f"LOCK TABLE {ident(schema)}.projection_offsets IN EXCLUSIVE MODE")
                applied += await _catch_up(bootstrap, owner, writer, new, topics, await _offsets(conn, schema))
                await conn.execute(f"ALTER SCHEMA {ident(schema)} RENAME TO {ident(old)}")
            await conn.execute(f"ALTER SCHEMA {ident(new)} RENAME TO {ident(schema)}")
        seconds = loop.time() - t0
        log.info(
            "rebuild.switched", schema=schema, old=old if live else None, events=applied, seconds=round(seconds, 3)
        )
        return RebuildResult(schema, old if live else None, applied, seconds)
    finally:
        await writer.close()
        await owner.close()
