"""Users' own strategies: loaded from their folder, parameters validated at start, traded end to end on the real
Kafka and PostgreSQL; ``strategy check`` passes deterministic strategies and catches each planted non-determinism."""

from __future__ import annotations

import asyncio
import shutil
import sys
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_pipeline import rows
from tests.support import REPO, TRADES, XRP_ETH_SETTINGS, engine_env, run_cli, unique

STRATEGIES = REPO / "tests" / "data" / "strategies"


def _check(kind: str, *extra: str) -> Any:
    return run_cli(["strategy", "check", kind, "--strategy-path", str(STRATEGIES), "--ticks", "2000", *extra], {})


@pytest.mark.parametrize("kind", ["ma_cross", "bollinger", "quoting", "dip:Dip", "planted:Seeded"])
def test_a_deterministic_strategy_passes_the_check(kind: str) -> None:
    res = _check(kind)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "deterministic: 2000 ticks" in res.stdout and "the same in 3 runs" in res.stdout


@pytest.mark.parametrize(
    ("kind", "caught"),
    [
        ("planted:Clock", "two runs over the same ticks"),
        ("planted:Unseeded", "two runs over the same ticks"),
        ("planted:SetOrder", "two runs over the same ticks"),
        ("planted:Hidden", "restarted from a snapshot half way"),
        ("planted:Unsnapshottable", "its state cannot be snapshotted"),
    ],
)
def test_the_check_catches_each_planted_non_determinism(kind: str, caught: str) -> None:
    res = _check(kind)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "NOT deterministic" in res.stdout and caught in res.stdout, res.stdout
    assert "Traceback" not in res.stdout + res.stderr


def test_the_check_runs_a_recorded_file() -> None:
    res = _check("dip:Dip", "--file", str(TRADES), "--symbol", "XRP/ETH")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--param", "fast=x"], "strategy.params.fast: Input should be a valid integer"),
        (["--param", "fsat=3"], "strategy.params.fsat: not a parameter of MaCross (it takes: fast, slow, quantity"),
        (["--param", "fast=40"], "strategy.params: need 0 < fast < slow"),
        (["--param", "quantity=NaN"], "strategy.params.quantity: Input should be a finite number"),
        (["--param", "nothing"], "--param 'nothing': give name=value"),
    ],
)
def test_a_bad_parameter_stops_the_engine_with_its_name(args: list[str], says: str) -> None:
    res = run_cli(["run", "--duration", "1", *args], {})
    assert res.returncode == 2, res.stdout + res.stderr
    assert says in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_a_strategy_that_cannot_be_found_stops_the_engine_with_one_line(tmp_path: Path) -> None:
    env = {"ENGINE_STRATEGY__KIND": "nowhere:Thing"}
    res = run_cli(["run", "--duration", "1", "--strategy-path", str(tmp_path)], env)
    assert res.returncode == 2 and "strategy.kind: 'nowhere:Thing': no module 'nowhere'" in res.stderr, res.stderr
    (tmp_path / "broken.py").write_text("raise RuntimeError('my bug')\n")
    res = run_cli(["run", "--strategy-path", str(tmp_path)], {"ENGINE_STRATEGY__KIND": "broken:Thing"})
    assert res.returncode == 2 and "importing broken failed: RuntimeError('my bug')" in res.stderr, res.stderr
    (tmp_path / "notone.py").write_text("class Thing:\n    pass\n")
    res = run_cli(["run", "--strategy-path", str(tmp_path)], {"ENGINE_STRATEGY__KIND": "notone:Thing"})
    assert res.returncode == 2 and "is not a subclass of engine.strategy.Strategy" in res.stderr, res.stderr


@pytest.mark.servers
async def test_a_users_strategy_from_its_own_folder_trades_end_to_end(servers: Any, tmp_path: Path) -> None:
    folder = tmp_path / "my_strategies"
    folder.mkdir()
    shutil.copy(STRATEGIES / "dip.py", folder / "mydip.py")
    prefix, schema = unique("userstrat"), unique("userstrat")
    env = engine_env(
        servers,
        prefix,
        schema,
        {**XRP_ETH_SETTINGS, "ENGINE_STRATEGY__KIND": "mydip:Dip", "ENGINE_STRATEGY__PARAMS__DROP_BPS": "20"},
    )
    args = ["run", "--file", str(TRADES), "--symbol", "XRP/ETH", "--strategy-path", str(folder), "--param", "window=40"]
    res = run_cli(args, env)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    orders = await rows(servers.pg_dsn, f"select strategy, client_order_id, status from {schema}.orders")
    assert orders and {o[0] for o in orders} == {"dip"}
    assert all(o[1].startswith("dip-") for o in orders)
    assert any(o[2] == "filled" for o in orders)
    # the position the audit holds is the sum of the strategy's fills
    ((position, fills),) = await rows(
        servers.pg_dsn,
        f"select p.quantity, (select coalesce(sum(case when side = 'buy' then quantity else -quantity end), 0)"
        f" from {schema}.fills) from {schema}.positions p",
    )
    assert position == fills


BUILT_IN_RUNS = {
    "ma_cross": {},
    "bollinger": {"ENGINE_STRATEGY__PARAMS__QUANTITY": "100", "ENGINE_STRATEGY__PARAMS__WINDOW": "30"},
    "quoting": {
        "ENGINE_STRATEGY__PARAMS__QUANTITY": "50",
        "ENGINE_STRATEGY__PARAMS__TICK_SIZE": "0.00000001",
        "ENGINE_STRATEGY__PARAMS__MAX_INVENTORY": "150",
    },
}


@pytest.mark.servers
async def test_a_replay_of_each_built_ins_run_equals_its_live_audit(servers: Any) -> None:
    runs = {}
    for kind, params in BUILT_IN_RUNS.items():  # one engine after the other (own topics and schemas)
        prefix, schema = unique(f"bi_{kind}"), unique(f"bi_{kind}")
        extra = {**XRP_ETH_SETTINGS, "ENGINE_STRATEGY__KIND": kind, **params}
        if kind == "ma_cross":
            extra = {**XRP_ETH_SETTINGS}
        env = engine_env(servers, prefix, schema, extra)
        args = ["-m", "engine", "run", "--file", str(TRADES), "--symbol", "XRP/ETH"]
        proc = await asyncio.create_subprocess_exec(sys.executable, *args, env=env, cwd=REPO, stdout=PIPE, stderr=PIPE)
        runs[kind] = (proc, env, schema, await asyncio.wait_for(proc.communicate(), 600))
    for kind, (proc, env, schema, (out, err)) in runs.items():
        assert proc.returncode == 0, f"{kind}: {out.decode()}\n{err.decode()[-3000:]}"
        traded = await rows(servers.pg_dsn, f"select count(*) from {schema}.orders where strategy = '{kind}'")
        assert traded[0][0] > 0, f"{kind} sent no order"
        if kind == "bollinger":  # its exits are brackets: stops the engine held, some triggered, some cancelled
            ends = dict(await rows(servers.pg_dsn, f"select status, count(*) from {schema}.stops group by 1"))
            assert ends.get("triggered", 0) > 0 and ends.get("cancelled", 0) > 0, ends
            # every triggered stop sent an order that is in orders, at market, for what was left of the stop
            (orphans,) = await rows(
                servers.pg_dsn,
                f"select count(*) from {schema}.stops s left join {schema}.orders o on o.client_order_id = s.order_id"
                f" where s.status = 'triggered' and (o.order_type is distinct from 'market'"
                f" or o.quantity <> s.sent_quantity)",
            )
            assert orphans == (0,)
        fresh = unique(f"re_{kind}")
        res = run_cli(["replay", "--schema", fresh], env)
        assert res.returncode == 0, res.stdout + res.stderr
        res = run_cli(["diff", schema, fresh], env)
        assert res.returncode == 0, f"{kind}: the replay differs from the live audit:\n{res.stdout}"
