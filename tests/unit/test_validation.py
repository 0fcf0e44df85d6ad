"""An event that is well formed but impossible (a price of 0 or 1E+400, a tick from 1970, a key that is not the
instrument...) is refused with the reason, by every reader alike: the decoder's fast path, its general path, and
the audit projection's lean reader; and a feed can check a tick with the same rules before it publishes it."""

from __future__ import annotations

import dataclasses
import typing
import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import (
    MAX_RECORD_BYTES,
    BalanceReconciled,
    BalanceSnapshot,
    BreakerApplied,
    DecodeError,
    Direction,
    EngineStopped,
    Envelope,
    EquityReported,
    Event,
    InvalidEvent,
    Liquidity,
    OpenOrderSnapshot,
    OrderFilled,
    OrderSubmitted,
    OrderType,
    PositionSnapshot,
    Side,
    SignalGenerated,
    TickReceived,
    TradingHalted,
    _wire,
    decode,
    encode,
    event_types,
    validate_tick,
    validation,
)
from events.codec import _decode_general
from events.validation import FIELD_RULES, TICK_TS_MIN, TS_MAX, DecimalRule, IntRule, TextRule
from projections.audit.lean import LeanSignal, LeanTick, decode_record

TICKS, TRADING = "market.ticks", "trading.events"
T = 1_795_994_377_420_683_099  # 2026-11-30


def _tick(**changes: Any) -> TickReceived:
    fields = {
        "instrument": "ETH/USDT",
        "venue": "binance",
        "trade_id": "t-1",
        "price": Decimal("3002.17"),
        "quantity": Decimal("0.40590"),
        "side": Side.SELL,
        **changes,
    }
    return TickReceived(**fields)


def _snapshot(strategy: str = "trend") -> PositionSnapshot:
    z = Decimal(0)
    return PositionSnapshot(
        instrument="ETH/USDT",
        day="2026-11-30",
        quantity=Decimal("-0.02"),
        avg_price=Decimal("3001.123456789012345678901234"),
        realized_pnl=Decimal("-1.5"),
        fees=Decimal("-0.01"),
        bought=Decimal("0.5"),
        sold=Decimal("0.52"),
        fills=7,
        trip_direction=-1,
        trip_opened_ts=T,
        trip_quantity=Decimal("-0.02"),
        trip_max_quantity=Decimal("-0.02"),
        trip_entry_quantity=Decimal("-0.02"),
        trip_entry_notional=Decimal("60.02"),
        trip_exit_quantity=z,
        trip_exit_notional=z,
        trip_fees=Decimal("0.06"),
        trip_fills=1,
        strategy=strategy,
    )


SAMPLES: dict[str, tuple[Event, str]] = {  # a valid event of each kind, and its key
    "TickReceived": (_tick(), ""),
    "SignalGenerated": (
        SignalGenerated(
            instrument="ETH/USDT",
            strategy="ma_cross",
            direction=Direction.SHORT,
            target_position=Decimal("-0.01"),
            price=Decimal("2992.27"),
            reason="r",
        ),
        "",
    ),
    "OrderSubmitted": (
        OrderSubmitted(
            instrument="ETH/USDT",
            client_order_id="ma_cross-1",
            strategy="ma_cross",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=Decimal("0.01"),
            limit_price=Decimal("2992.27"),
        ),
        "",
    ),
    "OrderFilled": (
        OrderFilled(
            instrument="ETH/USDT",
            client_order_id="ma_cross-1",
            venue="paper",
            venue_order_id="paper-1",
            trade_id="paper-1-0",
            side=Side.BUY,
            quantity=Decimal("0.01"),
            price=Decimal("2992.27"),
            fee=Decimal("-0.0001"),
            fee_currency="USDT",
            liquidity=Liquidity.MAKER,
            cumulative_quantity=Decimal("0.01"),
            leaves_quantity=Decimal(0),
        ),
        "",
    ),
    "PositionSnapshot": (_snapshot(), ""),
    "OpenOrderSnapshot": (
        OpenOrderSnapshot(
            instrument="ETH/USDT",
            day="2026-11-30",
            client_order_id="o-1",
            strategy="s",
            side=Side.SELL,
            order_type=OrderType.MARKET,
            quantity=Decimal("1.0"),
            status="accepted",
            filled_quantity=Decimal("0.25"),
            filled_notional=Decimal("750"),
            fees=Decimal("0.75"),
            trade_ids=("T-1",),
        ),
        "",
    ),
    "EquityReported": (
        EquityReported(instrument="ETH/USDT", day="2026-11-30", price=Decimal("2992.27"), flows='{"USDT": "-29.92"}'),
        "",
    ),
    "EngineStopped": (
        EngineStopped(engine_id="engine@host:1", reason="stop", ticks_processed=5, events_published=9),
        "engine@host:1",
    ),
    "TradingHalted": (TradingHalted(reason="test", by="operator:me"), "operator"),
    "BreakerApplied": (BreakerApplied(switch_id="s", topic=TICKS, partition=3, offset=42), f"{TICKS}:3"),
    "BalanceReconciled": (
        BalanceReconciled(
            venue="binance",
            currency="USDT",
            venue_amount=Decimal("100.5"),
            expected_amount=Decimal("100"),
            difference=Decimal("0.5"),
        ),
        "",
    ),
}


ID = uuid.UUID("01a2299b-5ccc-7db5-b070-c35d4d9f1e86")


def _env(name: str) -> Envelope:
    ev, key = SAMPLES[name]
    return Envelope(ID, ev, T, T + 1, ID, None, "test", key)


def _topic(name: str) -> str:
    return TICKS if name == "TickReceived" else TRADING


def _outcome(read: Any, raw: bytes) -> tuple[type, str] | None:
    try:
        read(raw)
    except DecodeError as exc:
        return type(exc), exc.reason
    return None


def refusals(raw: bytes, topic: str) -> tuple[type, str]:
    """The reason every reader refuses ``raw`` for: the same on each path, or the test fails."""
    outcomes = {
        "decode": _outcome(decode, raw),
        "general": _outcome(_decode_general, raw),
        "lean": _outcome(lambda r: decode_record(TICKS, TRADING, topic, 0, 0, r), raw),
    }
    assert len(set(outcomes.values())) == 1, outcomes
    refused = outcomes["decode"]
    assert refused is not None, f"accepted: {raw!r}"
    assert _wire.read(raw) is None  # the fast path leaves it to the general decoder, which says why
    return refused


def _record(name: str, **changes: Any) -> bytes:
    obj = orjson.loads(encode(_env(name)))
    for path, value in changes.items():
        if path.startswith("data_"):
            obj["data"][path[5:]] = value
        else:
            obj[path] = value
    return orjson.dumps(obj)


def test_every_event_type_has_a_rule_for_each_of_its_decimal_fields() -> None:
    """A new event type, or a new decimal field, must say which values it takes (> 0, >= 0, either sign...)."""
    assert set(FIELD_RULES) == set(event_types())
    for name, cls in event_types().items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if Decimal in (hints[f.name], *typing.get_args(hints[f.name])):
                assert isinstance(FIELD_RULES[name].get(f.name), DecimalRule), f"{name}.{f.name} has no rule"
        assert set(FIELD_RULES[name]) <= {f.name for f in dataclasses.fields(cls)}, name


def test_the_samples_are_valid_and_read_on_every_fast_path() -> None:
    assert set(SAMPLES) <= set(event_types())
    for name in SAMPLES:
        raw = encode(_env(name))
        assert _wire.read(raw) == decode(raw) == _decode_general(raw) == _env(name)
        assert decode(raw).event == _env(name).event
    for name, lean in (("TickReceived", LeanTick), ("SignalGenerated", LeanSignal)):
        assert type(decode_record(TICKS, TRADING, _topic(name), 0, 0, encode(_env(name)))) is lean


def _invalid_values(rule: validation.Rule) -> list[Any]:
    if isinstance(rule, DecimalRule):
        values = ["NaN", "-Infinity", str(rule.high.next_plus()), str(rule.high.scaleb(400)), f"1E-{rule.places + 1}"]
        values += [str(rule.low)] if rule.low_open else [str(rule.low.next_minus())]
        return values
    if isinstance(rule, TextRule):
        return ["x" * (rule.max_length + 1)] + ([""] if rule.min_length else [])
    assert isinstance(rule, IntRule)
    return [rule.ge - 1, rule.le + 1]


RULED = sorted((name, field) for name in SAMPLES for field in validation.rules_of(event_types()[name]))


@pytest.mark.parametrize(("name", "field"), RULED, ids=[f"{n}.{f}" for n, f in RULED])
def test_each_field_rule_is_checked_on_every_path_with_the_same_reason(name: str, field: str) -> None:
    rule = validation.rules_of(event_types()[name])[field]
    for value in _invalid_values(rule):
        changes: dict[str, Any] = {f"data_{field}": value}
        if field == "instrument" and value:
            changes["key"] = value  # the key follows the instrument: the rule of the instrument is what is checked
        kind, reason = refusals(_record(name, **changes), _topic(name))
        # not a finite decimal: refused by the codec itself (a DecodeError); the others by the rules
        assert kind is (DecodeError if value in ("NaN", "-Infinity") else InvalidEvent), (value, kind)
        assert reason.startswith(f"{name}.{field}: "), (value, reason)
        assert "\n" not in reason and len(reason) < 200


@pytest.mark.parametrize(
    ("name", "changes", "reason"),
    [
        ("TickReceived", {"data_price": "0"}, "TickReceived.price: must be > 0, got '0'"),
        ("TickReceived", {"data_price": "-3002.17"}, "TickReceived.price: must be > 0, got '-3002.17'"),
        ("TickReceived", {"data_price": "1E+400"}, "TickReceived.price: '1E+400' is out of range: at most 1E+15"),
        ("TickReceived", {"data_quantity": "-500.0"}, "TickReceived.quantity: must be > 0, got '-500.0'"),
        (
            "TickReceived",
            {"data_quantity": "0.000000000000000000001"},
            "TickReceived.quantity: '1E-21' has more than 20 digits after the decimal point",
        ),
        ("TickReceived", {"data_price": "NaN"}, "TickReceived.price: not a finite decimal: 'NaN'"),
        ("TickReceived", {"ts_event": 1}, "ts_event: 1 is before 2000-01-01, the earliest time of a tick"),
        (
            "TickReceived",
            {"ts_event": TICK_TS_MIN - 1},
            f"ts_event: {TICK_TS_MIN - 1} is before 2000-01-01, the earliest time of a tick",
        ),
        ("TickReceived", {"ts_event": TS_MAX}, f"ts_event: {TS_MAX} is not before 2200-01-01 (ns since the epoch)"),
        ("TickReceived", {"ts_init": -1}, "ts_init: -1 is before 1970-01-01 (ns since the epoch)"),
        ("TickReceived", {"key": "k"}, "key 'k' is not the event's instrument 'ETH/USDT'"),
        ("TickReceived", {"key": ""}, "key '' is not the event's instrument 'ETH/USDT'"),
        ("TickReceived", {"data_instrument": "BTC/USDT"}, "key 'ETH/USDT' is not the event's instrument 'BTC/USDT'"),
        ("TickReceived", {"source": "s" * 129}, "source: 129 characters, at most 128"),
        ("SignalGenerated", {"ts_event": -1}, "ts_event: -1 is before 1970-01-01 (ns since the epoch)"),
        ("SignalGenerated", {"ts_init": TS_MAX}, f"ts_init: {TS_MAX} is not before 2200-01-01 (ns since the epoch)"),
        ("SignalGenerated", {"key": "k"}, "key 'k' is not the event's instrument 'ETH/USDT'"),
        (
            "SignalGenerated",
            {"data_target_position": "-1E+16"},
            "SignalGenerated.target_position: '-1E+16' is out of range: at most 1E+15 in absolute value",
        ),
        ("OrderFilled", {"data_leaves_quantity": "-0.01"}, "OrderFilled.leaves_quantity: must be >= 0, got '-0.01'"),
        ("EngineStopped", {"key": "x" * 129}, "key: 129 characters, at most 128"),
        ("PositionSnapshot", {"data_trip_direction": 2}, "PositionSnapshot.trip_direction: must be at most 1, got 2"),
    ],
)
def test_impossible_records_are_refused_by_every_reader_with_the_reason(
    name: str, changes: dict[str, Any], reason: str
) -> None:
    kind = DecodeError if "finite" in reason else InvalidEvent
    assert refusals(_record(name, **changes), _topic(name)) == (kind, reason)


@pytest.mark.parametrize("name", ["TickReceived", "SignalGenerated", "OrderFilled"])
def test_a_record_over_the_size_limit_or_empty_is_refused_before_it_is_parsed(name: str) -> None:
    big = encode(_env(name))[:-1] + b" " * MAX_RECORD_BYTES + b"}"  # valid JSON, and the same event
    assert orjson.loads(big) == orjson.loads(encode(_env(name)))
    assert refusals(big, _topic(name)) == (
        InvalidEvent,
        f"record of {len(big)} bytes is over the limit of {MAX_RECORD_BYTES}",
    )
    assert refusals(b"", _topic(name)) == (InvalidEvent, "empty record value")
    exactly = encode(_env(name))[:-1] + b" " * (MAX_RECORD_BYTES - len(encode(_env(name)))) + b"}"
    assert len(exactly) == MAX_RECORD_BYTES and decode(exactly) == decode(encode(_env(name)))


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("TickReceived", {"data_price": "1E+15", "data_quantity": "1E-20", "ts_event": TICK_TS_MIN}),
        (
            "TickReceived",
            {
                "data_price": "0.00000000000000000001",
                "ts_event": TS_MAX - 1,
                "data_trade_id": "t" * 128,
                "data_venue": "v" * 128,
                "source": "s" * 128,
            },
        ),
        ("TickReceived", {"data_instrument": "é" * 128, "key": "é" * 128}),
        ("SignalGenerated", {"data_target_position": "-1E+15", "ts_event": 0, "ts_init": 0}),
        ("SignalGenerated", {"data_target_position": "0", "data_price": "123456789012345.12345678901234567890"}),
    ],
)
def test_values_at_the_edges_of_the_rules_are_read_on_every_fast_path(name: str, changes: dict[str, Any]) -> None:
    raw = _record(name, **changes)
    env = _decode_general(raw)
    assert _wire.read(raw) == env == decode(raw)
    assert type(decode_record(TICKS, TRADING, _topic(name), 0, 0, raw)) in (LeanTick, LeanSignal)


def test_amounts_the_engine_computes_may_have_28_significant_digits_and_either_sign() -> None:
    """An average price is a quotient (28 significant digits), fees may be rebates: such snapshots are read."""
    snap = dataclasses.replace(
        _snapshot(),
        avg_price=Decimal(1) / Decimal(7) / Decimal(10**8),
        realized_pnl=Decimal("-1E+20"),
        fees=Decimal("-0.000000000000000000000000001"),
    )
    env = Envelope.new(snap, ts_event=T, ts_init=T, source="engine")
    assert _wire.read(encode(env)) == decode(encode(env)) == env


@settings(max_examples=200, deadline=None)
@given(
    price=st.decimals(allow_nan=True, allow_infinity=True) | st.sampled_from([Decimal("1E+400"), Decimal("-0")]),
    quantity=st.decimals(allow_nan=False, allow_infinity=False, places=None),
    ts=st.integers(-(2**63), 2**63 - 1),
    trade_id=st.text(max_size=130),
)
def test_a_feed_checks_a_tick_by_the_rules_the_readers_apply(
    price: Decimal, quantity: Decimal, ts: int, trade_id: str
) -> None:
    """validate_tick refuses what decode would refuse of the published tick, with the same reason, and only that."""
    tick = _tick(price=price, quantity=quantity, trade_id=trade_id)
    try:
        validate_tick(tick, ts)
    except InvalidEvent as exc:
        feed: str | None = exc.reason
    else:
        feed = None
    if not -(2**63) <= ts < 2**63 or not price.is_finite() or not quantity.is_finite():
        assert feed is not None  # not even encodable as a record the readers would take
        return
    raw = encode(Envelope.new(tick, ts_event=ts, ts_init=T, source="feed:test"))
    read = _outcome(decode, raw)
    assert (read[1] if read else None) == feed


def test_a_feed_is_told_which_rule_a_tick_breaks() -> None:
    with pytest.raises(InvalidEvent, match=r"^TickReceived\.price: must be > 0, got '0'$"):
        validate_tick(_tick(price=Decimal(0)), T)
    with pytest.raises(InvalidEvent, match=r"^ts_event: 5 is before 2000-01-01"):
        validate_tick(_tick(), 5)
    with pytest.raises(InvalidEvent, match=r"^TickReceived\.price: expected a Decimal, got float"):
        validate_tick(_tick(price=0.5), T)
    with pytest.raises(InvalidEvent, match=r"^TickReceived\.quantity: not a finite decimal: 'NaN'"):
        validate_tick(_tick(quantity=Decimal("NaN")), T)
    validate_tick(_tick(), T)


def test_a_long_value_is_cut_short_in_the_reason() -> None:
    """A reason goes in a Kafka header: a price of ten thousand digits is not repeated in full."""
    kind, reason = refusals(_record("TickReceived", data_price="9" * 10_000), TICKS)
    assert kind is InvalidEvent and reason.startswith("TickReceived.price: '9999") and len(reason) < 120


def test_a_snapshot_of_an_engine_with_one_strategy_is_written_and_read_in_the_v1_shape() -> None:
    """v2 of the day snapshots added ``strategy``; an engine with one strategy writes none, in v1's shape, so its log
    is byte for byte what the code before wrote; every reader gives the same event back."""
    for event in (
        _snapshot(""),
        BalanceSnapshot(instrument="ETH/USDT", day="2026-11-30", currency="ETH", amount=Decimal(1)),
    ):
        env = Envelope.new(event, ts_event=T, ts_init=T, source="engine")
        raw = encode(env)
        wire = orjson.loads(raw)
        assert wire["v"] == 1 and "strategy" not in wire["data"]
        assert _wire.read(raw) == decode(raw) == _decode_general(raw) == env
        assert decode(raw).upcast_from == 1
        named = Envelope.new(replace(event, strategy="trend"), ts_event=T, ts_init=T, source="engine")
        raw = encode(named)
        assert orjson.loads(raw)["v"] == 2 and orjson.loads(raw)["data"]["strategy"] == "trend"
        assert _wire.read(raw) == decode(raw) == _decode_general(raw) == named
