"""The engine-wide decisions are pure functions of what the supervisor was given: switches marked where they apply,
one trip per breach with a stable id, reports at most once a second of price moves, the same events for the same log.
"""

from __future__ import annotations

import uuid
from decimal import Decimal as D

from engine.core.daily_loss import view
from engine.core.supervisor import Supervisor
from events import BreakerApplied, Envelope, EquityReported, TradingHalted, TradingResumed
from tests.unit.test_risk_limits import SECOND, T0, btc, tick_env

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
