"""Several strategies in one engine (``[[strategies]]``), run as a user runs it on the real Kafka and PostgreSQL:
positions per strategy and instrument equal to the sum of their fills, each strategy on its instruments only, the
three built-ins in one engine replayed equal to the live audit (the whole log and one day from its snapshots), and a
strategy trading beside others exactly as it trades alone on the paper venue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.feeds.recorded import load_trades
from tests.e2e.test_pipeline import rows
from tests.support import TRADES, XRP_ETH_SETTINGS, engine_env, run_cli, unique, write_trades

pytestmark = pytest.mark.servers

TWO_INSTRUMENTS = """
[feed]
kind = "synthetic"
ticks_per_second = 400

[risk]
max_position = "1"
max_order_notional = "100000"
max_orders_per_minute = 100000

[[strategies]]
name = "trend"
kind = "ma_cross"
params = { fast = 5, slow = 20, quantity = "0.01" }

[[strategies]]
name = "revert"
kind = "bollinger"
instruments = ["ETH/USDT"]
params = { quantity = "0.05", window = 30 }

[[strategies]]
name = "quotes"
kind = "quoting"
instruments = ["BTC/USDT"]
params = { quantity = "0.002", max_inventory = "0.01" }
risk = { max_position = "0.006" }
"""

# the three built-ins on the real XRP/ETH trades; trend's own limits are those of a one-strategy run of ma_cross
# (tests.support.XRP_ETH_SETTINGS and the defaults), the account's wide enough never to bind
BUILT_INS = """
[risk]
max_position = "10000"
max_order_notional = "100"
max_open_orders = 100
max_orders_per_minute = 100000

[[strategies]]
name = "trend"
kind = "ma_cross"
params = { quantity = "100" }
risk = { max_position = "300", max_order_notional = "1", max_open_orders = 5, max_orders_per_minute = 30 }

[[strategies]]
name = "revert"
kind = "bollinger"
params = { quantity = "100", window = 30 }

[[strategies]]
name = "quotes"
kind = "quoting"
params = { quantity = "50", tick_size = "0.00000001", max_inventory = "150" }
risk = { max_position = "150" }
"""

# per strategy and instrument: the position against the sum of the fills of the strategy's orders (joined through
# orders, not the projection's own strategy column of fills)
POSITION_VS_FILLS = """
select p.strategy, p.instrument, p.quantity, coalesce(f.net, 0), p.fills, coalesce(f.n, 0), p.fees, coalesce(f.fees, 0)
from {s}.positions p
left join (select o.strategy, f.instrument, count(*) as n, sum(f.fee) as fees,
                  sum(case when f.side = 'buy' then f.quantity else -f.quantity end) as net
           from {s}.fills f join {s}.orders o using (client_order_id)
           group by 1, 2) f using (strategy, instrument)
order by 1, 2"""


def _run(servers: Any, tmp_path: Path, name: str, toml: str, args: list[str]) -> tuple[dict[str, str], str]:
    config = tmp_path / f"{name}.toml"
    config.write_text(toml)
    prefix, schema = unique(name), unique(name)
    env = engine_env(servers, prefix, schema, {"ENGINE_CONFIG": str(config)})
    res = run_cli(["run", *args], env)
    assert res.returncode == 0, f"engine run failed:\n{res.stdout}\n{res.stderr[-4000:]}"
    return env, schema


def _replay_equals_live(env: dict[str, str], schema: str, *day: str) -> None:
    fresh = unique("re")
    res = run_cli(["replay", "--schema", fresh, *(("--date", day[0]) if day else ())], env)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    res = run_cli(["diff", schema, fresh, *(("--date", day[0]) if day else ())], env)
    assert res.returncode == 0, f"the replay differs from the live audit:\n{res.stdout}"
    assert "DIFFERENT" not in res.stdout


async def test_two_instruments_three_strategies_positions_per_strategy_are_the_sums_of_their_fills(
    servers: Any, tmp_path: Path
) -> None:
    env, s = _run(servers, tmp_path, "multi", TWO_INSTRUMENTS, ["--duration", "15"])
    positions = await rows(servers.pg_dsn, POSITION_VS_FILLS.format(s=s))
    assert [(p[0], p[1]) for p in positions] == [
        ("quotes", "BTC/USDT"),
        ("revert", "ETH/USDT"),
        ("trend", "BTC/USDT"),
        ("trend", "ETH/USDT"),
    ], "each strategy trades its instruments only"
    for strategy, instrument, qty, net, fills, n, fees, paid in positions:
        assert (qty, fills, fees) == (net, n, paid), f"{strategy} {instrument}"
        assert n > 0, f"{strategy} did not trade {instrument}"
    # its own limit: quotes never held more than 0.006 BTC either way, whatever the account allowed
    worst = await rows(
        servers.pg_dsn, f"select max(abs(quantity_after)) from {s}.position_changes where strategy = 'quotes'"
    )
    assert worst[0][0] <= 0.006
    # every order is its strategy's: named so, its client order id prefixed by the name; fills, round trips and
    # balance changes carry it
    bad = await rows(servers.pg_dsn, f"select count(*) from {s}.orders where client_order_id not like strategy || '-%'")
    assert bad == [(0,)]
    for table in ("fills", "position_changes", "balance_changes"):
        (n,) = await rows(
            servers.pg_dsn, f"select count(*) from {s}.{table} where strategy not in ('trend', 'revert', 'quotes')"
        )
        assert n == (0,), table
    per_strategy = await rows(servers.pg_dsn, f"select distinct strategy from {s}.round_trips order by 1")
    assert per_strategy == [("quotes",), ("revert",), ("trend",)]
    _replay_equals_live(env, s)


async def test_the_three_built_ins_in_one_engine_replay_equal_and_trend_trades_as_it_does_alone(
    servers: Any, tmp_path: Path
) -> None:
    file_args = ["--file", str(TRADES), "--symbol", "XRP/ETH"]
    env, s = _run(servers, tmp_path, "builtins", BUILT_INS, file_args)
    traded = await rows(servers.pg_dsn, f"select strategy, count(*) from {s}.fills group by 1 order by 1")
    assert [t[0] for t in traded] == ["quotes", "revert", "trend"] and all(t[1] > 0 for t in traded)
    for strategy, instrument, qty, net, fills, n, fees, paid in await rows(
        servers.pg_dsn, POSITION_VS_FILLS.format(s=s)
    ):
        assert (qty, fills, fees) == (net, n, paid), f"{strategy} {instrument}"
    # the file spans three UTC days: each strategy's day snapshots are named, and agree with the audit's fold
    snaps = await rows(
        servers.pg_dsn,
        f"select payload->>'strategy', count(*) from {s}.events where type = 'PositionSnapshot' group by 1 order by 1",
    )
    assert snaps == [("quotes", 2), ("revert", 2), ("trend", 2)]
    assert await rows(servers.pg_dsn, f"select count(*) from {s}.system_events where type = 'SnapshotMismatch'") == [
        (0,)
    ]
    _replay_equals_live(env, s)
    _replay_equals_live(env, s, "2019-10-12")  # one day alone, from the strategies' snapshots

    # ma_cross alone, with trend's limits: the very same fills (the paper venue fills each order on its own)
    prefix, alone = unique("alone"), unique("alone")
    res = run_cli(["run", *file_args], engine_env(servers, prefix, alone, XRP_ETH_SETTINGS))
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    cols = "ts_event, side, quantity, price, fee, fee_currency, liquidity"
    beside = await rows(servers.pg_dsn, f"select {cols} from {s}.fills where strategy = 'trend' order by 1, 2, 3, 4")
    by_itself = await rows(servers.pg_dsn, f"select {cols} from {alone}.fills order by 1, 2, 3, 4")
    assert beside and beside == by_itself


async def test_three_strategies_with_brackets_stopped_half_way_and_started_again_trade_as_one_run(
    servers: Any, tmp_path: Path
) -> None:
    """The engine's state of every strategy (positions, open orders, held stops, pending brackets) comes back after a
    stop: the rest of the file traded by a new process gives the fills, stops and positions of one run."""
    trades = load_trades(TRADES)
    _, whole = _run(servers, tmp_path, "whole", BUILT_INS, ["--file", str(TRADES), "--symbol", "XRP/ETH"])
    # cut the file where a stop is held: the second process starts with stops the first one placed
    ((placed, ended),) = await rows(
        servers.pg_dsn,
        f"select placed_ts, updated_ts from {whole}.stops where status <> 'held' and updated_ts - placed_ts > 60e9"
        f" order by abs(placed_ts - (select avg(ts_event) from {whole}.fills)) limit 1",
    )
    cut = next(i for i, t in enumerate(trades) if int(t[0]) * 1_000_000 > (placed + ended) // 2)
    first = write_trades(tmp_path / "first.json", trades[:cut])
    second = write_trades(tmp_path / "second.json", trades[cut:])
    config = tmp_path / "builtins.toml"
    config.write_text(BUILT_INS)
    prefix, split = unique("split"), unique("split")
    env = engine_env(servers, prefix, split, {"ENGINE_CONFIG": str(config)})
    for part in (first, second):
        res = run_cli(["run", "--file", str(part), "--symbol", "XRP/ETH"], env)
        assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    for table, cols, order in (
        ("fills", "strategy, ts_event, side, quantity, price, fee", "1, 2, 3, 4, 5"),
        ("positions", "strategy, instrument, quantity, avg_price, realized_pnl, fees, fills", "1, 2"),
        (
            "stops",
            "strategy, side, quantity, trigger_price, status, triggered_price, sent_quantity",
            "1, 2, 3, 4, 5, 6",
        ),
        ("orders", "strategy, side, order_type, quantity, limit_price, status, filled_quantity", "1, 2, 3, 4, 5, 6, 7"),
    ):
        a = await rows(servers.pg_dsn, f"select {cols} from {split}.{table} order by {order}")
        b = await rows(servers.pg_dsn, f"select {cols} from {whole}.{table} order by {order}")
        assert a and a == b, f"{table}: a stop and a start half way differ from one run"
