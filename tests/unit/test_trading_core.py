"""The pure trading core: strategy, risk, the paper venue, determinism on real trades, settings."""

from __future__ import annotations

import uuid
from decimal import Decimal as D
from pathlib import Path

import pytest

from adapters.feeds.recorded import load_trades
from adapters.venues.paper import PaperExchange
from engine.app import make_core_factory
from engine.config import ConfigError, load
from engine.core.risk import RiskLimits, check
from engine.core.strategies import MaCross, Target
from engine.core.trader import Trader, TraderState
from events import (
    Envelope,
    OrderCancelled,
    OrderCancelRequested,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    Side,
    TickReceived,
)
from tests.support import SHARED_TRADES


def tick(price: str, qty: str = "1", instrument: str = "BTC/USDT", n: int = 0) -> TickReceived:
    return TickReceived(
        instrument=instrument, venue="v", trade_id=str(n), price=D(price), quantity=D(qty), side=Side.BUY
    )


def test_the_strategy_signals_only_on_a_real_crossing() -> None:
    s = MaCross.of(fast=2, slow=4, quantity=D("1"))
    view = Trader(s, RiskLimits(D(10**9), D(10**9))).view(initial_state(s), 0, "cause")
    prices = ["10", "10", "10", "9", "9", "12", "13", "13", "8", "7"]
    state, targets = s.initial(), []
    for n, p in enumerate(prices):
        state, intents = s.on_tick(state, tick(p, n=n), view)
        targets += [(n, i.position) for i in intents if isinstance(i, Target)]
    # fast(2) vs slow(4) means by hand: n=3: 9.5 < 9.75 (armed below); n=5: 10.5 > 10 -> long;
    # n=8: 10.5 < 11.5 -> flat (no shorting)
    assert targets == [(5, D(1)), (8, D(0))]
    short = MaCross.of(fast=2, slow=4, quantity=D("1"), allow_short=True)
    state, last = short.initial(), None
    for n, p in enumerate(prices):
        state, intents = short.on_tick(state, tick(p, n=n), view)
        last = intents[-1] if intents else last
    assert isinstance(last, Target) and last.position == -1


def initial_state(s: MaCross) -> TraderState:
    return Trader(s, RiskLimits(D(1), D(1))).initial("BTC/USDT")


def order(qty: str, side: Side = Side.BUY, limit: str | None = None) -> OrderSubmitted:
    return OrderSubmitted(
        instrument="BTC/USDT",
        client_order_id="c",
        strategy="s",
        side=side,
        order_type=OrderType.LIMIT if limit else OrderType.MARKET,
        quantity=D(qty),
        limit_price=D(limit) if limit else None,
    )


@pytest.mark.parametrize(
    ("o", "position", "rule"),
    [
        (order("0"), "0", "quantity_positive"),
        (order("0.02"), "0", "max_order_notional"),  # 0.02 x 60000 = 1200 > 1000
        (order("0.01", limit="200000"), "0", "max_order_notional"),
        (order("0.01"), "0.045", "max_position"),  # would reach 0.055 > 0.05
    ],
)
def test_each_risk_rule_refuses_with_its_name(o: OrderSubmitted, position: str, rule: str) -> None:
    out = check(
        o, position=D(position), open_exposure=D(0), last_price=D("60000"), limits=RiskLimits(D("1000"), D("0.05"))
    )
    assert isinstance(out, OrderRejected) and out.rule == rule and out.by == "risk"
    assert (out.client_order_id, out.quantity, out.side) == (o.client_order_id, o.quantity, o.side)


def test_reducing_risk_passes_even_above_the_position_limit() -> None:
    o = order("0.01", side=Side.SELL)
    assert (
        check(o, position=D("0.2"), open_exposure=D(0), last_price=D("60000"), limits=RiskLimits(D("1000"), D("0.05")))
        is o
    )


def test_paper_market_order_fills_in_full_at_the_next_tick_with_the_taker_fee() -> None:
    venue = PaperExchange(D("0.001"), D("0.0005"))
    assert venue.on_tick(tick("100")) == []
    (ack,) = venue.submit(order("2"))
    assert ack.TYPE == "OrderAccepted"
    assert venue.submit(order("2")) == []  # the same client order id again: accepted once
    (f,) = venue.on_tick(tick("101", qty="0.5"))
    assert isinstance(f, OrderFilled)
    assert (f.quantity, f.price, f.fee, f.fee_currency, f.leaves_quantity) == (2, 101, D("0.202"), "USDT", 0)
    assert venue.on_tick(tick("102")) == []


def test_paper_limit_order_rests_then_fills_partially_at_its_price_with_the_maker_fee() -> None:
    venue = PaperExchange(D("0.001"), D("0.0005"))
    venue.submit(order("3", limit="100"))
    assert venue.on_tick(tick("100.5", qty="5")) == []  # not crossed
    (a,) = venue.on_tick(tick("99", qty="1"))
    (b,) = venue.on_tick(tick("100", qty="1.5"))
    assert isinstance(a, OrderFilled) and isinstance(b, OrderFilled)
    assert (a.price, a.quantity, a.cumulative_quantity, a.leaves_quantity) == (100, 1, 1, 2)
    assert (b.quantity, b.cumulative_quantity, b.leaves_quantity, b.fee) == (D("1.5"), D("2.5"), D("0.5"), D("0.075"))
    assert a.trade_id != b.trade_id
    (c,) = venue.cancel(OrderCancelRequested(instrument="BTC/USDT", client_order_id="c", reason="done"))
    assert isinstance(c, OrderCancelled) and c.filled_quantity == D("2.5")
    assert venue.on_tick(tick("50", qty="10")) == []


def run_real_trades(max_order_notional: str = "1") -> list[Envelope]:
    settings = load(
        strategy={"order_quantity": "100"}, risk={"max_position": "300", "max_order_notional": max_order_notional}
    )
    core = make_core_factory(settings)()
    out: list[Envelope] = []
    for row in load_trades(SHARED_TRADES):
        t = TickReceived(
            instrument="XRP/ETH", venue="binance", trade_id=row[1], price=row[4], quantity=row[5], side=Side(row[3])
        )
        tick_id = uuid.uuid5(uuid.NAMESPACE_URL, f"binance-trade:{row[1]}")  # the same in both runs
        env = Envelope(tick_id, t, int(row[0]) * 1_000_000, 0, tick_id, None, "test")
        out.extend(core.on_input(env, ts_init=0))
    return out


def test_the_same_ticks_give_the_same_events_ids_included() -> None:
    first, second = run_real_trades(), run_real_trades()
    assert first == second
    orders = [e.event for e in first if isinstance(e.event, OrderSubmitted)]
    assert len(orders) > 100
    assert len({o.client_order_id for o in orders}) == len(orders)
    fills = [e.event for e in first if isinstance(e.event, OrderFilled)]
    for o in orders:
        assert sum((f.quantity for f in fills if f.client_order_id == o.client_order_id), D(0)) in (0, o.quantity)


def test_a_risk_limit_too_small_turns_orders_into_rejections() -> None:
    events = run_real_trades(max_order_notional="0.0001")
    rejected = [e.event for e in events if isinstance(e.event, OrderRejected)]
    assert rejected and all(r.rule == "max_order_notional" for r in rejected)
    assert not any(isinstance(e.event, OrderFilled) for e in events)


def test_bad_settings_fail_at_start_naming_the_key_and_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENGINE_KAFKA__PARTITIONS", "many")
    with pytest.raises(ConfigError, match=r"kafka\.partitions.*ENGINE_KAFKA__PARTITIONS"):
        load()
    monkeypatch.delenv("ENGINE_KAFKA__PARTITIONS")
    with pytest.raises(ConfigError, match=r"strategy\.fast \(40\) must be smaller than strategy\.slow"):
        load(strategy={"fast": 40})
    with pytest.raises(ConfigError, match=r"feed\.path is required"):
        load(feed={"kind": "recorded"})
    toml = tmp_path / "engine.toml"
    toml.write_text('[risk]\nmax_position = "2"\n[kafka]\npartitions = 8\n')
    monkeypatch.setenv("ENGINE_KAFKA__PARTITIONS", "6")
    s = load(toml)
    assert s.risk.max_position == D(2) and s.kafka.partitions == 6  # the environment overrides the file
