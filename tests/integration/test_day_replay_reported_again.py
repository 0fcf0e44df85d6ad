"""A fill the venue reports again after a UTC day boundary is counted once by a replay of that day alone too.

The live projection knows every fill it stored, so a second report (a new event id, the same venue trade id) is
skipped there. A replay of one day starts from the day's snapshots and has not seen the earlier days' fills: an
order's snapshot (``OpenOrderSnapshot`` v2) carries the trade ids of the fills applied to it, and the projection
keeps them with the order (``orders.trade_ids``). A second report of a fill of an order that ended before the day
is of an order the day's replay has not seen (not in its snapshots, so it ended before the day): it is skipped and
logged as such, and not stored: ``fills`` holds the fills applied to their order, so the day's rows are the same
either way.

The log is made here (the paper venue never reports a fill twice); its day snapshots are the engine's own, from
folding the first day's order events with the engine's trader. The reference is a replay of the whole log, which
folds it as the live projection does: each day's snapshots are then checked against the state, not used.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from structlog.testing import capture_logs

from adapters.kafka import EventProducer, ensure_topics
from adapters.postgres import create_pool
from engine.core.risk import RiskLimits
from engine.core.snapshots import snapshots
from engine.core.strategies import MaCross
from engine.core.trader import Trader
from events import (
    Envelope,
    Event,
    Liquidity,
    OpenOrderSnapshot,
    OrderAccepted,
    OrderFilled,
    OrderSubmitted,
    OrderType,
    Side,
    TickReceived,
    Topics,
)
from projections.replay import diff, replay
from tests.support import unique

pytestmark = pytest.mark.servers

DAY1, DAY2 = date(2026, 3, 9), date(2026, 3, 10)
ETH = "ETH/USDT"


def _ns(day: date, hour: int) -> int:
    return int(datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp()) * 1_000_000_000


def _fill(coid: str, trade_id: str, quantity: str, cumulative: str, ordered: str) -> OrderFilled:
    return OrderFilled(
        instrument=ETH,
        client_order_id=coid,
        venue="paper",
        venue_order_id=f"v-{coid}",
        trade_id=trade_id,
        side=Side.BUY,
        quantity=Decimal(quantity),
        price=Decimal("3000.5"),
        fee=Decimal("0.75"),
        fee_currency="USDT",
        liquidity=Liquidity.TAKER,
        cumulative_quantity=Decimal(cumulative),
        leaves_quantity=Decimal(ordered) - Decimal(cumulative),
    )


def _orders(coid: str, quantity: str) -> list[Event]:
    return [
        OrderSubmitted(
            instrument=ETH,
            client_order_id=coid,
            strategy="ma_cross",
            side=Side.BUY,
            order_type=OrderType.MARKET,
            quantity=Decimal(quantity),
        ),
        OrderAccepted(instrument=ETH, client_order_id=coid, venue="paper", venue_order_id=f"v-{coid}"),
    ]


def _log() -> list[Envelope]:
    """Day 1: order o-1 (1.0) filled by 0.25 (T-1) and left working; order o-2 (0.5) filled whole (T-2).
    Day 2: the engine's snapshots; T-1 and T-2 reported again; T-3 fills the rest of o-1."""
    tick = TickReceived(
        instrument=ETH, venue="paper", trade_id="t", price=Decimal("3000.5"), quantity=Decimal("0.1"), side=Side.BUY
    )
    t1, t2 = _fill("o-1", "T-1", "0.25", "0.25", "1.0"), _fill("o-2", "T-2", "0.5", "0.5", "0.5")
    day1: list[Event] = [tick, *_orders("o-1", "1.0"), t1, *_orders("o-2", "0.5"), t2]
    trader = Trader(MaCross.of(3, 8, Decimal("1")), RiskLimits(Decimal(10**9), Decimal(10**9)))
    state = trader.initial(ETH)
    envs = []
    for i, ev in enumerate(day1):
        ts = _ns(DAY1, 10) + i
        state = trader.on_event(state, ev, ts)
        envs.append(Envelope.new(ev, ts_event=ts, ts_init=ts, source="test"))
    day2 = [*snapshots(state, DAY2.isoformat()), tick, t1, t2, _fill("o-1", "T-3", "0.75", "1.0", "1.0"), tick]
    envs += [
        Envelope.new(ev, ts_event=_ns(DAY2, 9) + i, ts_init=_ns(DAY2, 9) + i, source="test")
        for i, ev in enumerate(day2)
    ]
    return envs


async def test_a_fill_reported_again_after_midnight_counts_once_in_a_replay_of_the_day(servers: Any) -> None:
    topics = Topics(unique("again") + ".")
    await ensure_topics(servers.kafka_bootstrap, 1, topics)
    envs = _log()
    (open_order,) = [e.event for e in envs if isinstance(e.event, OpenOrderSnapshot)]
    assert (open_order.client_order_id, open_order.trade_ids) == ("o-1", ("T-1",))  # what the engine wrote
    async with EventProducer(servers.kafka_bootstrap, topics) as producer:
        await producer.publish(envs)

    whole, day = unique("whole"), unique("day2")
    await replay(servers.kafka_bootstrap, servers.pg_dsn, servers.pg_dsn, whole, topics=topics, progress=False)
    with capture_logs() as logs:
        await replay(
            servers.kafka_bootstrap, servers.pg_dsn, servers.pg_dsn, day, topics=topics, progress=False, day=DAY2
        )
    # T-2's order ended before the day: its second report is known as such, not taken for an invalid transition
    assert [(e["event"], e["client_order_id"]) for e in logs if e["event"].startswith("audit.order")] == [
        ("audit.order_before_range", "o-2")
    ]
    assert not [e for e in logs if e["log_level"] in ("error", "critical")], logs

    pool = await create_pool(servers.pg_dsn)
    try:
        for schema in (whole, day):
            pos = await pool.fetchrow(f"select quantity, fills, fees from {schema}.positions")
            assert tuple(pos) == (Decimal("1.5"), 3, Decimal("2.25")), schema
            order = await pool.fetchrow(
                f"select status, filled_quantity, fees, trade_ids from {schema}.orders where client_order_id = 'o-1'"
            )
            assert tuple(order) == ("filled", Decimal("1.0"), Decimal("1.50"), ["T-1", "T-3"]), schema
            eth = await pool.fetchval(f"select sum(delta) from {schema}.balance_changes where currency = 'ETH'")
            assert eth == (Decimal("1.5") if schema == whole else Decimal("0.75")), schema
        assert await pool.fetchval(f"select count(*) from {whole}.system_events where type = 'SnapshotMismatch'") == 0
        assert [r[0] for r in await pool.fetch(f"select trade_id from {day}.fills order by 1")] == ["T-3"]
    finally:
        await pool.close()
    differences = await diff(servers.pg_dsn, whole, day, day=DAY2)
    assert not any(differences.values()), {t: lines for t, lines in differences.items() if lines}
