"""The audit projection's reading of an open order's day snapshot: it seeds a schema that starts at the day (with the
trade ids of the order's earlier fills), and is checked against the folded order otherwise."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from engine.core.orders import Order, OrderStatus
from events import Envelope, OpenOrderSnapshot, OrderType, Side
from projections.audit.projection import AuditProjection, _Batch

SNAP = OpenOrderSnapshot(
    instrument="ETH/USDT",
    day="2026-03-10",
    client_order_id="o-1",
    strategy="s",
    side=Side.BUY,
    order_type=OrderType.MARKET,
    quantity=Decimal("1.0"),
    status="partially_filled",
    venue_order_id="v-1",
    filled_quantity=Decimal("0.25"),
    filled_notional=Decimal("750"),
    fees=Decimal("0.75"),
    trade_ids=("T-1",),
)
FOLDED = Order(
    "o-1",
    "ETH/USDT",
    "s",
    Side.BUY,
    OrderType.MARKET,
    Decimal("1.0"),
    None,
    OrderStatus.PARTIALLY_FILLED,
    "v-1",
    Decimal("0.25"),
    Decimal("750"),
    Decimal("0.75"),
    trade_ids=frozenset({"T-1"}),
)


def _check(snap: OpenOrderSnapshot, orders: dict[str, Order]) -> list[str]:
    """The kinds of system events the check records."""
    batch = _Batch()
    AuditProjection("audit")._check_order(
        Envelope.new(snap, ts_event=1, ts_init=1, source="engine"), snap, orders, batch
    )
    return [row[1] for row in batch.system_events]


def test_a_snapshot_seeds_an_order_the_schema_does_not_have_with_its_trade_ids() -> None:
    orders: dict[str, Order] = {}
    assert _check(SNAP, orders) == []
    assert orders["o-1"] == FOLDED


def test_a_snapshot_that_differs_from_the_folded_order_is_recorded() -> None:
    assert _check(SNAP, {"o-1": FOLDED}) == []
    assert _check(replace(SNAP, trade_ids=("T-1", "T-2")), {"o-1": FOLDED}) == ["SnapshotMismatch"]
    assert _check(replace(SNAP, filled_quantity=Decimal("0.5")), {"o-1": FOLDED}) == ["SnapshotMismatch"]


def test_an_upcast_v1_snapshot_is_checked_without_trade_ids() -> None:
    """v1 did not record them (None): the rest must still match."""
    assert _check(replace(SNAP, trade_ids=None), {"o-1": FOLDED}) == []
    assert _check(replace(SNAP, trade_ids=None, fees=Decimal(1)), {"o-1": FOLDED}) == ["SnapshotMismatch"]
