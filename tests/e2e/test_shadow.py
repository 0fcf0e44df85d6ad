"""``python -m engine shadow``: a candidate strategy on each production day of the real trades, on the real Kafka
and PostgreSQL.

Production runs ma_cross over the whole shared file. Shadowing that strategy with its parameters on each of the
file's three days must decide exactly as production did (exit 0, no difference: checked here in both schemas, not
only in the command's output), and leave production's log and schema as they were. A changed parameter lists its
differences (exit 1), which the test recounts from the two schemas. Bad input is one line and exit 2.
"""

from __future__ import annotations

import asyncio
import re
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from adapters import kafka_admin
from adapters.kafka import LogInspector
from adapters.kafka_security import client_args
from tests.e2e.test_pipeline import run_file
from tests.support import SHARED_TRADES, XRP_ETH_SETTINGS, engine_env, run_cli, start_cli, unique, wait_for

pytestmark = pytest.mark.servers

DAYS = ["2019-10-11", "2019-10-12", "2019-10-13"]
ORDERS = (
    "SELECT client_order_id, side, order_type, quantity, limit_price, created_ts FROM {s}.orders "
    "WHERE created_ts >= $1 AND created_ts < $1 + 86400000000000 ORDER BY created_ts, client_order_id"
)


@pytest.fixture(scope="module")
def production(servers: Any) -> dict[str, str]:
    prefix, schema = unique("prod"), unique("prod")
    run_file(servers, prefix, schema, SHARED_TRADES)
    return engine_env(servers, prefix, schema, XRP_ETH_SETTINGS)


def _start_ns(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) * 10**9


async def _fingerprint(servers: Any, env: dict[str, str]) -> tuple[Any, ...]:
    """Production's log (every topic's end offsets, every group's committed offsets) and schema (each table's rows
    and the projection's offsets)."""
    prefix, schema = env["ENGINE_KAFKA__TOPIC_PREFIX"], env["ENGINE_POSTGRES__SCHEMA"]
    topics, groups = await kafka_admin.names_with_prefix(servers.kafka_bootstrap, prefix)
    async with LogInspector(servers.kafka_bootstrap) as inspector:
        tps = await inspector.partitions(topics)
        ends = sorted((tp.topic, tp.partition, end) for tp, end in (await inspector.end_offsets(tps)).items())
    committed = [(g, sorted((await kafka_admin.committed_offsets(servers.kafka_bootstrap, g)).items())) for g in groups]
    assert committed and all(offsets for _, offsets in committed), "production's groups have committed offsets"
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        tables = [
            r[0]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename NOT LIKE 'events_%' ORDER BY 1",
                schema,
            )
        ]
        counts = [(t, await conn.fetchval(f'SELECT count(*) FROM {schema}."{t}"')) for t in tables]
        offsets = [tuple(r) for r in await conn.fetch(f"SELECT * FROM {schema}.projection_offsets ORDER BY 1, 2, 3")]
    finally:
        await conn.close()
    return tuple(ends), tuple(committed), tuple(counts), tuple(offsets)


async def _orders(servers: Any, schema: str, day: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        return [tuple(r) for r in await conn.fetch(ORDERS.format(s=schema), _start_ns(day))]
    finally:
        await conn.close()


@pytest.mark.parametrize("day", DAYS)
async def test_shadowing_production_s_strategy_reproduces_its_decisions_and_leaves_production_alone(
    servers: Any, production: dict[str, str], day: str
) -> None:
    before = await _fingerprint(servers, production)
    run = unique("same")
    # only where production is: its strategy, parameters and risk limits are read from its EngineStarted event
    bare = {k: v for k, v in production.items() if k not in XRP_ETH_SETTINGS}
    res = await asyncio.to_thread(run_cli, ["shadow", "--date", day, "--run", run], bare)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-3000:]
    assert "decisions: IDENTICAL" in res.stdout
    assert f"shadow {run} of {day}: candidate ma_cross(" in res.stdout
    prod = await _orders(servers, production["ENGINE_POSTGRES__SCHEMA"], day)
    shadow = await _orders(servers, f"sh_{run}", day)
    assert len(prod) > 50, "production placed orders that day"
    assert shadow == prod  # the same client order ids, sides, quantities, prices and times
    m = re.search(r"production (\d+), candidate (\d+); the same (\d+), changed 0, production only 0", res.stdout)
    assert m and int(m[1]) == int(m[2]) == int(m[3]) == len(prod), res.stdout
    # the day's PnL printed for each side is the same, and is the schema's
    lines = [line for line in res.stdout.splitlines() if line.strip().startswith(("production  ", "candidate  "))]
    assert len(lines) == 2 and lines[0].split(None, 1)[1] == lines[1].split(None, 1)[1], res.stdout
    assert await _fingerprint(servers, production) == before, "production's log or schema changed"
    assert run_cli(["shadow", "drop", run], production).returncode == 0


async def test_a_changed_parameter_lists_the_decisions_it_changes(servers: Any, production: dict[str, str]) -> None:
    day = DAYS[1]
    before = await _fingerprint(servers, production)
    run = unique("fast")
    res = await asyncio.to_thread(
        run_cli, ["shadow", "--date", day, "--run", run, "--param", "fast=7", "--limit", "5"], production
    )
    assert res.returncode == 1, res.stdout[-4000:] + res.stderr[-3000:]
    assert "decisions: DIFFERENT" in res.stdout
    prod = await _orders(servers, production["ENGINE_POSTGRES__SCHEMA"], day)
    shadow = await _orders(servers, f"sh_{run}", day)
    assert prod != shadow
    m = re.search(
        r"production (\d+), candidate (\d+); the same (\d+), changed (\d+), production only (\d+), "
        r"candidate only (\d+)",
        res.stdout,
    )
    assert m, res.stdout
    n_prod, n_cand, same, changed, prod_only, cand_only = map(int, m.groups())
    assert (n_prod, n_cand) == (len(prod), len(shadow))
    assert same + changed + prod_only == n_prod and same + changed + cand_only == n_cand
    # the same decisions: the same order on the same tick (a client order id is derived from the strategy's name and
    # the causing tick), recounted from the schemas
    assert same == len(set(prod) & set(shadow))
    kinds = r"(production only|candidate only|changed)"
    listed = re.findall(rf"^  \d\d:\d\d:\d\d\.\d{{3}}  XRP/ETH  {kinds}", res.stdout, re.M)
    assert len(listed) == 5, res.stdout
    assert f"the first 5 of {changed + prod_only + cand_only} differing decisions" in res.stdout
    assert res.stdout.count("      tick ") + res.stdout.count("                  tick ") >= 5  # causing ticks
    assert await _fingerprint(servers, production) == before
    assert run_cli(["shadow", "drop", run], production).returncode == 0


async def test_bad_input_is_one_line_and_exit_2(servers: Any, production: dict[str, str]) -> None:
    cases = [
        (["shadow"], "needs --date"),
        (["shadow", "--date", "2030-01-01"], "no ticks on 2030-01-01"),
        (["shadow", "--date", "2019-10-12", "--against", "nope"], "--against nope"),
        (["shadow", "--date", "2019-10-12", "--param", "fast=-3"], "fast"),
        (["shadow", "--date", "yesterday"], "is not a day"),
        (["shadow", "--date", "2019-10-12", "--run", "Bad-Name"], "is not a run's name"),
    ]
    for args, said in cases:
        res = await asyncio.to_thread(run_cli, args, production)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert said in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr
    other = dict(production, ENGINE_POSTGRES__SCHEMA=unique("noschema"))
    res = await asyncio.to_thread(run_cli, ["shadow", "--date", "2019-10-12"], other)
    assert res.returncode == 2 and "does not exist: nothing to compare with" in res.stderr, res.stderr
    # a name already taken, without --replace
    run = unique("twice")
    assert (await asyncio.to_thread(run_cli, ["shadow", "--date", DAYS[0], "--run", run], production)).returncode == 0
    res = await asyncio.to_thread(run_cli, ["shadow", "--date", DAYS[0], "--run", run], production)
    assert res.returncode == 2 and f"shadow run {run} exists" in res.stderr, res.stderr
    res = await asyncio.to_thread(run_cli, ["shadow", "drop", run], production)
    assert res.returncode == 0 and f"dropped {run}: schema sh_{run}" in res.stdout
    topics, _ = await kafka_admin.names_with_prefix(servers.kafka_bootstrap, f"sh_{run}.")
    assert topics == []


async def test_a_production_schema_behind_the_day_is_refused(servers: Any, production: dict[str, str]) -> None:
    # a schema that holds only the first day: what the second day's comparison needs is not there yet
    first_day = unique("firstday")
    res = await asyncio.to_thread(run_cli, ["replay", "--date", DAYS[0], "--schema", first_day], production)
    assert res.returncode == 0, res.stderr[-3000:]
    behind = dict(production, ENGINE_POSTGRES__SCHEMA=first_day)
    res = await asyncio.to_thread(run_cli, ["shadow", "--date", DAYS[1]], behind)
    assert res.returncode == 2 and f"{first_day} has not applied {DAYS[1]}'s trading events yet" in res.stderr
    assert "Traceback" not in res.stderr


async def test_a_shadow_killed_half_way_is_run_again_with_replace(
    servers: Any, production: dict[str, str], tmp_path: Path
) -> None:
    before = await _fingerprint(servers, production)
    run = unique("killed")
    proc = start_cli(["shadow", "--date", DAYS[2], "--run", run], production, tmp_path / "shadow.log")

    async def half_way() -> bool:
        assert proc.poll() is None, (tmp_path / "shadow.log").read_text()[-3000:]
        conn = await asyncpg.connect(servers.pg_dsn)
        try:
            n = await conn.fetchval(
                "SELECT coalesce(sum(next_offset), 0) FROM pg_namespace ns, "
                f"LATERAL (SELECT next_offset FROM sh_{run}.projection_offsets WHERE topic LIKE '%ticks') o "
                "WHERE ns.nspname = $1",
                f"sh_{run}",
            )
        except asyncpg.UndefinedTableError:
            return False
        finally:
            await conn.close()
        return bool(n and n > 2000)

    await wait_for(half_way, 120, "the shadow half way through the log")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    res = await asyncio.to_thread(run_cli, ["shadow", "--date", DAYS[2], "--run", run], production)
    assert res.returncode == 2 and "exists" in res.stderr, res.stderr
    res = await asyncio.to_thread(run_cli, ["shadow", "--date", DAYS[2], "--run", run, "--replace"], production)
    assert res.returncode == 0 and "decisions: IDENTICAL" in res.stdout, res.stdout[-3000:] + res.stderr[-2000:]
    assert await _fingerprint(servers, production) == before
    assert run_cli(["shadow", "drop", run], production).returncode == 0


async def test_garbage_in_production_s_ticks_is_left_out_and_said(servers: Any) -> None:
    prefix, schema = unique("prodg"), unique("prodg")
    run_file(servers, prefix, schema, SHARED_TRADES)
    env = engine_env(servers, prefix, schema, XRP_ETH_SETTINGS)
    in_day = int(datetime.fromisoformat("2019-10-12T12:00:00+00:00").timestamp() * 1000)
    producer = AIOKafkaProducer(**client_args(servers.kafka_bootstrap))
    await producer.start()
    try:
        for partition in range(4):
            for value in (b"\x00\xffnot json{", b'{"type": "TickReceived", "version": 1}'):
                await producer.send_and_wait(
                    f"{prefix}.market.ticks", value, key=b"XRP/ETH", partition=partition, timestamp_ms=in_day
                )
    finally:
        await producer.stop()
    run = unique("garbage")
    res = await asyncio.to_thread(run_cli, ["shadow", "--date", DAYS[2], "--run", run], env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "decisions: IDENTICAL" in res.stdout
    assert "; 8 records of the log that are not ticks, or unreadable, left out" in res.stdout
    assert run_cli(["shadow", "drop", run], env).returncode == 0
