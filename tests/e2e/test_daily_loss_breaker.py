"""The daily loss limit trips the circuit breaker by writing an event, once, and a restart keeps it tripped.

Real XRP/ETH trades, an account of 1 ETH and a 1 % daily loss limit: the MA cross loses that much within
the first day of the file. The engine writes TradingHalted(by="risk:daily_loss_limit") once; every order
after it is refused with rule ``halted``. A second run on the same log (the engine recovers its state
from the log) writes no second halt and keeps refusing. The decisions recomputed from the log, as a
recovery computes them, are the live ones; a replay of the log into a fresh schema equals the live schema.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from adapters.feeds.recorded import load_trades
from engine.app import make_core_factory
from engine.config import load
from engine.core.breaker import Breaker
from events import BreakerApplied, Envelope, TickReceived
from events.codec import decode_event
from tests.e2e.test_pipeline import run_file
from tests.support import SHARED_TRADES, XRP_ETH_SETTINGS, engine_env, run_cli, unique, write_trades

pytestmark = pytest.mark.servers

LOSING = {
    "ENGINE_VENUE__STARTING_BALANCES": '{"ETH": "1"}',
    "ENGINE_RISK__DAILY_LOSS_LIMIT": "0.01",
}


async def _halts(conn: asyncpg.Connection, schema: str) -> list[tuple[int, str, str]]:
    return [
        (r["ts_event"], r["by"], r["reason"])
        for r in await conn.fetch(
            f"select ts_event, detail->>'by' as by, detail->>'reason' as reason from {schema}.system_events "
            f"where type = 'TradingHalted' order by ts_event"
        )
    ]


async def _decisions(conn: asyncpg.Connection, schema: str, *, after: bool, ts: int) -> dict[str, int]:
    """Risk decisions before (or from) ``ts``, counted by rule (``accepted`` for orders that passed)."""
    rows = await conn.fetch(
        f"select coalesce(rule, decision), count(*) from {schema}.risk_decisions "
        f"where (ts_event >= $1) = $2 group by 1",
        ts,
        after,
    )
    return {r[0]: r[1] for r in rows}


async def _envelopes(conn: asyncpg.Connection, schema: str, topic: str) -> list[Envelope]:
    """The envelopes of one topic as the audit schema keeps them, in log order."""
    rows = await conn.fetch(
        f"select event_id, type, version, ts_event, ts_init, correlation_id, causation_id, source, key, "
        f'payload::text as payload from {schema}.events where topic = $1 order by partition, "offset"',
        topic,
    )
    return [
        Envelope(
            r["event_id"],
            decode_event(r["type"], r["version"], orjson.loads(r["payload"])),
            r["ts_event"],
            r["ts_init"],
            r["correlation_id"],
            r["causation_id"],
            r["source"],
            r["key"],
        )
        for r in rows
    ]


async def test_a_daily_loss_trips_the_breaker_once_and_a_restart_keeps_it(servers: Any, tmp_path: Path) -> None:
    trades = load_trades(SHARED_TRADES)
    prefix, schema = unique("dloss"), unique("dloss")
    first = write_trades(tmp_path / "first.json", trades[:3000])
    second = write_trades(tmp_path / "second.json", trades[3000:4000])

    run_file(servers, prefix, schema, first, LOSING)
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        (halt,) = await _halts(conn, schema)
        ts_halt, by, reason = halt
        assert by == "risk:daily_loss_limit" and "daily loss limit: ETH equity" in reason, halt
        before = await _decisions(conn, schema, after=False, ts=ts_halt)
        assert before.get("accepted", 0) > 10, before  # it traded (and lost) before the halt
        after = await _decisions(conn, schema, after=True, ts=ts_halt)
        assert after.get("halted", 0) > 0 and set(after) == {"halted"}, after

        # a restart: the engine rebuilds its state from the log, the halt included, and trips nothing twice
        run_file(servers, prefix, schema, second, LOSING)
        assert await _halts(conn, schema) == [halt]
        after = await _decisions(conn, schema, after=True, ts=ts_halt)
        assert set(after) == {"halted"} and after["halted"] > 0, after
        assert await conn.fetchval(f"select count(*) from {schema}.fills where ts_event > $1", ts_halt) <= 1

        # what a recovery computes from the log (ticks in log order, the breaker from the control topic)
        # is exactly what the engine published live: the same events with the same ids
        settings = load(
            strategy={"order_quantity": XRP_ETH_SETTINGS["ENGINE_STRATEGY__ORDER_QUANTITY"]},
            risk={
                "max_position": XRP_ETH_SETTINGS["ENGINE_RISK__MAX_POSITION"],
                "max_order_notional": XRP_ETH_SETTINGS["ENGINE_RISK__MAX_ORDER_NOTIONAL"],
                "daily_loss_limit": Decimal("0.01"),
            },
        )
        breaker = Breaker()
        for control in await _envelopes(conn, schema, f"{prefix}.engine.control"):
            if isinstance(control.event, BreakerApplied):
                breaker.mark(
                    control.event.switch_id, (control.event.topic, control.event.partition), control.event.offset
                )
            breaker.apply(control.event, control.ts_event, str(control.event_id))
        core = make_core_factory(settings)()
        recomputed: dict[Any, Any] = {}
        offsets = {
            r["event_id"]: (r["topic"], r["partition"], r["offset"])
            for r in await conn.fetch(
                f'select event_id, topic, partition, "offset" from {schema}.events where topic = $1',
                f"{prefix}.market.ticks",
            )
        }
        for tick in await _envelopes(conn, schema, f"{prefix}.market.ticks"):
            assert isinstance(tick.event, TickReceived)
            topic, partition, offset = offsets[tick.event_id]
            halted = breaker.halted_at(tick.ts_event, (topic, partition), offset)
            for out in core.on_input(tick, ts_init=0, halted=halted):
                recomputed[out.event_id] = out.event
        live = {e.event_id: e.event for e in await _envelopes(conn, schema, f"{prefix}.trading.events")}
        assert len(live) > 100
        assert recomputed == live
    finally:
        await conn.close()

    # and the audit schema is a fold of the log: a replay into a fresh schema equals it
    env = engine_env(servers, prefix, schema)
    fresh = unique("dloss_replay")
    res = run_cli(["replay", "--schema", fresh], env)
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli(["diff", schema, fresh], env)
    assert res.returncode == 0 and "DIFFERENT" not in res.stdout, res.stdout[-5000:]
