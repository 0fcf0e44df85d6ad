"""A halt read late is applied where the engine read it, and a recovery from the log applies it at the very same
record: the decisions of a recovery are the live ones, even for ticks stamped after the halt that were traded."""

from __future__ import annotations

import uuid
from decimal import Decimal as D
from types import SimpleNamespace

from aiokafka import TopicPartition

from adapters.venues.paper import PaperExchange
from engine.core.breaker import Breaker
from engine.core.risk import RiskLimits
from engine.loop import TradingLoop
from events import BreakerApplied, Envelope, OrderRejected, Topics, TradingHalted, TradingResumed, encode
from tests.unit.test_risk_limits import BIG, SECOND, T0, _Producer, flip_flop_core, tick_env

HALT, RESUME = TradingHalted(reason="r", by="operator"), TradingResumed(reason="r", by="operator")
P0, P1 = ("market.ticks", 0), ("market.ticks", 1)


def test_a_marked_switch_applies_from_its_offset_on_that_partition_and_by_time_elsewhere() -> None:
    b = Breaker()
    b.apply(HALT, T0, "h")
    b.mark("h", P0, 10)
    assert not b.halted_at(T0 + SECOND, P0, 9)  # processed before the engine read the halt: traded
    assert b.halted_at(T0 + SECOND, P0, 10)
    assert not b.halted_at(T0 - 1, P0, 20)  # stamped before the halt: never halted
    assert b.halted_at(T0 + SECOND, P1, 0)  # no marker: by event time alone
    b.apply(RESUME, T0 + 100 * SECOND, "r")
    b.mark("r", P0, 50)
    assert b.halted_at(T0 + 200 * SECOND, P0, 40)  # the resume is not applied there yet: still halted
    assert not b.halted_at(T0 + 200 * SECOND, P0, 50)
    assert not b.mark("h", P0, 99) and b.halted_at(T0 + SECOND, P0, 10)  # the first marker holds
    b.apply(HALT, T0, "h")  # the same switch read again changes nothing
    assert b.switches() == [("h", T0), ("r", T0 + 100 * SECOND)]


async def test_a_recovery_applies_a_late_halt_where_the_live_engine_did() -> None:
    producer = _Producer()
    topics = Topics("unit.")
    core = flip_flop_core(RiskLimits(BIG, BIG), PaperExchange(D(0), D(0)))
    loop = TradingLoop("127.0.0.1:1", producer, lambda: core, topics)  # type: ignore[arg-type]

    async def no_control(*, to_end: bool = False) -> None:
        return None

    loop._read_control = no_control  # type: ignore[method-assign]
    tp = TopicPartition(topics.ticks, 0)
    loop.cores[tp] = core
    ticks = [tick_env(p, T0 + i * SECOND, i) for i, p in enumerate(["100", "101", "100", "101"] * 3)]

    async def process(first: int, last: int) -> None:
        await loop._process({tp: [SimpleNamespace(offset=i, value=encode(ticks[i])) for i in range(first, last)]})

    await process(0, 8)
    # an operator's halt stamped at the 5th tick reaches the engine only now, after the 8th
    halt = Envelope(uuid.uuid4(), HALT, ticks[4].ts_event, 0, uuid.uuid4(), None, "operator")
    await loop._fold_control(halt)
    (marker,) = [e.event for e in producer.sent if isinstance(e.event, BreakerApplied)]
    assert (marker.switch_id, marker.partition, marker.offset) == (str(halt.event_id), 0, 8)
    await process(8, 12)
    live = [e for e in producer.sent if not isinstance(e.event, BreakerApplied)]
    refused = {e.causation_id for e in live if isinstance(e.event, OrderRejected) and e.event.rule == "halted"}
    assert refused and refused <= {t.event_id for t in ticks[8:]}  # ticks 5-8 were traded, 9-12 refused

    def recovered(breaker: Breaker) -> list[Envelope]:
        again = flip_flop_core(RiskLimits(BIG, BIG), PaperExchange(D(0), D(0)))
        return [
            out
            for i, t in enumerate(ticks)
            for out in again.on_input(t, ts_init=0, halted=breaker.halted_at(t.ts_event, (tp.topic, 0), i))
        ]

    from_log = Breaker()  # what a recovery folds from the control topic: the halt and its marker
    from_log.apply(HALT, halt.ts_event, str(halt.event_id))
    from_log.mark(marker.switch_id, (marker.topic, marker.partition), marker.offset)
    assert [(e.event_id, e.event) for e in recovered(from_log)] == [(e.event_id, e.event) for e in live]
    by_time = Breaker()  # without the marker, by event time alone, ticks 5-8 would be refused: not the live run
    by_time.apply(HALT, halt.ts_event, str(halt.event_id))
    assert [e.event for e in recovered(by_time)] != [e.event for e in live]
