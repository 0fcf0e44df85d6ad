"""`python -m engine run` on a live venue (ccxt's real binance code, pointed at the local fakes): a strategy's stop.

With ``venue.stops`` left to its default, binance gets the stop as its own STOP_LOSS order, which the fake venue
triggers from its own prices: the log has the OrderSubmitted (type stop, with its trigger price), the venue's
acceptance and fill; the audit's orders row shows the trigger price. With ``venue.stops = "engine"`` the same
strategy's stop is held by the engine (StopPlaced) and triggered from the ticks (StopTriggered, then a market order
the venue fills); the venue never sees a stop order.
"""

from __future__ import annotations

import asyncio
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.e2e.binance_engine import ccxt_binance_settings, sigterm_and_wait
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_stream import FakeBinanceMarket
from tests.support import engine_env, run_cli, start_cli, unique, wait_for

pytestmark = pytest.mark.servers

KEY = "stops-e2e-KEY-3c1a9e5b7d"
SECRET = "stops-e2e-SECRET-9b8a7c6d5e"
SYMBOL = "BTC/USDT"
STRATEGY = '''
"""Buys 0.01 at market, then protects it with a stop 200 below the price it saw its fill at."""

from dataclasses import dataclass
from decimal import Decimal

from engine.strategy import Market, NoParams, Result, Side, Stop, Strategy, TickReceived, View


@dataclass(frozen=True)
class Guard(Strategy[int, NoParams]):
    name: str = "guard"

    def initial(self) -> int:
        return 0  # 0: nothing yet, 1: bought, 2: stop asked for

    def on_tick(self, state: int, tick: TickReceived, view: View) -> Result[int]:
        if state == 0 and not view.open_orders:
            return 1, (Market(Side.BUY, Decimal("0.01")),)
        if state == 1 and view.position >= Decimal("0.01"):
            return 2, (Stop(Side.SELL, Decimal("0.01"), tick.price - 200, reason="protect"),)
        return state, ()
'''
FLAT, LOW = Decimal("60000.00"), Decimal("59700.00")


async def _run(
    servers: Any, tmp_path: Path, stops: str | None, *, kill: bool = False
) -> tuple[FakeBinance, dict[str, str], str]:
    """One engine run: the market flat until the strategy's stop is in place (at the venue or the engine's), then
    down through it, until the stop's sale has filled; returns the venue, the engine's settings and the schema.
    ``kill``: the engine is killed (SIGKILL) once the stop is in place, and started again."""
    folder = tmp_path / "strategies"
    folder.mkdir(exist_ok=True)
    (folder / "guard.py").write_text(STRATEGY)
    venue = FakeBinance(api_key=KEY, secret=SECRET, balances={"USDT": Decimal("100000"), "BTC": Decimal("0")})
    market = FakeBinanceMarket()
    venue_url = await venue.start()
    rest_url, ws_url = await market.start()
    price = {"now": FLAT}
    stop_pump = asyncio.Event()

    async def pump() -> None:
        n = 0
        while not stop_pump.is_set():
            p = price["now"] + Decimal(n % 2) / 100  # 60000.00, 60000.01, ...
            venue.set_price(SYMBOL, p)
            await market.trade(SYMBOL, p, Decimal("0.05"), buyer_maker=n % 2 == 0)
            n += 1
            await asyncio.sleep(0.05)

    pump_task = asyncio.create_task(pump())
    prefix, schema = unique("nstop"), unique("nstop")
    extra = {
        **ccxt_binance_settings(SYMBOL, rest_url=rest_url, ws_url=ws_url, venue_url=venue_url, key=KEY, secret=SECRET),
        "ENGINE_STRATEGY__KIND": "guard:Guard",
        "ENGINE_STRATEGY__PATH": str(folder),
    }
    if stops is not None:
        extra["ENGINE_VENUE__STOPS"] = stops
    env = engine_env(servers, prefix, schema, extra)
    log = tmp_path / f"engine-{stops}.log"
    engine = start_cli(["run"], env, log)
    try:

        def alive() -> None:
            assert engine.poll() is None, log.read_text()[-4000:]

        async def bought() -> bool:
            alive()
            return venue.balances()["BTC"] == Decimal("0.01")

        await wait_for(bought, 90, "the strategy's buy to fill at the venue")

        async def stop_in_place() -> bool:
            alive()
            if stops != "engine":
                return any(o["type"] == "STOP_LOSS" for o in venue.open_orders())
            conn = await asyncpg.connect(servers.pg_dsn)
            try:
                return bool(await conn.fetchval(f"select count(*) from {schema}.stops where status = 'held'"))
            except asyncpg.UndefinedTableError:
                return False
            finally:
                await conn.close()

        await wait_for(stop_in_place, 60, "the stop to be in place")
        if kill:
            engine.send_signal(signal.SIGKILL)

            async def killed() -> bool:
                return engine.poll() is not None

            await wait_for(killed, 30, "the engine to die")
            engine = start_cli(["run"], env, tmp_path / "engine-again.log")
            log = tmp_path / "engine-again.log"
        price["now"] = LOW  # through the trigger (about 59800)

        async def sold() -> bool:
            alive()
            return venue.balances()["BTC"] == 0

        await wait_for(sold, 60, "the stop's sale to fill at the venue")

        async def in_audit() -> bool:
            alive()
            conn = await asyncpg.connect(servers.pg_dsn)
            try:
                n = await conn.fetchval(f"select count(*) from {schema}.fills where side = 'sell'")
                return bool(n)
            finally:
                await conn.close()

        await wait_for(in_audit, 60, "the sale in the audit")
    finally:
        stop_pump.set()
        await pump_task
        await sigterm_and_wait(engine, 120)
        await venue.stop()
        await market.stop()
    output = log.read_text()
    assert engine.returncode == 0, output[-4000:]
    # the live audit is exactly a fold of the log
    fresh = unique("nstopcheck")
    assert run_cli(["replay", "--schema", fresh], env).returncode == 0
    res = run_cli(["diff", schema, fresh], env)
    assert res.returncode == 0, res.stdout[-4000:]
    return venue, env, schema


async def test_a_stop_goes_to_binance_as_its_stop_loss_order_and_the_venue_triggers_it(
    servers: Any, tmp_path: Path
) -> None:
    venue, _, schema = await _run(servers, tmp_path, None)
    (stop,) = [o for o in venue.all_orders() if o["type"] == "STOP_LOSS"]
    assert stop["side"] == "SELL" and stop["status"] == "FILLED" and stop["origQty"] == "0.01000000"
    trigger = Decimal(stop["stopPrice"])
    assert FLAT - 200 <= trigger <= FLAT - 200 + Decimal("0.01")
    (sale,) = [t for t in venue.all_trades() if not t["isBuyer"]]
    sold_at = Decimal(sale["price"])  # the first price at or below the trigger: 59700.00 or .01
    assert sale["clientOrderId"] == stop["clientOrderId"] and LOW <= sold_at <= LOW + Decimal("0.01")
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        row = await conn.fetchrow(
            f"select order_type, side, trigger_price, limit_price, status, filled_quantity from {schema}.orders "
            "where client_order_id = $1",
            stop["clientOrderId"],
        )
        assert row is not None and dict(row) == {
            "order_type": "stop",
            "side": "sell",
            "trigger_price": trigger,
            "limit_price": None,
            "status": "filled",
            "filled_quantity": Decimal("0.01"),
        }
        kinds = [
            r["type"]
            for r in await conn.fetch(
                f"select type from {schema}.events where coalesce(payload->'data', payload)->>'client_order_id' = $1 "
                "order by ts_init",
                stop["clientOrderId"],
            )
        ]
        assert kinds[0] == "OrderSubmitted" and "OrderAccepted" in kinds and kinds[-1] == "OrderFilled", kinds
        assert not await conn.fetchval(f"select count(*) from {schema}.stops")  # no engine-held stop
        fill = await conn.fetchrow(
            f"select price, quantity from {schema}.fills where client_order_id = $1", stop["clientOrderId"]
        )
        assert fill is not None and (fill["price"], fill["quantity"]) == (sold_at, Decimal("0.01"))
        position = await conn.fetchval(f"select quantity from {schema}.positions where instrument = $1", SYMBOL)
        assert position == 0
    finally:
        await conn.close()


async def test_with_venue_stops_engine_the_same_strategys_stop_is_held_and_triggered_by_the_engine(
    servers: Any, tmp_path: Path
) -> None:
    venue, _, schema = await _run(servers, tmp_path, "engine")
    assert not [o for o in venue.all_orders() if o["type"] != "MARKET"]  # the venue never saw a stop
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        (stop,) = await conn.fetch(f"select * from {schema}.stops")
        assert stop["status"] == "triggered" and stop["quantity"] == Decimal("0.01")
        assert FLAT - 200 <= stop["trigger_price"] <= FLAT - 200 + Decimal("0.01")
        sent = await conn.fetchrow(
            f"select order_type, trigger_price, status from {schema}.orders where client_order_id = $1",
            stop["order_id"],
        )
        assert sent is not None and dict(sent) == {"order_type": "market", "trigger_price": None, "status": "filled"}
        assert not await conn.fetchval(f"select count(*) from {schema}.orders where order_type like 'stop%'")
    finally:
        await conn.close()


async def test_a_native_stop_outlives_an_engine_killed_while_the_venue_holds_it(servers: Any, tmp_path: Path) -> None:
    venue, _, schema = await _run(servers, tmp_path, None, kill=True)
    (stop,) = [o for o in venue.all_orders() if o["type"] == "STOP_LOSS"]  # not sent twice
    assert len({o["clientOrderId"] for o in venue.all_orders()}) == len(venue.all_orders()) == 2
    conn = await asyncpg.connect(servers.pg_dsn)
    try:
        row = await conn.fetchrow(
            f"select status, trigger_price from {schema}.orders where client_order_id = $1", stop["clientOrderId"]
        )
        assert row is not None and row["status"] == "filled" and row["trigger_price"] == Decimal(stop["stopPrice"])
        fills = await conn.fetch(f"select trade_id from {schema}.fills")
        assert sorted(str(f["trade_id"]) for f in fills) == sorted(str(t["id"]) for t in venue.all_trades())
        assert await conn.fetchval(f"select quantity from {schema}.positions where instrument = $1", SYMBOL) == 0
    finally:
        await conn.close()
