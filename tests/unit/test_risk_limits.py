"""The risk engine's limits: open orders, order rate, daily loss (and their settings)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from adapters.venues.paper import PaperExchange
from engine.config import ConfigError, load
from engine.core import daily_loss
from engine.core.daily_loss import view
from engine.core.risk import RiskLimits, check
from engine.core.strategies import MaCross
from engine.core.trader import Trader, TraderState
from engine.core.trading import TradingCore
from engine.loop import TradingLoop
from events import (
    Envelope,
    EquityReported,
    Liquidity,
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    Side,
    TickReceived,
    Topics,
    TradingHalted,
    TradingResumed,
    decode,
    encode,
)

SECOND = 1_000_000_000
T0 = int(datetime(2024, 3, 1, 10, tzinfo=UTC).timestamp()) * SECOND
BIG = D("1000000")


def order(qty: str = "1", side: Side = Side.BUY) -> OrderSubmitted:
    return OrderSubmitted(
        instrument="BTC/USDT",
        client_order_id="c",
        strategy="s",
        side=side,
        order_type=OrderType.MARKET,
        quantity=D(qty),
        limit_price=None,
    )


def tick_env(price: str, ts: int, n: int, instrument: str = "BTC/USDT") -> Envelope:
    t = TickReceived(instrument=instrument, venue="v", trade_id=str(n), price=D(price), quantity=D("1"), side=Side.BUY)
    eid = uuid.uuid5(uuid.NAMESPACE_URL, f"tick:{instrument}:{n}")
    return Envelope(eid, t, ts, 0, eid, None, "test")


def flip_flop_core(limits: RiskLimits, venue: PaperExchange | None) -> TradingCore:
    """MA(1) vs MA(2) on prices going up and down: from the 4th tick on, every tick wants a new order."""
    return TradingCore(Trader(MaCross.of(1, 2, D("1")), limits), venue)


def decisions(out: list[Envelope]) -> list[OrderSubmitted | OrderRejected]:
    return [
        e.event
        for e in out
        if isinstance(e.event, OrderSubmitted) or (isinstance(e.event, OrderRejected) and e.event.by == "risk")
    ]


# --- max open orders -------------------------------------------------------------------------------


def test_an_order_beyond_the_open_order_limit_is_rejected_by_rule_max_open_orders() -> None:
    limits = RiskLimits(BIG, BIG, max_open_orders=2)
    out = check(order(), position=D(0), open_exposure=D(0), last_price=D(1), limits=limits, open_orders=2)
    assert isinstance(out, OrderRejected) and out.rule == "max_open_orders" and out.by == "risk"
    assert "2 orders of BTC/USDT are open" in out.reason
    assert check(order(), position=D(0), open_exposure=D(0), last_price=D(1), limits=limits, open_orders=1) is not None


def test_orders_the_venue_has_not_answered_stay_open_and_block_the_next_until_one_ends() -> None:
    # live core (no simulated venue): nothing answers, so every order sent stays open
    core = flip_flop_core(RiskLimits(BIG, BIG, max_open_orders=3), None)
    prices = ["100", "101"] * 6
    out = [e for n, p in enumerate(prices) for e in core.on_input(tick_env(p, T0 + n * SECOND, n), ts_init=0)]
    made = decisions(out)
    sent = [d for d in made if isinstance(d, OrderSubmitted)]
    refused = [d for d in made if isinstance(d, OrderRejected)]
    assert len(sent) == 3 and refused and all(r.rule == "max_open_orders" for r in refused)
    # a reducing order (back to flat) is refused too: the limit guards the venue, not the exposure
    assert any(r.side is Side.SELL for r in refused)
    # the venue answers one of them (accepted, then filled): one slot frees, the next order goes out
    first = sent[0]
    ts = T0 + 20 * SECOND
    for n, report in enumerate(
        [
            OrderAccepted(instrument="BTC/USDT", client_order_id=first.client_order_id, venue="x", venue_order_id="v1"),
            OrderFilled(
                instrument="BTC/USDT",
                client_order_id=first.client_order_id,
                venue="x",
                venue_order_id="v1",
                trade_id="t1",
                side=first.side,
                quantity=first.quantity,
                price=D("100"),
                fee=D(0),
                fee_currency="USDT",
                liquidity=Liquidity.TAKER,
                cumulative_quantity=first.quantity,
                leaves_quantity=D(0),
            ),
        ]
    ):
        eid = uuid.uuid5(uuid.NAMESPACE_URL, f"report:{n}")
        core.on_input(Envelope(eid, report, ts, 0, eid, None, "venue"), ts_init=0)
    assert len(core.state("BTC/USDT").open_orders) == 2
    more = [
        e
        for n, p in enumerate(["100", "101", "100"], start=30)
        for e in core.on_input(tick_env(p, T0 + n * SECOND, n), ts_init=0)
    ]
    assert any(isinstance(d, OrderSubmitted) for d in decisions(more))


# --- order rate --------------------------------------------------------------------------------------


def test_an_order_beyond_the_rate_limit_is_rejected_by_rule_order_rate() -> None:
    limits = RiskLimits(BIG, BIG, max_orders_per_minute=2)
    sent = (T0, T0 + 10 * SECOND)
    out = check(
        order(), position=D(0), open_exposure=D(0), last_price=D(1), limits=limits, sent_ts=sent, now=T0 + 59 * SECOND
    )
    assert isinstance(out, OrderRejected) and out.rule == "order_rate"
    # 60 s after the first send it has left the window
    ok = check(
        order(), position=D(0), open_exposure=D(0), last_price=D(1), limits=limits, sent_ts=sent, now=T0 + 60 * SECOND
    )
    assert isinstance(ok, OrderSubmitted)


def test_the_rate_window_slides_over_event_time_and_rejections_do_not_count_as_sent() -> None:
    core = flip_flop_core(RiskLimits(BIG, BIG, max_orders_per_minute=3), PaperExchange(D(0), D(0)))
    prices = ["100", "101"] * 100  # one tick a second for 200 s, an order wanted on every tick
    made: list[tuple[int, OrderSubmitted | OrderRejected]] = []
    for n, p in enumerate(prices):
        ts = T0 + n * SECOND
        made.extend((ts, d) for d in decisions(core.on_input(tick_env(p, ts, n), ts_init=0)))
    sent_at: list[int] = []
    for ts, d in made:
        in_window = [s for s in sent_at if s > ts - 60 * SECOND]
        if len(in_window) < 3:
            assert isinstance(d, OrderSubmitted), (ts, d)
            sent_at.append(ts)
        else:
            assert isinstance(d, OrderRejected) and d.rule == "order_rate", (ts, d)
    assert len(sent_at) >= 9  # three a minute for more than three minutes: the window really slid
    assert sum(isinstance(d, OrderRejected) for _, d in made) > 50
    # the state keeps only the last minute's sends
    assert all(s > T0 + 139 * SECOND for s in core.state("BTC/USDT").sent_ts)


def test_a_reducing_order_passes_the_position_limit_but_not_the_order_rate() -> None:
    limits = RiskLimits(BIG, D("0.05"), max_orders_per_minute=1)
    sell = order("0.01", Side.SELL)
    assert check(sell, position=D("0.2"), open_exposure=D(0), last_price=D(1), limits=limits) is sell
    out = check(
        sell, position=D("0.2"), open_exposure=D(0), last_price=D(1), limits=limits, sent_ts=(T0,), now=T0 + SECOND
    )
    assert isinstance(out, OrderRejected) and out.rule == "order_rate"


# --- daily loss --------------------------------------------------------------------------------------

DAY = "2024-03-01"


def btc(price: str, *, day: str = DAY, open_price: str = "60000") -> TraderState:
    """Long 0.01 BTC bought at 60000 before the day started; now at ``price``."""
    flows = (("BTC", D("0.01")), ("USDT", D("-600")))
    return TraderState(
        "BTC/USDT", last_price=D(price), day=day, flows=flows, day_open_price=D(open_price), day_open_flows=flows
    )


def test_the_daily_loss_limit_is_reached_at_its_share_of_start_of_day_equity() -> None:
    start = {"USDT": D("1000")}  # start of day: 400 USDT + 0.01 BTC x 60000 = 1000
    assert daily_loss.check([view(btc("55100"))], start, day=DAY, limit=D("0.05")) is None  # -49: 4.9 %
    breach = daily_loss.check([view(btc("55000"))], start, day=DAY, limit=D("0.05"))  # -50: 5 %
    assert breach is not None
    assert (breach.currency, breach.start_of_day, breach.equity, breach.loss) == ("USDT", D(1000), D(950), D("0.05"))
    halt = daily_loss.halt_event(breach)
    assert halt.by == "risk:daily_loss_limit" and "5.0000%" in halt.reason


def test_after_a_trip_the_next_one_that_day_needs_another_limit_of_loss() -> None:
    start = {"USDT": D("1000")}
    assert daily_loss.check([view(btc("54000"))], start, day=DAY, limit=D("0.05"), trips_today=1) is None  # 6 %
    assert daily_loss.check([view(btc("50000"))], start, day=DAY, limit=D("0.05"), trips_today=1) is not None  # 10 %


def test_a_new_day_starts_from_its_own_equity_and_an_idle_instrument_adds_no_change() -> None:
    start = {"USDT": D("1000")}
    # yesterday's state: as of today it has not traded, so today's loss is nothing
    assert daily_loss.check([view(btc("50000", day="2024-02-29"))], start, day=DAY, limit=D("0.05")) is None
    # the core takes the day's open at the first tick of each UTC day
    core = TradingCore(Trader(MaCross.of(10, 30, D("1")), RiskLimits(BIG, BIG)), None)
    core.on_input(tick_env("60000", T0, 0), ts_init=0)
    core.on_input(tick_env("59000", T0 + SECOND, 1), ts_init=0)
    assert core.state("BTC/USDT").day_open_price == D("60000")
    core.on_input(tick_env("58000", T0 + 86_400 * SECOND, 2), ts_init=0)
    state = core.state("BTC/USDT")
    assert (state.day, state.day_open_price) == ("2024-03-02", D("58000"))


def test_a_quote_currency_without_start_of_day_equity_never_trips() -> None:
    s = TraderState(
        "XRP/ETH",
        last_price=D("0.001"),
        day=DAY,
        flows=(("XRP", D("100")), ("ETH", D("-0.2"))),
        day_open_price=D("0.002"),
        day_open_flows=(),
    )
    assert daily_loss.check([view(s)], {"USDT": D("1000")}, day=DAY, limit=D("0.05")) is None


def eth(price: str) -> TraderState:
    """Long 0.1 ETH bought at 3000 before the day started; now at ``price``."""
    flows = (("ETH", D("0.1")), ("USDT", D("-300")))
    return TraderState(
        "ETH/USDT", last_price=D(price), day=DAY, flows=flows, day_open_price=D("3000"), day_open_flows=flows
    )


def test_a_loss_spread_over_two_engines_trips_when_each_counts_the_others_report() -> None:
    # the account at the start of the day: 100 USDT + 0.01 BTC @ 60000 + 0.1 ETH @ 3000 = 1000; limit 8 % = 80
    start, limit = {"USDT": D("1000")}, D("0.08")
    btc_now, eth_now = btc("55500"), eth("2600")  # -45 on BTC (engine A's), -40 on ETH (engine B's): -85 together
    assert daily_loss.check([view(btc_now)], start, day=DAY, limit=limit) is None  # what A alone sees: -4.5 %
    assert daily_loss.check([view(eth_now)], start, day=DAY, limit=limit) is None  # what B alone sees: -4 %
    # each engine sees its own instrument live, the other's through the control topic
    eth_seen_by_a = daily_loss.from_report(
        decode(encode(Envelope.new(daily_loss.report(view(eth_now)), ts_event=T0, ts_init=T0, source="engine"))).event
    )  # type: ignore[arg-type]
    assert eth_seen_by_a == view(eth_now)  # the report carries the view exactly, Decimal for Decimal
    breach = daily_loss.check([view(btc_now), eth_seen_by_a], start, day=DAY, limit=limit)
    assert breach is not None and breach.loss == D("0.085")
    assert daily_loss.check([view(btc_now), view(eth("2700"))], start, day=DAY, limit=limit) is None  # -7.5 %


def test_a_report_is_worth_sending_on_a_fill_or_a_new_day_and_a_second_apart_for_a_price_move() -> None:
    first = view(btc("60000"))
    assert daily_loss.worth_reporting(first, None, T0, 0, SECOND)
    moved = view(btc("60001"))
    assert not daily_loss.worth_reporting(moved, first, T0 + SECOND // 2, T0, SECOND)
    assert daily_loss.worth_reporting(moved, first, T0 + SECOND, T0, SECOND)
    assert not daily_loss.worth_reporting(first, first, T0 + 10 * SECOND, T0, SECOND)  # nothing changed
    filled = replace(first, flows=(("BTC", D("0.02")), ("USDT", D("-1200"))))
    assert daily_loss.worth_reporting(filled, first, T0 + 1, T0, SECOND)


class _Producer:
    def __init__(self) -> None:
        self.sent: list[Envelope] = []

    async def enqueue(self, env: Envelope, topic: str | None = None) -> asyncio.Future[Any]:
        self.sent.append(env)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def _loop_owning_btc(limit: D) -> tuple[TradingLoop, _Producer, Topics, TopicPartition]:
    """A trading loop (no Kafka: its producer records, its control topic is empty) owning partition 0, whose core
    holds BTC/USDT long 0.01 from 60000, on an account of 1000 USDT with a daily loss limit of ``limit``."""
    producer = _Producer()
    topics = Topics("unit.")
    core = TradingCore(Trader(MaCross.of(10, 30, D("0.01")), RiskLimits(BIG, BIG)), PaperExchange(D(0), D(0)))
    core.states[(core.trader.name, "BTC/USDT")] = btc("60000")
    loop = TradingLoop(
        "127.0.0.1:1",
        producer,
        lambda: core,
        topics,  # type: ignore[arg-type]
        starting_balances={"USDT": D("1000")},
        daily_loss_limit=limit,
    )

    async def no_control(*, to_end: bool = False) -> None:
        return None

    loop._read_control = no_control  # type: ignore[method-assign]
    tp = TopicPartition(topics.ticks, 0)
    loop.cores[tp] = core
    return loop, producer, topics, tp


async def test_the_loop_writes_one_halt_at_the_breach_and_trips_again_only_on_a_further_limit() -> None:
    loop, producer, topics, tp = _loop_owning_btc(D("0.05"))
    offset = 0

    async def ticks(*prices: str) -> list[Envelope]:
        nonlocal offset
        envs = [tick_env(p, T0 + (offset + i) * SECOND, offset + i) for i, p in enumerate(prices)]
        msgs = [SimpleNamespace(offset=offset + i, value=encode(e)) for i, e in enumerate(envs)]
        offset += len(prices)
        before = len(producer.sent)
        await loop._process({tp: msgs})
        return [e for e in producer.sent[before:] if isinstance(e.event, TradingHalted)]

    assert await ticks("59000", "57000") == []
    (halt,) = await ticks("55000", "54000", "53000")  # 5 % at the first of them; published once
    breaching = tick_env("55000", T0 + 2 * SECOND, 2)
    assert halt.ts_event == breaching.ts_event + 1 and halt.causation_id == breaching.event_id
    assert isinstance(halt.event, TradingHalted) and halt.event.by == "risk:daily_loss_limit"
    assert topics.for_event(halt.event) == topics.control
    assert loop.supervisor.breaker.halted_at(breaching.ts_event + 1) and not loop.supervisor.breaker.halted_at(
        breaching.ts_event
    )
    # an operator resumes; 7 % does not trip again, 10 % does
    loop.supervisor.breaker.apply(TradingResumed(reason="ok", by="operator"), T0 + 10 * SECOND)
    offset = 11
    assert await ticks("53000") == []
    (again,) = await ticks("50000", "49000")
    assert isinstance(again.event, TradingHalted) and "10.0000%" in again.event.reason


async def test_an_engine_trips_on_the_accounts_loss_with_the_other_engines_reports_and_reports_its_own() -> None:
    loop, producer, topics, tp = _loop_owning_btc(D("0.08"))
    # ETH belongs to another engine, which reported it at 2600 (-40); BTC's own report is ignored as a peer's
    loop.supervisor.peers["ETH/USDT"] = view(eth("2600"))
    loop.supervisor.peers["BTC/USDT"] = view(btc("70000"))
    envs = [tick_env(p, T0 + i * 2 * SECOND // 5, i) for i, p in enumerate(["57000", "56500", "56100", "55500"])]
    await loop._process({tp: [SimpleNamespace(offset=i, value=encode(e)) for i, e in enumerate(envs)]})
    reports = [e for e in producer.sent if isinstance(e.event, EquityReported)]
    # the first tick, then only the fourth (a price move reported at most once a second of event time)
    assert [(r.causation_id, r.event.price) for r in reports] == [
        (envs[0].event_id, D("57000")),
        (envs[3].event_id, D("55500")),
    ]
    assert all(topics.for_event(r.event) == topics.control and r.key == "BTC/USDT" for r in reports)
    (halt,) = [e for e in producer.sent if isinstance(e.event, TradingHalted)]
    assert halt.causation_id == envs[3].event_id  # -45 on BTC, -40 on ETH: -8.5 % of the account's 1000
    assert "8.5000%" in halt.event.reason  # type: ignore[attr-defined]


# --- settings ----------------------------------------------------------------------------------------


def test_the_risk_settings_have_defaults_and_reach_the_core() -> None:
    from engine.app import daily_loss_settings, make_core_factory

    s = load()
    assert (s.risk.max_open_orders, s.risk.max_orders_per_minute, s.risk.daily_loss_limit) == (5, 30, D("0.05"))
    s = load(risk={"max_open_orders": 2, "max_orders_per_minute": 7, "daily_loss_limit": "0.01"})
    limits = make_core_factory(s)().trader.limits
    assert (limits.max_open_orders, limits.max_orders_per_minute) == (2, 7)
    assert daily_loss_settings(s)["daily_loss_limit"] == D("0.01")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MAX_OPEN_ORDERS", "0"),
        ("MAX_ORDERS_PER_MINUTE", "0"),
        ("DAILY_LOSS_LIMIT", "0"),
        ("DAILY_LOSS_LIMIT", "1.5"),
    ],
)
def test_a_bad_risk_setting_fails_at_start_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    monkeypatch.setenv(f"ENGINE_RISK__{key}", value)
    with pytest.raises(ConfigError, match=f"risk.{key.lower()}"):
        load()
