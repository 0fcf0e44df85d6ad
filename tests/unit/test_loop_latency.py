"""The trading loop's latency observations with the producer as a plain object (no Kafka): one tick-to-decision
observation per order decision, measured from the input's ts_init; one decision-to-ack observation when the broker
acknowledges it, none for a failed send, and after an outage the acknowledgement of the resend, measured from the
decision (the outage included). Only order decisions are observed; the events are not touched."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY

from engine.loop import TradingLoop, _Latency
from events import Envelope, OrderSubmitted, OrderType, Side, TickReceived, Topics

INSTRUMENT = "LTA/LTB"  # this test's only: the histograms are the process's


def count(name: str, instrument: str = INSTRUMENT) -> float:
    return REGISTRY.get_sample_value(f"{name}_count", {"instrument": instrument}) or 0.0


def total(name: str, instrument: str = INSTRUMENT) -> float:
    return REGISTRY.get_sample_value(f"{name}_sum", {"instrument": instrument}) or 0.0


def order(instrument: str = INSTRUMENT) -> Envelope:
    tick = Envelope.of_trade(
        TickReceived(
            instrument=instrument, venue="t", trade_id="1", price=Decimal(1), quantity=Decimal(1), side=Side.BUY
        ),
        ts_event=1,
        ts_init=1,
        source="test",
    )
    submitted = OrderSubmitted(
        instrument=instrument,
        client_order_id="c1",
        strategy="s",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(1),
    )
    return tick.derive(submitted, 0, ts_init=2, source="engine")


class FlakyProducer:
    """Hands out futures; the first ``fail`` of them fail with an outage after ``delay`` seconds, the others succeed."""

    def __init__(self, fail: int, delay: float) -> None:
        self.fail, self.delay, self.sent = fail, delay, 0

    async def enqueue(self, env: Envelope, topic: str | None = None) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent += 1
        if self.sent <= self.fail:
            asyncio.get_running_loop().call_later(self.delay, fut.set_exception, KafkaConnectionError("down"))
        else:
            fut.set_result(None)
        return fut


def test_a_decision_is_observed_from_its_inputs_record_time_and_acknowledged_once() -> None:
    latency = _Latency()
    before = (count("engine_tick_to_decision_seconds"), total("engine_tick_to_decision_seconds"))
    acked_before = count("engine_decision_to_ack_seconds")
    now_ns = 5_000_000_000
    acked = latency.decided(INSTRUMENT, now_ns - 3_000_000, now_ns, time.perf_counter())  # 3 ms after its record
    assert count("engine_tick_to_decision_seconds") == before[0] + 1
    assert abs(total("engine_tick_to_decision_seconds") - before[1] - 0.003) < 1e-9
    loop = asyncio.new_event_loop()
    try:
        failed: asyncio.Future[Any] = loop.create_future()
        failed.set_exception(KafkaConnectionError("down"))
        acked(failed)  # a failed send is not an acknowledgement
        assert count("engine_decision_to_ack_seconds") == acked_before
        ok: asyncio.Future[Any] = loop.create_future()
        ok.set_result(None)
        acked(ok)
        assert count("engine_decision_to_ack_seconds") == acked_before + 1
        # an input whose record time is ahead of this clock (another machine's) counts as 0, never negative
        latency.decided(INSTRUMENT, now_ns + 10**9, now_ns, time.perf_counter())
        assert abs(total("engine_tick_to_decision_seconds") - before[1] - 0.003) < 1e-9
    finally:
        loop.close()


async def test_after_an_outage_the_resends_acknowledgement_is_observed_from_the_decision() -> None:
    producer = FlakyProducer(fail=1, delay=0.05)
    loop = TradingLoop("127.0.0.1:1", producer, lambda: None, Topics("t_latency."))  # type: ignore[arg-type,return-value]
    env = order()
    acked_before = (count("engine_decision_to_ack_seconds"), total("engine_decision_to_ack_seconds"))
    decided_at = time.perf_counter()
    try:
        acked = loop._latency.decided(INSTRUMENT, env.ts_init, time.time_ns(), decided_at)
        await loop._send(env, None, acked)
        await loop.flush()  # the first send fails (an outage): waited out, sent again, acknowledged
        waited = time.perf_counter() - decided_at
    finally:
        await loop.stop()  # its consumers were never started: closed, no broker asked
    assert producer.sent == 2
    assert count("engine_decision_to_ack_seconds") == acked_before[0] + 1  # once, for the resend
    observed = total("engine_decision_to_ack_seconds") - acked_before[1]
    assert 0.05 <= observed <= waited  # from the decision, through the outage, to the acknowledgement
    assert loop.events_published == 1
