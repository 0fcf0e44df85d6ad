"""The decoder's fast path (events/_wire.py) reads exactly what the general decoder reads, with the same values,
and leaves everything else to it: so every record is decoded, or refused with the reason, as before."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import DecodeError, Envelope, Event, Side, TickReceived, _wire, decode, encode, event_to_dict, event_types
from events.codec import _decode_general
from tests.unit.test_codec import envelopes
from tests.unit.test_lean_decode import ODD_VALUES

TYPES = sorted(event_types().values(), key=lambda c: c.TYPE)


def _outcome(read: Any, raw: bytes) -> tuple[str, Any]:
    try:
        env = read(raw)
    except DecodeError as exc:
        return "refused", exc.reason
    # equal, and equal as written: Decimal("1.0") == Decimal("1.00"), but they are stored differently
    return "ok", (env, event_to_dict(env.event), env.upcast_from, type(env.event_id), type(env.correlation_id))


def assert_same_as_general(raw: bytes) -> None:
    assert _outcome(decode, raw) == _outcome(_decode_general, raw)


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.TYPE)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_the_codecs_own_output_is_read_fast_with_the_same_values(cls: type[Event], data: st.DataObject) -> None:
    raw = encode(data.draw(envelopes(cls)))
    fast = _wire.read(raw)
    assert fast is not None
    assert _outcome(lambda r: fast, raw) == _outcome(_decode_general, raw)


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.TYPE)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_record_changed_anywhere_is_decoded_or_refused_as_by_the_general_decoder(
    cls: type[Event],
    data: st.DataObject,
) -> None:
    env: Envelope = data.draw(envelopes(cls))
    obj = orjson.loads(encode(env))
    target = obj if data.draw(st.booleans()) else obj["data"]
    key = data.draw(st.sampled_from(sorted(target)))
    change = data.draw(st.sampled_from(["set", "drop", "extra", "duplicate"]))
    if change == "set":
        target[key] = data.draw(
            st.sampled_from(ODD_VALUES)
            | st.text(max_size=8)
            | st.integers(-(2**63), 2**64 - 1)
            | st.sampled_from([t.TYPE for t in TYPES])
        )
    elif change == "drop":
        del target[key]
    elif change == "extra":
        target[data.draw(st.text(min_size=1, max_size=5))] = "1"
    raw = orjson.dumps(obj)
    if change == "duplicate":  # the same key twice, the second with another value: JSON's last one wins
        value = orjson.dumps(data.draw(st.sampled_from(ODD_VALUES) | st.sampled_from([t.TYPE for t in TYPES])))
        end = 1 if target is obj else 2  # the envelope's closing brace, or the data's and the envelope's
        raw = raw[:-end] + b',"' + orjson.dumps(key)[1:-1] + b'":' + value + raw[-end:]
    assert_same_as_general(raw)


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.TYPE)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_damaged_bytes_are_decoded_or_refused_as_by_the_general_decoder(cls: type[Event], data: st.DataObject) -> None:
    raw = bytearray(encode(data.draw(envelopes(cls))))
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    assert_same_as_general(bytes(raw))


@pytest.mark.parametrize(
    "number",
    [
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "1e3",
        "1.0",
        "-0",
    ],
)
def test_integers_at_and_beyond_64_bits_are_read_as_by_the_general_decoder(number: str) -> None:
    """orjson reads integers beyond 64 bits as floats (refused as times); msgspec would read any integer."""
    tick = TickReceived(
        instrument="BTC/USDT",
        venue="v",
        trade_id="1",
        price=Decimal("60000.10"),
        quantity=Decimal("0.001"),
        side=Side.BUY,
    )
    ts = 1_700_000_000_000_000_000
    raw = encode(Envelope.new(tick, ts_event=ts, ts_init=ts, source="t"))
    for field in (b"ts_event", b"ts_init"):  # refused as times (out of range, or not integers) alike
        changed = raw.replace(b'"%s":%d,' % (field, ts), b'"%s":%s,' % (field, number.encode()))
        assert number.encode() in changed
        assert_same_as_general(changed)
