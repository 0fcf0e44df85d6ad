"""Blue/green rebuild while the engine trades: readers switch to a complete new version at once, and the
live projection carries on into it."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support import engine_env, run_cli, start_cli, unique, wait_for

pytestmark = pytest.mark.servers


async def test_rebuild_switches_to_a_complete_new_version_while_trading_goes_on(servers: Any, tmp_path: Path) -> None:
    prefix, schema = unique("bg"), unique("bg")
    env = engine_env(servers, prefix, schema)
    log = tmp_path / "engine.log"
    engine = start_cli(["run", "--rate", "400"], env, log)
    conn = await asyncpg.connect(servers.pg_dsn)
    try:

        async def count(table: str) -> int:
            try:
                return int(await conn.fetchval(f"select count(*) from {schema}.{table}"))
            except asyncpg.UndefinedTableError:
                return 0

        async def some_fills() -> bool:
            assert engine.poll() is None, log.read_text()[-3000:]
            return await count("fills") > 0

        await wait_for(some_fills, 120, "the live projection to record fills")
        res = run_cli(["rebuild", "--workers", "2"], env)
        assert res.returncode == 0, res.stderr[-3000:]
        m = re.search(r"kept as (\S+)", res.stdout)
        assert m, res.stdout
        old = m.group(1)
        assert await conn.fetchval("select count(*) from pg_namespace where nspname = $1", old) == 1
        after_switch = await count("events")

        async def still_growing() -> bool:
            return await count("events") > after_switch + 200

        await wait_for(still_growing, 60, "the live projection to keep writing into the new version")
    finally:
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(120) == 0, log.read_text()[-3000:]
    try:
        # the switched-in version, kept up to date by the live worker, is exactly a fold of the log
        fresh = unique("check")
        assert run_cli(["replay", "--schema", fresh], env).returncode == 0
        res = run_cli(["diff", schema, fresh], env)
        assert res.returncode == 0, res.stdout[-4000:]
        # the old version stopped at the switch: it has fewer events than the new one
        assert await conn.fetchval(f"select count(*) from {old}.events") < await conn.fetchval(
            f"select count(*) from {schema}.events"
        )
    finally:
        await conn.close()
