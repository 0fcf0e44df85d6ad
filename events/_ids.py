"""Event ids: UUIDv7 (RFC 9562), so ids sort by time.

Events the engine derives from another event get a *deterministic* id (the same cause and position
always give the same id), so re-processing a tick after a crash re-emits byte-identical ids that
downstream projections recognise as duplicates.
"""

from __future__ import annotations

import hashlib
import os
import uuid

_MASK48 = (1 << 48) - 1


def _uuid7(ts_ms: int, rand: bytes) -> uuid.UUID:
    r = int.from_bytes(rand[:10], "big")  # 80 bits, 74 used
    rand_a = (r >> 62) & 0xFFF
    rand_b = r & ((1 << 62) - 1)
    value = ((ts_ms & _MASK48) << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)


def new_event_id(ts_ns: int) -> uuid.UUID:
    """A fresh, random, time-ordered id for an event that has no cause inside the system."""
    return _uuid7(ts_ns // 1_000_000, os.urandom(10))


def derived_event_id(cause: uuid.UUID, seq: int, ts_ns: int) -> uuid.UUID:
    """The id of the ``seq``-th event caused by ``cause``: deterministic and time-ordered."""
    digest = hashlib.blake2b(cause.bytes + seq.to_bytes(4, "big"), digest_size=10).digest()
    return _uuid7(ts_ns // 1_000_000, digest)


def short_hash(*parts: str, size: int = 8) -> str:
    """A short, stable hex digest of some strings (used for client order ids)."""
    h = hashlib.blake2b(digest_size=size)
    for p in parts:
        h.update(p.encode())
        h.update(b"\x00")
    return h.hexdigest()


def trade_event_id(venue: str, instrument: str, trade_id: str, ts_ns: int) -> uuid.UUID:
    """The id of the tick that reports one public trade: derived from what identifies the trade (venue,
    instrument, trade id, and its time, which orders the id), so the same trade published twice is one event."""
    parts = f"{venue}\x00{instrument}\x00{trade_id}\x00".encode()  # each part, a NUL after each
    return _uuid7(ts_ns // 1_000_000, hashlib.blake2b(parts, digest_size=10, person=b"trade").digest())


def fact_event_id(venue: str, fact: str, ts_ns: int) -> uuid.UUID:
    """The id of what a venue said (a fill of a trade id, an order's acceptance...): derived from the venue's facts."""
    cause = uuid.UUID(bytes=hashlib.blake2b(f"{venue}|{fact}".encode(), digest_size=16).digest())
    return derived_event_id(cause, 0, ts_ns)
