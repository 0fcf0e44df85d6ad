"""The audit projection's rows do not depend on how the log is cut into batches.

A log with partial fills, fills the venue reported twice (under new event ids, right after the first report and
much later), an order cancelled after a partial fill (its cancel reported twice), an order the venue rejected (reported
twice) and events re-published as after a crash is replayed with batches of 3, 17 and 20,000 records: every
table is equal, and counts each fill once. A duplicate inside one batch and one split across batches take
different paths through the projection (one statement's ``ON CONFLICT`` against the batch's own rows, or against
rows stored before); both must come out the same.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from adapters.kafka import EventProducer, ensure_topics
from adapters.postgres import create_pool
from events import (
    Envelope,
    Event,
    Liquidity,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRequested,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    Side,
    TickReceived,
    Topics,
)
from projections.replay import diff, replay
from tests.support import unique

pytestmark = pytest.mark.servers

FILL = Decimal("0.25")
FEE = Decimal("0.5")


def _log() -> tuple[list[Event], int]:
    """Three orders of 1.0 filled in four parts of 0.25 (buy, sell, buy), with ticks between; fill 2 of each order
    reported again at once and fill 3 again after the next order's events; then a sell of 1.0 filled by 0.25 and
    cancelled, and a buy the venue rejected. Returns the events and the number of distinct fills."""
    events: list[Event] = []
    late: list[OrderFilled] = []
    price = Decimal("3000")
    for n, side in enumerate((Side.BUY, Side.SELL, Side.BUY), start=1):
        common = {"instrument": "ETH/USDT", "client_order_id": f"o-{n}"}
        events += [
            OrderSubmitted(**common, strategy="s", side=side, order_type=OrderType.MARKET, quantity=Decimal("1.0")),
            OrderAccepted(**common, venue="paper", venue_order_id=f"v-{n}"),
        ]
        events += late
        late = []
        for part in range(1, 5):
            price += Decimal("1.5")
            events.append(
                TickReceived(
                    instrument="ETH/USDT",
                    venue="paper",
                    trade_id=f"t-{n}-{part}",
                    price=price,
                    quantity=Decimal("0.1"),
                    side=side,
                )
            )
            fill = OrderFilled(
                **common,
                venue="paper",
                venue_order_id=f"v-{n}",
                trade_id=f"T-{n}-{part}",
                side=side,
                quantity=FILL,
                price=price,
                fee=FEE,
                fee_currency="USDT",
                liquidity=Liquidity.TAKER,
                cumulative_quantity=FILL * part,
                leaves_quantity=Decimal("1.0") - FILL * part,
            )
            events.append(fill)
            if part == 2:
                events.append(fill)  # reported again at once: a new event, a new event id, the same trade id
            if part == 3:
                late.append(fill)  # reported again after the next order's first events
    events += late
    common = {"instrument": "ETH/USDT", "client_order_id": "o-4"}
    fill = OrderFilled(
        **common,
        venue="paper",
        venue_order_id="v-4",
        trade_id="T-4-1",
        side=Side.SELL,
        quantity=FILL,
        price=price,
        fee=FEE,
        fee_currency="USDT",
        liquidity=Liquidity.TAKER,
        cumulative_quantity=FILL,
        leaves_quantity=Decimal("0.75"),
    )
    cancelled = OrderCancelled(**common, venue="paper", reason="by the strategy", filled_quantity=FILL)
    events += [
        OrderSubmitted(**common, strategy="s", side=Side.SELL, order_type=OrderType.MARKET, quantity=Decimal("1.0")),
        OrderAccepted(**common, venue="paper", venue_order_id="v-4"),
        fill,
        fill,
        OrderCancelRequested(**common, reason="by the strategy"),
        cancelled,
        cancelled,
    ]
    common = {"instrument": "ETH/USDT", "client_order_id": "o-5"}
    submitted = OrderSubmitted(
        **common, strategy="s", side=Side.BUY, order_type=OrderType.MARKET, quantity=Decimal("1.0")
    )
    rejected = OrderRejected(
        **common,
        strategy="s",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal("1.0"),
        by="venue",
        rule="venue",
        reason="insufficient balance",
    )
    events += [submitted, rejected, rejected]
    return events, 13


async def test_replays_cut_into_different_batches_are_equal(servers: Any) -> None:
    topics = Topics(unique("batches") + ".")
    await ensure_topics(servers.kafka_bootstrap, 1, topics)
    events, fills = _log()
    now = time.time_ns()
    envs = [Envelope.new(e, ts_event=now + i, ts_init=now + i, source="test") for i, e in enumerate(events)]
    async with EventProducer(servers.kafka_bootstrap, topics) as producer:
        await producer.publish(envs)
        await producer.publish(envs[5:12])  # the very same events again, as after a crash

    schemas = {batch: unique(f"b{batch}") for batch in (3, 17, 20000)}
    for batch, schema in schemas.items():
        res = await replay(
            servers.kafka_bootstrap, servers.pg_dsn, servers.pg_dsn, schema, topics=topics, progress=False, batch=batch
        )
        assert res.events == len(envs) + 7

    pool = await create_pool(servers.pg_dsn)
    try:
        for schema in schemas.values():
            assert await pool.fetchval(f"select count(*) from {schema}.fills") == fills
            # every position change is that of a stored fill (not of a second report of one)
            assert (
                await pool.fetchval(
                    f"select count(*) from {schema}.position_changes join {schema}.fills using (event_id)"
                )
                == fills
            ), schema
            pos = await pool.fetchrow(f"select quantity, fees, fills from {schema}.positions")
            assert tuple(pos) == (Decimal("0.75"), FEE * fills, fills), schema
            orders = await pool.fetch(
                f"select client_order_id, status, filled_quantity from {schema}.orders order by 1"
            )
            assert [tuple(o) for o in orders] == [
                *((f"o-{n}", "filled", Decimal("1.0")) for n in (1, 2, 3)),
                ("o-4", "cancelled", FILL),
                ("o-5", "rejected", Decimal(0)),
            ], schema
    finally:
        await pool.close()
    first, *others = schemas.values()
    for schema in others:
        differences = await diff(servers.pg_dsn, first, schema)
        assert not any(differences.values()), {t: lines for t, lines in differences.items() if lines}
