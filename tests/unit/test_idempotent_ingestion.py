"""The same trade published twice is one event, and the engine takes it once, in a live run and in a recovery."""

from __future__ import annotations

from decimal import Decimal

from adapters.feeds.formats import read_trades
from adapters.feeds.recorded import load_trades, resume_after
from adapters.venues.paper import PaperExchange
from engine.core import state_snapshot
from engine.core.dedupe import RecentIds
from engine.core.risk import RiskLimits
from engine.core.strategies import MaCross
from engine.core.trader import Trader
from engine.core.trading import TradingCore
from events import Envelope, Side, TickReceived
from tests.support import TRADES

T0 = 1_570_752_011_000_000_000


def _tick(trade_id: str, price: str = "100") -> TickReceived:
    return TickReceived(
        instrument="BTC/USDT",
        venue="binance",
        trade_id=trade_id,
        price=Decimal(price),
        quantity=Decimal("1"),
        side=Side.BUY,
    )


def test_a_ticks_id_is_derived_from_its_trade() -> None:
    a = Envelope.of_trade(_tick("42"), ts_event=T0, ts_init=T0 + 5, source="feed:binance")
    again = Envelope.of_trade(_tick("42"), ts_event=T0, ts_init=T0 + 999, source="feed:binance")
    other = Envelope.of_trade(_tick("43"), ts_event=T0, ts_init=T0 + 5, source="feed:binance")
    elsewhere = Envelope.of_trade(
        TickReceived(
            instrument="BTC/USDT",
            venue="kraken",
            trade_id="42",
            price=Decimal("100"),
            quantity=Decimal("1"),
            side=Side.BUY,
        ),
        ts_event=T0,
        ts_init=T0,
        source="feed:kraken",
    )
    assert a.event_id == again.event_id  # published again later: the same event
    assert len({a.event_id, other.event_id, elsewhere.event_id}) == 3
    assert a.event_id.version == 7 and a.correlation_id == a.event_id and a.causation_id is None


def test_recent_ids_forget_the_oldest_beyond_their_capacity() -> None:
    r: RecentIds[str] = RecentIds(3)
    assert [r.add(x) for x in "abca"] == [True, True, True, False]
    assert r.add("d") and r.ids() == ("b", "c", "d")
    assert r.add("a")  # forgotten: taken again
    assert RecentIds(2, ("x", "y", "z")).ids() == ("y", "z")


def _core() -> TradingCore:
    return TradingCore(
        Trader(MaCross.of(2, 3, Decimal("0.01")), RiskLimits(Decimal(10**6), Decimal(10), 5, 30)),
        PaperExchange(Decimal("0.001"), Decimal("0.0005"), None),
    )


def test_the_engine_takes_a_repeated_tick_once_and_a_recovery_from_a_snapshot_does_too() -> None:
    prices = ["100", "101", "102", "99", "98", "97", "101", "103", "104", "100"]
    ticks = [
        Envelope.of_trade(_tick(str(i), p), ts_event=T0 + i, ts_init=T0 + i, source="t") for i, p in enumerate(prices)
    ]
    once = _core()
    out_once = [e for t in ticks for e in once.on_input(t, ts_init=0)]
    twice = _core()
    resent = ticks[:6] + ticks[2:6] + ticks[6:]  # a window sent again after a broker error
    out_twice = [e for t in resent for e in twice.on_input(t, ts_init=0)]
    assert out_once and [e.event_id for e in out_twice] == [e.event_id for e in out_once]
    assert twice.states == once.states

    restored = _core()
    half = _core()
    for t in ticks[:6]:
        half.on_input(t, ts_init=0)
    assert state_snapshot.load(state_snapshot.dump(half, 6), restored) == 6
    out_restored = [e for t in ticks[2:] for e in restored.on_input(t, ts_init=0)]  # the repeats come first
    assert [e.event_id for e in out_restored] == [e.event_id for e in out_once if e.ts_event >= T0 + 6]


def test_a_recorded_run_resumes_just_after_its_last_trade_in_the_log() -> None:
    rows = load_trades(TRADES)
    last = rows[4999]

    def resumed(ts_ns: int, trade_id: str) -> list[str]:
        return [t.trade_id for t in resume_after(read_trades(TRADES), ts_ns, trade_id)]

    assert resumed(int(last[0]) * 1_000_000, str(last[1])) == [r[1] for r in rows[5000:]]
    # a trade the file does not hold: from the first trade of its time (those in the log are skipped as repeats)
    again = resumed(int(last[0]) * 1_000_000, "not-in-the-file")
    i = len(rows) - len(again)
    assert i <= 4999 and int(rows[i][0]) == int(last[0]) and int(rows[i - 1][0]) < int(last[0])
    assert again == [r[1] for r in rows[i:]]
    assert resumed((int(rows[-1][0]) + 1) * 1_000_000, "x") == []


def test_the_one_way_to_derive_gives_the_ids_the_log_already_holds() -> None:
    """Envelope.derive (with its overrides), caused_by and of_fact compute the ids the engine and the execution
    service wrote before they existed: a replay of an old log still recognises its events."""
    import hashlib
    import uuid

    from events import TradingHalted
    from events._ids import derived_event_id

    tick = Envelope.of_trade(_tick("1"), ts_event=T0, ts_init=T0, source="t")
    halt = TradingHalted(reason="loss", by="risk:daily_loss_limit")
    trip = tick.derive(halt, 1 << 30, ts_init=0, source="engine", ts_event=T0 + 1, key="risk")
    assert (trip.event_id, trip.ts_event, trip.key) == (
        derived_event_id(tick.event_id, 1 << 30, T0 + 1),
        T0 + 1,
        "risk",
    )
    assert (trip.correlation_id, trip.causation_id) == (tick.correlation_id, tick.event_id)
    marker = Envelope.caused_by(trip.event_id, halt, 7, ts_event=T0 + 1, ts_init=0, source="engine", key="t:0")
    assert marker.event_id == derived_event_id(trip.event_id, 7, T0 + 1)
    assert marker.correlation_id == marker.causation_id == trip.event_id
    fact = Envelope.of_fact("binance", "filled|9", halt, ts_event=T0, ts_init=0, source="venue:binance")
    cause = uuid.UUID(bytes=hashlib.blake2b(b"binance|filled|9", digest_size=16).digest())
    assert fact.event_id == fact.correlation_id == derived_event_id(cause, 0, T0) and fact.causation_id is None
