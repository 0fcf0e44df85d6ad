"""The base of every event payload: a frozen dataclass with a type name and a schema version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

_REGISTRY: dict[str, type[Event]] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """A fact that happened. Subclasses set ``TYPE`` (stable wire name) and ``VERSION``.

    Bump ``VERSION`` when a field is added, removed or changes meaning, and register an upcaster
    in :mod:`events.upcasters` from the old version: the log is immutable, so old versions stay
    readable forever.
    """

    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    instrument: str

    def __init_subclass__(cls) -> None:
        # no super() call: dataclass(slots=True) re-creates the class, which breaks the zero-arg form
        name = cls.__dict__.get("TYPE") or cls.__name__
        cls.TYPE = name
        # slots=True re-creates the class: the second class replaces the first of the same name
        known = _REGISTRY.get(name)
        if known is not None and known is not cls and known.__qualname__ != cls.__qualname__:
            raise TypeError(f"event type {name!r} is defined twice")
        _REGISTRY[name] = cls


def event_type(name: str) -> type[Event] | None:
    """The event class of a wire name (None if unknown); no copy of the registry, for the decoder's hot path."""
    return _REGISTRY.get(name)


def event_types() -> dict[str, type[Event]]:
    """Every known event type by its wire name."""
    return dict(_REGISTRY)
