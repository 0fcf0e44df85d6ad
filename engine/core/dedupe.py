"""The inputs seen lately, to take a repeated one once (pure, no I/O).

A tick's event id is derived from the trade it reports (venue, instrument, trade id, time), so a trade published
twice (a feed that resent a window after a broker error, a recorded run resumed after a crash) is two records with
one id. The log keeps both; every consumer takes the first and skips the second. The last ``capacity`` ids are
remembered (a duplicate comes soon after the original: a resent window is at most a few thousand ticks), in order,
so the set is the same after a restore, and a recovery takes the same decisions as the live run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

CAPACITY = 8192


class RecentIds(Generic[K]):
    """The last ``capacity`` ids added, in order."""

    __slots__ = ("_order", "_set", "capacity")

    def __init__(self, capacity: int = CAPACITY, ids: Iterable[K] = ()) -> None:
        self.capacity = capacity
        self._order: deque[K] = deque(ids, maxlen=None)
        while len(self._order) > capacity:
            self._order.popleft()
        self._set = set(self._order)

    def add(self, key: K) -> bool:
        """Remember ``key``; False if it was seen among the last ``capacity`` (a repeat: skip it)."""
        if key in self._set:
            return False
        self._order.append(key)
        self._set.add(key)
        if len(self._order) > self.capacity:
            self._set.discard(self._order.popleft())
        return True

    def ids(self) -> tuple[K, ...]:
        """The ids remembered, oldest first (for a state snapshot)."""
        return tuple(self._order)

    def __len__(self) -> int:
        return len(self._order)
