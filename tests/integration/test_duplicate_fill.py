"""A fill delivered twice is stored once and counted once, even under another event id."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from adapters.kafka import EventProducer, ensure_topics
from adapters.postgres import create_pool
from events import Envelope, Liquidity, OrderAccepted, OrderFilled, OrderSubmitted, OrderType, Side, Topics
from projections.audit import create_schema
from tests.support import project_until, unique

pytestmark = pytest.mark.servers


@pytest.mark.parametrize(("ordered", "status"), [("0.5", "filled"), ("1.0", "partially_filled")])
async def test_a_fill_delivered_twice_is_stored_once(servers: Any, ordered: str, status: str) -> None:
    """Both deliveries in one batch, and the order filled by the fill or only in part: a duplicate of a partial fill
    is not caught by the order's own bound (a fill beyond its quantity), only by the trade id."""
    topics = Topics(unique("dup") + ".")
    schema = unique("dup")
    await ensure_topics(servers.kafka_bootstrap, 1, topics)
    now = time.time_ns()
    common = {"instrument": "ETH/USDT", "client_order_id": "o-1"}
    fill = OrderFilled(
        **common,
        venue="paper",
        venue_order_id="v-1",
        trade_id="T-77",
        side=Side.BUY,
        quantity=Decimal("0.5"),
        price=Decimal("3000.25"),
        fee=Decimal("1.5"),
        fee_currency="USDT",
        liquidity=Liquidity.TAKER,
        cumulative_quantity=Decimal("0.5"),
        leaves_quantity=Decimal("0"),
    )
    events = [
        OrderSubmitted(**common, strategy="s", side=Side.BUY, order_type=OrderType.MARKET, quantity=Decimal(ordered)),
        OrderAccepted(**common, venue="paper", venue_order_id="v-1"),
        fill,
        fill,  # the venue reported it again: a new event, a new event id, the same venue trade id
    ]
    envs = [Envelope.new(e, ts_event=now + i, ts_init=now + i, source="test") for i, e in enumerate(events)]
    assert envs[2].event_id != envs[3].event_id
    async with EventProducer(servers.kafka_bootstrap, topics) as producer:
        await producer.publish(envs)
        await producer.publish(envs[2:3])  # and the very same event re-published, as after a crash

    pool = await create_pool(servers.pg_dsn)
    try:
        await create_schema(pool, schema)
        await project_until(servers.kafka_bootstrap, pool, schema, topics, topics.trading, 5)
        assert await pool.fetchval(f"select count(*) from {schema}.events") == 4  # the re-published one once
        assert await pool.fetchval(f"select count(*) from {schema}.fills") == 1
        pos = await pool.fetchrow(f"select quantity, fees, fills from {schema}.positions")
        assert tuple(pos) == (Decimal("0.5"), Decimal("1.5"), 1)
        order = await pool.fetchrow(f"select status, filled_quantity, fees from {schema}.orders")
        assert tuple(order) == (status, Decimal("0.5"), Decimal("1.5"))
        assert await pool.fetchval(f"select count(*) from {schema}.order_events where type = 'OrderFilled'") == 1
        assert await pool.fetchval(
            f"select sum(delta) from {schema}.balance_changes where currency = 'ETH'"
        ) == Decimal("0.5")
    finally:
        await pool.close()
