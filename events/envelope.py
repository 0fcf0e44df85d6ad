"""The envelope every event travels in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from events._base import Event
from events._ids import derived_event_id, fact_event_id, new_event_id, trade_event_id
from events.market import TickReceived


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who, when and why around one :class:`Event`.

    - ``event_id``: UUIDv7, unique, time-ordered (deterministic for derived events);
    - ``key``: the Kafka key, the instrument, so one instrument's events keep their order;
    - ``ts_event``: when it happened (ns since the epoch, UTC), also the Kafka record timestamp;
    - ``ts_init``: when this system recorded it (ns, UTC);
    - ``correlation_id``: the first event of the chain (a tick for everything it led to);
    - ``causation_id``: the event that directly caused this one (None for external inputs);
    - ``source``: the component that wrote it (``feed:synthetic``, ``engine``, ``venue:paper``...).
    """

    event_id: uuid.UUID
    event: Event
    ts_event: int
    ts_init: int
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    source: str
    key: str = field(default="")
    upcast_from: int | None = field(default=None, compare=False)  # the version on the wire, when upcast

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.event.instrument)

    @property
    def type(self) -> str:
        return self.event.TYPE

    @property
    def version(self) -> int:
        return self.event.VERSION

    @classmethod
    def new(cls, event: Event, *, ts_event: int, ts_init: int, source: str, key: str = "") -> Envelope:
        """An event from outside the system (a tick): a fresh id, its own correlation."""
        eid = new_event_id(ts_event)
        return cls(eid, event, ts_event, ts_init, eid, None, source, key)

    @classmethod
    def of_trade(cls, tick: TickReceived, *, ts_event: int, ts_init: int, source: str) -> Envelope:
        """A tick: its id is derived from the trade (venue, instrument, trade id, time), so a trade published twice
        (a resent window, a resumed recorded run) is one event, which every consumer takes once."""
        eid = trade_event_id(tick.venue, tick.instrument, tick.trade_id, ts_event)
        return cls(eid, tick, ts_event, ts_init, eid, None, source, tick.instrument)

    def derive(
        self, event: Event, seq: int, *, ts_init: int, source: str, ts_event: int | None = None, key: str = ""
    ) -> Envelope:
        """The ``seq``-th event caused by this one, with a stable id: at the same event time unless ``ts_event``
        says otherwise (a daily loss trip applies 1 ns after the record that breached), keyed by its instrument
        unless ``key`` says otherwise. The one way an event is derived from its cause."""
        ts = self.ts_event if ts_event is None else ts_event
        eid = derived_event_id(self.event_id, seq, ts)
        return Envelope(eid, event, ts, ts_init, self.correlation_id, self.event_id, source, key)

    @classmethod
    def caused_by(
        cls, cause_id: uuid.UUID, event: Event, seq: int, *, ts_event: int, ts_init: int, source: str, key: str = ""
    ) -> Envelope:
        """The ``seq``-th event caused by the event ``cause_id`` when only its id is at hand (its correlation is
        that id): e.g. where an engine applied a breaker switch."""
        eid = derived_event_id(cause_id, seq, ts_event)
        return cls(eid, event, ts_event, ts_init, cause_id, cause_id, source, key)

    @classmethod
    def of_fact(
        cls,
        venue: str,
        fact: str,
        event: Event,
        *,
        ts_event: int,
        ts_init: int,
        source: str,
        cause: Envelope | None = None,
    ) -> Envelope:
        """What a venue said (``fact``: e.g. ``"filled|<trade id>"``): the id is derived from the venue's facts, so
        a report written twice after a crash is one event; in the chain of the command it answers (``cause``)."""
        eid = fact_event_id(venue, fact, ts_event)
        if cause is None:
            return cls(eid, event, ts_event, ts_init, eid, None, source)
        return cls(eid, event, ts_event, ts_init, cause.correlation_id, cause.event_id, source)
