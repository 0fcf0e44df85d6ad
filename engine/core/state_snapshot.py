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
from engine.core.strategies.api import Candle, Clock
from engine.core.strategies.ma_cross import MaCrossState
from engine.core.trader import TraderState
from engine.core.trading import TradingCore
from events import Direction, Event, Liquidity, OrderType, Side, event_type

FORMAT = 2  # 2: the ids of the ticks taken lately (engine.core.dedupe)
_CLASSES: dict[str, type] = {
    c.__name__: c for c in (TraderState, MaCrossState, Position, Order, OpenTrip, Clock, Candle)
}
_ENUMS: dict[str, type[Enum]] = {e.__name__: e for e in (Side, OrderType, Direction, Liquidity, OrderStatus)}


class SnapshotError(ValueError):
    """A snapshot that cannot be used (malformed, another format, a type not allowed)."""

    retriable = False


def _enc(v: Any) -> Any:
    if isinstance(v, Enum):  # first: our enums are str enums
        if _ENUMS.get(type(v).__name__) is not type(v):
            raise SnapshotError(f"{type(v).__qualname__} is not allowed in a snapshot")
        return {"$e": type(v).__name__, "v": v.value}
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, Decimal):
        return {"$d": str(v)}
    if isinstance(v, tuple):
        return {"$t": [_enc(x) for x in v]}
    if isinstance(v, frozenset):
        return {"$f": sorted((_enc(x) for x in v), key=repr)}
    if isinstance(v, list):
        return [_enc(x) for x in v]
    if isinstance(v, dict):
        return {"$m": [[_enc(k), _enc(x)] for k, x in v.items()]}
    if isinstance(v, Event) and event_type(v.TYPE) is type(v):
        return {"$ev": v.TYPE, "f": _fields(v)}
    if _CLASSES.get(type(v).__name__) is type(v):
        return {"$c": type(v).__name__, "f": _fields(v)}
    raise SnapshotError(f"{type(v).__qualname__} is not allowed in a snapshot")


def _fields(v: Any) -> dict[str, Any]:
    return {f.name: _enc(getattr(v, f.name)) for f in dataclasses.fields(v) if f.init}


def _dec(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, list):
        return [_dec(x) for x in v]
    if not isinstance(v, dict):
        raise SnapshotError(f"unexpected {type(v).__name__} in a snapshot")
    if "$d" in v:
        return Decimal(v["$d"])
    if "$e" in v:
        return _ENUMS[v["$e"]](v["v"])
    if "$t" in v:
        return tuple(_dec(x) for x in v["$t"])
    if "$f" in v:
        return frozenset(_dec(x) for x in v["$f"])
    if "$m" in v:
        return {_dec(k): _dec(x) for k, x in v["$m"]}
    cls = event_type(v["$ev"]) if "$ev" in v else _CLASSES.get(v.get("$c", ""))
    if cls is None:
        raise SnapshotError(f"type {v.get('$ev') or v.get('$c')!r} is not allowed in a snapshot")
    return cls(**{k: _dec(x) for k, x in v["f"].items()})


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
    """This code and the core's configuration (``repr`` of the frozen trader and of the venue's settings)."""
    venue = core.venue
    venue_config = repr(venue.config()) if venue is not None else "live"
    return hashlib.sha256(f"{_CODE}|{core.trader!r}|{venue_config}".encode()).hexdigest()


def dump(core: TradingCore, offset: int) -> bytes:
    """The core's state after every record before ``offset``."""
    return orjson.dumps(
        {
            "format": FORMAT,
            "fingerprint": fingerprint(core),
            "offset": offset,
            "states": _enc(core.states),
            "indicators": core.indicators,
            "recent": [i.hex for i in core.recent.ids()],
            "venue": _enc(core.venue.state()) if core.venue is not None else None,
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
        states = _dec(body["states"])
        indicators = {str(k): int(n) for k, n in body["indicators"].items()}
        venue_state = _dec(body["venue"])
        recent = [uuid.UUID(hex=str(i)) for i in body["recent"]]
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise SnapshotError(f"malformed snapshot: {exc!r}") from None
    core.states = states
    core.indicators = indicators
    core.recent = RecentIds(ids=recent)
    if core.venue is not None:
        core.venue.restore(venue_state)
    return offset
