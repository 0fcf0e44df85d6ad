"""The fast path of :func:`events.decode`: a record in the exact shape :func:`events.encode` writes.

For every event type, a msgspec struct mirrors its wire form (the envelope's fields and the event's, at the current
version, nothing missing or extra). :func:`read` parses a record into one of them in a single call, in C, then makes
the event's dataclass and its :class:`~events.Envelope` from it. It returns None for anything else (an older
version to upcast, a field missing, an unknown one, a value of the wrong type, malformed JSON...): the caller then
decodes the record the general way, which says why a record is refused.

The shapes are never more lenient than the general decoder, and give the same values for what they take:

- integers: -2**63 .. 2**63-1 (orjson reads integers up to 2**64-1, and beyond that a float, which the general
  decoder refuses; msgspec would read any integer);
- decimals: strings, read by the general decoder's rule (``Decimal(s)``, finite). msgspec's own Decimal type would
  take JSON numbers too, which the general decoder refuses;
- ids: msgspec reads a uuid in its canonical form or as 32 hex digits, a subset of what ``uuid.UUID`` reads;
- enums by value, strings as they are, a list of strings as a tuple; duplicate keys: the last one wins in both (a
  duplicate ``type`` that differs is refused here).

The rules of :mod:`events.validation` hold here too, so that a record they refuse goes to the general decoder,
which says why: times, texts and integers are checked by msgspec constraints made from the same rules, the key
against the instrument by one comparison, a decimal string by its rule's table of strings already found valid
(:meth:`~events.validation.DecimalRule.read`), and the record's size before it is parsed.
"""

from __future__ import annotations

import typing
import uuid
from dataclasses import MISSING, fields
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal

import msgspec

from events import validation
from events._base import _REGISTRY, Event
from events.envelope import Envelope
from events.upcasters import DOWNCASTERS
from events.validation import MAX_ID_LENGTH, MAX_RECORD_BYTES, TS_MAX, TS_MIN, DecimalRule, finite_decimal

_Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_Ts = Annotated[int, msgspec.Meta(ge=TS_MIN, lt=TS_MAX)]
_Name = Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)]

__all__ = ["finite_decimal", "read"]


def _wire_type(hint: Any, rule: validation.Rule | None = None) -> Any:
    args = typing.get_args(hint)
    if args and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return _wire_type(inner, rule) | None
    if hint is Decimal:
        return str
    meta = validation.wire_meta(rule)
    if hint is int:
        return _Int if meta is None else Annotated[int, meta]
    if hint is str:
        return hint if meta is None else Annotated[str, meta]
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint
    if hint == tuple[str, ...]:
        return hint  # a JSON array of strings, read into a tuple
    raise TypeError(f"no wire shape for a field of type {hint!r}")


_Decimals = tuple[tuple[str, dict[str, Decimal], DecimalRule], ...]


def _shape(name: str, cls: type[Event]) -> tuple[type[msgspec.Struct], _Decimals]:
    """The wire struct of an event type, and its decimal fields with their rules' tables and rules (TypeError: a
    field has no shape)."""
    hints = typing.get_type_hints(cls)
    rules = validation.rules_of(cls)
    data_fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    decimals: list[tuple[str, dict[str, Decimal], DecimalRule]] = []
    for f in fields(cls):
        rule = rules.get(f.name)
        wire = _wire_type(hints[f.name], rule)
        data_fields.append((f.name, wire) if f.default is MISSING else (f.name, wire, f.default))
        if Decimal in (hints[f.name], *typing.get_args(hints[f.name])):
            assert isinstance(rule, DecimalRule)
            decimals.append((f.name, rule.seen, rule))
    data = msgspec.defstruct(f"{cls.__name__}Data", data_fields, kw_only=True, forbid_unknown_fields=True, gc=False)
    ts_event = Annotated[int, msgspec.Meta(ge=validation.ts_event_min(cls), lt=TS_MAX)]
    # a type still written in an older shape when it holds nothing newer (events.upcasters.DOWNCASTERS): that shape
    # is this one without the added fields, which take their defaults
    down = DOWNCASTERS.get(name)
    versions = (cls.VERSION,) if down is None else (cls.VERSION, down[0])
    wire_struct = msgspec.defstruct(
        f"{cls.__name__}Wire",
        [
            ("id", uuid.UUID),
            ("v", Literal[versions]),
            ("key", _Name),
            ("ts_event", ts_event),
            ("ts_init", _Ts),
            ("correlation_id", uuid.UUID),
            ("causation_id", uuid.UUID | None),
            ("source", _Name),
            ("data", data),
        ],
        tag_field="type",
        tag=name,
        forbid_unknown_fields=True,
        gc=False,
    )
    return wire_struct, tuple(decimals)


# wire struct -> (event class, its type name, the version it was made for, its decimal fields)
_shapes: dict[type, tuple[type[Event], str, int, _Decimals]] = {}
_decode: Any = None
_defaults: dict[type[Event], dict[str, Any]] = {}
_built_for = -1  # the number of registered event types the decoder was built for


def _build() -> None:
    global _decode, _built_for
    _shapes.clear()
    for name, cls in list(_REGISTRY.items()):
        if any(f.default_factory is not MISSING for f in fields(cls)):
            continue  # a mutable default: the general decoder only
        try:
            wire_struct, decimals = _shape(name, cls)
        except TypeError:
            continue  # a field type with no wire shape here: the general decoder only
        _shapes[wire_struct] = (cls, name, cls.VERSION, decimals)
        _defaults[cls] = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
    types = tuple(_shapes)
    # a union of two or more, or none: a lone tagged struct would take a record without its "type"
    _decode = msgspec.json.Decoder(typing.Union[types]).decode if len(types) > 1 else None  # noqa: UP007
    _built_for = len(_REGISTRY)


def read(raw: bytes) -> Envelope | None:
    """The envelope of a record in the exact shape ``encode`` writes, at the current version, whose values the rules
    of :mod:`events.validation` take; else None."""
    if _built_for != len(_REGISTRY):
        _build()
    if _decode is None or len(raw) > MAX_RECORD_BYTES:
        return None
    try:
        w = _decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    cls, name, version, decimals = _shapes[type(w)]
    if _REGISTRY.get(name) is not cls or version != cls.VERSION:  # changed since (tests do): the general decoder
        return None
    instrument = w.data.instrument
    if instrument and w.key != instrument:
        return None
    kw = msgspec.structs.asdict(w.data)
    upcast_from = None
    if w.v != version:  # the older shape: the fields its version lacks must be absent (their defaults)
        upcast_from = w.v
        if any(kw[f] != _defaults[cls][f] for f in DOWNCASTERS[name][2]):
            return None
    for f, seen, rule in decimals:
        s = kw[f]
        if s is not None:
            d = seen.get(s) or rule.read(s)  # a miss (or a zero) reads it: checked, then remembered
            if d is None:
                return None
            kw[f] = d
    return Envelope(
        w.id, cls(**kw), w.ts_event, w.ts_init, w.correlation_id, w.causation_id, w.source, w.key, upcast_from
    )
