"""The engine-wide decisions are pure functions of what the supervisor was given: switches marked where they apply,
one trip per breach with a stable id, reports at most once a second of price moves, the same events for the same log.
"""

from __future__ import annotations

import random
import uuid
from decimal import Decimal as D

import pytest

from engine.core.daily_loss import view
from engine.core.supervisor import Supervisor
from engine.core.trader import TraderState
from events import BreakerApplied, Envelope, EquityReported, TradingHalted, TradingResumed
from tests.unit.test_risk_limits import DAY, SECOND, T0, btc, tick_env

P0, P1 = ("market.ticks", 0), ("market.ticks", 1)


def _switch(event: TradingHalted | TradingResumed, ts: int) -> Envelope:
    return Envelope(uuid.uuid4(), event, ts, 0, uuid.uuid4(), None, "operator")


def test_a_switch_is_marked_once_on_every_partition_traded_from_its_next_offset() -> None:
    sup = Supervisor.of({"USDT": D(1000)}, None)
    halt = _switch(TradingHalted(reason="r", by="operator"), T0)
    markers = sup.on_control(halt, lambda: {P1: 7, P0: 3}, ts_init=1)
    assert [(m.event.partition, m.event.offset) for m in markers] == [(0, 3), (1, 7)]  # type: ignore[attr-defined]
    assert all(isinstance(m.event, BreakerApplied) and m.causation_id == halt.event_id for m in markers)
    assert sup.halted_at(T0, P0, 3) and not sup.halted_at(T0, P0, 2)
    assert sup.on_control(halt, lambda: {P0: 9}, ts_init=2) == []  # read again (a restart): nothing new
    # the markers read back by another engine (a recovery) mark the same offsets: none written again
    other = Supervisor.of({"USDT": D(1000)}, None)
    for m in markers:
        assert other.on_control(m, lambda: {}, ts_init=0) == []
    assert other.on_control(halt, lambda: {P0: 50, P1: 50}, ts_init=0) == []
    assert other.halted_at(T0, P0, 3) and not other.halted_at(T0, P0, 2)


def test_a_breach_trips_once_with_a_stable_id_and_the_same_log_gives_the_same_events() -> None:
    def run() -> list[Envelope]:
        sup = Supervisor.of({"USDT": D(1000)}, D("0.05"))
        out: list[Envelope] = []
        for i, price in enumerate(["59000", "57000", "55000", "54000"]):
            env = tick_env(price, T0 + i * SECOND, i)
            state = view(btc(price))
            decided = sup.after_input(env, state, [state], dict.fromkeys([P0], i + 1).copy, ts_init=0)
            out.extend(decided.events)
            if decided.breach is not None:
                assert decided.breach.currency == "USDT" and decided.breach.threshold == D("0.05")
        return out

    first = run()
    trips = [e for e in first if isinstance(e.event, TradingHalted)]
    assert len(trips) == 1  # at 55000 (-5 %); at 54000 trading is halted already: nothing to trip
    (trip,) = trips
    assert trip.ts_event == T0 + 2 * SECOND + 1 and trip.key == "risk"
    (marker,) = [e.event for e in first if isinstance(e.event, BreakerApplied)]
    assert (marker.switch_id, marker.offset) == (str(trip.event_id), 3)
    assert [e.event_id for e in run()] == [e.event_id for e in first]  # a re-run (a recovery) decides the same


def test_a_price_move_alone_is_reported_at_most_once_a_second_of_event_time() -> None:
    sup = Supervisor.of({"USDT": D(1000)}, D("0.5"))
    reported = []
    for i in range(5):  # every 400 ms
        env = tick_env(str(60000 - i), T0 + i * 2 * SECOND // 5, i)
        state = view(btc(str(60000 - i)))
        events = sup.after_input(env, state, [state], lambda: {P0: 0}, ts_init=0).events
        reported += [i for e in events if isinstance(e.event, EquityReported)]
    assert reported == [0, 3]


def test_nothing_is_decided_without_a_daily_loss_limit() -> None:
    sup = Supervisor.of({"USDT": D(1000)}, None)
    state = view(btc("1"))  # a 99 % loss
    assert sup.after_input(tick_env("1", T0, 0), state, [state], lambda: {P0: 1}, ts_init=0).events == ()


def _walk(seed: int) -> list[tuple[str, TraderState]]:
    """Two instruments' states tick by tick: prices wandering down to the limit and past it (often landing on it
    exactly), a fill now and then (the flows move), a short held (its loss comes as the price rises), a new day."""
    rng = random.Random(seed)
    btc_price, eth_price = D(60000), D(3000)
    btc_flows = (("BTC", D("0.01")), ("USDT", D("-600")))
    eth_flows = (("ETH", D("-0.1")), ("USDT", D("300")))  # short 0.1 ETH
    day, out = DAY, []
    for i in range(400):
        if i == 300:
            day = "2024-03-02"
        if rng.random() < 0.5:
            btc_price += rng.choice([D(-100), D(-50), D(0), D(50), D(25), D(-25)])
            if rng.random() < 0.03:
                btc_flows = (("BTC", btc_flows[0][1] + D("0.001")), ("USDT", btc_flows[1][1] - btc_price / 1000))
            s = TraderState(
                "BTC/USDT",
                last_price=btc_price,
                day=day,
                flows=btc_flows,
                day_open_price=D(60000),
                day_open_flows=btc_flows,
            )
        else:
            eth_price += rng.choice([D(5), D(10), D(0), D(-5), D("2.5")])
            s = TraderState(
                "ETH/USDT",
                last_price=eth_price,
                day=day,
                flows=eth_flows,
                day_open_price=D(3000),
                day_open_flows=eth_flows,
            )
        out.append((s.instrument, s))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_the_loss_check_skipped_inside_its_bounds_trips_at_the_same_tick_with_the_same_events(seed: int) -> None:
    """The supervisor answers a price move that provably cannot breach without the check (given what the views were
    made from, ``own_key``); the trips, their ticks and every event are those of the check run on every input."""

    def run(vouched: bool) -> list[Envelope]:
        sup = Supervisor.of({"USDT": D(1000)}, D("0.01"))
        states: dict[str, TraderState] = {}
        out: list[Envelope] = []
        key = object()
        for n, (instrument, s) in enumerate(_walk(seed)):
            states[instrument] = s
            env = tick_env(str(s.last_price), T0 + n * SECOND // 3, n, instrument)
            own = (view(x) for x in states.values())
            extra = {"own_key": key} if vouched else {}
            decided = sup.after_input(env, view(s), own, dict.fromkeys([P0], n + 1).copy, ts_init=0, **extra)
            out.extend(decided.events)
            if n % 97 == 96:  # an operator resumes: the next trip needs twice the loss
                rid = uuid.uuid5(uuid.NAMESPACE_URL, f"resume:{n}")
                resume = Envelope(
                    rid, TradingResumed(reason="r", by="operator"), T0 + n * SECOND // 3 + 2, 0, rid, None, "operator"
                )
                out.extend(sup.on_control(resume, dict.fromkeys([P0], n + 1).copy, ts_init=0))
        return out

    full, skipped = run(False), run(True)
    assert [(e.event_id, e.event, e.ts_event) for e in skipped] == [(e.event_id, e.event, e.ts_event) for e in full]
    assert any(isinstance(e.event, TradingHalted) for e in full)  # the walks do reach the limit
