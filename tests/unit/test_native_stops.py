"""Venue-native stops in the pure core (venue.stops = "native"), the settings that choose them, and OrderSubmitted v2.

With native stops a Stop intent is an order the venue holds: OrderSubmitted of type stop / stop_limit with its
trigger price, checked by risk like any order, cancelled like any order; with engine stops (the default, and the
paper venue's) it is a StopPlaced the engine triggers itself."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import orjson
import pytest

from engine.config import ConfigError, Settings, VenueSettings
from engine.core.orders import OrderStatus
from engine.core.risk import RiskLimits
from engine.core.state_snapshot import dump, load, offset_of
from engine.core.trader import Trader
from engine.core.trading import TradingCore
from engine.strategy import Bracket, Cancel, Limit, Market, Stop
from engine.venues import native_stops
from events import (
    Envelope,
    OpenOrderSnapshot,
    OrderAccepted,
    OrderCancelRequested,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    Side,
    StopPlaced,
    decode,
    encode,
)
from tests.unit.test_risk_limits import SECOND, T0, tick_env
from tests.unit.test_stops import BIG, Script

STOP = Stop(Side.SELL, D("0.5"), D("95"))
STOP_LIMIT = Stop(Side.SELL, D("0.5"), D("95"), D("94.5"))


def _live(*plan: tuple[int, tuple[object, ...]], native: bool, limits: RiskLimits | None = None) -> TradingCore:
    strategy = Script(plan=tuple(plan), cancel_stop_at=-1)  # type: ignore[arg-type]
    return TradingCore(Trader(strategy, limits or RiskLimits(BIG, BIG), native_stops=native), None)


def _run(core: TradingCore, prices: list[str]) -> list[Envelope]:
    out: list[Envelope] = []
    for n, p in enumerate(prices):
        out += core.on_input(tick_env(p, T0 + n * SECOND, n), ts_init=0)
    return out


def test_a_native_stop_is_an_order_with_its_trigger_price_and_the_engine_never_triggers_it() -> None:
    core = _live((0, (STOP, STOP_LIMIT)), native=True)
    out = _run(core, ["100", "96", "94", "90"])  # the price goes through the trigger: the venue's business now
    subs = [e.event for e in out if isinstance(e.event, OrderSubmitted)]
    assert [(o.order_type, o.side, o.quantity, o.trigger_price, o.limit_price) for o in subs] == [
        (OrderType.STOP, Side.SELL, D("0.5"), D("95"), None),
        (OrderType.STOP_LIMIT, Side.SELL, D("0.5"), D("95"), D("94.5")),
    ]
    assert not any(e.event.TYPE.startswith("Stop") for e in out)  # no StopPlaced / StopTriggered
    state = core.state("BTC/USDT")
    assert state.stops == () and [o.trigger_price for o in state.open_orders] == [D("95"), D("95")]


def test_with_engine_stops_the_same_strategy_has_its_stop_held_and_triggered_by_the_engine() -> None:
    core = _live((0, (STOP,)), native=False)
    out = _run(core, ["100", "96", "94"])
    kinds = [e.event.TYPE for e in out]
    assert kinds == ["StopPlaced", "StopTriggered", "OrderSubmitted"]
    sent = out[-1].event
    assert isinstance(sent, OrderSubmitted) and sent.order_type is OrderType.MARKET and sent.trigger_price is None


def test_a_native_stop_is_checked_by_risk_at_its_trigger_and_limit_price() -> None:
    # 0.5 x 95 = 47.5 is over a limit of 40 (checked at the trigger, not the last price 100... nor under it at 70)
    core = _live((0, (STOP,)), native=True, limits=RiskLimits(D("48"), BIG))
    (ok,) = [e.event for e in _run(core, ["100"]) if isinstance(e.event, OrderSubmitted)]
    assert ok.trigger_price == D("95")
    core = _live((0, (STOP,)), native=True, limits=RiskLimits(D("40"), BIG))
    (refused,) = [e.event for e in _run(core, ["100"]) if isinstance(e.event, OrderRejected)]
    assert refused.rule == "max_order_notional" and "0.5 x 95" in refused.reason
    assert refused.order_type is OrderType.STOP
    core = _live((0, (STOP_LIMIT,)), native=True, limits=RiskLimits(D("47.3"), BIG))  # 0.5 x 94.5 = 47.25
    assert [e.event.order_type for e in _run(core, ["100"]) if isinstance(e.event, OrderSubmitted)] == [
        OrderType.STOP_LIMIT
    ]


def test_a_native_stop_folds_the_venues_reports_and_is_cancelled_as_an_order() -> None:
    first_tick = tick_env("100", T0, 0)
    coid = Trader(Script(), RiskLimits(BIG, BIG)).client_order_id(str(first_tick.event_id))
    core = _live((0, (STOP,)), (2, (Cancel(coid, "changed my mind"),)), native=True)
    (sub,) = [e.event for e in _run(core, ["100"]) if isinstance(e.event, OrderSubmitted)]
    assert sub.client_order_id == coid
    accepted = OrderAccepted(instrument="BTC/USDT", client_order_id=coid, venue="binance", venue_order_id="7")
    eid = uuid.uuid4()
    core.on_input(Envelope(eid, accepted, T0 + SECOND // 2, 0, eid, None, "venue:binance"), ts_init=0)
    (o,) = core.state("BTC/USDT").open_orders
    assert (o.status, o.order_type, o.trigger_price) == (OrderStatus.ACCEPTED, OrderType.STOP, D("95"))
    out: list[Envelope] = []
    for n, p in enumerate(["99", "98"], 1):
        out += core.on_input(tick_env(p, T0 + n * SECOND, n), ts_init=0)
    assert [(type(e.event), e.event.client_order_id) for e in out] == [(OrderCancelRequested, coid)]  # type: ignore[attr-defined]


def test_a_brackets_stop_loss_stays_engine_held_on_a_native_venue() -> None:
    # binance spot locks the funds of every resting order: a take-profit and a separate native stop for the same
    # quantity cannot both rest, and ccxt has no unified OCO; so the engine holds the bracket's stop
    core = _live((0, (Bracket(Market(Side.BUY, D("1")), take_profit=D("110"), stop_loss=D("90")),)), native=True)
    out = _run(core, ["100"])
    (entry,) = [e.event for e in out if isinstance(e.event, OrderSubmitted)]
    assert entry.order_type is OrderType.MARKET and core.state("BTC/USDT").brackets


def test_native_stops_are_in_the_state_snapshot() -> None:
    core = _live((0, (STOP_LIMIT, Limit(Side.BUY, D("1"), D("90")))), native=True)
    _run(core, ["100"])
    again = _live((0, (STOP_LIMIT, Limit(Side.BUY, D("1"), D("90")))), native=True)
    assert load(dump(core, 5), again) == 5
    assert again.state("BTC/USDT").open_orders == core.state("BTC/USDT").open_orders
    engine_held = _live((0, (STOP_LIMIT, Limit(Side.BUY, D("1"), D("90")))), native=False)
    assert offset_of(dump(core, 5), engine_held) is None  # another mode: another fingerprint, not used


def test_an_order_submitted_v1_record_decodes_as_v2_and_an_order_without_a_trigger_is_still_written_v1() -> None:
    eid = uuid.UUID("01a2299b-5ccc-7db5-b070-c35d4d9f1e86")
    v1 = (
        b'{"id":"01a2299b-5ccc-7db5-b070-c35d4d9f1e86","type":"OrderSubmitted","v":1,"key":"BTC/USDT",'
        b'"ts_event":1795994377420683099,"ts_init":1795994377420683100,'
        b'"correlation_id":"01a2299b-5ccc-7db5-b070-c35d4d9f1e86","causation_id":null,"source":"engine",'
        b'"data":{"instrument":"BTC/USDT","client_order_id":"ma_cross-1","strategy":"ma_cross","side":"buy",'
        b'"order_type":"limit","quantity":"0.01","limit_price":"2992.27"}}'
    )
    env = decode(v1)
    assert env.event == OrderSubmitted(
        instrument="BTC/USDT",
        client_order_id="ma_cross-1",
        strategy="ma_cross",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D("0.01"),
        limit_price=D("2992.27"),
        trigger_price=None,
    )
    assert encode(env) == v1  # a log without native stops replays byte for byte
    stop = Envelope(
        eid,
        OrderSubmitted(
            instrument="BTC/USDT",
            client_order_id="s-1",
            strategy="s",
            side=Side.SELL,
            order_type=OrderType.STOP,
            quantity=D("0.01"),
            trigger_price=D("59000"),
        ),
        1795994377420683099,
        1795994377420683100,
        eid,
        None,
        "engine",
    )
    raw = encode(stop)
    assert orjson.loads(raw)["v"] == 2 and orjson.loads(raw)["data"]["trigger_price"] == "59000"
    assert decode(raw).event == stop.event


def test_an_open_order_snapshot_v2_decodes_as_v3() -> None:
    snap = OpenOrderSnapshot(
        instrument="BTC/USDT",
        day="2026-12-03",
        client_order_id="s-1",
        strategy="s",
        side=Side.SELL,
        order_type=OrderType.STOP,
        quantity=D("1"),
        status="accepted",
        filled_quantity=D(0),
        filled_notional=D(0),
        fees=D(0),
        trade_ids=(),
        trigger_price=D("95"),
    )
    eid = uuid.uuid4()
    raw = encode(Envelope(eid, snap, T0, T0, eid, None, "engine"))
    assert orjson.loads(raw)["v"] == 3 and decode(raw).event == snap
    data = orjson.loads(raw)
    data["v"] = 2
    del data["data"]["trigger_price"]
    assert decode(orjson.dumps(data)).event.trigger_price is None  # type: ignore[attr-defined]


def test_venue_stops_default_to_native_where_the_adapter_has_them_else_engine() -> None:
    assert native_stops(VenueSettings(kind="ccxt", exchange="binance")) is True
    assert native_stops(VenueSettings(kind="ccxt", exchange="binance", stops="engine")) is False
    assert native_stops(VenueSettings(kind="ccxt", exchange="kraken")) is False
    assert native_stops(VenueSettings()) is False  # paper
    with pytest.raises(ConfigError, match=r"venue.stops = 'native'.*'kraken'"):
        native_stops(VenueSettings(kind="ccxt", exchange="kraken", stops="native"))
    with pytest.raises(ValueError, match="paper venue"):
        Settings(venue={"stops": "native"})  # type: ignore[arg-type]


def test_a_stop_placed_event_is_still_what_engine_stops_write() -> None:
    core = _live((0, (STOP,)), native=False)
    (placed,) = [e.event for e in _run(core, ["100"]) if isinstance(e.event, StopPlaced)]
    assert placed.trigger_price == D("95")
