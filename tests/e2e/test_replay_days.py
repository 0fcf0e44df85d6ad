"""Replaying each day of the real trades file into a fresh schema gives exactly the live day."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from adapters.feeds.recorded import load_trades
from tests.e2e.test_pipeline import run_file
from tests.support import SHARED_TRADES, engine_env, run_cli, unique

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def live(servers: Any) -> tuple[str, str]:
    prefix, schema = unique("days"), unique("days")
    run_file(servers, prefix, schema, SHARED_TRADES)
    return prefix, schema


def days_of_file() -> list[str]:
    trades = load_trades(SHARED_TRADES)
    return sorted({datetime.fromtimestamp(int(t[0]) // 1000, UTC).strftime("%Y-%m-%d") for t in trades})


def test_the_file_spans_three_utc_days() -> None:
    assert days_of_file() == ["2019-10-11", "2019-10-12", "2019-10-13"]


@pytest.mark.parametrize("day", ["2019-10-11", "2019-10-12", "2019-10-13"])
async def test_a_replayed_day_equals_the_live_day(servers: Any, live: tuple[str, str], day: str) -> None:
    prefix, schema = live
    env = engine_env(servers, prefix, schema)
    fresh = unique("day")
    res = run_cli(["replay", "--date", day, "--schema", fresh], env)
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli(["diff", schema, fresh, "--date", day], env)
    assert res.returncode == 0, res.stdout[-5000:]
    assert "DIFFERENT" not in res.stdout
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        # the day really was rebuilt: it has that day's fills, candles and round trips, and nothing else
        start = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) * 10**9
        fills = await conn.fetchval(f"select count(*) from {fresh}.fills")
        assert fills > 0
        assert (
            await conn.fetchval(
                f"select count(*) from {fresh}.fills where ts_event < $1 or ts_event >= $1 + 86400e9", start
            )
            == 0
        )
        assert await conn.fetchval(f"select count(*) from {fresh}.candles_1m") > 0
        if day != "2019-10-11":
            # positions carried over from the previous day through the day's snapshot
            snap = await conn.fetchval(f"select count(*) from {fresh}.events where type = 'PositionSnapshot'")
            assert snap == 1
            live_pos = await conn.fetchrow(
                f"select quantity_after, realized_after from {schema}.position_changes "
                f"where ts_event < $1 + 86400e9 order by ts_event desc, event_id desc limit 1",
                start,
            )
            day_pos = await conn.fetchrow(
                f"select quantity_after, realized_after from {fresh}.position_changes "
                f"order by ts_event desc, event_id desc limit 1"
            )
            assert tuple(live_pos) == tuple(day_pos), "the position at the end of the day is the live one"
            # the one strategy's day snapshot does not name it: its first fill of the day gave the seeded position
            # its name, and the row is the live one as the day ended (the day's last fill is the position's last)
            assert await conn.fetch(f"select strategy, instrument from {fresh}.positions") == await conn.fetch(
                f"select strategy, instrument from {schema}.positions"
            )
            assert {r[0] for r in await conn.fetch(f"select strategy from {fresh}.position_changes")} == {"ma_cross"}
            # the balances the day started from are the sums of every earlier fill's moves
            snapshot = dict(await conn.fetch(f"select currency, sum(amount) from {fresh}.balance_snapshots group by 1"))
            before = dict(
                await conn.fetch(
                    f"select currency, sum(delta) from {schema}.balance_changes where ts_event < $1 group by 1", start
                )
            )
            assert snapshot and snapshot == before
    finally:
        await conn.close()


async def test_a_snapshot_agrees_with_what_the_live_projection_folded(servers: Any, live: tuple[str, str]) -> None:
    _, schema = live
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        assert await conn.fetchval(f"select count(*) from {schema}.events where type = 'PositionSnapshot'") == 2
        assert await conn.fetchval(f"select count(*) from {schema}.system_events where type = 'SnapshotMismatch'") == 0
    finally:
        await conn.close()
