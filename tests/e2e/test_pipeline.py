"""The whole pipeline on real exchange trades, driven through the CLI as a user drives it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.feeds.recorded import load_trades
from engine.config import with_user
from tests import servers as discovery
from tests.support import SHARED_TRADES, XRP_ETH_SETTINGS, engine_env, run_cli, unique, write_trades

pytestmark = pytest.mark.servers

POSITION_COLS = "instrument, quantity, avg_price, realized_pnl, fees, bought, sold, fills, updated_ts"
FILL_COLS = "instrument, side, quantity, price, fee, fee_currency, liquidity, ts_event"
ORDER_COLS = (
    "instrument, side, order_type, quantity, status, filled_quantity, filled_notional, fees, created_ts, updated_ts"
)


def run_file(servers: Any, prefix: str, schema: str, path: Path, extra: dict[str, str] | None = None) -> str:
    env = engine_env(servers, prefix, schema, {**XRP_ETH_SETTINGS, **(extra or {})})
    res = run_cli(["run", "--file", str(path), "--symbol", "XRP/ETH"], env)
    assert res.returncode == 0, f"engine run failed:\n{res.stdout}\n{res.stderr[-4000:]}"
    assert "stopped (end of feed)" in res.stdout
    return res.stdout


async def rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def full_run(servers: Any) -> tuple[str, str]:
    """One uninterrupted run of the whole shared file (12,477 real XRP/ETH trades)."""
    prefix, schema = unique("full"), unique("full")
    run_file(servers, prefix, schema, SHARED_TRADES)
    return prefix, schema


async def test_orders_and_fills_of_real_trades_land_in_postgresql(servers: Any, full_run: tuple[str, str]) -> None:
    _, schema = full_run
    trades = load_trades(SHARED_TRADES)
    (ticks,) = await rows(servers.pg_dsn, f"select count(*) from {schema}.events where type = 'TickReceived'")
    assert ticks == (len(trades),)
    statuses = dict(await rows(servers.pg_dsn, f"select status, count(*) from {schema}.orders group by 1"))
    assert statuses.get("filled", 0) > 10, statuses
    (fills,) = await rows(servers.pg_dsn, f"select count(*) from {schema}.fills")
    assert fills[0] >= statuses["filled"]
    # every fill event in the log is one row, every order event belongs to an order row
    (fill_events,) = await rows(servers.pg_dsn, f"select count(*) from {schema}.events where type = 'OrderFilled'")
    assert fill_events == fills


async def test_each_position_equals_the_sum_of_its_fills(servers: Any, full_run: tuple[str, str]) -> None:
    _, schema = full_run
    mismatches = await rows(
        servers.pg_dsn,
        f"""
        select p.instrument, p.quantity, f.net, p.bought, f.bought, p.sold, f.sold, p.fees, f.fees
        from {schema}.positions p
        join (select instrument,
                     sum(case when side = 'buy' then quantity else -quantity end) as net,
                     sum(case when side = 'buy' then quantity else 0 end) as bought,
                     sum(case when side = 'sell' then quantity else 0 end) as sold,
                     sum(fee) as fees, count(*) as n
              from {schema}.fills group by instrument) f using (instrument)
        where p.quantity <> f.net or p.bought <> f.bought or p.sold <> f.sold or p.fees <> f.fees
           or p.fills <> f.n""",
    )
    assert mismatches == []
    (n,) = await rows(servers.pg_dsn, f"select count(*) from {schema}.positions")
    assert n == (1,)
    # and each order's filled quantity is the sum of its fills
    bad_orders = await rows(
        servers.pg_dsn,
        f"""
        select o.client_order_id from {schema}.orders o
        left join (select client_order_id, sum(quantity) q from {schema}.fills group by 1) f using (client_order_id)
        where o.filled_quantity <> coalesce(f.q, 0)""",
    )
    assert bad_orders == []


async def test_the_numbers_survive_a_restart_of_the_engine(
    servers: Any, full_run: tuple[str, str], tmp_path: Path
) -> None:
    """Stopping after the first half of the trades and starting again gives what one run gives."""
    _, full_schema = full_run
    trades = load_trades(SHARED_TRADES)
    half = len(trades) // 2
    first = write_trades(tmp_path / "first.json", trades[:half])
    second = write_trades(tmp_path / "second.json", trades[half:])
    prefix, schema = unique("restart"), unique("restart")
    run_file(servers, prefix, schema, first)
    (mid,) = await rows(servers.pg_dsn, f"select count(*) from {schema}.fills")
    assert mid[0] > 0
    out = run_file(servers, prefix, schema, second)
    assert "ticks published" in out
    for table, cols, order in (
        ("positions", POSITION_COLS, "instrument"),
        ("fills", FILL_COLS, "ts_event, side, quantity, price"),
        ("orders", ORDER_COLS, "created_ts, side, quantity"),
    ):
        restarted = await rows(servers.pg_dsn, f"select {cols} from {schema}.{table} order by {order}")
        uninterrupted = await rows(servers.pg_dsn, f"select {cols} from {full_schema}.{table} order by {order}")
        assert restarted == uninterrupted, f"{table} differs after a restart"


async def test_replay_rebuilds_tables_equal_to_the_live_ones(servers: Any, full_run: tuple[str, str]) -> None:
    prefix, schema = full_run
    env = engine_env(servers, prefix, schema)
    fresh = unique("replay")
    res = run_cli(["replay", "--schema", fresh], env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "replayed" in res.stdout
    res = run_cli(["diff", schema, fresh], env)
    assert res.returncode == 0, res.stdout
    for table in ("events", "orders", "fills", "positions"):
        assert f"{table}: equal" in res.stdout
    # the diff is not blind: one changed fill is reported, and the exit code says so (changed as the one role that may)
    conn = await asyncpg.connect(
        with_user(servers.pg_dsn, "engine_maintenance"), passfile=discovery.maintenance_passfile()
    )
    try:
        await conn.execute(
            f"update {fresh}.fills set price = price + 1 where trade_id = (select min(trade_id) from {fresh}.fills)"
        )
    finally:
        await conn.close()
    res = run_cli(["diff", schema, fresh], env)
    assert res.returncode == 1
    assert "fills: DIFFERENT" in res.stdout and "orders: equal" in res.stdout
