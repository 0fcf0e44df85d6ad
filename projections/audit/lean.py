"""Reading a record for the audit projection without building the event's dataclasses when it need not.

Most of the log is ticks and strategy signals, and the audit needs of them only the ``events`` row and one
more row (a tick's input to its 1-minute candle, a signal's ``signals`` row). :func:`decode_record` reads
such an event, when it is in the exact shape our codec writes (lower-case canonical uuids, plain decimal
strings, no field missing or extra, the current version), with one ``orjson.loads`` and a few type checks,
into a :class:`LeanEvent`. Anything else, including every record that is malformed in any way, goes through
the full decoder (:func:`events.decode`): so a record is read lean only if the full decoder would accept it
too (with the same values), and a malformed one raises the same :class:`~events.DecodeError`, with the same
reason, as before (the runner dead-letters it).
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import Enum
from typing import Any

import orjson

from events import Direction, Envelope, Side, SignalGenerated, TickReceived, decode

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z").match
# a subset of what Decimal() takes and PostgreSQL's numeric takes, with the same value and scale, and written as
# str(Decimal(s)) writes it (no leading zero: "01" would be stored as "01" here and as "1" by the full decoder)
_PLAIN_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?\Z").match
_MAX_TS = 2**63  # ts_* are bigint columns
_STR, _DEC = "str", "dec"


def _values(enum: type[Enum]) -> frozenset[str]:
    return frozenset(m.value for m in enum)


# event type -> (version, {field: str | decimal | the enum's values}); every field is required (no defaults)
_SPECS: dict[str, tuple[int, dict[str, Any]]] = {
    TickReceived.TYPE: (TickReceived.VERSION, {"instrument": _STR, "venue": _STR, "trade_id": _STR,
                                               "price": _DEC, "quantity": _DEC, "side": _values(Side)}),
    SignalGenerated.TYPE: (SignalGenerated.VERSION, {"instrument": _STR, "strategy": _STR,
                                                     "direction": _values(Direction), "target_position": _DEC,
                                                     "price": _DEC, "reason": _STR}),
}
_FIELDS = {t: (v, frozenset(spec), tuple(spec.items())) for t, (v, spec) in _SPECS.items()}


class LeanEvent:
    """An event read for the audit: its ``events`` row (columns: ``sql.EVENT_COLUMNS``), a few envelope
    fields, and its payload as parsed (strings: ``price`` and the like are the wire's decimal strings).

    ``event_id`` is the canonical uuid string (asyncpg encodes such strings as uuid).
    """

    __slots__ = ("data", "event_id", "row", "ts_event", "ts_init", "type")
    upcast_from = None

    def __init__(self, type_: str, row: tuple[Any, ...], event_id: str, ts_event: int, ts_init: int,
                 data: dict[str, Any]) -> None:
        self.type = type_
        self.row = row
        self.event_id = event_id
        self.ts_event = ts_event
        self.ts_init = ts_init
        self.data = data

    def signal_row(self) -> tuple[Any, ...]:
        """The ``signals`` row of a SignalGenerated."""
        d = self.data
        return (self.event_id, d["instrument"], d["strategy"], d["direction"], Decimal(d["target_position"]),
                Decimal(d["price"]), d["reason"], self.ts_event)


def _lean(topic: str, partition: int, offset: int, raw: bytes) -> LeanEvent | None:
    """The event, if ``raw`` is a lean type in our codec's exact shape; None to let the full decoder judge."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    type_ = obj.get("type")
    known = _FIELDS.get(type_) if type(type_) is str else None
    if known is None:
        return None
    version, names, fields = known
    v = obj.get("v")
    data = obj.get("data")
    if type(v) is not int or v != version or type(data) is not dict or data.keys() != names:
        return None
    for name, kind in fields:
        value = data[name]
        if type(value) is not str:
            return None
        if kind is _STR:
            continue
        if kind is _DEC:
            if not _PLAIN_DECIMAL(value):
                return None
        elif value not in kind:
            return None
    eid, corr, caus = obj.get("id"), obj.get("correlation_id"), obj.get("causation_id")
    ts_event, ts_init = obj.get("ts_event"), obj.get("ts_init")
    key, source = obj.get("key"), obj.get("source")
    if not (
        type(eid) is str and _UUID(eid)
        and type(corr) is str and (corr == eid or _UUID(corr))
        and (caus is None or (type(caus) is str and _UUID(caus)))
        and type(ts_event) is int and 0 <= ts_event < _MAX_TS
        and type(ts_init) is int and 0 <= ts_init < _MAX_TS
        and type(key) is str and key
        and type(source) is str
    ):
        return None
    row = (eid, type_, v, key, ts_event, ts_init, corr, caus, source, topic, partition, offset,
           orjson.dumps(data).decode())
    return LeanEvent(type_, row, eid, ts_event, ts_init, data)  # type: ignore[arg-type]  # checked above


def decode_record(ticks_topic: str, trading_topic: str, topic: str, partition: int, offset: int,
                  raw: bytes | None) -> Envelope | LeanEvent:
    """A :class:`LeanEvent` for a well-formed tick (on the ticks topic) or signal (on the trading topic),
    else the full :func:`events.decode`."""
    if raw is not None and topic in (ticks_topic, trading_topic):
        lean = _lean(topic, partition, offset, raw)
        if lean is not None and (lean.type == TickReceived.TYPE) == (topic == ticks_topic):
            return lean
    return decode(raw)


def is_tick(e: Any) -> bool:
    return e.type == TickReceived.TYPE if type(e) is LeanEvent else isinstance(e.event, TickReceived)
