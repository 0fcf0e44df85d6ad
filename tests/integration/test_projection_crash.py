"""kill -9 of a projection worker in the middle of a run loses no row and doubles none."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.kafka import LogInspector
from events import Topics
from tests.support import engine_env, run_cli, start_cli, unique, wait_for

pytestmark = pytest.mark.servers

TICKS = 60_000


async def test_kill_9_of_the_projection_then_restart_loses_and_duplicates_nothing(servers: Any, tmp_path: Path) -> None:
    prefix, schema = unique("crash"), unique("crash")
    env = engine_env(servers, prefix, schema)
    # 1. fill the log: the engine trades 60,000 synthetic ticks, no projection in its process
    res = run_cli(["run", "--no-projections", "--ticks", str(TICKS), "--rate", "100000"], env)
    assert res.returncode == 0, res.stderr[-3000:]
    topics = Topics(f"{prefix}.")
    async with LogInspector(servers.kafka_bootstrap) as log:
        tps = await log.partitions([topics.ticks, topics.trading, topics.control])
        end = await log.end_offsets(tps)
    total = sum(end.values())
    assert total > TICKS

    conn = await asyncpg.connect(servers.pg_dsn)
    try:

        async def applied() -> int:
            try:
                return int(
                    await conn.fetchval(
                        f"select coalesce(sum(next_offset), 0) from {schema}.projection_offsets "
                        "where projection = 'audit'"
                    )
                )
            except asyncpg.UndefinedTableError:
                return 0

        # 2. a projection worker starts folding the log; kill -9 it half-way
        worker = start_cli(["project", "--only", "audit", "--no-http"], env, tmp_path / "worker1.log")
        try:
            await wait_for(lambda: _between(applied, 1, total - 1), 120, "the worker to be part-way through")
        finally:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
        at_kill = await applied()
        assert 0 < at_kill < total, "the kill must land mid-run for this test to mean anything"

        # 3. a new worker picks up from the stored offsets and finishes
        worker = start_cli(["project", "--only", "audit", "--no-http"], env, tmp_path / "worker2.log")
        try:

            async def done() -> bool:
                return await applied() == total

            await wait_for(done, 180, "the restarted worker to reach the end of the log")
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0, (tmp_path / "worker2.log").read_text()[-3000:]

        # every record of the log is one row: none lost, none doubled
        assert await conn.fetchval(f"select count(*) from {schema}.events") == total
        per_partition = {
            (r["topic"], r["partition"]): (r["n"], r["last"])
            for r in await conn.fetch(
                f'select topic, partition, count(*) n, max("offset") last from {schema}.events group by 1, 2'
            )
        }
        stored = {
            (r["topic"], r["partition"]): r["next_offset"]
            for r in await conn.fetch(f"select topic, partition, next_offset from {schema}.projection_offsets")
        }
        for tp in tps:
            n, last = per_partition.get((tp.topic, tp.partition), (0, -1))
            # the stored offset is exactly one past the last applied event, and every offset below it is a row
            assert stored[(tp.topic, tp.partition)] == last + 1 == n == end[tp]
        # the folded tables agree with the rows they were folded from
        assert await conn.fetchval(f"select count(*) from {schema}.fills") == await conn.fetchval(
            f"select count(*) from {schema}.events where type = 'OrderFilled'"
        )
        assert (
            await conn.fetchval(f"""
            select count(*) from {schema}.positions p
            join (select instrument, sum(case when side = 'buy' then quantity else -quantity end) q
                  from {schema}.fills group by 1) f using (instrument)
            where p.quantity <> f.q""")
            == 0
        )
    finally:
        await conn.close()


async def _between(value: Any, low: int, high: int) -> bool:
    v = await value()
    return bool(low <= v <= high)
