"""Every event survives the wire exactly; anything else is refused with a reason."""

from __future__ import annotations

import typing
import uuid
from dataclasses import fields, replace
from decimal import Decimal
from enum import Enum
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import (
    DecodeError,
    Envelope,
    Event,
    OpenOrderSnapshot,
    OrderType,
    TickReceived,
    decode,
    encode,
    event_types,
    validation,
)
from events import upcasters as up
from events.enums import Side
from events.validation import DecimalRule, IntRule, TextRule


def valid_decimals(rule: DecimalRule) -> st.SearchStrategy[Decimal]:
    """Any decimal the field's rule takes, and values at its edges."""
    edges = [
        Decimal("0.00000001"),
        Decimal("1E-20"),
        Decimal("1E-30"),
        Decimal("-0.0"),
        Decimal("0"),
        Decimal("123456789012345.12345678901234567890"),
        Decimal("123456789012345678.123456789"),
        Decimal("1E+15"),
        Decimal("-1E+15"),
        Decimal("1E+20"),
        Decimal("1E+30"),
        Decimal("1E-60"),
    ]
    low = max(rule.low, Decimal("-1e12"))
    high = min(rule.high, Decimal("1e12"))
    return st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False, min_value=low, max_value=high, places=None),
        st.sampled_from([d for d in edges if rule.problem(d) is None]),
    ).filter(lambda d: rule.problem(d) is None)


def strategy_for(hint: Any, rule: validation.Rule | None = None) -> st.SearchStrategy[Any]:
    args = typing.get_args(hint)
    if args and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return st.one_of(st.none(), strategy_for(inner, rule))
    if hint is Decimal:
        assert isinstance(rule, DecimalRule)
        return valid_decimals(rule)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return st.sampled_from(list(hint))
    if hint is int:
        if isinstance(rule, IntRule):
            return st.integers(min_value=max(rule.ge, -(2**62)), max_value=min(rule.le, 2**62))
        return st.integers(min_value=-(2**62), max_value=2**62)
    if hint == tuple[str, ...]:
        return st.lists(st.text(max_size=20), max_size=4).map(tuple)
    if isinstance(rule, TextRule):
        return st.one_of(
            st.text(min_size=rule.min_length, max_size=20), st.text(min_size=rule.max_length, max_size=rule.max_length)
        )
    return st.text(max_size=20)


def event_strategy(cls: type[Event]) -> st.SearchStrategy[Event]:
    hints = typing.get_type_hints(cls)
    rules = validation.rules_of(cls)
    return st.builds(cls, **{f.name: strategy_for(hints[f.name], rules.get(f.name)) for f in fields(cls)})


def envelopes(cls: type[Event]) -> st.SearchStrategy[Envelope]:
    """Valid envelopes of an event type: times, key and values the rules of events.validation take."""

    def make(ev: Event, ts: int, init: int, derived: bool, control_key: str) -> Envelope:
        key = "" if ev.instrument else control_key  # "": the instrument's
        env = Envelope.new(ev, ts_event=ts, ts_init=init, source="test" if not derived else "t", key=key)
        return env.derive(ev, 3, ts_init=init, source="engine") if derived else env

    return st.builds(
        make,
        event_strategy(cls),
        st.integers(validation.ts_event_min(cls), validation.TS_MAX - 1),
        st.integers(0, validation.TS_MAX - 1),
        st.booleans(),
        st.sampled_from(["k", "operator", "risk", "market.ticks:3", "engine@host:42", ""]),
    )


@pytest.mark.parametrize("cls", sorted(event_types().values(), key=lambda c: c.TYPE), ids=lambda c: c.TYPE)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_event_type_round_trips_exactly(cls: type[Event], data: st.DataObject) -> None:
    env = data.draw(envelopes(cls))
    assert decode(encode(env)) == env


def tick() -> Envelope:
    ev = TickReceived(
        instrument="BTC/USDT",
        venue="v",
        trade_id="1",
        price=Decimal("60000.10"),
        quantity=Decimal("0.00100000"),
        side=Side.BUY,
    )
    return Envelope.new(ev, ts_event=1_700_000_000_000_000_000, ts_init=1_700_000_000_000_000_001, source="t")


def test_money_travels_as_strings_never_floats() -> None:
    wire = orjson.loads(encode(tick()))
    assert wire["data"]["price"] == "60000.10" and wire["data"]["quantity"] == "0.00100000"


def mutate(**changes: Any) -> bytes:
    obj = orjson.loads(encode(tick()))
    for key, value in changes.items():
        if key.startswith("data_"):
            name = key[5:]
            if value is ...:
                del obj["data"][name]
            else:
                obj["data"][name] = value
        else:
            obj[key] = value
    return orjson.dumps(obj)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (None, "tombstone"),
        (mutate(type="NoSuchEvent"), "unknown event type 'NoSuchEvent'"),
        (mutate(data_price=...), "missing field 'price'"),
        (mutate(data_colour="red"), "unknown fields ['colour']"),
        (mutate(data_price=60000.1), "expected a decimal string, got float"),
        (mutate(data_price="NaN"), "not a finite decimal"),
        (mutate(data_price="sixty"), "not a decimal"),
        (mutate(data_side="hold"), "is not one of"),
        (mutate(id="not-a-uuid"), "id: not a uuid"),
        (mutate(ts_event="yesterday"), "ts_event: expected an integer"),
        (mutate(v=99), "newer than this code"),
    ],
)
def test_malformed_records_are_refused_with_the_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode(raw)
    assert reason in err.value.reason


def test_an_old_schema_version_is_upcast_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend TickReceived is at v2, where v1 payloads had no venue."""
    monkeypatch.setattr(TickReceived, "VERSION", 2)
    monkeypatch.setattr(up, "UPCASTERS", {})
    up.upcaster("TickReceived", 1)(lambda d: {**d, "venue": "unknown-venue"})
    old = orjson.loads(encode(tick()))
    old["v"] = 1
    del old["data"]["venue"]
    env = decode(orjson.dumps(old))
    assert env.event.venue == "unknown-venue"  # type: ignore[attr-defined]
    assert env.event.price == Decimal("60000.10")  # type: ignore[attr-defined]


def test_a_v1_open_order_snapshot_reads_with_its_trade_ids_unknown() -> None:
    """v1 did not record the order's trade ids: upcast, they are None (unknown), not an empty tuple (no fills)."""
    snap = OpenOrderSnapshot(
        instrument="ETH/USDT",
        day="2026-03-10",
        client_order_id="o-1",
        strategy="s",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal("1.0"),
        status="accepted",
        filled_quantity=Decimal("0.25"),
        filled_notional=Decimal("750"),
        fees=Decimal("0.75"),
        trade_ids=("T-1",),
    )
    wire = orjson.loads(encode(Envelope.new(snap, ts_event=1, ts_init=1, source="engine")))
    assert wire["v"] == 2 and wire["data"]["trade_ids"] == ["T-1"]
    wire["v"] = 1
    del wire["data"]["trade_ids"]
    env = decode(orjson.dumps(wire))
    assert env.upcast_from == 1 and env.event == replace(snap, trade_ids=None)


def test_a_missing_upcaster_step_is_a_decode_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TickReceived, "VERSION", 3)
    monkeypatch.setattr(up, "UPCASTERS", {("TickReceived", 1): lambda d: d})
    with pytest.raises(DecodeError, match="no upcaster from TickReceived v2 to v3"):
        decode(encode(tick()).replace(b'"v":3', b'"v":1'))


def test_derived_ids_are_deterministic_time_ordered_uuid7() -> None:
    cause = tick()
    a = cause.derive(cause.event, 0, ts_init=1, source="x")
    assert a.event_id == cause.derive(cause.event, 0, ts_init=2, source="y").event_id
    assert a.event_id != cause.derive(cause.event, 1, ts_init=1, source="x").event_id
    assert a.event_id.version == 7 and a.causation_id == cause.event_id
    later = Envelope.new(cause.event, ts_event=cause.ts_event + 10**9, ts_init=0, source="t")
    assert str(later.event_id) > str(cause.event_id)
    assert isinstance(a.correlation_id, uuid.UUID) and a.correlation_id == cause.event_id
