"""The circuit breaker's state over time: a pure fold of TradingHalted / TradingResumed events, and of the
BreakerApplied markers that say where an engine applied each switch on each of its input partitions.

A switch takes effect at its event time. Where an engine marked a partition, the switch applies to that
partition's records from the marked offset on (and still only to those stamped at or after the switch): the
engine may have processed, before it read the switch, ticks stamped after it, and traded them; the marker makes a
recovery take those very decisions again. So whether a tick was traded under a halt depends only on the log.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from events import Event, TradingHalted, TradingResumed

Where = tuple[str, int]  # (topic, partition)


@dataclass
class Breaker:
    _times: list[int] = field(default_factory=list)
    _halted: list[bool] = field(default_factory=list)
    _ids: list[str] = field(default_factory=list)
    _from: dict[str, dict[Where, int]] = field(default_factory=dict)  # switch id -> partition -> first offset

    def apply(self, event: Event, ts_event: int, switch_id: str = "") -> None:
        if not isinstance(event, TradingHalted | TradingResumed):
            return
        if switch_id and switch_id in self._ids:
            return  # the same switch read again
        i = bisect.bisect_right(self._times, ts_event)
        self._times.insert(i, ts_event)
        self._halted.insert(i, isinstance(event, TradingHalted))
        self._ids.insert(i, switch_id)

    def mark(self, switch_id: str, where: Where, offset: int) -> bool:
        """Record where a switch applies on a partition (the first marker in log order holds); True if new."""
        marks = self._from.setdefault(switch_id, {})
        if where in marks:
            return False
        marks[where] = offset
        return True

    def marked(self, switch_id: str, where: Where) -> bool:
        return where in self._from.get(switch_id, {})

    def halted_at(self, ts_event: int, where: Where | None = None, offset: int = 0) -> bool:
        """Halted for a record stamped ``ts_event`` (at ``offset`` of partition ``where``, when given)?"""
        i = bisect.bisect_right(self._times, ts_event)
        if where is None:
            return self._halted[i - 1] if i else False
        for j in range(i - 1, -1, -1):
            start = self._from.get(self._ids[j], {}).get(where)
            if start is None or offset >= start:
                return self._halted[j]
        return False

    @property
    def halted(self) -> bool:
        return self._halted[-1] if self._halted else False

    def switches(self) -> list[tuple[str, int]]:
        """(switch id, event time) of every switch, in time order."""
        return list(zip(self._ids, self._times, strict=True))
