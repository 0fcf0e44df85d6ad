"""Day partitions of ``audit.events``, created ahead (by the schema owner: the writer role cannot run DDL)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from adapters.postgres import ident

DAY_NS = 86_400 * 1_000_000_000
AHEAD_DAYS = 2
_EPOCH = date(1970, 1, 1)


def _start_ns(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * 1_000_000_000


class DayPartitions:
    def __init__(self, owner_pool: asyncpg.Pool | None, schema: str) -> None:
        self.pool = owner_pool
        self._schema = schema
        self._known: set[date] = set()

    async def ensure(self, day_numbers: Iterable[int], conn: Any = None) -> None:
        """Make sure a partition exists for every day (numbered from the epoch: ``ts_event // DAY_NS``) and for the
        days after the newest."""
        days = {_EPOCH + timedelta(days=n) for n in day_numbers}
        if not days or days <= self._known:
            return
        newest = max(days)
        wanted = sorted(days | {newest + timedelta(days=i) for i in range(1, AHEAD_DAYS + 1)})
        missing = [d for d in wanted if d not in self._known]
        if self.pool is None:  # no owner pool: the caller's connection must be allowed to run DDL
            await self._create(conn, missing)
            return
        async with self.pool.acquire() as owner, owner.transaction():
            await self._create(owner, missing)

    async def _create(self, conn: Any, days: Iterable[date]) -> None:
        """One round trip: the lock and every partition's DDL as one script (names are validated idents)."""
        s = ident(self._schema)
        days = list(days)
        # the lock of the schema's DDL (adapters.postgres.run_sql_file): a partition made while another worker runs
        # the schema file (its triggers on events, its grants) failed with "tuple concurrently updated"
        script = [f"SELECT pg_advisory_xact_lock(hashtext('schema:{self._schema}'))"]
        for d in days:
            name = ident(f"events_{d:%Y%m%d}")
            script += [
                f"CREATE TABLE IF NOT EXISTS {s}.{name} PARTITION OF {s}.events "
                f"FOR VALUES FROM ({_start_ns(d)}) TO ({_start_ns(d) + DAY_NS})",
                f"DROP TRIGGER IF EXISTS append_only_truncate ON {s}.{name}",
                f"CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON {s}.{name} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change()",
            ]
        await conn.execute(";\n".join(script))
        self._known.update(days)
