"""Snapshots of a trading core's state: a cache that shortens recovery, never the truth (pure, no I/O).

A core is rebuilt on assignment by running its partition's input from the start of the log (deterministic, so
exactly the state it had); with a snapshot taken at offset N, only the records from N on are run. A snapshot is
used only if its **fingerprint** matches: a hash of the code that decides the core's state (:data:`DECIDING`: the
core's modules, ``events``, the paper venue and the loop's breaker and daily loss decisions) and of the core's
configuration (strategy, risk limits, venue fees). Any change to either makes old
snapshots unusable, and recovery falls back to the whole log, so a snapshot can never give a state the log and
the current code would not.

The format is JSON with an allow-list of types (our frozen dataclasses, events by their wire name, enums,
Decimal as a string, tuples, frozensets, dicts): decoding builds nothing else, so whoever can write to the
snapshot topic cannot make the engine run code (unlike pickle).
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import uuid
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import orjson

from engine.core.dedupe import RecentIds
from engine.core.orders import Order, OrderStatus
from engine.core.portfolio import Position
from engine.core.roundtrips import OpenTrip
from engine.core.stops import HeldStop, PendingBracket
from engine.core.strategies.api import Candle, Clock
from engine.core.strategies.bollinger import BollingerState
from engine.core.strategies.ma_cross import MaCrossState
from engine.core.strategies.quoting import QuotingState
from engine.core.trader import TraderState
from engine.core.trading import TradingCore
from events import Direction, Event, Liquidity, OrderType, Side, event_type

# 2: the ids of the ticks taken lately (engine.core.dedupe); 3: states per (strategy, instrument); 4: held stops and
# pending brackets (engine.core.stops); 5: an order's trigger price (venue-native stops)
FORMAT = 5
_CLASSES: dict[str, type] = {
    c.__name__: c
    for c in (
        TraderState,
        MaCrossState,
        BollingerState,
        QuotingState,
        Position,
        Order,
        OpenTrip,
        Clock,
        Candle,
        HeldStop,
        PendingBracket,
    )
}
_ENUMS: dict[str, type[Enum]] = {e.__name__: e for e in (Side, OrderType, Direction, Liquidity, OrderStatus)}


_Kinds = tuple[dict[str, type], dict[str, type[Enum]]] | None


def _users(name: str) -> bool:
    """A module of the user's (a strategy's own), not ours nor the standard library's."""
    top = name.partition(".")[0]
    return top not in ("engine", "events", "adapters", "projections") and top not in sys.stdlib_module_names


def _user_types(strategy_cls: type) -> list[type]:
    """The dataclasses and enums a strategy may keep in its state: those of its class's modules, defined there or
    imported there from the user's other modules (a helper module)."""
    found: dict[str, type] = {}
    for klass in strategy_cls.__mro__:
        module = sys.modules.get(klass.__module__)
        if module is None or not _users(klass.__module__):
            continue
        for v in vars(module).values():
            if isinstance(v, type) and _users(v.__module__) and (issubclass(v, Enum) or dataclasses.is_dataclass(v)):
                found[f"{v.__module__}.{v.__qualname__}"] = v
    return [found[k] for k in sorted(found)]


def _kinds(core: TradingCore) -> tuple[dict[str, type], dict[str, type[Enum]]]:
    """The types allowed in ``core``'s snapshots: ours by name, its strategies' (see :func:`_user_types`) by module
    and name, so a user's class named like one of ours (``Position``) is its own."""
    classes_of = tuple(type(t.strategy) for t in core.traders)
    cached = _KINDS.get(classes_of)
    if cached is None:
        classes, enums = dict(_CLASSES), dict(_ENUMS)
        for strategy_cls in classes_of:
            for v in _user_types(strategy_cls):
                key = f"{v.__module__}.{v.__qualname__}"
                if issubclass(v, Enum):
                    enums[key] = v
                else:
                    classes[key] = v
        cached = _KINDS[classes_of] = (classes, enums)
    return cached


def _key(v: Any, table: dict[str, Any]) -> str | None:
    """The name ``v``'s type is written under, if it is allowed."""
    t: type = type(v)
    name: str = t.__name__
    if table.get(name) is t:
        return name
    qualified = f"{t.__module__}.{t.__qualname__}"
    return qualified if table.get(qualified) is t else None


def _strategy_code(core: TradingCore) -> str:
    """A hash of the strategies' own files (their classes' modules and those of the types they keep), part of the
    fingerprint: changing a user's strategy or its helper module makes old snapshots unusable."""
    return "|".join(_code_of(type(t.strategy)) for t in core.traders)


def _code_of(strategy_cls: type) -> str:
    cached = _STRATEGY_CODE.get(strategy_cls)
    if cached is None:
        h = hashlib.sha256()
        names = {k.__module__ for k in strategy_cls.__mro__ if _users(k.__module__)}
        names |= {t.__module__ for t in _user_types(strategy_cls)}
        for name in sorted(names):
            file = getattr(sys.modules.get(name), "__file__", None)
            if file:
                h.update(name.encode())
                h.update(Path(file).read_bytes())
        cached = _STRATEGY_CODE[strategy_cls] = h.hexdigest()
    return cached


_KINDS: dict[tuple[type, ...], tuple[dict[str, type], dict[str, type[Enum]]]] = {}
_STRATEGY_CODE: dict[type, str] = {}


class SnapshotError(ValueError):
    """A snapshot that cannot be used (malformed, another format, a type not allowed)."""

    retriable = False


def _enc(v: Any, k: _Kinds = None) -> Any:
    classes, enums = k or (_CLASSES, _ENUMS)
    if isinstance(v, Enum):  # first: our enums are str enums
        name = _key(v, enums)
        if name is None:
            raise SnapshotError(f"{type(v).__qualname__} is not allowed in a snapshot")
        return {"$e": name, "v": v.value}
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, Decimal):
        return {"$d": str(v)}
    if isinstance(v, tuple):
        return {"$t": [_enc(x, k) for x in v]}
    if isinstance(v, frozenset):
        return {"$f": sorted((_enc(x, k) for x in v), key=repr)}
    if isinstance(v, list):
        return [_enc(x, k) for x in v]
    if isinstance(v, dict):
        return {"$m": [[_enc(key, k), _enc(x, k)] for key, x in v.items()]}
    if isinstance(v, Event) and event_type(v.TYPE) is type(v):
        return {"$ev": v.TYPE, "f": _fields(v, k)}
    name = _key(v, classes)
    if name is not None:
        return {"$c": name, "f": _fields(v, k)}
    raise SnapshotError(f"{type(v).__qualname__} is not allowed in a snapshot")


def _fields(v: Any, k: _Kinds) -> dict[str, Any]:
    return {f.name: _enc(getattr(v, f.name), k) for f in dataclasses.fields(v) if f.init}


def _dec(v: Any, k: _Kinds = None) -> Any:
    classes, enums = k or (_CLASSES, _ENUMS)
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, list):
        return [_dec(x, k) for x in v]
    if not isinstance(v, dict):
        raise SnapshotError(f"unexpected {type(v).__name__} in a snapshot")
    if "$d" in v:
        return Decimal(v["$d"])
    if "$e" in v:
        enum = enums.get(v["$e"])
        if enum is None:
            raise SnapshotError(f"enum {v['$e']!r} is not allowed in a snapshot")
        return enum(v["v"])
    if "$t" in v:
        return tuple(_dec(x, k) for x in v["$t"])
    if "$f" in v:
        return frozenset(_dec(x, k) for x in v["$f"])
    if "$m" in v:
        return {_dec(key, k): _dec(x, k) for key, x in v["$m"]}
    cls = event_type(v["$ev"]) if "$ev" in v else classes.get(v.get("$c", ""))
    if cls is None:
        raise SnapshotError(f"type {v.get('$ev') or v.get('$c')!r} is not allowed in a snapshot")
    return cls(**{name: _dec(x, k) for name, x in v["f"].items()})


# The code that decides what state a core reaches from the log (relative to the repository): the core package
# (engine/core: all it imports of ours is there or in events), the paper venue, and what the loop and the recovery
# feed the core and how. Not the CLI, the composition root, the status page, the execution service or the logging:
# changing those keeps snapshots.
DECIDING = (
    "engine/core",
    "engine/loop.py",
    "engine/recovery.py",
    "events",
    "adapters/venues/paper.py",
)
ROOT = Path(__file__).resolve().parents[2]


def code_hash(root: Path = ROOT) -> str:
    """A hash of the files of :data:`DECIDING` under ``root`` (their paths and contents)."""
    h = hashlib.sha256()
    files: list[Path] = []
    for rel in DECIDING:
        path = root / rel
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    for path in sorted(files):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


_CODE = code_hash()


def fingerprint(core: TradingCore) -> str:
    """This code and the core's configuration (``repr`` of the frozen traders, the account's limits and the venue's
    settings)."""
    venue = core.venue
    venue_config = repr(venue.config()) if venue is not None else "live"
    text = f"{_CODE}|{_strategy_code(core)}|{core.traders!r}|{core.account!r}|{venue_config}"
    return hashlib.sha256(text.encode()).hexdigest()


def dump(core: TradingCore, offset: int) -> bytes:
    """The core's state after every record before ``offset``."""
    return orjson.dumps(
        {
            "format": FORMAT,
            "fingerprint": fingerprint(core),
            "offset": offset,
            "states": _enc(core.states, _kinds(core)),
            "indicators": core.indicators,
            "recent": [i.hex for i in core.recent.ids()],
            "venue": _enc(core.venue.state(), _kinds(core)) if core.venue is not None else None,
        }
    )


def offset_of(data: bytes, core: TradingCore) -> int | None:
    """The offset a snapshot was taken at, if ``core`` (same code, same configuration) can use it; else None."""
    try:
        head = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(head, dict) or head.get("format") != FORMAT or head.get("fingerprint") != fingerprint(core):
        return None
    offset = head.get("offset")
    return offset if isinstance(offset, int) else None


def load(data: bytes, core: TradingCore) -> int:
    """Restore ``core`` from a snapshot it can use (see :func:`offset_of`); return the offset to go on from."""
    offset = offset_of(data, core)
    if offset is None:
        raise SnapshotError("the snapshot is of another format, code or configuration")
    body = orjson.loads(data)
    try:
        states = _dec(body["states"], _kinds(core))
        indicators = {str(k): int(n) for k, n in body["indicators"].items()}
        venue_state = _dec(body["venue"], _kinds(core))
        recent = [uuid.UUID(hex=str(i)) for i in body["recent"]]
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise SnapshotError(f"malformed snapshot: {exc!r}") from None
    core.states = states
    core.indicators = indicators
    core.recent = RecentIds(ids=recent)
    if core.venue is not None:
        core.venue.restore(venue_state)
    return offset
