"""What a strategy receives and when (candles, timers, days, its orders' updates), and what its intents become; every
expected value is worked out by hand from the ticks."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any

from adapters.venues.paper import PaperExchange
from engine.core.risk import RiskLimits
from engine.core.trader import MAX_ORDERS_PER_INPUT, Trader
from engine.core.trading import TradingCore
from engine.strategy import (
    Candle,
    DayStarted,
    Intent,
    Limit,
    NoParams,
    OrderFilled,
    OrderRejected,
    OrderUpdate,
    Result,
    Side,
    Strategy,
    TickReceived,
    Timer,
    View,
)
from events import Envelope, OrderAccepted, OrderSubmitted
from tests.unit.test_risk_limits import SECOND, T0, tick_env

BIG = D(10**9)
Seen = tuple[Any, ...]


@dataclass(frozen=True)
class Recorder(Strategy[Seen, NoParams]):
    """Records what it is handed, in order; its intents come from ``plan`` (tick number -> intents)."""

    name: str = "rec"
    timer_seconds = 10

    def initial(self) -> Seen:
        return ()

    def on_tick(self, state: Seen, tick: TickReceived, view: View) -> Result[Seen]:
        n = int(tick.trade_id)
        return (*state, ("tick", n, view.position, view.seed)), PLAN.get(n, ())

    def on_candle(self, state: Seen, candle: Candle, view: View) -> Result[Seen]:
        return (*state, ("candle", candle)), ()

    def on_timer(self, state: Seen, timer: Timer, view: View) -> Result[Seen]:
        return (*state, ("timer", timer.at)), ()

    def on_day(self, state: Seen, day: DayStarted, view: View) -> Result[Seen]:
        return (*state, ("day", day.day)), ()

    def on_order(self, state: Seen, update: OrderUpdate, view: View) -> Result[Seen]:
        ev = update.event
        rule = ev.rule if isinstance(ev, OrderRejected) else ""
        return (*state, ("order", type(ev).__name__, update.client_order_id, rule, view.position)), ()


PLAN: dict[int, tuple[Intent, ...]] = {}


def _core(limits: RiskLimits | None = None) -> TradingCore:
    return TradingCore(Trader(Recorder(NoParams()), limits or RiskLimits(BIG, BIG)), PaperExchange(D(0), D(0)))


def _ticks(core: TradingCore, prices_at: list[tuple[str, int]]) -> list[Envelope]:
    out = []
    for n, (price, ts) in enumerate(prices_at):
        out += core.on_input(tick_env(price, ts, n), ts_init=0)
    return out


def _seen(core: TradingCore, kind: str) -> list[Any]:
    return [x[1:] for x in core.state("BTC/USDT").strategy if x[0] == kind]


def test_candles_close_at_the_first_tick_of_a_later_minute_with_their_ohlcv() -> None:
    PLAN.clear()
    core = _core()
    m = 60 * SECOND
    minute0 = T0  # T0 is a whole minute
    _ticks(
        core, [("100", minute0), ("103", minute0 + 10 * SECOND), ("99", minute0 + 59 * SECOND), ("101", minute0 + m)]
    )
    _ticks(core, [])
    ((candle,),) = _seen(core, "candle")
    assert (candle.start, candle.open, candle.high, candle.low, candle.close) == (minute0, 100, 103, 99, 99)
    assert (candle.volume, candle.trades) == (3, 3)
    kinds = [x[0] for x in core.state("BTC/USDT").strategy if x[0] in ("tick", "candle")]
    assert kinds == ["tick", "tick", "tick", "candle", "tick"]  # after the minute's three ticks, before the fourth


def test_timers_fire_on_market_time_once_for_the_latest_multiple_reached() -> None:
    PLAN.clear()
    core = _core()
    seconds = [0, 3, 12, 25, 26, 61]
    _ticks(core, [("100", T0 + s * SECOND) for s in seconds])
    assert [(at - T0) // SECOND for (at,) in _seen(core, "timer")] == [10, 20, 60]  # 30, 40 and 50 fell in a gap


def test_a_day_start_is_handed_over_before_its_first_tick() -> None:
    PLAN.clear()
    core = _core()
    day = 86_400 * SECOND
    start = T0 - T0 % day
    _ticks(core, [("100", start + 5 * SECOND), ("100", start + day - 1), ("100", start + day + 7)])
    assert [d for (d,) in _seen(core, "day")] == ["2024-03-01", "2024-03-02"]
    kinds = [x[0] for x in core.state("BTC/USDT").strategy if x[0] in ("day", "tick")]
    assert kinds == ["day", "tick", "tick", "day", "tick"]


def test_its_orders_updates_reach_it_with_the_view_after_each() -> None:
    PLAN.clear()
    PLAN[0] = (Limit(Side.BUY, D("2"), D("100")),)  # rests; the paper venue fills 1 per tick at or below 100
    core = _core()
    out = _ticks(core, [("101", T0), ("100", T0 + SECOND), ("99", T0 + 2 * SECOND)])
    (submit,) = [e.event for e in out if isinstance(e.event, OrderSubmitted)]
    updates = _seen(core, "order")
    assert [(kind, coid, pos) for kind, coid, _, pos in updates] == [
        ("OrderAccepted", submit.client_order_id, 0),
        ("OrderFilled", submit.client_order_id, 1),  # partly: 1 of 2
        ("OrderFilled", submit.client_order_id, 2),
    ]
    assert [p for (n, p, _) in _seen(core, "tick")] == [0, 1, 2]  # each tick sees the fills before it


def test_two_orders_of_one_call_get_their_own_ids_and_the_second_is_checked_with_the_first() -> None:
    PLAN.clear()
    PLAN[0] = (Limit(Side.BUY, D("1"), D("90")), Limit(Side.BUY, D("1"), D("80")))
    core = _core(RiskLimits(BIG, BIG, max_open_orders=1))
    out = _ticks(core, [("100", T0)])
    first, second = [e.event for e in out if isinstance(e.event, OrderSubmitted | OrderRejected)]
    assert isinstance(first, OrderSubmitted) and isinstance(second, OrderRejected)
    assert first.client_order_id != second.client_order_id and first.client_order_id.startswith("rec-")
    assert second.rule == "max_open_orders"
    assert ("OrderRejected", second.client_order_id, "max_open_orders", 0) in _seen(core, "order")
    assert any(isinstance(e.event, OrderAccepted) for e in out)


@dataclass(frozen=True)
class Insistent(Strategy[int, NoParams]):
    """Sends the order again whenever it is refused: bounded by the orders one input may make."""

    name: str = "insist"

    def initial(self) -> int:
        return 0

    def on_tick(self, state: int, tick: TickReceived, view: View) -> Result[int]:
        return state, (Limit(Side.BUY, D("5"), D("1")),)

    def on_order(self, state: int, update: OrderUpdate, view: View) -> Result[int]:
        if isinstance(update.event, OrderRejected):
            return state + 1, (Limit(Side.BUY, D("5"), D("1")),)
        return state, ()


def test_a_strategy_that_asks_again_on_every_refusal_is_stopped_at_the_orders_per_input() -> None:
    core = TradingCore(Trader(Insistent(NoParams()), RiskLimits(D("1"), BIG)), PaperExchange(D(0), D(0)))
    out = core.on_input(tick_env("1", T0, 0), ts_init=0)
    rejected = [e.event for e in out if isinstance(e.event, OrderRejected)]
    assert len(rejected) == MAX_ORDERS_PER_INPUT + 1
    assert [r.rule for r in rejected[:-1]] == ["max_order_notional"] * MAX_ORDERS_PER_INPUT
    assert rejected[-1].rule == "orders_per_input"
    assert len({r.client_order_id for r in rejected}) == len(rejected)


def test_the_seed_is_the_same_on_every_run_and_differs_from_tick_to_tick() -> None:
    PLAN.clear()
    runs = []
    for _ in range(2):
        core = _core()
        _ticks(core, [("100", T0 + i * SECOND) for i in range(5)])
        runs.append([seed for (_, _, seed) in _seen(core, "tick")])
    assert runs[0] == runs[1] and len(set(runs[0])) == 5


def test_fills_are_not_handed_to_a_strategy_that_did_not_ask() -> None:
    from engine.core.strategies import MaCross

    trader = Trader(MaCross.of(1, 2, D("1")), RiskLimits(BIG, BIG))
    assert not trader.wants_updates
    fill = OrderFilled(
        instrument="BTC/USDT",
        client_order_id="ma_cross-x",
        venue="paper",
        venue_order_id="1",
        trade_id="t",
        side=Side.BUY,
        quantity=D(1),
        price=D(1),
        fee=D(0),
        fee_currency="USDT",
        liquidity="taker",  # type: ignore[arg-type]
        cumulative_quantity=D(1),
        leaves_quantity=D(0),
    )
    state = trader.initial("BTC/USDT")
    assert trader.on_update(state, fill, "c") == (state, [])


def test_the_fast_copy_of_the_traders_state_keeps_every_field() -> None:
    import dataclasses

    from engine.core.trader import TraderState

    state = TraderState(
        **{f.name: object() for f in dataclasses.fields(TraderState)}  # every field set to a value of its own
    )
    assert state.after_tick("s", D(1)) == dataclasses.replace(state, strategy="s", last_price=D(1))


@dataclass(frozen=True)
class Raiser(Strategy[int, NoParams]):
    """Bids once, then raises on the tick whose price fills that bid (a bug in a user's strategy)."""

    name: str = "raiser"

    def initial(self) -> int:
        return 0

    def on_tick(self, state: int, tick: TickReceived, view: View) -> Result[int]:
        if state == 0:
            return 1, (Limit(Side.BUY, D("1"), D("100")),)
        if tick.price <= 100:
            raise ZeroDivisionError("the user's bug")
        return state + 1, ()


def test_a_strategy_that_raises_loses_its_intents_not_the_fills_of_the_tick() -> None:
    core = TradingCore(Trader(Raiser(NoParams()), RiskLimits(BIG, BIG)), PaperExchange(D(0), D(0)))
    _ticks(core, [("101", T0)])
    out = core.on_input(tick_env("99", T0 + SECOND, 1), ts_init=0)  # fills the bid, then the strategy raises
    assert [type(e.event).__name__ for e in out] == ["OrderFilled"]
    state = core.state("BTC/USDT")
    assert state.position.quantity == 1 and state.open_orders == () and state.strategy == 1  # state as before
    assert core.strategy_failures == 1 and "ZeroDivisionError" in core.last_failure
    assert core.venue is not None and core.venue.state() == {"BTC/USDT": ()}  # the venue and the trader agree
