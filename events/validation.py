"""Validation at the edge: an event that is well formed but impossible is refused, with the reason.

Every record read from Kafka is checked by :func:`events.decode` (its fast path, its general path, and the audit
projection's lean reader alike: they refuse the same records, and say why in the same words, through the general
path), and every tick a feed publishes can be checked before it is written (:func:`validate_tick`). A refused
record raises :class:`InvalidEvent` (a :class:`~events.DecodeError`): its ``reason`` goes in the dead-letter
header. The rules:

- **size**: a record value is not empty and at most :data:`MAX_RECORD_BYTES` (256 KiB), checked before parsing;
- **times** (ns since the epoch, UTC): ``ts_event`` and ``ts_init`` from 1970-01-01 up to (not including)
  2200-01-01; a tick's ``ts_event`` from 2000-01-01 (:data:`TICK_TS_MIN`);
- **key**: the event's instrument whenever it has one (control events have none, and a key of their own: the
  engine id, ``operator``, ``risk``, ``topic:partition``); at most :data:`MAX_ID_LENGTH` characters, as the
  source;
- **decimals**, finite and per field (:data:`FIELD_RULES`): prices and quantities of ticks, signals and orders
  > 0 (:data:`POSITIVE`), filled and leaves quantities >= 0 (:data:`NON_NEGATIVE`), a target or a position of
  either sign (:data:`SIGNED`): at most :data:`MAX_QUANTITY` (1e15) in absolute value, with at most
  :data:`MAX_FRACTION_DIGITS` (20) digits after the point; amounts the engine computes (fees, which may be
  negative: rebates; notionals, P&L, average prices, balances) at most :data:`MAX_AMOUNT` (1e30), with at most
  :data:`MAX_AMOUNT_FRACTION_DIGITS` (60) digits after the point (a quotient has 28 significant digits);
- **texts**: instruments (required on market and trading events), trade ids (required), order ids and venue
  names at most :data:`MAX_ID_LENGTH` (128) characters;
- **integers**: counts, offsets and partitions >= 0, a round trip's direction -1, 0 or 1, its opening time a time.

The checks of the fast paths are these rules as msgspec constraints (checked in C while parsing) and tables of
the decimal strings already found valid for each rule (:meth:`DecimalRule.read`): a few comparisons a record.
"""

from __future__ import annotations

import re
import typing
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import msgspec

from events._base import Event
from events._errors import DecodeError
from events.envelope import Envelope
from events.market import TickReceived

MAX_RECORD_BYTES = 256 * 1024
"""The largest record value read (the Kafka default for one message is 1 MB; ours are below 2 KB)."""

TS_MIN = 0  # 1970-01-01
TS_MAX = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp()) * 10**9
"""The first time (ns since the epoch) refused: 2200-01-01."""
TICK_TS_MIN = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp()) * 10**9
"""The earliest time of a tick: 2000-01-01."""

MAX_QUANTITY = Decimal("1e15")
MAX_FRACTION_DIGITS = 20
MAX_AMOUNT = Decimal("1e30")
MAX_AMOUNT_FRACTION_DIGITS = 60
MAX_ID_LENGTH = 128

INSTRUMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
"""What a user may give as an instrument (``--symbol``): letters and digits, then also ``. _ : / -``."""
_INSTRUMENT = re.compile(INSTRUMENT_PATTERN)

_CACHED_LENGTH = 64  # longer decimal strings are checked every time, never remembered
_CACHE_SIZE = 65536


class InvalidEvent(DecodeError):
    """A well-formed event that breaks a rule of this module; ``reason`` says which, fit for a dead-letter header."""


def _show(v: object) -> str:
    s = repr(str(v))
    return s if len(s) <= 42 else s[:40] + "...'"


def finite_decimal(s: str) -> Decimal | None:
    """``Decimal(s)`` if the codec reads ``s`` as a decimal (``Decimal`` reads it, and it is finite), else None."""
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _exponent(d: Decimal) -> int:
    """The exponent of a finite decimal (-2 for 1.25): from its text, which costs less than ``as_tuple``."""
    s = str(d)
    if "E" in s:
        return int(d.as_tuple().exponent)
    dot = s.find(".")
    return 0 if dot < 0 else dot + 1 - len(s)


class DecimalRule:
    """A decimal field's rule: finite, within ``[low, high]`` (``low`` excluded if ``low_open``), and with at most
    ``places`` digits after the point.

    :meth:`read` is the fast paths' check of a decimal string: the value if the rule takes it, remembered in
    :attr:`seen` (cleared when full, never replaced: a hot loop may hold its ``get``)."""

    __slots__ = ("high", "low", "low_open", "name", "places", "seen")

    def __init__(self, name: str, low: Decimal, high: Decimal, places: int, *, low_open: bool = False) -> None:
        self.name, self.low, self.high, self.places, self.low_open = name, low, high, places, low_open
        self.seen: dict[str, Decimal] = {}

    def __repr__(self) -> str:
        return f"DecimalRule({self.name})"

    def problem(self, d: object) -> str | None:
        """Why ``d`` breaks the rule, or None. (A decimal's text gives its value and exponent: one whose text is in
        :attr:`seen` is taken at the cost of a lookup.)"""
        if type(d) is not Decimal:
            return f"expected a Decimal, got {type(d).__name__} {_show(d)}"
        s = str(d)
        if s in self.seen:
            return None
        reason = self._judge(d)
        if reason is None:
            self._remember(s, d)
        return reason

    def read(self, s: str) -> Decimal | None:
        """``Decimal(s)`` if the codec reads ``s`` as a decimal and this rule takes its value, else None."""
        d = self.seen.get(s)
        if d is not None:
            return d
        d = finite_decimal(s)
        if d is None or self._judge(d) is not None:
            return None
        self._remember(s, d)
        return d

    def _judge(self, d: Decimal) -> str | None:
        if not d.is_finite():
            return f"not a finite decimal: {_show(d)}"
        if d < self.low or (self.low_open and d == self.low):
            if self.low == -self.high:
                return f"{_show(d)} is out of range: at most {self.high:E} in absolute value"
            return f"must be {'>' if self.low_open else '>='} {self.low}, got {_show(d)}"
        if d > self.high:
            return f"{_show(d)} is out of range: at most {self.high:E}" + (
                " in absolute value" if self.low == -self.high else ""
            )
        if _exponent(d) < -self.places:
            return f"{_show(d)} has more than {self.places} digits after the decimal point"
        return None

    def _remember(self, s: str, d: Decimal) -> None:
        if len(s) <= _CACHED_LENGTH:
            if len(self.seen) >= _CACHE_SIZE:
                self.seen.clear()
            self.seen[s] = d


class TextRule(NamedTuple):
    """A text field's length, in characters."""

    min_length: int
    max_length: int

    def problem(self, v: object) -> str | None:
        if type(v) is not str:
            return f"expected a string, got {type(v).__name__}"
        if len(v) < self.min_length:
            return "empty"
        if len(v) > self.max_length:
            return f"{len(v)} characters, at most {self.max_length}"
        return None

    def meta(self) -> msgspec.Meta:
        return msgspec.Meta(min_length=self.min_length, max_length=self.max_length)


class IntRule(NamedTuple):
    """An integer field's range, both ends included."""

    ge: int
    le: int

    def problem(self, v: object) -> str | None:
        if type(v) is not int:
            return f"expected an integer, got {type(v).__name__}"
        if v < self.ge:
            return f"must be >= {self.ge}, got {v}"
        if v > self.le:
            return f"must be at most {self.le}, got {v}"
        return None

    def meta(self) -> msgspec.Meta:
        return msgspec.Meta(ge=self.ge, le=self.le)


Rule = DecimalRule | TextRule | IntRule

POSITIVE = DecimalRule("positive", Decimal(0), MAX_QUANTITY, MAX_FRACTION_DIGITS, low_open=True)
NON_NEGATIVE = DecimalRule("non-negative", Decimal(0), MAX_QUANTITY, MAX_FRACTION_DIGITS)
SIGNED = DecimalRule("signed", -MAX_QUANTITY, MAX_QUANTITY, MAX_FRACTION_DIGITS)
AMOUNT = DecimalRule("amount", -MAX_AMOUNT, MAX_AMOUNT, MAX_AMOUNT_FRACTION_DIGITS)

INSTRUMENT = TextRule(1, MAX_ID_LENGTH)  # market and trading events have one
NO_INSTRUMENT = TextRule(0, MAX_ID_LENGTH)  # control events (and reconciliation differences) may have none
TRADE_ID = TextRule(1, MAX_ID_LENGTH)
ID = TextRule(0, MAX_ID_LENGTH)  # order ids, venue names: bounded
COUNT = IntRule(0, 2**63 - 1)
TIME = IntRule(TS_MIN, TS_MAX - 1)

_ORDER: dict[str, Rule] = {
    "instrument": INSTRUMENT,
    "client_order_id": ID,
    "quantity": POSITIVE,
    "limit_price": POSITIVE,
}
_REPORT: dict[str, Rule] = {"instrument": INSTRUMENT, "client_order_id": ID, "venue": ID}

FIELD_RULES: dict[str, dict[str, Rule]] = {
    "TickReceived": {
        "instrument": INSTRUMENT,
        "venue": ID,
        "trade_id": TRADE_ID,
        "price": POSITIVE,
        "quantity": POSITIVE,
    },
    "SignalGenerated": {"instrument": INSTRUMENT, "target_position": SIGNED, "price": POSITIVE},
    "OrderSubmitted": {**_ORDER, "trigger_price": POSITIVE},
    "OrderRejected": _ORDER,
    "OrderAccepted": {**_REPORT, "venue_order_id": ID},
    "OrderFilled": {
        **_REPORT,
        "venue_order_id": ID,
        "trade_id": TRADE_ID,
        "quantity": POSITIVE,
        "price": POSITIVE,
        "fee": AMOUNT,
        "cumulative_quantity": NON_NEGATIVE,
        "leaves_quantity": NON_NEGATIVE,
    },
    "OrderCancelRequested": {"instrument": INSTRUMENT, "client_order_id": ID},
    "StopPlaced": {
        **_ORDER,
        "strategy": ID,
        "trigger_price": POSITIVE,
        "take_profit_id": ID,
    },
    "StopTriggered": {
        "instrument": INSTRUMENT,
        "client_order_id": ID,
        "strategy": ID,
        "order_id": ID,
        "price": POSITIVE,
        "quantity": POSITIVE,
    },
    "StopCancelled": {"instrument": INSTRUMENT, "client_order_id": ID, "strategy": ID},
    "OrderCancelled": {**_REPORT, "filled_quantity": NON_NEGATIVE},
    "OrderExpired": {**_REPORT, "filled_quantity": NON_NEGATIVE},
    "PositionSnapshot": {
        "instrument": INSTRUMENT,
        "quantity": SIGNED,
        "avg_price": AMOUNT,
        "realized_pnl": AMOUNT,
        "fees": AMOUNT,
        "bought": AMOUNT,
        "sold": AMOUNT,
        "fills": COUNT,
        "trip_direction": IntRule(-1, 1),
        "trip_opened_ts": TIME,
        "trip_quantity": SIGNED,
        "trip_max_quantity": SIGNED,
        "trip_entry_quantity": SIGNED,
        "trip_entry_notional": AMOUNT,
        "trip_exit_quantity": SIGNED,
        "trip_exit_notional": AMOUNT,
        "trip_fees": AMOUNT,
        "trip_fills": COUNT,
        "strategy": ID,
    },
    "BalanceSnapshot": {"instrument": INSTRUMENT, "amount": AMOUNT, "strategy": ID},
    "OpenOrderSnapshot": {
        **_ORDER,
        "trigger_price": POSITIVE,
        "venue_order_id": ID,
        "filled_quantity": NON_NEGATIVE,
        "filled_notional": AMOUNT,
        "fees": AMOUNT,
    },
    "EngineStarted": {},
    "EngineStopped": {"ticks_processed": COUNT, "events_published": COUNT},
    "FeedStopped": {"ticks_published": COUNT, "reason": TextRule(0, 2000), "file": TextRule(0, 4096)},
    "TradingHalted": {},
    "TradingResumed": {},
    "ReconciliationDifference": {"venue": ID, "client_order_id": ID},
    "BalanceReconciled": {"venue": ID, "venue_amount": AMOUNT, "expected_amount": AMOUNT, "difference": AMOUNT},
    "ConnectionChanged": {},
    "EquityReported": {"instrument": INSTRUMENT, "price": NON_NEGATIVE, "open_price": NON_NEGATIVE},
    "BreakerApplied": {"partition": IntRule(0, 2**31 - 1), "offset": COUNT},
    "AlertNotified": {
        "receiver": TextRule(0, 256),
        "status": TextRule(1, 32),
        "group_key": TextRule(0, 4096),
        "dedupe_key": TextRule(1, MAX_ID_LENGTH),
    },
}
"""The rule of each field, by event type. A decimal field not named here is an :data:`AMOUNT`, an instrument not
named may be empty; every event type of this code is named (a test checks it)."""

_TS_MIN = {TickReceived.TYPE: TICK_TS_MIN}


def ts_event_min(cls: type[Event]) -> int:
    """The earliest ``ts_event`` of an event type."""
    return _TS_MIN.get(cls.TYPE, TS_MIN)


def rules_of(cls: type[Event]) -> dict[str, Rule]:
    """The rule of each field of an event type that has one (see :data:`FIELD_RULES`)."""
    named = FIELD_RULES.get(cls.TYPE, {})
    hints = typing.get_type_hints(cls)
    out: dict[str, Rule] = {}
    for f in fields(cls):
        rule = named.get(f.name)
        if rule is None:
            if f.name == "instrument":
                rule = NO_INSTRUMENT
            elif Decimal in (hints[f.name], *typing.get_args(hints[f.name])):
                rule = AMOUNT
            else:
                continue
        out[f.name] = rule
    return out


class _Spec(NamedTuple):
    name: str
    ts_min: int
    checks: tuple[tuple[str, Rule, bool], ...]  # field, rule, may be None


_SPECS: dict[type[Event], _Spec] = {}


def _spec(cls: type[Event]) -> _Spec:
    spec = _SPECS.get(cls)
    if spec is None or spec.name != cls.TYPE:
        hints = typing.get_type_hints(cls)
        spec = _Spec(
            cls.TYPE,
            ts_event_min(cls),
            tuple((name, rule, type(None) in typing.get_args(hints[name])) for name, rule in rules_of(cls).items()),
        )
        _SPECS[cls] = spec
    return spec


def _time_problem(name: str, v: object, low: int) -> str | None:
    if type(v) is not int:
        return f"{name}: expected an integer (ns since the epoch), got {type(v).__name__}"
    if v < low:
        if low == TS_MIN:
            return f"{name}: {v} is before 1970-01-01 (ns since the epoch)"
        return f"{name}: {v} is before 2000-01-01, the earliest time of a tick"
    if v >= TS_MAX:
        return f"{name}: {v} is not before 2200-01-01 (ns since the epoch)"
    return None


def _event_problem(spec: _Spec, ev: Event) -> str | None:
    for name, rule, optional in spec.checks:
        v = getattr(ev, name)
        if v is None and optional:
            continue
        problem = rule.problem(v)
        if problem is not None:
            return f"{spec.name}.{name}: {problem}"
    return None


def problem(env: Envelope, key: str | None = None) -> str | None:
    """Why an envelope breaks a rule of this module, or None (``key``: as written, if not ``env.key``)."""
    ev = env.event
    spec = _spec(type(ev))
    reason = (
        _time_problem("ts_event", env.ts_event, spec.ts_min)
        or _time_problem("ts_init", env.ts_init, TS_MIN)
        or _event_problem(spec, ev)
    )
    if reason is not None:
        return reason
    key, instrument = env.key if key is None else key, ev.instrument
    if instrument and key != instrument:
        return f"key {_show(key)} is not the event's instrument {_show(instrument)}"
    if len(key) > MAX_ID_LENGTH:
        return f"key: {len(key)} characters, at most {MAX_ID_LENGTH}"
    if len(env.source) > MAX_ID_LENGTH:
        return f"source: {len(env.source)} characters, at most {MAX_ID_LENGTH}"
    return None


def validate(env: Envelope, key: str | None = None) -> None:
    """Raise :class:`InvalidEvent` with the reason if the envelope breaks a rule of this module (``key``: the key as
    written in the record, if not ``env.key``; an envelope made with an empty key takes the instrument's)."""
    reason = problem(env, key)
    if reason is not None:
        raise InvalidEvent(reason)


def validate_tick(tick: TickReceived, ts_event: int) -> None:
    """Raise :class:`InvalidEvent` with the reason if a tick a feed is about to publish at ``ts_event`` (ns) breaks
    a rule of this module (the same rules :func:`events.decode` applies when it is read back)."""
    spec = _spec(type(tick))
    reason = _time_problem("ts_event", ts_event, spec.ts_min) or _event_problem(spec, tick)
    if reason is not None:
        raise InvalidEvent(reason)


def check_raw(raw: bytes) -> None:
    """Raise :class:`InvalidEvent` if a record value is empty or over :data:`MAX_RECORD_BYTES` (before parsing)."""
    if not raw:
        raise InvalidEvent("empty record value")
    if len(raw) > MAX_RECORD_BYTES:
        raise InvalidEvent(f"record of {len(raw)} bytes is over the limit of {MAX_RECORD_BYTES}")


def instrument_problem(name: str) -> str | None:
    """Why ``name`` is not an instrument a user may give (:data:`INSTRUMENT_PATTERN`), or None."""
    if _INSTRUMENT.fullmatch(name):
        return None
    return (
        f"{_show(name)} is not an instrument name: letters and digits, then also . _ : / - "
        f"(at most {MAX_ID_LENGTH} characters), e.g. XRP/ETH"
    )


def wire_meta(rule: Any) -> msgspec.Meta | None:
    """The msgspec constraint of a text or integer rule (None for a decimal rule: its string is read by
    :meth:`DecimalRule.read`)."""
    return rule.meta() if isinstance(rule, TextRule | IntRule) else None
