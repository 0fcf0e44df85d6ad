"""Reading a record for the audit projection without building the event's dataclasses when it need not.

Most of the log is ticks and strategy signals, and the audit needs of them only the ``events`` row and one
more row (a tick's input to its 1-minute candle, a signal's ``signals`` row). :func:`decode_record` reads
such an event, when it is in the exact shape our codec writes (plain decimal strings, no field missing or
extra, the current version), straight into a :class:`LeanTick` or :class:`LeanSignal`: msgspec parses and
checks it in one call, in C; the ids are then read into asyncpg's own UUID type (parsed in C, and written to
PostgreSQL as they are: a ``uuid.UUID`` costs a Python-level conversion each way), and the decimal strings are
looked up in a table of those seen before (prices and quantities repeat; a new one is read once, by the same
rule as the full decoder's). The rules of :mod:`events.validation` hold here as in the full decoder: times,
texts and the record's size by msgspec constraints made from the same limits, the key against the instrument by
one comparison, and each decimal string in its rule's table (prices and quantities > 0, a target of either
sign). Anything else, including every record that is malformed or invalid in any way, goes through the full
decoder (:func:`events.decode`): so a record is read lean only if the full decoder would accept it too (with the
same values), and a malformed or invalid one raises the same :class:`~events.DecodeError`, with the same reason,
as before (the runner dead-letters it).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from asyncpg.pgproto.pgproto import UUID
from msgspec import Meta, Struct

from events import Envelope, SignalGenerated, TickReceived, decode
from events.validation import (
    FIELD_RULES,
    MAX_ID_LENGTH,
    MAX_RECORD_BYTES,
    POSITIVE,
    SIGNED,
    TICK_TS_MIN,
    TS_MAX,
    TS_MIN,
    wire_meta,
)

_Ts = Annotated[int, Meta(ge=TS_MIN, lt=TS_MAX)]  # ts_* are bigint columns, and times the rules take
_TickTs = Annotated[int, Meta(ge=TICK_TS_MIN, lt=TS_MAX)]
_Key = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
_Name = Annotated[str, Meta(max_length=MAX_ID_LENGTH)]


def _meta(event: str, name: str) -> Meta | None:
    """The constraint of a payload's text field (its rule's)."""
    return wire_meta(FIELD_RULES[event][name])


_Venue = Annotated[str, _meta("TickReceived", "venue")]
_TradeId = Annotated[str, _meta("TickReceived", "trade_id")]
_TickInstrument = Annotated[str, _meta("TickReceived", "instrument")]
_SignalInstrument = Annotated[str, _meta("SignalGenerated", "instrument")]


# The fields of the payloads are declared in the order of a jsonb object's keys (shorter first, then bytewise; see
# jsonb_order): the ``events`` payload is encoded from these structs, in this order, and PostgreSQL reads it into
# jsonb faster when its keys are in the order jsonb keeps them in (it sorts them otherwise). The value stored is the
# same either way: jsonb does not keep the order it was given.


def jsonb_order(key: str) -> tuple[int, bytes]:
    """The place of ``key`` among the keys of a jsonb object."""
    return len(key.encode()), key.encode()


class _TickData(Struct, forbid_unknown_fields=True, gc=False):
    side: Literal["buy", "sell"]
    price: str
    venue: _Venue
    quantity: str
    trade_id: _TradeId
    instrument: _TickInstrument


class _SignalData(Struct, forbid_unknown_fields=True, gc=False):
    price: str
    reason: str
    strategy: str
    direction: Literal["long", "short", "flat"]
    instrument: _SignalInstrument
    target_position: str


class _LeanEnvelope(Struct, forbid_unknown_fields=True, gc=False):
    """The envelope fields of a lean event, as on the wire (``id`` is read into ``event_id``).

    The ids are what the JSON holds as msgspec reads them, and :func:`decode_record` replaces them with asyncpg's
    :class:`~asyncpg.pgproto.pgproto.UUID` (a subclass of ``uuid.UUID``) before anyone sees them; a value that is
    not a uuid string it accepts sends the record to the full decoder."""

    event_id: Any = msgspec.field(name="id")
    v: Literal[1]
    key: _Key
    ts_event: _Ts
    ts_init: _Ts
    correlation_id: Any
    causation_id: Any
    source: _Name

    upcast_from = None


class LeanTick(_LeanEnvelope, tag_field="type", tag=TickReceived.TYPE):
    """A tick as the audit reads it: the envelope's fields, and the payload with its decimals as strings.

    The decimal fields are strings here: :func:`decode_record` reads a record lean only if they are plain
    decimals their rules take (see :func:`decode_record`)."""

    ts_event: _TickTs  # a tick's time: from 2000-01-01
    data: _TickData

    type = TickReceived.TYPE


class LeanSignal(_LeanEnvelope, tag_field="type", tag=SignalGenerated.TYPE):
    """A strategy signal as the audit reads it (see :class:`LeanTick`)."""

    data: _SignalData

    type = SignalGenerated.TYPE

    def signal_row(self) -> tuple[Any, ...]:
        """The ``signals`` row."""
        d = self.data
        return (
            self.event_id,
            d.instrument,
            d.strategy,
            d.direction,
            value_of(d.target_position),
            value_of(d.price),
            d.reason,
            self.ts_event,
        )


# Decimal strings seen lately that the rule of prices and quantities (> 0) takes, and their values; and those the
# rule of a target (either sign) takes: the validation rules' own tables, shared with the codec's fast path (a test
# checks these are the rules of the fields read lean), cleared when full, never rebound. The stored payload keeps
# the string as it came, as the full decoder's does, and ``numeric`` columns get these values: the same value and
# scale either way.
_DECIMALS = POSITIVE.seen
_known = _DECIMALS.get
_positive = POSITIVE.read
_known_signed = SIGNED.seen.get
_signed = SIGNED.read


def decimals_seen() -> dict[str, Decimal]:
    """The table of the prices and quantities read lean (for a hot loop to look values up without a call)."""
    return _DECIMALS


def value_of(s: str) -> Decimal:
    """The value of a decimal string read lean (from the rules' tables, if still there)."""
    d = _DECIMALS.get(s) or SIGNED.seen.get(s)
    return Decimal(s) if d is None else d


# a union, so that the "type" tag is required (a lone tagged struct would take a record without one)
_read = msgspec.json.Decoder(LeanTick | LeanSignal).decode
_encode = msgspec.json.Encoder().encode


def event_row(e: LeanTick | LeanSignal, topic: str, partition: int, offset: int) -> tuple[Any, ...]:
    """The ``events`` row (columns: ``sql.EVENT_COLUMNS``); the payload is re-encoded from what was read."""
    return (
        e.event_id,
        e.type,
        e.v,
        e.key,
        e.ts_event,
        e.ts_init,
        e.correlation_id,
        e.causation_id,
        e.source,
        topic,
        partition,
        offset,
        _encode(e.data).decode(),
    )


def decode_record(
    ticks_topic: str, trading_topic: str, topic: str, partition: int, offset: int, raw: bytes | None
) -> Envelope | LeanTick | LeanSignal:
    """A :class:`LeanTick` for a well-formed tick on the ticks topic, a :class:`LeanSignal` for a well-formed
    signal on the trading topic, else the full :func:`events.decode`.

    The id strings are replaced by UUIDs: ``UUID`` raises TypeError or ValueError unless given 32 hex digits
    with hyphens anywhere, a subset of what ``uuid.UUID`` reads, with the same value. A correlation or causation
    id is most often the id just before it: the same string gives the same object. (This runs for most records
    of the log, so the decimals' tables are looked up inline, and the rule's ``read`` called only on a miss.)"""
    if raw is not None and len(raw) <= MAX_RECORD_BYTES and topic in (ticks_topic, trading_topic):
        try:
            e = _read(raw)
            event_id, correlation, causation = e.event_id, e.correlation_id, e.causation_id
            e.event_id = eid = UUID(event_id)
            e.correlation_id = cid = eid if correlation == event_id else UUID(correlation)
            if causation is not None:
                e.causation_id = cid if causation == correlation else UUID(causation)
        except (msgspec.ValidationError, msgspec.DecodeError, TypeError, ValueError):
            pass  # not in the exact lean shape (or not a tick/signal): the full decoder judges it
        else:
            if isinstance(e, LeanTick):
                d = e.data
                if (
                    topic == ticks_topic
                    and e.key == d.instrument
                    and (_known(d.price) or _positive(d.price)) is not None
                    and (_known(d.quantity) or _positive(d.quantity)) is not None
                ):
                    return e
            elif topic == trading_topic:
                s = e.data
                if (
                    e.key == s.instrument
                    and (_known_signed(s.target_position) or _signed(s.target_position)) is not None
                    and (_known(s.price) or _positive(s.price)) is not None
                ):
                    return e
    return decode(raw)


def is_tick(e: Any) -> bool:
    return type(e) is LeanTick or isinstance(e.event, TickReceived)
