"""Two-sided quoting (a built-in, written against the public API only).

Keeps a bid ``spread_bps`` below and an ask ``spread_bps`` above an anchor price (the last price when it quoted),
``quantity`` each, rounded to ``tick_size`` away from the anchor. When the price moves more than ``requote_bps``
from the anchor, it cancels both and quotes again around the new price; a side that filled is quoted again at the
same anchor. It never quotes a side that could take the position past ``max_inventory`` either way, so a one-way
market leaves it with at most that much.

It exercises resting orders, partial fills (the paper venue fills a resting order for at most each tick's
quantity) and cancels.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from engine.core.orders import OrderStatus
from engine.core.strategies.api import Cancel, Intent, Limit, Result, Strategy, View
from events import Side, TickReceived

BPS = Decimal(10_000)


@dataclass(frozen=True)
class QuotingParams:
    quantity: Decimal = Decimal("0.01")
    spread_bps: Decimal = Decimal(10)  # each side's distance from the anchor
    requote_bps: Decimal = Decimal(20)  # how far the price may move from the anchor before quoting again
    max_inventory: Decimal = Decimal("0.05")  # the largest position either way
    tick_size: Decimal = Decimal("0.01")

    def __post_init__(self) -> None:
        for name in ("quantity", "spread_bps", "requote_bps", "max_inventory", "tick_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above zero, got {getattr(self, name)}")
        if self.max_inventory < self.quantity:
            raise ValueError(f"max_inventory ({self.max_inventory}) is below quantity ({self.quantity})")


@dataclass(frozen=True, slots=True)
class QuotingState:
    anchor: Decimal | None = None


@dataclass(frozen=True)
class Quoting(Strategy[QuotingState, QuotingParams]):
    name: str = "quoting"
    Params = QuotingParams

    def initial(self) -> QuotingState:
        return QuotingState()

    def quotes(self, anchor: Decimal) -> tuple[Decimal, Decimal]:
        """(bid, ask) around ``anchor``, on the tick grid, away from it."""
        p = self.params
        bid = (anchor * (1 - p.spread_bps / BPS) / p.tick_size).to_integral_value(ROUND_FLOOR) * p.tick_size
        ask = (anchor * (1 + p.spread_bps / BPS) / p.tick_size).to_integral_value(ROUND_CEILING) * p.tick_size
        return bid, ask

    def on_tick(self, state: QuotingState, tick: TickReceived, view: View) -> Result[QuotingState]:
        p = self.params
        anchor = state.anchor
        orders = view.open_orders
        out: list[Intent] = []
        moved = anchor is None or abs(tick.price - anchor) * BPS > p.requote_bps * anchor
        if moved:
            out += [Cancel(o.client_order_id, "requote") for o in orders]
            anchor, resting = tick.price, set[Side]()
        else:
            resting = {o.side for o in orders if o.status is not OrderStatus.CANCEL_REQUESTED}
        assert anchor is not None
        bid, ask = self.quotes(anchor)
        position = view.position
        if Side.BUY not in resting and position + p.quantity <= p.max_inventory:
            out.append(Limit(Side.BUY, p.quantity, bid))
        if Side.SELL not in resting and position - p.quantity >= -p.max_inventory:
            out.append(Limit(Side.SELL, p.quantity, ask))
        return QuotingState(anchor), out
