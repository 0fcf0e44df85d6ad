"""The daily loss limit holds for the whole account when engines share the instruments: an engine trips the breaker
on a loss made by the instruments of another engine, which it learns from that engine's reports in the log."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest

from adapters.kafka import EventProducer, ensure_topics, make_consumer
from engine.app import make_core_factory
from engine.config import load
from engine.core import daily_loss
from engine.loop import TradingLoop
from events import Envelope, EquityReported, Side, TickReceived, Topics, TradingHalted, decode
from tests.support import unique, wait_for

pytestmark = pytest.mark.servers


def _tick(instrument: str, price: str, n: int) -> Envelope:
    now = time.time_ns()
    return Envelope.new(
        TickReceived(
            instrument=instrument,
            venue="test",
            trade_id=str(n),
            price=Decimal(price),
            quantity=Decimal("0.01"),
            side=Side.BUY,
        ),
        ts_event=now,
        ts_init=now,
        source="test",
    )


async def test_an_engine_trips_the_account_wide_limit_on_a_loss_another_engine_reported(servers: Any) -> None:
    topics = Topics(unique("dlx") + ".")
    await ensure_topics(servers.kafka_bootstrap, 4, topics)
    settings = load()
    control = make_consumer(servers.kafka_bootstrap, [topics.control], group_id=None, client_id="test-control")
    await control.start()
    async with EventProducer(servers.kafka_bootstrap, topics) as producer:
        # engine A (not running here) owns ETH/USDT: long 0.1 bought at 3000, now at 2100: -90 of the account's 1000
        flows = (("ETH", Decimal("0.1")), ("USDT", Decimal("-300")))
        eth = daily_loss.View(
            "ETH/USDT", time.strftime("%Y-%m-%d", time.gmtime()), Decimal("2100"), flows, Decimal("3000"), flows
        )
        now = time.time_ns()
        await producer.publish([Envelope.new(daily_loss.report(eth), ts_event=now, ts_init=now, source="engine")])
        # engine B owns BTC/USDT, flat: alone it has lost nothing
        loop = TradingLoop(
            servers.kafka_bootstrap,
            producer,
            make_core_factory(settings),
            topics,
            starting_balances={"USDT": Decimal("1000")},
            daily_loss_limit=Decimal("0.08"),
        )
        await loop.start()
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        seen: list[Envelope] = []
        try:
            await loop.wait_assigned(60)
            await producer.publish([_tick("BTC/USDT", "60000", 1)])

            async def halted() -> bool:
                for msgs in (await control.getmany(timeout_ms=200)).values():
                    seen.extend(decode(m.value) for m in msgs)
                return any(isinstance(e.event, TradingHalted) for e in seen)

            await wait_for(halted, 60, "engine B to trip the breaker on the account's loss")
        finally:
            stop.set()
            await task
            await loop.stop()
            await control.stop()
    (halt,) = [e.event for e in seen if isinstance(e.event, TradingHalted)]
    assert halt.by == "risk:daily_loss_limit" and "9.0000%" in halt.reason, halt
    # and B told the others what its own instrument adds: BTC at 60000, no fills
    (own,) = [e.event for e in seen if isinstance(e.event, EquityReported) and e.event.instrument == "BTC/USDT"]
    assert (own.price, own.flows) == (Decimal("60000"), "{}")
