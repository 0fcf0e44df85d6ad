"""The built-in quoting and mean-reversion strategies on the paper venue, tick by tick, worked out by hand."""

from __future__ import annotations

from decimal import Decimal as D

from adapters.venues.paper import PaperExchange
from engine.core.risk import RiskLimits
from engine.core.strategies import Bollinger, BollingerParams, Quoting, QuotingParams
from engine.core.trader import Trader
from engine.core.trading import TradingCore
from events import (
    Envelope,
    OrderCancelRequested,
    OrderFilled,
    OrderSubmitted,
    Side,
    StopCancelled,
    StopPlaced,
    StopTriggered,
)
from tests.unit.test_risk_limits import SECOND, T0, tick_env

BIG = D(10**9)


def _core(strategy: object) -> TradingCore:
    return TradingCore(Trader(strategy, RiskLimits(BIG, BIG)), PaperExchange(D(0), D(0)))  # type: ignore[arg-type]


def _step(core: TradingCore, prices: list[str]) -> list[list[Envelope]]:
    """The events of each tick (quantity 1 each)."""
    return [core.on_input(tick_env(p, T0 + n * SECOND, n), ts_init=0) for n, p in enumerate(prices)]


def _orders(events: list[Envelope]) -> list[tuple[str, D | None]]:
    return [(e.event.side.value, e.event.limit_price) for e in events if isinstance(e.event, OrderSubmitted)]


def _fills(events: list[Envelope]) -> list[tuple[str, D]]:
    return [(e.event.side.value, e.event.price) for e in events if isinstance(e.event, OrderFilled)]


def test_quoting_keeps_a_bid_and_an_ask_within_its_inventory_and_requotes_when_the_price_moves() -> None:
    params = QuotingParams(D(1), spread_bps=D(100), requote_bps=D(200), max_inventory=D(1), tick_size=D("0.01"))
    core = _core(Quoting(params))
    t0, t1, t2, t3 = _step(core, ["100", "99", "101", "103"])
    assert _orders(t0) == [("buy", D("99.00")), ("sell", D("101.00"))]  # 1 % either side of 100
    assert _fills(t1) == [("buy", D("99.00"))] and _orders(t1) == []  # long 1 = the limit: no new bid
    assert _fills(t2) == [("sell", D("101.00"))]  # flat again: both sides quoted at the same anchor
    assert _orders(t2) == [("buy", D("99.00")), ("sell", D("101.00"))]
    # 103: the ask fills first (short 1); 3 % from the anchor: the bid is cancelled and a new one quoted, no ask
    assert _fills(t3) == [("sell", D("101.00"))]
    cancelled = [e.event for e in t3 if isinstance(e.event, OrderCancelRequested)]
    assert len(cancelled) == 1 and cancelled[0].reason == "requote"
    assert _orders(t3) == [("buy", D("101.97"))]
    assert core.state("BTC/USDT").position.quantity == -1


def _bollinger() -> TradingCore:
    params = BollingerParams(window=3, k=D(1), quantity=D(1), take_profit_bps=D(100), stop_loss_bps=D(100))
    return _core(Bollinger(params))


def test_bollinger_bids_below_the_band_and_takes_profit_with_its_exit_limit() -> None:
    core = _bollinger()
    ticks = _step(core, ["100", "100", "100", "94", "93.5", "95"])
    # at 94: mean 98, deviation sqrt(8) = 2.83, lower band 95.17: a bid at 94
    assert [_orders(t) for t in ticks[:4]] == [[], [], [], [("buy", D("94"))]]
    # 93.5 fills it at 94; the exits: a limit 1 % above the entry (94.94), a stop 1 % below (93.06)
    assert _fills(ticks[4]) == [("buy", D("94"))] and _orders(ticks[4]) == [("sell", D("94.94"))]
    # the stop-loss is the engine's (a bracket): held at 1 % below 94, paired with the take-profit
    (stop,) = [e.event for e in ticks[4] if isinstance(e.event, StopPlaced)]
    assert (stop.side, stop.trigger_price, stop.quantity) == (Side.SELL, D("93.06"), D(1))
    assert _fills(ticks[5]) == [("sell", D("94.94"))]
    assert [e.event.reason for e in ticks[5] if isinstance(e.event, StopCancelled)] == ["take profit filled"]
    assert core.state("BTC/USDT").position.quantity == 0


def test_bollinger_stops_out_at_market_and_cancels_its_take_profit() -> None:
    core = _bollinger()
    ticks = _step(core, ["100", "100", "100", "94", "93.5", "93", "92"])
    # the stop is 1 % below 94: 93.06; 93 reaches it: the take-profit is cancelled, the position sold at market
    stop_tick = ticks[5]
    assert [e.event.price for e in stop_tick if isinstance(e.event, StopTriggered)] == [D("93")]
    assert [e.event.reason for e in stop_tick if isinstance(e.event, OrderCancelRequested)] == ["stop loss"]
    assert _orders(stop_tick) == [("sell", None)]
    assert _fills(ticks[6]) == [("sell", D("92"))]  # a market order fills at the next tick
    assert core.state("BTC/USDT").position.quantity == 0
    assert not any(isinstance(e.event, OrderSubmitted) and e.event.side is Side.SELL for e in ticks[6])
