"""Stops and brackets the engine holds (engine.core.stops), on the paper venue, tick by tick, worked out by hand.

The paper venue fills a market order at the next tick's price and a limit order when a tick trades through it; a
stop triggers at the first tick at or beyond its trigger, after what rested has been matched against that tick."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal as D
from typing import Any

from adapters.venues.paper import PaperExchange
from engine.core.risk import RiskLimits
from engine.core.state_snapshot import dump, load
from engine.core.trader import Trader
from engine.core.trading import TradingCore
from engine.strategy import Bracket, Cancel, Intent, Limit, Market, Stop, Strategy, TickReceived, View
from events import (
    Envelope,
    Liquidity,
    OrderAccepted,
    OrderCancelRequested,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    Side,
    StopCancelled,
    StopPlaced,
    StopTriggered,
)
from tests.unit.test_risk_limits import SECOND, T0, tick_env

BIG = D(10**9)


@dataclass(frozen=True)
class Script(Strategy[int, Any]):
    """Says, at the n-th tick (from 0), what ``plan`` says; ``cancel_stop_at``: cancels its first held stop then."""

    params: Any = None
    name: str = "script"
    plan: tuple[tuple[int, tuple[Intent, ...]], ...] = field(default=())
    cancel_stop_at: int = -1

    def initial(self) -> int:
        return 0

    def on_tick(self, state: int, tick: TickReceived, view: View) -> tuple[int, list[Intent]]:
        intents = list(dict(self.plan).get(state, ()))
        if state == self.cancel_stop_at and view.stops:
            intents.append(Cancel(view.stops[0].client_order_id, "changed my mind"))
        return state + 1, intents


def _core(*plan: tuple[int, tuple[Intent, ...]], cancel_stop_at: int = -1) -> TradingCore:
    strategy = Script(plan=tuple(plan), cancel_stop_at=cancel_stop_at)
    return TradingCore(Trader(strategy, RiskLimits(BIG, BIG)), PaperExchange(D(0), D(0)))


def _ticks(core: TradingCore, prices: list[str], quantity: str = "1", start: int = 0) -> list[list[Envelope]]:
    out = []
    for n, p in enumerate(prices, start):
        env = tick_env(p, T0 + n * SECOND, n)
        if quantity != "1":
            t = env.event
            assert isinstance(t, TickReceived)
            env = Envelope(
                env.event_id,
                TickReceived(**{**_fields(t), "quantity": D(quantity)}),
                env.ts_event,
                0,
                env.event_id,
                None,
                "test",
            )
        out.append(core.on_input(env, ts_init=0))
    return out


def _fields(t: TickReceived) -> dict[str, Any]:
    return {k: getattr(t, k) for k in ("instrument", "venue", "trade_id", "price", "quantity", "side")}


def _kinds(events: list[Envelope]) -> list[str]:
    return [e.event.TYPE for e in events]


def _fills(events: list[Envelope]) -> list[tuple[Side, D, D]]:
    return [(e.event.side, e.event.quantity, e.event.price) for e in events if isinstance(e.event, OrderFilled)]


def test_a_sell_stop_triggers_at_the_first_trade_at_or_below_it_and_its_market_order_fills_at_the_next() -> None:
    core = _core((0, (Stop(Side.SELL, D(1), D(95)),)))
    t0, t1, t2, t3 = _ticks(core, ["100", "96", "95", "94"])
    placed = [e.event for e in t0 if isinstance(e.event, StopPlaced)]
    assert len(placed) == 1 and placed[0].trigger_price == 95 and placed[0].client_order_id.startswith("script-")
    assert _kinds(t1) == []  # 96: above it
    triggered = [e.event for e in t2 if isinstance(e.event, StopTriggered)]
    assert len(triggered) == 1 and triggered[0].price == 95 and triggered[0].quantity == 1
    sent = [e.event for e in t2 if isinstance(e.event, OrderSubmitted)]
    assert [(o.side, o.order_type.value, o.client_order_id) for o in sent] == [
        (Side.SELL, "market", triggered[0].order_id)
    ]
    assert _fills(t3) == [(Side.SELL, D(1), D(94))]
    assert core.state("BTC/USDT").stops == () and core.state("BTC/USDT").position.quantity == -1


def test_a_buy_stop_limit_sends_a_limit_at_its_limit_price() -> None:
    core = _core((0, (Stop(Side.BUY, D(1), D(105), limit=D(106)),)))
    _, t1, t2, t3, t4 = _ticks(core, ["100", "104", "105", "107", "106"])
    assert _kinds(t1) == []
    sent = [e.event for e in t2 if isinstance(e.event, OrderSubmitted)]
    assert [(o.side, o.order_type.value, o.limit_price) for o in sent] == [(Side.BUY, "limit", D(106))]
    assert _fills(t3) == []  # 107: above the limit, it rests
    assert _fills(t4) == [(Side.BUY, D(1), D(106))]


def test_a_bracket_places_its_exits_once_the_entry_fills_and_a_filled_take_profit_cancels_the_stop() -> None:
    core = _core((0, (Bracket(Limit(Side.BUY, D(1), D(99)), take_profit=D(101), stop_loss=D(98)),)))
    t0, t1, t2, t3 = _ticks(core, ["100", "99", "100", "101.5"])
    assert [(e.event.order_type.value, e.event.limit_price) for e in t0 if isinstance(e.event, OrderSubmitted)] == [
        ("limit", D(99))
    ]
    assert not any(isinstance(e.event, StopPlaced) for e in t0)  # no exit before the entry fills
    # 99 fills the entry; its exits follow in the same input: a take-profit limit sell at 101, a stop at 98 paired
    assert _fills(t1) == [(Side.BUY, D(1), D(99))]
    tp = next(e.event for e in t1 if isinstance(e.event, OrderSubmitted))
    stop = next(e.event for e in t1 if isinstance(e.event, StopPlaced))
    assert (tp.side, tp.limit_price, tp.quantity) == (Side.SELL, D(101), D(1))
    assert (stop.side, stop.trigger_price, stop.quantity, stop.take_profit_id) == (
        Side.SELL,
        D(98),
        D(1),
        tp.client_order_id,
    )
    assert _kinds(t2) == []
    assert _fills(t3) == [(Side.SELL, D(1), D(101))]
    cancelled = [e.event for e in t3 if isinstance(e.event, StopCancelled)]
    assert [(c.client_order_id, c.reason) for c in cancelled] == [(stop.client_order_id, "take profit filled")]
    state = core.state("BTC/USDT")
    assert state.position.quantity == 0 and state.stops == () and state.open_orders == () and state.brackets == ()


def test_a_brackets_stop_cancels_the_take_profit_and_sells_at_market() -> None:
    core = _core((0, (Bracket(Limit(Side.BUY, D(1), D(99)), take_profit=D(101), stop_loss=D(98)),)))
    _, t1, t2, t3 = _ticks(core, ["100", "99", "98", "97"])
    tp = next(e.event for e in t1 if isinstance(e.event, OrderSubmitted))
    assert [e.event.TYPE for e in t2 if not isinstance(e.event, OrderSubmitted)][:2] == [
        "StopTriggered",
        "OrderCancelRequested",
    ]
    cancel = next(e.event for e in t2 if isinstance(e.event, OrderCancelRequested))
    assert (cancel.client_order_id, cancel.reason) == (tp.client_order_id, "stop loss")
    assert [(o.side, o.order_type.value) for o in (e.event for e in t2) if isinstance(o, OrderSubmitted)] == [
        (Side.SELL, "market")
    ]
    assert _fills(t3) == [(Side.SELL, D(1), D(97))]
    state = core.state("BTC/USDT")
    assert state.position.quantity == 0 and state.stops == () and state.open_orders == ()


def test_a_partly_filled_take_profit_leaves_the_stop_only_the_rest() -> None:
    """Entry of 2 at market; the take-profit at 101 fills 1 of 2 on a tick of 1; the stop then sells 1, not 2."""
    core = _core((0, (Bracket(Market(Side.BUY, D(2)), take_profit=D(101), stop_loss=D(98)),)))
    ticks = _ticks(core, ["100", "100"], quantity="5")  # the entry fills in full at the second tick
    assert _fills(ticks[1]) == [(Side.BUY, D(2), D(100))]
    t2 = _ticks(core, ["101.5"], start=2)[0]  # a tick of 1 trades through the take-profit: 1 of 2 filled
    assert _fills(t2) == [(Side.SELL, D(1), D(101))]
    assert [s.quantity for s in core.state("BTC/USDT").stops] == [D(1)]
    t3, t4 = _ticks(core, ["98", "97"], start=3)
    assert [e.event.quantity for e in t3 if isinstance(e.event, StopTriggered | OrderSubmitted)] == [D(1), D(1)]
    assert _fills(t4) == [(Side.SELL, D(1), D(97))]
    assert core.state("BTC/USDT").position.quantity == 0


def test_a_cancelled_stop_never_triggers_and_a_bad_one_is_never_placed() -> None:
    core = _core((0, (Stop(Side.SELL, D(1), D(95)),)), cancel_stop_at=1)
    _, t1, t2 = _ticks(core, ["100", "99", "90"])
    assert [(e.event.TYPE, e.event.reason) for e in t1] == [("StopCancelled", "changed my mind")]
    assert _kinds(t2) == []
    bad = _core((0, (Stop(Side.SELL, D(1), D(0)),)))  # a trigger of 0: the strategy's bug, its intents dropped
    assert _kinds(_ticks(bad, ["100"])[0]) == [] and bad.strategy_failures == 1


def test_a_stop_is_held_through_a_halt_and_triggers_after_the_resume() -> None:
    core = _core((0, (Stop(Side.SELL, D(1), D(95)),)))
    _ticks(core, ["100"])
    halted = core.on_input(tick_env("90", T0 + SECOND, 1), ts_init=0, halted=True)
    assert _kinds(halted) == [] and len(core.state("BTC/USDT").stops) == 1
    after = core.on_input(tick_env("94", T0 + 2 * SECOND, 2), ts_init=0)
    assert [e.event.TYPE for e in after] == ["StopTriggered", "OrderSubmitted", "OrderAccepted"]
    assert not any(isinstance(e.event, OrderRejected) for e in after)


def test_held_stops_and_pending_brackets_survive_a_state_snapshot() -> None:
    """A core restored from a snapshot taken with a stop held and a bracket pending makes the very same events."""
    plan = (
        (0, (Stop(Side.SELL, D(1), D(95)),)),
        (1, (Bracket(Limit(Side.BUY, D(1), D(96)), take_profit=D(99), stop_loss=D(93)),)),
    )
    prices = ["100", "98", "97", "96", "95", "94", "93", "92"]
    straight = _core(*plan)
    expected = [[e.event for e in out] for out in _ticks(straight, prices)]
    first = _core(*plan)
    got = [[e.event for e in out] for out in _ticks(first, prices[:3])]
    assert first.state("BTC/USDT").stops and first.state("BTC/USDT").brackets
    second = _core(*plan)
    assert load(dump(first, 3), second) == 3
    got += [[e.event for e in out] for out in _ticks(second, prices[3:], start=3)]
    assert got == expected


def _report(core: TradingCore, event: Any, n: int) -> list[Envelope]:
    eid = uuid.uuid5(uuid.NAMESPACE_URL, f"stop-report:{n}")
    return core.on_input(Envelope(eid, event, T0 + (50 + n) * SECOND, 0, eid, None, "venue"), ts_init=0)


def test_on_a_live_venue_the_engine_triggers_the_stop_and_the_bracket_exits_follow_the_venues_fill() -> None:
    """No simulated venue: the orders go to the execution service; the venue's reports come back as input. The
    bracket's exits follow the report of the entry's fill, and a tick reaching the stop sends its market order."""
    plan = ((0, (Bracket(Limit(Side.BUY, D(1), D(99)), take_profit=D(101), stop_loss=D(98)),)),)
    core = TradingCore(Trader(Script(plan=plan), RiskLimits(BIG, BIG)), None)
    (t0,) = _ticks(core, ["100"])
    entry = next(e.event for e in t0 if isinstance(e.event, OrderSubmitted))
    accepted = OrderAccepted(
        instrument="BTC/USDT", client_order_id=entry.client_order_id, venue="x", venue_order_id="v1"
    )
    assert [e.event.TYPE for e in _report(core, accepted, 0)] == ["OrderAccepted"]
    fill = OrderFilled(
        instrument="BTC/USDT",
        client_order_id=entry.client_order_id,
        venue="x",
        venue_order_id="v1",
        trade_id="t1",
        side=Side.BUY,
        quantity=D(1),
        price=D(99),
        fee=D(0),
        fee_currency="USDT",
        liquidity=Liquidity.MAKER,
        cumulative_quantity=D(1),
        leaves_quantity=D(0),
    )
    out = _report(core, fill, 1)  # relayed, then the exits the engine decided on it
    assert [e.event.TYPE for e in out] == ["OrderFilled", "OrderSubmitted", "StopPlaced"]
    tp, stop = out[1].event, out[2].event
    assert (tp.side, tp.limit_price) == (Side.SELL, D(101)) and stop.take_profit_id == tp.client_order_id
    # a tick at 98 reaches the stop: the engine triggers it itself, asks to cancel the take-profit, sends a market sell
    triggered = core.on_input(tick_env("98", T0 + 60 * SECOND, 60), ts_init=0)
    assert [e.event.TYPE for e in triggered] == ["StopTriggered", "OrderCancelRequested", "OrderSubmitted"]
    sent = triggered[2].event
    assert (sent.side, sent.order_type.value, sent.quantity) == (Side.SELL, "market", D(1))
