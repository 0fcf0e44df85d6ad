"""Bytes <-> :class:`Envelope`, on orjson.

Wire form (one JSON object per Kafka record value)::

    {"id": "<uuid7>", "type": "OrderFilled", "v": 1, "key": "BTC/USDT",
     "ts_event": 1700000000000000000, "ts_init": 1700000000000001000,
     "correlation_id": "<uuid>", "causation_id": "<uuid>|null", "source": "engine",
     "data": {"instrument": "BTC/USDT", "price": "60000.10", ...}}

Money and quantities are Decimal in code and **strings** on the wire; a JSON number where a
Decimal is expected is refused (a float would already have lost precision). Anything that is not
a well-formed event of a known type raises :class:`DecodeError` with the reason; consumers send
such records to the dead-letter topic and carry on.
"""

from __future__ import annotations

import typing
import uuid
from collections.abc import Callable
from dataclasses import MISSING, fields
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

import orjson

from events import _wire, validation
from events._base import Event, event_type
from events._errors import DecodeError
from events.envelope import Envelope
from events.upcasters import DOWNCASTERS, upcast

__all__ = ["DecodeError", "decode", "decode_event", "encode", "event_to_dict", "wire_payload"]

_Conv = Callable[[Any], Any]
_Encode = Callable[[Any], Any]


def _dec(v: Any) -> Decimal:
    if not isinstance(v, str):
        raise DecodeError(f"expected a decimal string, got {type(v).__name__} {v!r}")
    try:
        d = Decimal(v)
    except InvalidOperation:
        raise DecodeError(f"not a decimal: {v!r}") from None
    if not d.is_finite():
        raise DecodeError(f"not a finite decimal: {v!r}")
    return d


def _typed(t: type) -> _Conv:
    def conv(v: Any) -> Any:
        if not isinstance(v, t) or (isinstance(v, bool) and t is not bool):
            raise DecodeError(f"expected {t.__name__}, got {type(v).__name__} {v!r}")
        return v

    return conv


def _enum(t: type[Enum]) -> _Conv:
    def conv(v: Any) -> Any:
        try:
            return t(v)
        except ValueError:
            raise DecodeError(f"{v!r} is not one of {[m.value for m in t]}") from None

    return conv


def _strings(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise DecodeError(f"expected a list of strings, got {type(v).__name__} {v!r}")
    return tuple(v)


def _optional(inner: _Conv) -> _Conv:
    return lambda v: None if v is None else inner(v)


def _converter(hint: Any) -> tuple[_Conv, _Encode]:
    args = typing.get_args(hint)
    if args and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        dec, enc = _converter(inner)
        return _optional(dec), (lambda v: None if v is None else enc(v))
    if hint is Decimal:
        return _dec, str
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _enum(hint), (lambda v: v.value)
    if hint in (str, int, bool):
        return _typed(hint), (lambda v: v)
    if hint == tuple[str, ...]:
        return _strings, list
    raise TypeError(f"unsupported field type in an event: {hint!r}")


_SCHEMAS: dict[type[Event], tuple[tuple[str, _Conv, _Encode, bool], ...]] = {}


def _schema(cls: type[Event]) -> tuple[tuple[str, _Conv, _Encode, bool], ...]:
    cached = _SCHEMAS.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        dec, enc = _converter(hints[f.name])
        required = f.default is MISSING and f.default_factory is MISSING
        out.append((f.name, dec, enc, required))
    _SCHEMAS[cls] = tuple(out)
    return _SCHEMAS[cls]


def event_to_dict(event: Event) -> dict[str, Any]:
    """The payload of an event as JSON-ready values (Decimal -> str, enums -> value)."""
    return {name: enc(getattr(event, name)) for name, _, enc, _ in _schema(type(event))}


def wire_payload(event: Event) -> tuple[int, dict[str, Any]]:
    """The version and payload an event is written with: its own, or an older shape when it holds nothing its
    version added (:data:`events.upcasters.DOWNCASTERS`)."""
    data = event_to_dict(event)
    down = DOWNCASTERS.get(event.TYPE)
    if down is not None:
        older = down[1](data)
        if older is not None:
            return down[0], older
    return event.VERSION, data


def encode(env: Envelope) -> bytes:
    event = env.event
    version, data = (event.VERSION, event_to_dict(event)) if event.TYPE not in DOWNCASTERS else wire_payload(event)
    # an id written twice (a tick is its own correlation; its events' correlation is their cause) is made once
    eid, correlation, causation = env.event_id, env.correlation_id, env.causation_id
    id_text = str(eid)
    correlation_text = id_text if correlation == eid else str(correlation)
    return orjson.dumps(
        {
            "id": id_text,
            "type": event.TYPE,
            "v": version,
            "key": env.key,
            "ts_event": env.ts_event,
            "ts_init": env.ts_init,
            "correlation_id": correlation_text,
            "causation_id": (
                None if causation is None else correlation_text if causation == correlation else str(causation)
            ),
            "source": env.source,
            "data": data,
        }
    )


_UUIDS: dict[str, uuid.UUID] = {}  # recent ids: a tick's id comes back as correlation and causation


def _uuid(v: Any, name: str) -> uuid.UUID:
    if not isinstance(v, str):
        raise DecodeError(f"{name}: expected a uuid string, got {v!r}")
    known = _UUIDS.get(v)
    if known is not None:
        return known
    try:
        u = uuid.UUID(v)
    except ValueError:
        raise DecodeError(f"{name}: not a uuid: {v!r}") from None
    if len(_UUIDS) >= 4096:
        _UUIDS.clear()
    _UUIDS[v] = u
    return u


def _int(obj: dict[str, Any], name: str) -> int:
    v = obj.get(name)
    if not isinstance(v, int) or isinstance(v, bool):
        raise DecodeError(f"{name}: expected an integer (ns since epoch), got {v!r}")
    return v


def _str(obj: dict[str, Any], name: str) -> str:
    v = obj.get(name)
    if not isinstance(v, str):
        raise DecodeError(f"{name}: expected a string, got {v!r}")
    return v


def decode_event(type_name: str, version: int, data: dict[str, Any]) -> Event:
    cls = event_type(type_name)
    if cls is None:
        raise DecodeError(f"unknown event type {type_name!r}")
    if version > cls.VERSION:
        raise DecodeError(f"{type_name} v{version} is newer than this code (v{cls.VERSION}): upgrade")
    if version < cls.VERSION:
        try:
            data = upcast(type_name, version, cls.VERSION, data)
        except LookupError as exc:
            raise DecodeError(str(exc)) from None
    kwargs: dict[str, Any] = {}
    for name, dec, _, required in _schema(cls):
        if name in data:
            try:
                kwargs[name] = dec(data[name])
            except DecodeError as exc:
                raise DecodeError(f"{type_name}.{name}: {exc.reason}") from None
        elif required:
            raise DecodeError(f"{type_name}: missing field {name!r}")
    if len(kwargs) != len(data):  # every field in data was consumed above, unless some are unknown
        extra = set(data) - {name for name, *_ in _schema(cls)}
        raise DecodeError(f"{type_name}: unknown fields {sorted(extra)}")
    return cls(**kwargs)


def decode(raw: bytes | None) -> Envelope:
    """Parse one record value; raise DecodeError with the reason if it is not a valid event (InvalidEvent if it
    breaks a rule of :mod:`events.validation`).

    A record in the exact shape :func:`encode` writes, whose values the rules take, is read by
    :func:`events._wire.read`, in C, with the same result; anything else (an older version, a malformed or
    invalid record) the general way below, which says why a record is refused."""
    if raw is None:
        raise DecodeError("empty record value (tombstone)")
    fast = _wire.read(raw)
    if fast is not None:
        return fast
    return _decode_general(raw)


def _decode_general(raw: bytes) -> Envelope:
    validation.check_raw(raw)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"expected a JSON object, got {type(obj).__name__}")
    data = obj.get("data")
    if not isinstance(data, dict):
        raise DecodeError("data: expected an object")
    version = _int(obj, "v")
    event = decode_event(_str(obj, "type"), version, data)
    causation = obj.get("causation_id")
    key = _str(obj, "key")
    env = Envelope(
        event_id=_uuid(obj.get("id"), "id"),
        event=event,
        ts_event=_int(obj, "ts_event"),
        ts_init=_int(obj, "ts_init"),
        correlation_id=_uuid(obj.get("correlation_id"), "correlation_id"),
        causation_id=None if causation is None else _uuid(causation, "causation_id"),
        source=_str(obj, "source"),
        key=key,
        upcast_from=version if version != event.VERSION else None,
    )
    validation.validate(env, key=key)  # the key as written: the envelope reads an empty one as the instrument
    return env
