"""`python -m engine halt` stops new orders (cancels pass) until `resume`; both are events in the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.feeds.recorded import load_trades
from tests.e2e.test_pipeline import run_file
from tests.support import SHARED_TRADES, engine_env, run_cli, unique, write_trades

pytestmark = pytest.mark.servers


async def test_a_halt_applies_from_its_event_time_on_not_to_older_ticks(servers: Any, tmp_path: Path) -> None:
    trades = load_trades(SHARED_TRADES)
    first = write_trades(tmp_path / "first.json", trades[:4000])
    prefix, schema = unique("halt"), unique("halt")
    env = engine_env(servers, prefix, schema)

    res = run_cli(["halt", "--reason", "test: exchange maintenance"], env)
    assert res.returncode == 0 and "trading halted" in res.stdout, res.stderr[-2000:]
    run_file(servers, prefix, schema, first)
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        decisions = dict(
            await conn.fetch(
                f"select decision || ':' || coalesce(rule, ''), count(*) from {schema}.risk_decisions group by 1"
            )
        )
        # 2019 ticks come before the halt's event time (now): trading went on for them
        assert decisions.get("accepted:", 0) > 0
        halts = await conn.fetchval(f"select count(*) from {schema}.system_events where type = 'TradingHalted'")
        assert halts == 1
    finally:
        await conn.close()


async def test_ticks_after_a_halt_are_not_traded_and_resume_restores_trading(servers: Any) -> None:
    prefix, schema = unique("halt2"), unique("halt2")
    env = engine_env(servers, prefix, schema)
    assert run_cli(["halt", "--reason", "test"], env).returncode == 0
    res = run_cli(["run", "--ticks", "600", "--rate", "2000"], env)  # synthetic ticks are stamped now: after the halt
    assert res.returncode == 0, res.stderr[-3000:]
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        rows = dict(await conn.fetch(f"select decision, count(*) from {schema}.risk_decisions group by 1"))
        assert rows.get("rejected", 0) > 0 and rows.get("accepted", 0) == 0, rows
        assert await conn.fetchval(f"select count(*) from {schema}.risk_decisions where rule <> 'halted'") == 0
        assert await conn.fetchval(f"select count(*) from {schema}.fills") == 0
        assert run_cli(["resume", "--reason", "test over"], env).returncode == 0
        res = run_cli(["run", "--ticks", "600", "--rate", "2000", "--seed", "8"], env)
        assert res.returncode == 0, res.stderr[-3000:]
        assert await conn.fetchval(f"select count(*) from {schema}.risk_decisions where decision = 'accepted'") > 0
        assert await conn.fetchval(f"select count(*) from {schema}.fills") > 0
    finally:
        await conn.close()
