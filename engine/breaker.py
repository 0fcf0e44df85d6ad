"""The circuit breaker's state over time: a pure fold of TradingHalted / TradingResumed events.

A switch takes effect at its event time, so whether a tick was traded under a halt depends only on the
log: replaying the same ticks and control events reproduces the same decisions.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from events import Event, TradingHalted, TradingResumed


@dataclass
class Breaker:
    _times: list[int] = field(default_factory=list)
    _halted: list[bool] = field(default_factory=list)

    def apply(self, event: Event, ts_event: int) -> None:
        if not isinstance(event, TradingHalted | TradingResumed):
            return
        i = bisect.bisect_right(self._times, ts_event)
        self._times.insert(i, ts_event)
        self._halted.insert(i, isinstance(event, TradingHalted))

    def halted_at(self, ts_event: int) -> bool:
        i = bisect.bisect_right(self._times, ts_event)
        return self._halted[i - 1] if i else False

    @property
    def halted(self) -> bool:
        return self._halted[-1] if self._halted else False
