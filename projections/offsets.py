"""Where a projection stands in the log.

:class:`PgOffsets` keeps the positions in PostgreSQL, written in the same transaction as the rows
they account for, with a guard: ``UPDATE ... WHERE next_offset = <expected>``. A worker that lost a
partition in a rebalance (and so holds a stale expectation) updates nothing, its transaction is rolled
back, and it re-reads where the partition really stands. :class:`MemoryOffsets` is for in-memory read
models (the Prometheus projection), which fold the log from its start on every start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import asyncpg
from aiokafka import TopicPartition

from adapters.postgres import ident


class StaleOffset(Exception):
    """The stored offset is not the one this worker expected: another worker moved it."""

    retriable = True


class OffsetStore(Protocol):
    async def reset(self) -> None: ...

    async def load(
        self, projection: str, tps: Iterable[TopicPartition], default: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]: ...

    def batch(self, projection: str) -> Any: ...


class _PgBatch:
    def __init__(self, conn: Any, table: str, projection: str, schema: str, schema_oid: int | None) -> None:
        self.conn = conn
        self._table = table
        self._projection = projection
        self._schema = schema
        self._schema_oid = schema_oid
        self.schema_checked = False

    async def advance(self, tp: TopicPartition, expected: int, new: int) -> None:
        status = await self.conn.execute(
            f"UPDATE {self._table} SET next_offset = $1, updated_at = now() "  # noqa: S608 - validated ident
            "WHERE projection = $2 AND topic = $3 AND partition = $4 AND next_offset = $5",
            new,
            self._projection,
            tp.topic,
            tp.partition,
            expected,
        )
        if status != "UPDATE 1":
            raise StaleOffset(f"{self._projection} {tp.topic}[{tp.partition}]: expected offset {expected} is stale")

    async def advance_all(self, moves: dict[TopicPartition, tuple[int, int]]) -> None:
        """Move every partition from its expected offset to the new one, and check the schema's name, in one
        statement (the last of the batch): any stale partition, or a switched schema, raises StaleOffset."""
        if not moves:
            return
        tps = list(moves)
        moved = await self.conn.fetchval(
            f"WITH moved AS (UPDATE {self._table} o SET next_offset = m.new, updated_at = now() "  # noqa: S608
            "FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[]) AS m(topic, partition, expected, new) "
            "WHERE o.projection = $1 AND o.topic = m.topic AND o.partition = m.partition "
            "AND o.next_offset = m.expected RETURNING 1) "
            "SELECT CASE WHEN (SELECT nspname FROM pg_namespace WHERE oid = $6) = $7 "
            "THEN (SELECT count(*) FROM moved) ELSE -1 END",
            self._projection,
            [tp.topic for tp in tps],
            [tp.partition for tp in tps],
            [moves[tp][0] for tp in tps],
            [moves[tp][1] for tp in tps],
            self._schema_oid,
            self._schema,
        )
        if moved == -1:
            raise StaleOffset(f"schema {self._schema!r} was switched by a rebuild; reloading")
        if moved != len(tps):
            stale = ", ".join(f"{tp.topic}[{tp.partition}] (expected {moves[tp][0]})" for tp in tps)
            raise StaleOffset(f"{self._projection}: an expected offset is stale among {stale}")
        self.schema_checked = True


class PgOffsets:
    """Offsets in ``<schema>.projection_offsets``.

    Each batch also checks, before it commits, that the schema it wrote to still carries the configured
    name: ``python -m engine rebuild`` swaps a freshly built schema in by renaming, and a worker that
    still writes to the old one must notice, roll back and start again on the new one.
    """

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self._pool = pool
        self._schema = schema
        self._table = f"{ident(schema)}.projection_offsets"
        self._schema_oid: int | None = None

    async def reset(self) -> None:
        """Drop every pooled connection (and its prepared statements, bound to the old tables)."""
        await self._pool.expire_connections()
        self._schema_oid = None

    async def load(
        self, projection: str, tps: Iterable[TopicPartition], default: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        """The stored next offset of each partition; a partition seen for the first time starts at ``default``."""
        tps = list(tps)
        async with self._pool.acquire() as conn, conn.transaction():
            self._schema_oid = await conn.fetchval("SELECT oid FROM pg_namespace WHERE nspname = $1", self._schema)
            await conn.executemany(
                f"INSERT INTO {self._table} (projection, topic, partition, next_offset) "  # noqa: S608
                "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                [(projection, tp.topic, tp.partition, default[tp]) for tp in tps],
            )
            rows = await conn.fetch(
                f"SELECT topic, partition, next_offset FROM {self._table} WHERE projection = $1",  # noqa: S608
                projection,
            )
        stored = {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}
        return {tp: stored[tp] for tp in tps}

    async def stored(self, projection: str) -> dict[TopicPartition, int]:
        """Where the projection stands on every partition it has seen, whichever worker applied it."""
        rows = await self._pool.fetch(
            f"SELECT topic, partition, next_offset FROM {self._table} WHERE projection = $1",  # noqa: S608
            projection,
        )
        return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    @asynccontextmanager
    async def batch(self, projection: str) -> AsyncIterator[_PgBatch]:
        async with self._pool.acquire() as conn, conn.transaction():
            b = _PgBatch(conn, self._table, projection, self._schema, self._schema_oid)
            yield b
            if not b.schema_checked:
                name = await conn.fetchval("SELECT nspname FROM pg_namespace WHERE oid = $1", self._schema_oid)
                if name != self._schema:
                    raise StaleOffset(f"schema {self._schema!r} was switched by a rebuild; reloading")


class _MemoryBatch:
    conn = None

    async def advance(self, tp: TopicPartition, expected: int, new: int) -> None:
        return None

    async def advance_all(self, moves: dict[TopicPartition, tuple[int, int]]) -> None:
        return None


class MemoryOffsets:
    """For in-memory read models: positions are not kept (the model folds the log from its start on every start),
    and a batch cannot be rolled back (the projection catches its own failures per record)."""

    transactional = False

    async def reset(self) -> None:
        return None

    async def load(
        self, projection: str, tps: Iterable[TopicPartition], default: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        return {tp: default[tp] for tp in tps}

    @asynccontextmanager
    async def batch(self, projection: str) -> AsyncIterator[_MemoryBatch]:
        yield _MemoryBatch()
