"""An input the trading core cannot take is dead-lettered with the reason and trading goes on, live and in a
recovery of the same partition."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest

from adapters.kafka import EventProducer, ensure_topics
from engine.app import make_core_factory
from engine.config import load
from engine.core.trading import TradingCore
from engine.loop import TradingLoop
from events import Envelope, Side, TickReceived, Topics
from tests.support import unique, wait_for

pytestmark = pytest.mark.servers


class Fragile(TradingCore):
    """A core with a bug that one input reveals: it raises on the trade "boom"."""

    def on_input(self, env: Envelope, *, ts_init: int, halted: bool = False) -> list[Envelope]:
        if isinstance(env.event, TickReceived) and env.event.trade_id == "boom":
            raise ArithmeticError("division by zero in the strategy")
        return super().on_input(env, ts_init=ts_init, halted=halted)


def _ticks(n: int) -> list[Envelope]:
    now = time.time_ns()
    out = []
    for i in range(n):
        ev = TickReceived(
            instrument="BTC/USDT",
            venue="test",
            trade_id="boom" if i == 7 else f"t{i}",
            price=Decimal(100 + (i % 5)),
            quantity=Decimal("0.01"),
            side=Side.BUY,
        )
        out.append(Envelope.of_trade(ev, ts_event=now + i, ts_init=now + i, source="test"))
    return out


async def _loop_until(settings: Any, topics: Topics, producer: EventProducer, records: int) -> TradingLoop:
    base = make_core_factory(settings)

    def fragile() -> TradingCore:
        core = base()
        return Fragile(core.trader, core.venue)

    loop = TradingLoop(settings.kafka.bootstrap, producer, fragile, topics)
    await loop.start()
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        await loop.wait_assigned(60)

        async def taken() -> bool:
            return sum(loop.positions.values()) >= records

        await wait_for(taken, 60, f"the engine to take and commit {records} records")
    finally:
        stop.set()
        await task
        await loop.stop()
    return loop


async def test_an_input_the_core_cannot_take_is_parked_once_and_the_next_ticks_are_traded(servers: Any) -> None:
    from benchmarks.faults import dead_letters

    topics = Topics(unique("corefail") + ".")
    settings = load(kafka={"bootstrap": servers.kafka_bootstrap, "topic_prefix": topics.prefix, "partitions": 1})
    await ensure_topics(servers.kafka_bootstrap, 1, topics)
    async with EventProducer(servers.kafka_bootstrap, topics) as producer:
        await producer.publish(_ticks(40))
        first = await _loop_until(settings, topics, producer, 40)
        assert first.failed_inputs == 1 and first.ticks_processed == 40
        # a new engine of the group recovers the partition through the same record: it skips it, parks nothing
        await producer.publish(_ticks(1))  # one more tick, so that the second engine has work after its recovery
        second = await _loop_until(settings, topics, producer, 41)
        assert second.failed_inputs == 0
    parked = await dead_letters(servers.kafka_bootstrap, topics)
    assert [(c, o) for c, _, _, o, _ in parked] == [(topics.group("engine"), 7)]
    assert "the trading core could not take it: ArithmeticError('division by zero in the strategy')" in parked[0][4]
