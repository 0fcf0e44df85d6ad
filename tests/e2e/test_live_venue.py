"""`python -m engine run` against a live venue (ccxt's real binance code, pointed at local fakes), with faults.

The fakes speak Binance's REST API (orders signed with HMAC, checked) and its trade stream. During one run
the test injects, one after another: an order answer lost after the venue accepted it, a 429 burst, every
trade listed twice, new orders invisible to lookups for a while, and a dropped trade stream. Afterwards:
exactly one venue order per client order id, every venue trade stored once, the position equals what the
venue's balances moved, the connection loss is recorded, the projection equals a fresh replay of the log,
and the API key and secret appear nowhere the engine wrote (its output, every Kafka record, every audit
row, /metrics).
"""

from __future__ import annotations

import asyncio
import random
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from adapters.kafka import LogInspector, make_consumer
from events import Topics
from tests.e2e.binance_engine import ccxt_binance_settings, sigterm_and_wait
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_stream import FakeBinanceMarket
from tests.support import engine_env, run_cli, start_cli, unique, wait_for

pytestmark = pytest.mark.servers

CANARY_KEY = "canaryKEY-7f3a9c1e5b2d4f60a8b9c0d1e2f3a4b5"
CANARY_SECRET = "canarySECRET-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
SYMBOL = "BTC/USDT"


class Market:
    """Prints trades on the fake market (a random walk) and keeps the fake venue's price in step."""

    def __init__(self, market: FakeBinanceMarket, venue: FakeBinance) -> None:
        self.market, self.venue = market, venue
        self.price = Decimal("60000.00")
        self.rng = random.Random(11)
        self.printed = 0

    async def run(self, stop: asyncio.Event, per_second: float = 40) -> None:
        while not stop.is_set():
            self.price = max(Decimal("1.00"), self.price + Decimal(self.rng.randint(-300, 300)) / 10)
            self.venue.set_price(SYMBOL, self.price)
            await self.market.trade(SYMBOL, self.price, Decimal("0.05"), buyer_maker=self.rng.random() < 0.5)
            self.printed += 1
            await asyncio.sleep(1 / per_second)


async def test_live_trading_through_ccxt_survives_venue_faults_exactly_once(servers: Any, tmp_path: Path) -> None:
    venue = FakeBinance(
        api_key=CANARY_KEY,
        secret=CANARY_SECRET,
        balances={"USDT": Decimal("100000"), "BTC": Decimal("0"), "ETH": Decimal("0")},
    )
    market = FakeBinanceMarket()
    venue_url = await venue.start()
    rest_url, ws_url = await market.start()
    pump_stop = asyncio.Event()
    pump = Market(market, venue)
    pump_task = asyncio.create_task(pump.run(pump_stop))
    prefix, schema = unique("live"), unique("live")
    env = engine_env(
        servers,
        prefix,
        schema,
        {
            **ccxt_binance_settings(
                SYMBOL, rest_url=rest_url, ws_url=ws_url, venue_url=venue_url, key=CANARY_KEY, secret=CANARY_SECRET
            ),
            "ENGINE_VENUE__TIMEOUT": "1",
            "ENGINE_EXECUTION__CONFIRM_TIMEOUT": "8",
            "ENGINE_EXECUTION__RECONCILE_INTERVAL": "2",
            "ENGINE_STRATEGY__FAST": "3",
            "ENGINE_STRATEGY__SLOW": "8",
            "ENGINE_RISK__MAX_ORDERS_PER_MINUTE": "1000",
            "ENGINE_RISK__MAX_OPEN_ORDERS": "5",
        },
    )
    log = tmp_path / "engine.log"
    engine = start_cli(["run"], env, log)
    metrics_text = ""
    try:

        def alive() -> None:
            assert engine.poll() is None, log.read_text()[-4000:]

        def created() -> int:
            return sum(1 for m, p in venue.requests if m == "POST" and p.endswith("/order"))

        async def more_orders(what: str, n: int = 2) -> None:
            target = created() + n

            async def reached() -> bool:
                alive()
                return created() >= target

            await wait_for(reached, 90, what)

        await more_orders("three orders at the venue", 3)
        # 1. the venue takes an order but its answer comes after the client gave up (and lookups miss it a while)
        venue.hide_new_orders(2.0)
        venue.delay_responses_after_accept(1, 3.0)
        await more_orders("orders after a lost answer")
        # 2. a burst of 429s
        venue.rate_limit(6)
        await more_orders("orders after a 429 burst")
        # 3. every trade listed twice
        venue.duplicate_trades(True)
        await more_orders("orders while trades are listed twice")
        venue.duplicate_trades(False)
        # 4. the trade stream drops and refuses to come back for a while
        market.refuse_streams(True)
        await market.disconnect_streams()
        await asyncio.sleep(1.5)  # the outage itself (trades keep printing meanwhile)
        market.refuse_streams(False)
        await more_orders("orders after the stream came back")
        m = re.search(r'"url": "(http://127\.0\.0\.1:\d+)/metrics"', log.read_text())
        assert m, log.read_text()[-3000:]
        async with aiohttp.ClientSession() as http, http.get(f"{m.group(1)}/metrics") as r:
            metrics_text = await r.text()
    finally:
        pump_stop.set()
        await pump_task
        code = await sigterm_and_wait(engine, 180)
    output = log.read_text()
    assert code == 0, output[-4000:]

    try:
        # exactly one venue order per client order id, and the engine knows every one of them
        coids = {o["clientOrderId"] for o in venue.all_orders()}
        assert len(coids) >= 11
        for coid in coids:
            assert len(venue.orders_by_client_id(coid)) == 1, coid
        conn = await asyncpg.connect(servers.pg_dsn)
        try:
            rows = await conn.fetch(
                f"select client_order_id, status, filled_quantity from {schema}.orders "
                "where status <> 'rejected' or reject_rule <> 'halted'"
            )
            audit_orders = {r["client_order_id"]: r for r in rows}
            for o in venue.all_orders():
                a = audit_orders.get(o["clientOrderId"])
                assert a is not None, f"venue order {o} is not in the audit"
                assert a["filled_quantity"] == Decimal(o["executedQty"]), (o, dict(a))
            # every venue trade stored once; the position is what the venue's balances moved
            venue_trades = {t["id"] for t in venue.all_trades()}
            fills = await conn.fetch(f"select trade_id, quantity from {schema}.fills")
            assert sorted(str(f["trade_id"]) for f in fills) == sorted(str(t) for t in venue_trades)
            position = await conn.fetchval(f"select quantity from {schema}.positions where instrument = $1", SYMBOL)
            assert position == venue.balances()["BTC"]
            # the outage is on record
            states = [
                r["detail"]
                for r in await conn.fetch(
                    f"select detail::text as detail from {schema}.system_events where type = 'ConnectionChanged' "
                    "order by ts_event"
                )
            ]
            assert any('"lost"' in s for s in states) and any('"restored"' in s for s in states), states
            # the live projection is exactly a fold of the log
            fresh = unique("check")
            assert run_cli(["replay", "--schema", fresh], env).returncode == 0
            res = run_cli(["diff", schema, fresh], env)
            assert res.returncode == 0, res.stdout[-4000:]
            # the credentials appear nowhere the engine wrote
            dump = [output, metrics_text]
            for table in ("events", "system_events", "order_events", "orders"):
                dump.extend(str(tuple(r)) for r in await conn.fetch(f"select * from {schema}.{table}"))
        finally:
            await conn.close()
        dump.extend(await _all_records(servers.kafka_bootstrap, Topics(prefix + ".")))
        text = "\n".join(dump)
        assert len(text) > 10_000
        for secret in (CANARY_KEY, CANARY_SECRET):
            assert secret not in text
            assert secret[8:24] not in text
    finally:
        await venue.stop()
        await market.stop()


async def _all_records(bootstrap: str, topics: Topics) -> list[str]:
    """Every record of the deployment's topics (key, value, headers), as text."""
    async with LogInspector(bootstrap) as inspector:
        tps = await inspector.partitions([topics.ticks, topics.trading, topics.control, topics.deadletter])
        ends = await inspector.end_offsets(tps)
    consumer = make_consumer(bootstrap, group_id=None, client_id="canary-check")
    await consumer.start()
    out: list[str] = []
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while any(pos < ends[tp] for tp, pos in [(tp, await consumer.position(tp)) for tp in tps]):
            for msgs in (await consumer.getmany(timeout_ms=1000)).values():
                out.extend(repr((m.key, m.value, m.headers)) for m in msgs)
    finally:
        await asyncio.shield(consumer.stop())
    return out
