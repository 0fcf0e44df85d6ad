"""The audit projection's fast reader (projections/audit/lean.py) sees every record exactly as the full decoder
does: a record it reads lean gives the same stored values, and a record the decoder refuses is refused by it too,
for the same reason (so it is dead-lettered the same way)."""

from __future__ import annotations

import dataclasses
import typing
from decimal import Decimal
from enum import Enum
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import (
    DecodeError,
    Direction,
    Envelope,
    Side,
    SignalGenerated,
    TickReceived,
    decode,
    encode,
)
from events.validation import FIELD_RULES, POSITIVE, SIGNED, TICK_TS_MIN, TS_MAX, DecimalRule
from projections.audit.lean import LeanSignal, LeanTick, decode_record, event_row, jsonb_order
from projections.audit.projection import _event_row as full_event_row
from projections.runner import Record
from tests.unit.test_codec import envelopes

TICKS, TRADING = "market.ticks", "trading.events"


def _outcome(read: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", read(raw)
    except DecodeError as exc:
        return "refused", exc.reason


def assert_same_as_full_decoder(raw: bytes, topic: str) -> Envelope | LeanTick | LeanSignal:
    kind, full = _outcome(decode, raw)
    lean_kind, got = _outcome(lambda r: decode_record(TICKS, TRADING, topic, 2, 7, r), raw)
    assert lean_kind == kind, (kind, full, lean_kind, got)
    if kind == "refused":
        assert got == full  # the same reason in the dead-letter header
        return got  # type: ignore[no-any-return]
    if type(got) not in (LeanTick, LeanSignal):
        assert got == full
        return got  # type: ignore[no-any-return]
    env: Envelope = full
    row = event_row(got, topic, 2, 7)
    full_row = full_event_row(Record(topic, 2, 7, env, raw))  # the row of the record read in full
    assert (
        row[:12]
        == full_row[:12]
        == (
            env.event_id,
            env.type,
            env.version,
            env.key,
            env.ts_event,
            env.ts_init,
            env.correlation_id,
            env.causation_id,
            env.source,
            topic,
            2,
            7,
        )
    )
    assert orjson.loads(row[12]) == orjson.loads(full_row[12])  # the stored payload (jsonb: the strings as sent)
    for name in got.data.__struct_fields__:  # values as the projection reads them
        value = getattr(got.data, name)
        want = getattr(env.event, name)
        if isinstance(want, Decimal):
            assert str(Decimal(value)) == str(want)  # same value and scale in numeric columns
        else:
            assert value == want
    assert (got.event_id, got.ts_event, got.ts_init) == (env.event_id, env.ts_event, env.ts_init)
    return got


@settings(max_examples=300, deadline=None)
@given(env=st.one_of(envelopes(TickReceived), envelopes(SignalGenerated)))
def test_every_tick_and_signal_reads_the_same_lean_as_in_full(env: Envelope) -> None:
    topic = TICKS if env.type == TickReceived.TYPE else TRADING
    got = assert_same_as_full_decoder(encode(env), topic)
    if env.key:
        assert type(got) in (LeanTick, LeanSignal)  # the codec's own output is read lean


ODD_VALUES: list[Any] = [
    None,
    0,
    1,
    -1,
    2**63,
    1.5,
    True,
    "",
    "x",
    "1e5",
    "NaN",
    "Infinity",
    " 1",
    "1.",
    ".5",
    "+1",
    "-0",
    "01",
    "1_000",
    "٣",
    [],
    {},
    "01A2299B-5CCC-795B-BF9E-FB45B1159F88",
    "{01a2299b-5ccc-795b-bf9e-fb45b1159f88}",
    "01a2299b5ccc795bbf9efb45b1159f88",
    "buy",
    "BUY",
    "long",
    "LONG",
    "flat",
    # values at and beyond the edges of the rules of events.validation (decimals, times, texts, keys)
    "0",
    "0.0",
    "-1.5",
    "1E+400",
    "1E+15",
    "1E+16",
    "1000000000000000.1",
    "-1E+15",
    "1E-20",
    "1E-21",
    "0.000000000000000000001",
    "0.00000000000000000001",
    "1E+30",
    "1E+31",
    "1E-60",
    "1E-61",
    "x" * 128,
    "x" * 129,
    "é" * 129,
    "ETH/USDT",
    "BTC/USDT",
    "operator",
    TICK_TS_MIN - 1,
    TICK_TS_MIN,
    TS_MAX - 1,
    TS_MAX,
    2**31,
]


def _tick_env() -> Envelope:
    ev = TickReceived(
        instrument="ETH/USDT",
        venue="v",
        trade_id="t-1",
        price=Decimal("3002.17"),
        quantity=Decimal("0.40590"),
        side=Side.SELL,
    )
    return Envelope.new(ev, ts_event=1_795_994_377_420_683_099, ts_init=1_795_994_377_420_683_100, source="bench")


def _signal_env() -> Envelope:
    ev = SignalGenerated(
        instrument="ETH/USDT",
        strategy="ma_cross",
        direction=Direction.LONG,
        target_position=Decimal("0.01"),
        price=Decimal("2992.27"),
        reason="fast crossed above slow",
    )
    return _tick_env().derive(ev, 1, ts_init=1_795_994_377_420_683_200, source="engine")


@pytest.mark.parametrize("make", [_tick_env, _signal_env], ids=["tick", "signal"])
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_a_record_changed_anywhere_is_read_lean_only_if_the_decoder_agrees(make: Any, data: st.DataObject) -> None:
    env = make()
    topic = TICKS if env.type == TickReceived.TYPE else TRADING
    obj = orjson.loads(encode(env))
    where = data.draw(st.sampled_from(["top", "data"]))
    target = obj if where == "top" else obj["data"]
    key = data.draw(st.sampled_from(sorted(target)))
    change = data.draw(st.sampled_from(["set", "drop", "extra"]))
    if change == "set":
        target[key] = data.draw(st.sampled_from(ODD_VALUES) | st.text(max_size=8) | st.integers(-(2**63), 2**64 - 1))
    elif change == "drop":
        del target[key]
    else:
        target[data.draw(st.text(min_size=1, max_size=5))] = "1"
    assert_same_as_full_decoder(orjson.dumps(obj), topic)


@pytest.mark.parametrize("make", [_tick_env, _signal_env], ids=["tick", "signal"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_damaged_bytes_are_refused_alike(make: Any, data: st.DataObject) -> None:
    raw = bytearray(encode(make()))
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    topic = TICKS if make is _tick_env else TRADING
    assert_same_as_full_decoder(bytes(raw), topic)


def test_a_signal_on_the_ticks_topic_and_a_tick_on_the_trading_topic_are_not_read_lean() -> None:
    assert type(decode_record(TICKS, TRADING, TICKS, 0, 0, encode(_signal_env()))) is Envelope
    assert type(decode_record(TICKS, TRADING, TRADING, 0, 0, encode(_tick_env()))) is Envelope


def test_event_ids_are_uuids_in_any_form_the_full_decoder_reads_alike() -> None:
    env = _tick_env()
    for form in (str(env.event_id), str(env.event_id).upper(), env.event_id.hex):
        raw = encode(env).replace(str(env.event_id).encode(), form.encode())
        got = assert_same_as_full_decoder(raw, TICKS)
        assert type(got) is LeanTick and got.event_id == env.event_id


@pytest.mark.parametrize(("lean", "event"), [(LeanTick, TickReceived), (LeanSignal, SignalGenerated)])
def test_the_lean_shapes_are_the_events_current_shape(lean: Any, event: Any) -> None:
    """A field or version added to an event must reach its lean shape, or the lean reader would refuse (and
    so slow down) every new record, or read an old version as the new one."""
    info = msgspec.inspect.type_info(lean)
    by_name = {f.encode_name: f.type for f in info.fields}
    assert set(by_name) == {"id", "v", "key", "ts_event", "ts_init", "correlation_id", "causation_id", "source", "data"}
    assert by_name["v"].values == (event.VERSION,)
    data = {f.name: f.type for f in by_name["data"].fields}
    hints = typing.get_type_hints(event)
    assert sorted(data) == sorted(f.name for f in dataclasses.fields(event))
    assert list(data) == sorted(data, key=jsonb_order)  # the payload's keys as jsonb keeps them
    for name, t in data.items():
        hint = hints[name]
        if hint is Decimal:  # read as strings, checked by decode_record (see the tests above)
            assert isinstance(t, msgspec.inspect.StrType)
        elif isinstance(hint, type) and issubclass(hint, Enum):
            assert set(t.values) == {m.value for m in hint}
        else:
            assert hint is str and isinstance(t, msgspec.inspect.StrType)


def test_a_record_without_its_type_is_not_read_lean() -> None:
    obj = orjson.loads(encode(_tick_env()))
    del obj["type"]
    with pytest.raises(DecodeError):
        decode_record(TICKS, TRADING, TICKS, 0, 0, orjson.dumps(obj))


def test_the_lean_reader_checks_each_decimal_by_its_fields_rule() -> None:
    """The lean reader looks a tick's price and quantity, and a signal's price, up in the table of the rule of
    prices and quantities (> 0), and a signal's target in that of a target (either sign): the fields' own rules."""
    assert FIELD_RULES["TickReceived"]["price"] is FIELD_RULES["TickReceived"]["quantity"] is POSITIVE
    assert FIELD_RULES["SignalGenerated"]["price"] is POSITIVE
    assert FIELD_RULES["SignalGenerated"]["target_position"] is SIGNED
    decimal_fields = {n for n, r in FIELD_RULES["TickReceived"].items() if isinstance(r, DecimalRule)}
    assert decimal_fields == {"price", "quantity"}
    decimal_fields = {n for n, r in FIELD_RULES["SignalGenerated"].items() if isinstance(r, DecimalRule)}
    assert decimal_fields == {"price", "target_position"}
