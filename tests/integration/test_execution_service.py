"""The execution service against real Kafka and ccxt's binance code pointed at a fake Binance.

A restart never places an order twice; what happened at the venue while the service was down (an order it
did not know of, a fill it missed) is recorded by reconciliation; a stale command is not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from adapters.kafka import EventProducer, LogInspector, ensure_topics, make_consumer
from adapters.venues.base import Credentials
from adapters.venues.openalgo import OpenAlgoVenue
from engine.execution import ExecutionService, ExecutionSettings
from events import (
    Envelope,
    Event,
    OrderAccepted,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    ReconciliationDifference,
    Side,
    Topics,
    decode,
)
from tests.fakes.binance import FakeBinance, ccxt_venue_for
from tests.fakes.openalgo import FakeOpenAlgo
from tests.support import unique, wait_for

pytestmark = pytest.mark.servers

KEY, SECRET = "exec-test-key-0001", "exec-test-secret-0002"
FAST = ExecutionSettings(poll_interval=0.1, confirm_timeout=3, reconcile_interval=3600, retry_base=0.05)


def command(coid: str, qty: str = "0.01", *, age: float = 0) -> Envelope:
    order = OrderSubmitted(
        instrument="BTC/USDT",
        client_order_id=coid,
        strategy="ma_cross",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(qty),
    )
    now = time.time_ns() - int(age * 1e9)
    return Envelope.new(order, ts_event=now, ts_init=now, source="engine")


class Log:
    """Everything written to the deployment's input and control topics, decoded."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.consumer = make_consumer(bootstrap, [topics.ticks, topics.control], group_id=None, client_id="t")
        self.events: list[Event] = []

    async def __aenter__(self) -> Log:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def read(self) -> list[Event]:
        for msgs in (await self.consumer.getmany(timeout_ms=200)).values():
            self.events.extend(decode(m.value).event for m in msgs)
        return self.events

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@contextlib.asynccontextmanager
async def deployment(
    servers: Any, partitions: int = 1
) -> AsyncIterator[tuple[Topics, FakeBinance, EventProducer, Log]]:
    """Fresh topics, a fake Binance (10,000 USDT, BTC at 60,000), a producer and a reader of what is written."""
    topics = Topics(unique("exec") + ".")
    await ensure_topics(servers.kafka_bootstrap, partitions, topics)
    fake = FakeBinance(api_key=KEY, secret=SECRET, balances={"USDT": Decimal("10000"), "BTC": Decimal(0)})
    await fake.start()
    fake.set_price("BTC/USDT", Decimal("60000"))
    try:
        async with (
            EventProducer(servers.kafka_bootstrap, topics) as producer,
            Log(servers.kafka_bootstrap, topics) as log,
        ):
            yield topics, fake, producer, log
    finally:
        await fake.stop()


Running = tuple[ExecutionService, asyncio.Event, "asyncio.Task[None]"]


async def start_service(
    fake: FakeBinance, producer: EventProducer, bootstrap: str, topics: Topics, settings: ExecutionSettings = FAST
) -> Running:
    svc = ExecutionService(ccxt_venue_for(fake, api_key=KEY, secret=SECRET), producer, bootstrap, topics, settings)
    await svc.start()
    stop = asyncio.Event()
    return svc, stop, asyncio.create_task(svc.run(stop))


async def halt(svc: ExecutionService, stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await task
    await svc.stop()


async def test_a_restart_never_places_an_order_twice_and_reconciles_what_it_missed(servers: Any) -> None:
    async with deployment(servers, 2) as (topics, fake, producer, log):
        first = command("ma_cross-first")
        await producer.publish([first])
        svc, stop, task = await start_service(fake, producer, servers.kafka_bootstrap, topics)
        await wait_for(lambda: _has(log, OrderFilled, "ma_cross-first"), 30, "the first order filled")
        await halt(svc, stop, task)

        # while the service is down: the engine re-publishes the same command (a crash of its own), a second
        # command is placed at the venue but its answer never recorded, someone trades by hand
        await producer.publish([first])
        second = command("ma_cross-second")
        venue = ccxt_venue_for(fake, api_key=KEY, secret=SECRET)
        await venue.start()
        await venue.submit(second.event)  # type: ignore[arg-type]
        manual = OrderSubmitted(
            instrument="BTC/USDT",
            client_order_id="manual-1",
            strategy="by-hand",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=Decimal("0.01"),
            limit_price=Decimal("50000"),
        )
        await venue.submit(manual)
        await venue.close()
        await producer.publish([second])

        svc, stop, task = await start_service(fake, producer, servers.kafka_bootstrap, topics)
        await wait_for(lambda: _has(log, OrderFilled, "ma_cross-second"), 30, "the second order's fill recorded")
        await wait_for(svc_caught_up(svc, servers.kafka_bootstrap, topics), 30, "the service to handle every command")
        await halt(svc, stop, task)
        await log.read()

    assert len(fake.orders_by_client_id("ma_cross-first")) == 1
    assert len(fake.orders_by_client_id("ma_cross-second")) == 1
    unknown = [d for d in log.of(ReconciliationDifference) if d.kind == "unknown_order"]
    assert [d.client_order_id for d in unknown][:1] == ["manual-1"] and '"manual-1"' in unknown[0].raw
    accepted = {a.client_order_id for a in log.of(OrderAccepted)}
    assert accepted == {"ma_cross-first", "ma_cross-second"}
    fills = log.of(OrderFilled)
    assert len({f.trade_id for f in fills}) == len(
        {t["id"] for t in fake.all_trades() if t["clientOrderId"] != "manual-1"}
    )
    assert all(f.raw for f in fills) and all(a.raw for a in log.of(OrderAccepted))


async def test_a_command_older_than_the_limit_expires_unsent(servers: Any) -> None:
    async with deployment(servers) as (topics, fake, producer, log):
        await producer.publish([command("ma_cross-stale", age=120)])
        svc, stop, task = await start_service(fake, producer, servers.kafka_bootstrap, topics)
        await wait_for(lambda: _has(log, OrderExpired, "ma_cross-stale"), 30, "the stale order to expire")
        await halt(svc, stop, task)
    assert fake.orders_by_client_id("ma_cross-stale") == []
    (expired,) = log.of(OrderExpired)
    assert "max_command_age" in expired.reason


async def test_a_resend_refused_as_a_duplicate_adopts_the_first_order_instead_of_rejecting_it(servers: Any) -> None:
    async with deployment(servers) as (topics, fake, producer, log):
        # the first submit is taken but its answer comes after ccxt's 2 s timeout, and the new order stays invisible
        # to lookups (past the service's confirm_timeout) until the service resends it and Binance says "Duplicate
        # order sent."
        fake.delay_responses_after_accept(1, 4.0)
        fake.hide_new_orders_until_resent()
        await producer.publish([command("ma_cross-dup")])
        svc, stop, task = await start_service(fake, producer, servers.kafka_bootstrap, topics)
        await wait_for(lambda: _has(log, OrderFilled, "ma_cross-dup"), 30, "the order adopted and its fill")
        await halt(svc, stop, task)
        await log.read()
    assert len(fake.orders_by_client_id("ma_cross-dup")) == 1
    assert [a.client_order_id for a in log.of(OrderAccepted)] == ["ma_cross-dup"]
    assert log.of(OrderRejected) == []


async def test_an_order_open_at_the_venue_that_the_log_has_ended_is_cancelled_there(servers: Any) -> None:
    async with deployment(servers) as (topics, fake, producer, log):
        order = OrderSubmitted(
            instrument="BTC/USDT",
            client_order_id="ma_cross-given-up",
            strategy="ma_cross",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=Decimal("0.01"),
            limit_price=Decimal("50000"),
        )
        now = time.time_ns()
        cmd = Envelope.new(order, ts_event=now, ts_init=now, source="engine")
        await producer.publish([cmd])
        svc, stop, task = await start_service(fake, producer, servers.kafka_bootstrap, topics)
        await wait_for(lambda: _has(log, OrderAccepted, order.client_order_id), 30, "the order accepted")
        await halt(svc, stop, task)
        # the log ends the order (as when a lost submit was given up), yet the venue has it open
        given_up = OrderRejected(
            instrument="BTC/USDT",
            client_order_id=order.client_order_id,
            strategy="ma_cross",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=Decimal("0.01"),
            limit_price=Decimal("50000"),
            by="venue",
            rule="unconfirmed",
            reason="test",
        )
        await producer.publish([cmd.derive(given_up, 9, ts_init=time.time_ns(), source="engine")])
        svc, stop, task = await start_service(fake, producer, servers.kafka_bootstrap, topics)

        async def recorded() -> bool:
            await log.read()
            return any(d.kind == "ended_order_open" for d in log.of(ReconciliationDifference))

        await wait_for(recorded, 30, "reconciliation to record the order open at the venue")
        await halt(svc, stop, task)
    (diff,) = [d for d in log.of(ReconciliationDifference) if d.kind == "ended_order_open"]
    assert diff.client_order_id == order.client_order_id and '"ma_cross-given-up"' in diff.raw
    (placed,) = fake.orders_by_client_id(order.client_order_id)
    assert placed["status"] == "CANCELED" and fake.open_orders() == []


async def _has(log: Log, kind: type[Event], coid: str) -> bool:
    return any(getattr(e, "client_order_id", None) == coid for e in await log.read() if isinstance(e, kind))


def svc_caught_up(svc: ExecutionService, bootstrap: str, topics: Topics) -> Any:
    async def check() -> bool:
        async with LogInspector(bootstrap) as inspector:
            ends = await inspector.end_offsets(await inspector.partitions([topics.trading]))
        return svc.caught_up(ends)

    return check


async def test_a_venue_without_client_order_ids_is_handed_the_logs_acceptances_on_start(servers: Any) -> None:
    """OpenAlgo keeps ``client order id -> orderid`` in memory: after a restart the service gives it back the pairs
    of the log's ``OrderAccepted`` (RemembersOrderIds), so the order is found by its client order id again."""
    topics = Topics(unique("exec-oa") + ".")
    await ensure_topics(servers.kafka_bootstrap, 1, topics)
    key, name = "exec-oa-key-7c1d2e3f4a5b", unique("oa")
    fake = FakeOpenAlgo(key)
    await fake.start()
    try:
        fake.set_price("SBIN", Decimal("800"))
        order = OrderSubmitted(
            instrument="SBIN",
            client_order_id="ma_cross-oa-1",
            strategy="ma_cross",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=Decimal(1),
            limit_price=Decimal(700),
        )
        async with OpenAlgoVenue(fake.url, credentials=Credentials(key, ""), name=name) as before:
            placed = await before.submit(order)
        now = time.time_ns()
        submitted = Envelope.new(order, ts_event=now, ts_init=now, source="engine")
        accepted = Envelope.new(
            OrderAccepted(
                instrument="SBIN",
                client_order_id=order.client_order_id,
                venue=name,
                venue_order_id=placed.venue_order_id,
            ),
            ts_event=now,
            ts_init=now,
            source=f"venue:{name}",
        )
        async with EventProducer(servers.kafka_bootstrap, topics) as producer:
            await producer.publish([submitted], topics.trading)
            await producer.publish([accepted], topics.ticks)
            after = OpenAlgoVenue(fake.url, credentials=Credentials(key, ""), name=name)  # a restart: nothing known
            assert after.known_orders == {}
            svc = ExecutionService(after, producer, servers.kafka_bootstrap, topics, FAST)
            await svc.start()
            try:
                assert after.known_orders == {order.client_order_id: placed.venue_order_id}
                found = await after.fetch_order("SBIN", order.client_order_id)
                assert found.venue_order_id == placed.venue_order_id
            finally:
                await svc.stop()
                await svc.stop()  # safe twice (and the venue is closed once)
            assert len(fake.orders) == 1
    finally:
        await fake.stop()
