"""The order state machine and the position fold."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from engine.core import orders as om
from engine.core.orders import OrderStatus
from engine.core.portfolio import Position, apply_fill
from events import (
    Liquidity,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRequested,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    Side,
)

INSTR = "BTC/USDT"


def submitted(qty: str = "1", side: Side = Side.BUY, coid: str = "c1") -> OrderSubmitted:
    return OrderSubmitted(
        instrument=INSTR,
        client_order_id=coid,
        strategy="s",
        side=side,
        order_type=OrderType.LIMIT,
        quantity=D(qty),
        limit_price=D("100"),
    )


def fill(
    qty: str, price: str = "100", trade: str = "t1", side: Side = Side.BUY, fee: str = "0", coid: str = "c1"
) -> OrderFilled:
    return OrderFilled(
        instrument=INSTR,
        client_order_id=coid,
        venue="v",
        venue_order_id="v1",
        trade_id=trade,
        side=side,
        quantity=D(qty),
        price=D(price),
        fee=D(fee),
        fee_currency="USDT",
        liquidity=Liquidity.MAKER,
        cumulative_quantity=D(qty),
        leaves_quantity=D(0),
    )


def accepted() -> OrderAccepted:
    return OrderAccepted(instrument=INSTR, client_order_id="c1", venue="v", venue_order_id="v1")


def test_partial_then_full_fill() -> None:
    o = om.apply(om.apply(None, submitted("3")), accepted())
    o = om.apply(o, fill("1", "100", "t1"))
    assert o.status is OrderStatus.PARTIALLY_FILLED and o.leaves_quantity == 2
    o = om.apply(o, fill("2", "103", "t2"))
    assert o.status is OrderStatus.FILLED and o.avg_fill_price == D("102")


@pytest.mark.parametrize(
    "events",
    [
        [fill("1")],  # a fill for an order never submitted
        [
            submitted(),
            accepted(),
            OrderCancelled(instrument=INSTR, client_order_id="c1", venue="v", reason="x", filled_quantity=D(0)),
            fill("1"),
        ],  # after cancelled
        [
            submitted(),
            accepted(),
            fill("1", trade="a"),
            OrderCancelled(instrument=INSTR, client_order_id="c1", venue="v", reason="late", filled_quantity=D(1)),
        ],
        [submitted("1"), accepted(), fill("2")],  # more than the quantity
    ],
)
def test_invalid_transitions_are_refused(events: list[object]) -> None:
    o = None
    with pytest.raises(om.InvalidTransition):
        for ev in events:
            o = om.apply(o, ev)  # type: ignore[arg-type]


class OrderLifecycle(RuleBasedStateMachine):
    """Random event sequences: filled never exceeds quantity, terminal stays terminal, a fill applied twice
    changes nothing, and the position equals the signed sum of the fills applied."""

    def __init__(self) -> None:
        super().__init__()
        self.order: om.Order | None = None
        self.applied_fills: list[OrderFilled] = []
        self.position = Position(INSTR)
        self.n = 0

    def _apply(self, ev: object) -> None:
        before = self.order
        try:
            after = om.apply(before, ev)  # type: ignore[arg-type]
        except om.InvalidTransition:
            return
        if before is not None and before.status.is_terminal:
            assert after == before, f"terminal order changed by {ev}"
        if isinstance(ev, OrderFilled) and after is not before:
            self.applied_fills.append(ev)
            self.position = apply_fill(self.position, ev)
        self.order = after

    @rule(qty=st.integers(1, 10), side=st.sampled_from(Side))
    def submit(self, qty: int, side: Side) -> None:
        self._apply(submitted(str(qty), side))

    @rule()
    def accept(self) -> None:
        self._apply(accepted())

    @rule(qty=st.integers(1, 6), price=st.integers(90, 110))
    def new_fill(self, qty: int, price: int) -> None:
        self.n += 1
        side = self.order.side if self.order else Side.BUY
        self._apply(fill(str(qty), str(price), f"t{self.n}", side, fee="0.01"))

    @precondition(lambda self: bool(self.applied_fills))
    @rule(data=st.data())
    def redeliver_a_fill(self, data: st.DataObject) -> None:
        f = data.draw(st.sampled_from(self.applied_fills))
        before = self.order
        self._apply(f)
        assert self.order == before, "a fill applied twice changed the order"

    @rule()
    def request_cancel(self) -> None:
        self._apply(OrderCancelRequested(instrument=INSTR, client_order_id="c1", reason="test"))

    @rule()
    def cancel(self) -> None:
        filled = self.order.filled_quantity if self.order else D(0)
        self._apply(
            OrderCancelled(instrument=INSTR, client_order_id="c1", venue="v", reason="test", filled_quantity=filled)
        )

    @rule()
    def reject(self) -> None:
        self._apply(
            OrderRejected(
                instrument=INSTR,
                client_order_id="c1",
                strategy="s",
                side=Side.BUY,
                order_type=OrderType.LIMIT,
                quantity=D(1),
                limit_price=D(100),
                by="venue",
                rule="r",
                reason="no",
            )
        )

    @invariant()
    def filled_never_exceeds_quantity(self) -> None:
        if self.order is not None:
            assert 0 <= self.order.filled_quantity <= self.order.quantity

    @invariant()
    def position_is_the_sum_of_fills(self) -> None:
        assert self.position.quantity == sum((f.side.sign * f.quantity for f in self.applied_fills), D(0))
        assert self.position.fills == len(self.applied_fills)


TestOrderLifecycle = OrderLifecycle.TestCase
TestOrderLifecycle.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)


def test_average_cost_and_realized_pnl_by_hand() -> None:
    p = Position(INSTR)
    p = apply_fill(p, fill("2", "100", side=Side.BUY, fee="1"))
    p = apply_fill(p, fill("2", "110", side=Side.BUY, fee="1"))
    assert (p.quantity, p.avg_price, p.realized_pnl) == (4, 105, 0)
    p = apply_fill(p, fill("3", "120", side=Side.SELL, fee="1"))
    assert (p.quantity, p.avg_price, p.realized_pnl) == (1, 105, 45)  # 3 x (120 - 105)
    p = apply_fill(p, fill("2", "90", side=Side.SELL, fee="1"))
    assert (p.quantity, p.avg_price, p.realized_pnl) == (-1, 90, 30)  # 45 + 1 x (90 - 105); flipped short at 90
    assert p.fees == 4 and p.net_realized_pnl == 26
    assert p.bought - p.sold == p.quantity
    assert p.unrealized_pnl(D("80")) == 10  # short 1 from 90


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(Side), st.decimals("0.00000001", "1000", places=8), st.decimals("0.01", "100000", places=2)
        ),
        max_size=40,
    )
)
def test_quantity_is_exactly_the_signed_sum_of_fills(trades: list[tuple[Side, D, D]]) -> None:
    p = Position(INSTR)
    for n, (side, qty, price) in enumerate(trades):
        p = apply_fill(p, fill(str(qty), str(price), f"t{n}", side))
    assert p.quantity == sum((s.sign * q for s, q, _ in trades), D(0))
    assert p.bought - p.sold == p.quantity
