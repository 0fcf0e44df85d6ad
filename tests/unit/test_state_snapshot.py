"""A core restored from a snapshot is the core that was saved: same state, and the same events from then on; a
snapshot of other code or settings, or a malformed one, is never used."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import orjson
import pytest

from engine.app import make_core_factory
from engine.config import load
from engine.core import state_snapshot as snap
from engine.core.trading import TradingCore
from events import Envelope, OrderFilled, OrderType, TickReceived
from tests.unit.test_risk_limits import SECOND, T0, tick_env

# a limit buy rests from the 10th tick and fills at the 14th, when the next one is placed: both in the snapshot
PRICES = [
    "100",
    "100",
    "100",
    "103",
    "102",
    "101",
    "99",
    "98",
    "97",
    "100",
    "103",
    "104",
    "102",
    "100",
    "98",
    "101",
    "104",
    "106",
] * 2


def limit_core(**risk: Any) -> TradingCore:
    """MA(2) vs MA(3) with limit orders on the paper venue (so orders rest, fill partly, and positions move)."""
    settings = load(
        strategy={"fast": 2, "slow": 3, "order_quantity": "1", "order_type": "limit"},
        risk={"max_order_notional": "100000", "max_position": "5", **risk},
        venue={"taker_fee_rate": "0.001", "maker_fee_rate": "0.0005"},
    )
    return make_core_factory(settings)()


def feed(core: TradingCore, ticks: list[Envelope]) -> list[Envelope]:
    return [out for t in ticks for out in core.on_input(t, ts_init=0)]


def ticks(n0: int, prices: list[str]) -> list[Envelope]:
    return [tick_env(p, T0 + (n0 + i) * SECOND, n0 + i) for i, p in enumerate(prices)]


def test_a_restored_core_has_the_same_state_and_makes_the_same_events_from_then_on() -> None:
    first, rest = ticks(0, PRICES[:14]), ticks(14, PRICES[14:])
    original = limit_core()
    made = feed(original, first)
    assert any(isinstance(e.event, OrderFilled) for e in made)  # a position moved
    assert original.venue is not None and any(original.venue.state().values())  # orders resting at the venue
    data = snap.dump(original, offset=14)
    restored = limit_core()
    assert snap.load(data, restored) == 14
    assert restored.states == original.states and restored.indicators == original.indicators
    assert restored.venue is not None and restored.venue.state() == original.venue.state()
    assert feed(restored, rest) == feed(original, rest)  # byte for byte the events the log would hold


def test_a_snapshot_of_other_settings_or_code_is_not_used() -> None:
    core = limit_core()
    feed(core, ticks(0, PRICES[:10]))
    data = snap.dump(core, offset=10)
    assert snap.offset_of(data, limit_core()) == 10
    assert snap.offset_of(data, limit_core(max_position="6")) is None  # another risk limit
    body = orjson.loads(data)
    body["fingerprint"] = "0" * 64  # as from another version of the code
    assert snap.offset_of(orjson.dumps(body), limit_core()) is None
    with pytest.raises(snap.SnapshotError):
        snap.load(orjson.dumps(body), limit_core())
    assert snap.offset_of(b"not json", limit_core()) is None


def test_a_snapshot_builds_only_allowed_types() -> None:
    core = limit_core()
    feed(core, ticks(0, PRICES[:10]))
    body = orjson.loads(snap.dump(core, offset=10))
    body["states"] = {"$c": "Popen", "f": {"args": "rm -rf /"}}  # what a forged snapshot might try
    with pytest.raises(snap.SnapshotError, match="not allowed"):
        snap.load(orjson.dumps(body), limit_core())
    money = snap._enc((D("0.1000"), OrderType.LIMIT, frozenset({"t1"})))
    assert snap._dec(orjson.loads(orjson.dumps(money))) == (D("0.1000"), OrderType.LIMIT, frozenset({"t1"}))
    assert str(snap._dec(orjson.loads(orjson.dumps(snap._enc(D("0.1000")))))) == "0.1000"  # the scale kept
    tick = TickReceived(
        instrument="X/Y", venue="v", trade_id="1", price=D("1.50"), quantity=D(2), side=tick_env("1", 0, 0).event.side
    )  # type: ignore[attr-defined]
    assert snap._dec(orjson.loads(orjson.dumps(snap._enc(tick)))) == tick
